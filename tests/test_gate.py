"""The deployment gate: the reference example, every rule, properties, exit codes, candidates."""

from __future__ import annotations

import itertools
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlslo.decide.policy import BudgetState, Override, decide
from mlslo.errors import UsageError
from mlslo.spec import Policy, RiskScore, parse_spec, spec_from_dict

BASE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
AT = "2026-11-21T00:00:00Z"
RANK = {"allow": 0, "warn": 1, "block": 2}

REFERENCE_SPEC = """
    service: fraud-scoring
    slos:
      - name: accuracy
        dimension: accuracy
        sli: {metric: f1, positive_label: 1}
        objective: {target: 0.92}
        filter: {model: accuracy-example}
      - name: uptime
        dimension: availability
        objective: {target: 0.9995}
        absent_after: off  # the outcome counts are from noon; the gate runs at midnight
      - name: fairness
        dimension: fairness
        sli: {metric: true_positive_rate_difference, attribute: group}
        objective: {target: 0.05}
        filter: {model: fairness-example}
    policy:
      hard_stop: [uptime, fairness]
      soft_stop: [accuracy]
      min_remaining: {uptime: 0.5, fairness: 0.75, accuracy: 0.3}
      risk_score: {weights: {uptime: 0.4, fairness: 0.3, accuracy: 0.2}, max: 0.6}
"""


def _reference_records(write_records) -> tuple[Path, Path]:
    rows = []
    truth = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1]
    predicted = [1, 0, 1, 0, 0, 1, 0, 1, 1, 1]
    for i, (y, p) in enumerate(zip(truth, predicted, strict=True)):
        rows.append(("accuracy-example", "-", y, p, BASE + timedelta(minutes=i)))
    for group, hits in (("A", 91), ("B", 86)):
        rows += [("fairness-example", group, 1, int(i < hits), BASE) for i in range(100)]
        rows += [("fairness-example", group, 0, int(i < 10), BASE) for i in range(100)]
    predictions = write_records(
        {
            "id": [f"p{i}" for i in range(len(rows))],
            "model": [r[0] for r in rows],
            "group": [r[1] for r in rows],
            "label": [r[2] for r in rows],
            "prediction": [r[3] for r in rows],
            "ts": [r[4] for r in rows],
        }
    )
    outcomes = write_records({"ts": [BASE], "total": [1_000_000], "ok": [1_000_000 - 320]})
    return predictions, outcomes


def test_reference_gate_example_blocks_with_every_reason(cli, write_spec, write_records):
    predictions, outcomes = _reference_records(write_records)
    run = cli(
        "gate",
        "--spec",
        write_spec(REFERENCE_SPEC),
        "--data",
        predictions,
        "--outcomes",
        outcomes,
        "--at",
        AT,
        "--format",
        "json",
    )
    assert run.exit_code == 1, run.stderr
    doc = run.json()
    assert doc["decision"] == "block"
    assert doc["policy"] == "default"
    got = {(r["slo"], r["rule"], r["effect"]) for r in doc["reasons"]}
    assert got == {
        ("uptime", "min_remaining", "block"),
        ("fairness", "hard_stop", "block"),
        ("fairness", "min_remaining", "block"),
        ("accuracy", "soft_stop", "warn"),
        ("accuracy", "min_remaining", "block"),
        (None, "risk_score", "block"),
    }
    by_key = {(r["slo"], r["rule"]): r for r in doc["reasons"]}
    assert by_key[("uptime", "min_remaining")]["value"] == pytest.approx(0.36)
    assert by_key[("uptime", "min_remaining")]["threshold"] == 0.5
    assert by_key[("fairness", "min_remaining")]["value"] == 0
    assert by_key[("accuracy", "min_remaining")]["value"] == pytest.approx(-1.0833, abs=1e-4)
    # weights 0.4, 0.3, 0.2 normalised to sum 1
    assert doc["risk_score"] == pytest.approx((0.4 * 0.64 + 0.3 * 1 + 0.2 * 1) / 0.9)
    assert {t["slo"]: t["consumed"] for t in doc["risk_terms"]} == {
        "uptime": pytest.approx(0.64),
        "fairness": 1.0,
        "accuracy": 1.0,
    }
    assert [s["name"] for s in doc["slos"]] == ["accuracy", "uptime", "fairness"]
    table = cli(
        "gate",
        "--spec",
        write_spec(REFERENCE_SPEC),
        "--data",
        predictions,
        "--outcomes",
        outcomes,
        "--at",
        AT,
    )
    assert table.exit_code == 1
    assert table.stdout.startswith("BLOCK")
    assert table.stdout.count("min_remaining:") == 3


MINIMAL_SLI = {
    "availability": {},
    "latency": {"sli": {"latency_threshold": "250ms"}},
    "freshness": {"sli": {"lag_threshold": "15m"}},
    "accuracy": {"sli": {"metric": "f1"}},
    "fairness": {"sli": {"metric": "true_positive_rate_difference", "attribute": "g"}},
}


def _spec_of(states, policy):
    """A spec with an SLO for every state and every name the policy references, so the
    policy's references resolve as they would in a real spec."""
    dimensions = {
        s.name: s.dimension if s.dimension in MINIMAL_SLI else "availability" for s in states
    }
    for ref, _ in policy.references():
        if ref.startswith("dimension:") or ref in dimensions:
            continue
        if ref not in MINIMAL_SLI:
            dimensions[ref] = "availability"
        elif ref not in dimensions.values():
            dimensions[ref] = ref
    slos = [
        {
            "name": name,
            "dimension": dimension,
            "objective": {"target": 0.1 if dimension == "fairness" else 0.9},
            **MINIMAL_SLI[dimension],
        }
        for name, dimension in dimensions.items()
    ]
    return spec_from_dict({"service": "gate-test", "slos": slos})


def _decide(policy, states, **options):
    return decide(_spec_of(states, policy), policy, "p", states, **options)


def _state(name, status="healthy", remaining=0.8, dimension=None):
    consumed = None if remaining is None else 1 - remaining
    return BudgetState(name, dimension or name, status, consumed, remaining)


@pytest.mark.parametrize(
    ("policy", "states", "decision", "rules"),
    [
        (Policy(), [_state("uptime")], "allow", []),
        (
            Policy(hard_stop=["uptime"]),
            [_state("uptime", "exhausted", -0.1)],
            "block",
            ["hard_stop"],
        ),
        (
            Policy(hard_stop=["availability"]),
            [_state("api", "exhausted", 0.0, dimension="availability")],
            "block",
            ["hard_stop"],
        ),
        (
            Policy(soft_stop=["accuracy"]),
            [_state("accuracy", "exhausted", -2)],
            "warn",
            ["soft_stop"],
        ),
        (Policy(hard_stop=["uptime"]), [_state("uptime", "low", 0.1)], "allow", []),
        (Policy(min_remaining={"uptime": 0.5}), [_state("uptime", "healthy", 0.5)], "allow", []),
        (
            Policy(min_remaining={"uptime": 0.5}),
            [_state("uptime", "healthy", 0.49)],
            "block",
            ["min_remaining"],
        ),
        (Policy(hard_stop=["uptime"]), [_state("uptime", "no_data", None)], "warn", ["no_data"]),
        (
            Policy(hard_stop=["uptime"], on_no_data="block"),
            [_state("uptime", "no_data", None)],
            "block",
            ["no_data"],
        ),
        (
            Policy(hard_stop=["uptime"], on_insufficient_data="allow"),
            [_state("uptime", "insufficient_data", 0.9)],
            "allow",
            [],
        ),
        (
            Policy(hard_stop=["uptime"]),
            [_state("uptime", "insufficient_data", None)],
            "warn",
            ["insufficient_data"],
        ),
        (Policy(hard_stop=["uptime"]), [_state("other", "exhausted", -1)], "allow", []),
        (
            Policy(risk_score=RiskScore(weights={"a": 0.5, "b": 0.5}, max=0.5)),
            [_state("a", remaining=0.4), _state("b", remaining=0.6)],
            "allow",
            [],
        ),
        (
            Policy(risk_score=RiskScore(weights={"a": 0.5, "b": 0.5}, max=0.5)),
            [_state("a", remaining=0.3), _state("b", remaining=0.6)],
            "block",
            ["risk_score"],
        ),
        (
            Policy(risk_score=RiskScore(weights={"a": 1.0}, max=0.9)),
            [_state("a", "exhausted", -5.0)],
            "block",
            ["risk_score"],
        ),
        (
            Policy(hard_stop=["a"], soft_stop=["b"], min_remaining={"c": 0.5}),
            [_state("a", "exhausted", 0), _state("b", "exhausted", 0), _state("c", "low", 0.2)],
            "block",
            ["hard_stop", "soft_stop", "min_remaining"],
        ),
    ],
)
def test_rules(policy, states, decision, rules):
    result = _decide(policy, states)
    assert result.decision == decision
    assert [r.rule for r in result.reasons] == rules


def test_risk_score_clamps_each_term_and_names_cover_dimensions():
    policy = Policy(risk_score=RiskScore(weights={"freshness": 0.5, "fresh-p95": 0.5}, max=1))
    states = [
        _state("fresh-share", remaining=-3.0, dimension="freshness"),
        _state("fresh-p95", remaining=0.75, dimension="freshness"),
    ]
    result = _decide(policy, states)
    # 'freshness' (a dimension) shares its 0.5 between its two SLOs: 0.25 each; fresh-p95
    # has 0.5 more of its own: weights 0.75 and 0.25, already summing to 1
    assert result.risk_score == pytest.approx(0.25 * 1.0 + 0.75 * 0.25)
    assert [(t.slo, t.weight, t.consumed) for t in result.risk_terms] == [
        ("fresh-p95", 0.75, 0.25),
        ("fresh-share", 0.25, 1.0),
    ]


def test_a_name_that_is_both_slo_and_dimension_means_the_slo():
    policy = Policy(hard_stop=["freshness"])
    states = [
        _state("freshness", "healthy", 0.9),
        _state("lag", "exhausted", -1.0, dimension="freshness"),
    ]
    assert _decide(policy, states).decision == "allow"


def test_override_turns_block_into_warning_until_it_expires():
    policy = Policy(hard_stop=["uptime"])
    states = [_state("uptime", "exhausted", -0.5)]
    now = datetime(2026, 11, 21, tzinfo=UTC)
    override = Override(
        "hotfix for incident 42", now - timedelta(hours=1), now + timedelta(hours=23)
    )
    active = _decide(policy, states, override=override, at=now)
    assert active.decision == "warn"
    assert active.blocked_before_override
    assert active.reasons[-1].rule == "override"
    assert "hotfix for incident 42" in active.reasons[-1].message
    expired = _decide(policy, states, override=override, at=now + timedelta(days=1))
    assert expired.decision == "block"
    assert expired.override is None


STATUSES = ["healthy", "low", "exhausted", "no_data", "insufficient_data"]
state_strategy = st.builds(
    lambda name, status, remaining: BudgetState(
        name,
        name,
        status,
        None if status == "no_data" else 1 - remaining,
        None if status == "no_data" else remaining,
    ),
    st.sampled_from(["uptime", "accuracy", "fairness", "freshness", "latency"]),
    st.sampled_from(STATUSES),
    st.floats(-3, 1, allow_nan=False),
).map(
    lambda s: (
        s
        if s.status != "exhausted"
        else BudgetState(
            s.name, s.dimension, s.status, max(s.consumed or 1, 1), min(s.remaining or 0, 0)
        )
    )
)
policy_strategy = st.builds(
    Policy,
    hard_stop=st.lists(st.sampled_from(["uptime", "fairness"]), unique=True),
    soft_stop=st.lists(st.sampled_from(["accuracy", "freshness"]), unique=True),
    min_remaining=st.dictionaries(
        st.sampled_from(["uptime", "fairness", "accuracy"]), st.floats(0, 1)
    ),
    risk_score=st.none()
    | st.builds(
        RiskScore,
        weights=st.dictionaries(
            st.sampled_from(["uptime", "accuracy", "latency"]), st.floats(0.01, 1), min_size=1
        ),
        max=st.floats(0.05, 1),
    ),
)


def _unique(states):
    seen = {}
    for state in states:
        seen.setdefault(state.name, state)
    return list(seen.values())


@settings(max_examples=200, deadline=None)
@given(policy_strategy, st.lists(state_strategy, min_size=1, max_size=5).map(_unique), st.randoms())
def test_decision_does_not_depend_on_slo_order(policy, states, rnd):
    shuffled = list(states)
    rnd.shuffle(shuffled)
    a, b = _decide(policy, states), _decide(policy, shuffled)
    assert (a.decision, a.reasons, a.risk_score) == (b.decision, b.reasons, b.risk_score)


@settings(max_examples=200, deadline=None)
@given(
    policy_strategy,
    st.lists(state_strategy, min_size=1, max_size=5).map(_unique),
    st.sampled_from(["uptime", "fairness", "accuracy"]),
    st.floats(0, 1),
)
def test_raising_min_remaining_never_unblocks(policy, states, name, extra):
    before = _decide(policy, states)
    raised = dict(policy.min_remaining)
    raised[name] = min(1.0, raised.get(name, 0.0) + extra)
    after = _decide(policy.model_copy(update={"min_remaining": raised}), states)
    assert RANK[after.decision] >= RANK[before.decision] or before.decision != "block"
    if before.decision == "block":
        assert after.decision == "block"


BAD_KINDS = ["error", "slow", "stale", "wrong"]


@settings(max_examples=25, deadline=None)
@given(
    st.integers(20, 200),
    st.lists(st.sampled_from(BAD_KINDS), max_size=30),
    st.lists(st.sampled_from(BAD_KINDS), min_size=1, max_size=30),
)
def test_adding_bad_events_never_turns_block_into_allow(tmp_path_factory, n, bad, more):
    from mlslo.api import gate_files
    from mlslo.scan.files import Sources

    spec = parse_spec("""
service: prop
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.97}}
  - {name: latency, dimension: latency, sli: {latency_threshold: 100ms},
     objective: {target: 0.95}}
  - {name: freshness, dimension: freshness, sli: {lag_threshold: 5m},
     objective: {target: 0.95}}
  - {name: accuracy, dimension: accuracy, sli: {metric: f1}, objective: {target: 0.9}}
policy:
  hard_stop: [uptime, latency]
  soft_stop: [freshness]
  min_remaining: {accuracy: 0.4, freshness: 0.2}
  risk_score: {weights: {uptime: 0.3, latency: 0.3, accuracy: 0.4}, max: 0.5}
""")
    folder = tmp_path_factory.mktemp("gate")
    decisions = []
    for kinds in (bad, bad + more):
        rows = [_event(i, None) for i in range(n)] + [_event(n + i, k) for i, k in enumerate(kinds)]
        path = folder / f"log{len(kinds)}.parquet"
        _write(rows, path)
        run = gate_files(spec, Sources(str(path)), datetime(2026, 11, 21, tzinfo=UTC))
        decisions.append(run.decision.decision)
    assert not (decisions[0] == "block" and decisions[1] == "allow")
    assert RANK[decisions[1]] >= RANK[decisions[0]] or decisions[0] != "block"


def _event(i: int, bad: str | None) -> dict:
    ts = BASE + timedelta(seconds=i)
    return {
        "id": f"e{i}",
        "ts": ts,
        "status": "error" if bad == "error" else "ok",
        "latency_ms": 500.0 if bad == "slow" else 20.0,
        "event_ts": ts - timedelta(minutes=30 if bad == "stale" else 1),
        "prediction": 0 if bad == "wrong" else 1,
        "label": 1,
    }


def _write(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


def _version_records(write_records):
    rows = []
    for version, gap in (("v1", 0), ("v2", 30)):
        for group, hits in (("A", 90), ("B", 90 - gap)):
            rows += [(version, group, 1, int(i < hits)) for i in range(100)]
            rows += [(version, group, 0, int(i < 5)) for i in range(100)]
    return write_records(
        {
            "id": [f"p{i}" for i in range(len(rows))],
            "ts": [BASE + timedelta(seconds=i) for i in range(len(rows))],
            "model_version": [r[0] for r in rows],
            "group": [r[1] for r in rows],
            "label": [r[2] for r in rows],
            "prediction": [r[3] for r in rows],
            "status": ["ok"] * len(rows),
        }
    )


CANDIDATE_SPEC = """
    service: fraud
    slos:
      - name: uptime
        dimension: availability
        objective: {target: 0.99}
        absent_after: off  # the records are from noon; the gate runs at midnight
      - name: fairness
        dimension: fairness
        sli: {metric: true_positive_rate_difference, attribute: group}
        objective: {target: 0.05}
    policies:
      production: {hard_stop: [fairness, uptime]}
      lenient: {soft_stop: [fairness]}
    default_policy: production
"""


def test_candidate_that_would_breach_fairness_is_blocked(cli, write_spec, write_records):
    spec = write_spec(CANDIDATE_SPEC)
    data = _version_records(write_records)
    bad = cli(
        "gate",
        "--spec",
        spec,
        "--data",
        data,
        "--at",
        AT,
        "--candidate",
        "model_version=v2",
        "-f",
        "json",
    )
    assert bad.exit_code == 1, bad.stderr
    doc = bad.json()
    assert doc["candidate"]["selector"] == {"model_version": "v2"}
    candidate = {s["name"]: s for s in doc["candidate"]["slos"]}
    current = {s["name"]: s for s in doc["candidate"]["current"]}
    assert candidate["fairness"]["sli"]["value"] == pytest.approx(0.30)
    assert current["fairness"]["sli"]["value"] == pytest.approx(0.0)
    assert [(r["slo"], r["rule"], r.get("scope")) for r in doc["reasons"]] == [
        ("fairness", "hard_stop", "candidate model_version=v2")
    ]
    good = cli(
        "gate", "--spec", spec, "--data", data, "--at", AT, "--candidate", "model_version=v1"
    )
    assert good.exit_code == 0, good.stdout + good.stderr
    assert good.stdout.startswith("ALLOW")
    assert "candidate model_version=v1 vs current" in good.stdout


def test_exit_codes(cli, write_spec, write_records):
    spec = write_spec(CANDIDATE_SPEC)
    data = _version_records(write_records)
    assert cli("gate", "--spec", spec, "--data", data, "--at", AT).exit_code == 1
    warn = cli("gate", "--spec", spec, "--data", data, "--at", AT, "--policy", "lenient")
    assert warn.exit_code == 3
    assert warn.stdout.startswith("WARN")
    assert (
        cli(
            "gate", "--spec", spec, "--data", data, "--at", AT, "--policy", "lenient", "--warn-ok"
        ).exit_code
        == 0
    )
    unknown = cli("gate", "--spec", spec, "--data", data, "--policy", "staging")
    assert unknown.exit_code == 2
    assert "no policy named 'staging'" in unknown.stderr
    selector = cli("gate", "--spec", spec, "--data", data, "--candidate", "v2")
    assert selector.exit_code == 2
    assert "ATTRIBUTE=VALUE" in selector.stderr
    absent = cli(
        "gate", "--spec", spec, "--data", data, "--at", AT, "--candidate", "model_version=v9"
    )
    assert absent.exit_code == 2
    assert "values seen: v1, v2" in absent.stderr


def test_spec_without_policy_is_a_usage_error(cli, write_spec, write_records):
    spec = write_spec("""
        service: s
        slos: [{name: uptime, dimension: availability, objective: {target: 0.9}}]
    """)
    run = cli("gate", "--spec", spec, "--data", _version_records(write_records))
    assert run.exit_code == 2
    assert "defines no policy" in run.stderr


def test_gate_exit_codes_through_the_installed_command(write_spec, write_records):
    exe = str(Path(sys.executable).with_name("mlslo"))
    spec = write_spec(CANDIDATE_SPEC)
    data = _version_records(write_records)
    codes = [
        subprocess.run(
            [exe, "gate", "--spec", str(spec), "--data", str(data), "--at", AT, *extra],
            capture_output=True,
            check=False,
        ).returncode
        for extra in (
            [],
            ["--policy", "lenient"],
            ["--policy", "lenient", "--warn-ok"],
            ["--policy", "nope"],
        )
    ]
    assert codes == [1, 3, 0, 2]


def test_choose_policy_errors():
    from mlslo.decide.gate import choose_policy

    spec = parse_spec("""
service: s
slos: [{name: u, dimension: availability, objective: {target: 0.9}}]
policies: {a: {}, b: {}}
""")
    with pytest.raises(UsageError, match="several policies"):
        choose_policy(spec, None)
    assert choose_policy(spec, "b")[0] == "b"
    assert list(itertools.islice(spec.all_policies(), 2)) == ["a", "b"]
