"""A gate that never fails open: explicit policy references, a risk score in [0, 1] that
counts what it cannot judge, burn rates and alerts that block, and a spec that refuses what
is probably a typo with the spec's own YAML path."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mlslo.decide.policy import BudgetState, decide
from mlslo.spec import parse_spec
from mlslo.spec.references import coverage, spec_warnings

AT = "2026-11-21T00:00:00Z"
BASE = datetime(2026, 11, 20, tzinfo=UTC)
TWO_FRESHNESS = """
service: refs
slos:
  - {name: freshness, dimension: freshness, sli: {lag_threshold: 15m}, objective: {target: 0.9}}
  - {name: lag-p95, dimension: freshness, sli: {percentile: 95}, objective: {target: 10m}}
  - {name: uptime, dimension: availability, objective: {target: 0.99}}
policy:
  soft_stop: [%s]
  hard_stop: [uptime]
"""


def _spec(reference: str):
    return parse_spec(TWO_FRESHNESS % reference)


def test_a_reference_names_an_slo_or_every_slo_of_a_dimension():
    named = _spec("freshness")
    assert coverage(named, named.policy)["soft_stop"] == ["freshness"]
    assert any("lag-p95 is covered by no rule" in w for w in spec_warnings(named))
    every = _spec("dimension:freshness")
    assert coverage(every, every.policy)["soft_stop"] == ["freshness", "lag-p95"]
    assert spec_warnings(every) == []


def test_a_bare_dimension_name_still_works_and_is_deprecated(write_spec, cli):
    text = TWO_FRESHNESS.replace("name: freshness,", "name: fresh-share,") % "freshness"
    spec = parse_spec(text)
    assert coverage(spec, spec.policy)["soft_stop"] == ["fresh-share", "lag-p95"]
    run = cli("validate", write_spec(text))
    assert run.exit_code == 0
    assert "  soft_stop       fresh-share, lag-p95" in run.stdout
    assert "warning: policy default: 'freshness' names a dimension; write dimension:freshness" in (
        run.stderr
    )


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("fresness", "'fresness' names no SLO (did you mean 'freshness'?)"),
        ("dimension:latency", "no SLO of the spec has dimension latency"),
        ("dimension:speed", "'speed' is not a dimension"),
        ("latency", "no SLO of the spec has dimension latency"),
    ],
)
def test_a_reference_that_matches_nothing_is_an_error(write_spec, cli, reference, message):
    run = cli("validate", write_spec(TWO_FRESHNESS % reference))
    assert run.exit_code == 2
    assert f":7: policy.soft_stop[0]: {message}" in run.stderr
    assert run.stderr.count("\n") == 1


def test_validate_lists_what_each_rule_covers(write_spec, cli):
    run = cli(
        "validate",
        write_spec("""
            service: cover
            slos:
              - {name: uptime, dimension: availability, objective: {target: 0.99}}
              - {name: api, dimension: availability, objective: {target: 0.999}}
              - name: gap
                dimension: fairness
                sli: {metric: demographic_parity_difference, attribute: g}
                objective: {target: 0.1}
            policy:
              hard_stop: [dimension:availability]
              min_remaining: {gap: 0.25}
              max_burn_rate: {uptime: {window: 1h, rate: 14.4}}
              block_on_alert: page
              risk_score: {weights: {dimension:availability: 0.5, gap: 0.5}, max: 0.6}
        """),
    )
    assert run.exit_code == 0, run.stderr
    assert run.stdout.splitlines()[1:] == [
        "policy default:",
        "  hard_stop       uptime, api",
        "  min_remaining   gap ≥ 25.0%",
        "  max_burn_rate   uptime ≤ 14.4× over 1h",
        "  block_on_alert  page alerts on covered SLOs",
        "  risk_score      uptime 25.0%, api 25.0%, gap 50.0% (max 0.6)",
    ]
    assert run.stderr == ""


# --- the risk score -------------------------------------------------------------------------

RISK = """
service: risk
slos:
  - {name: a, dimension: availability, objective: {target: 0.99}}
  - {name: b, dimension: availability, objective: {target: 0.99}}
  - {name: c, dimension: latency, sli: {latency_threshold: 1s}, objective: {target: 0.9}}
policy:
  risk_score: {weights: %s, max: 1, undefined: %s}
"""


def _state(name, dimension, status, consumed):
    remaining = None if consumed is None else 1 - consumed
    return BudgetState(name, dimension, status, consumed, remaining)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "dimension:availability", "dimension:latency"]),
        st.floats(0.01, 5),
        min_size=1,
    ),
    st.lists(
        st.tuples(
            st.sampled_from(["healthy", "low", "exhausted", "insufficient_data", "no_data"]),
            st.floats(-5, 5),
        ),
        min_size=3,
        max_size=3,
    ),
    st.sampled_from(["consumed", "ignore"]),
)
def test_risk_score_is_a_weighted_share_in_zero_one(weights, budgets, undefined):
    spec = parse_spec(RISK % (json.dumps(weights), undefined))
    states = [
        _state(name, dim, status, None if status == "no_data" else consumed)
        for (name, dim), (status, consumed) in zip(
            (("a", "availability"), ("b", "availability"), ("c", "latency")), budgets, strict=True
        )
    ]
    result = decide(spec, spec.policy, "p", states)
    if result.risk_score is None:
        assert undefined == "ignore"
        assert all(
            s.status in ("no_data", "insufficient_data")
            for s in states
            if s.name
            in {
                t
                for ref in weights
                for t in (
                    ["a", "b"]
                    if ref == "dimension:availability"
                    else ["c"]
                    if ref == "dimension:latency"
                    else [ref]
                )
            }
        )
        return
    assert 0 <= result.risk_score <= 1
    assert sum(t.weight for t in result.risk_terms) == pytest.approx(1)
    shares = {"a": 0.0, "b": 0.0, "c": 0.0}
    for ref, weight in weights.items():
        names = {"dimension:availability": ["a", "b"], "dimension:latency": ["c"]}.get(ref, [ref])
        for name in names:
            shares[name] += weight / len(names)
    counted = {
        s.name: 1.0
        if s.status in ("no_data", "insufficient_data")
        else min(max(s.consumed, 0.0), 1.0)
        for s in states
        if shares[s.name] > 0
        and not (undefined == "ignore" and s.status in ("no_data", "insufficient_data"))
    }
    total = sum(shares[n] for n in counted)
    expected = sum(shares[n] / total * counted[n] for n in counted)
    assert result.risk_score == pytest.approx(expected)
    assert {t.slo for t in result.risk_terms} == set(counted)


def test_an_undefined_budget_never_lowers_the_risk(tmp_path):
    spec = parse_spec(RISK % ('{"a": 1, "b": 1}', "consumed"))
    judged = [_state("a", "availability", "healthy", 0.2), _state("b", "availability", "low", 0.9)]
    blind = [judged[0], _state("b", "availability", "insufficient_data", 0.1)]
    assert decide(spec, spec.policy, "p", blind).risk_score == pytest.approx(0.6)
    assert decide(spec, spec.policy, "p", judged).risk_score == pytest.approx(0.55)
    (term,) = [t for t in decide(spec, spec.policy, "p", blind).risk_terms if t.slo == "b"]
    assert term.undefined and term.consumed == 1.0


# --- failing closed, burn rates and alerts through the CLI -----------------------------------

OUTAGE = """
service: outage
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.999}, min_samples: 10}
  - name: thin
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.9}
    min_samples: 10000000
policy:
  %s
"""


@pytest.fixture
def outage_log(write_records) -> Path:
    """30 days at 10 requests a minute, all fine, then 10 minutes of errors ending at AT: a
    fast burn (about 65× over the last hour) with most of the 30-day budget left."""
    end = datetime(2026, 11, 21, tzinfo=UTC)
    ts, status = [], []
    minute = end - timedelta(days=30)
    while minute < end:
        bad = minute >= end - timedelta(minutes=10)
        ts += [minute + timedelta(seconds=s) for s in range(0, 60, 6)]
        status += ["error" if bad and s < 6 else "ok" for s in range(0, 60, 6)]
        minute += timedelta(minutes=1)
    n = len(ts)
    return write_records(
        {
            "id": [f"r{i}" for i in range(n)],
            "ts": ts,
            "status": status,
            "prediction": [1] * n,
            "label": [1] * n,
        }
    )


def _gate(cli, write_spec, log, policy):
    run = cli(
        "gate", "--spec", write_spec(OUTAGE % policy), "--data", log, "--at", AT, "-f", "json"
    )
    return run.exit_code, run.json() if run.stdout else run.stderr


def test_a_fast_burn_with_budget_left_passes_min_remaining_but_not_max_burn_rate(
    cli, write_spec, outage_log
):
    code, doc = _gate(cli, write_spec, outage_log, "min_remaining: {uptime: 0.5}")
    uptime = doc["slos"][0]
    assert code == 0, doc
    assert uptime["budget"]["remaining"] > 0.5
    assert uptime["burn_rates"]["1h"] > 14.4
    code, doc = _gate(
        cli,
        write_spec,
        outage_log,
        "min_remaining: {uptime: 0.5}\n  max_burn_rate: {uptime: {window: 45m, rate: 14.4}}",
    )
    assert code == 1
    (reason,) = doc["reasons"]
    assert (reason["rule"], reason["slo"], reason["threshold"]) == ("max_burn_rate", "uptime", 14.4)
    assert reason["value"] == pytest.approx(doc["slos"][0]["burn_rates"]["45m"])
    assert "over the last 45m" in reason["message"]


@pytest.mark.parametrize(("severity", "code"), [("page", 1), ("ticket", 1)])
def test_block_on_alert_while_a_page_fires(cli, write_spec, outage_log, severity, code):
    got, doc = _gate(
        cli, write_spec, outage_log, f"hard_stop: [uptime]\n  block_on_alert: {severity}"
    )
    assert got == code
    rules = {(r["rule"], r["slo"]) for r in doc["reasons"]}
    assert ("block_on_alert", "uptime") in rules
    assert any("page alert page-1h-5m is firing" in r["message"] for r in doc["reasons"])
    without, _ = _gate(cli, write_spec, outage_log, "hard_stop: [uptime]")
    assert without == 0


@pytest.mark.parametrize(("effect", "code"), [("warn", 3), ("block", 1), ("allow", 0)])
def test_insufficient_data_fails_closed_by_choice(cli, write_spec, outage_log, effect, code):
    got, doc = _gate(
        cli, write_spec, outage_log, f"soft_stop: [thin]\n  on_insufficient_data: {effect}"
    )
    assert got == code
    if effect != "allow":
        (reason,) = doc["reasons"]
        assert reason["rule"] == "insufficient_data" and reason["effect"] == effect
        assert "(covered by soft_stop)" in reason["message"]


def test_block_on_alert_on_the_server_reads_the_alert_loop(live_server, tmp_path):
    """Before the alert loop has run, the gate checks the alert conditions itself (as on
    files); once it runs, its states decide: a page rule with ``for: 2m`` is pending at
    first (no block), firing three minutes on (block)."""
    import pyarrow as pa

    from mlslo.client import arrow_bytes

    spec = """
        service: served
        slos:
          - name: uptime
            dimension: availability
            objective: {target: 0.999}
            alerts: [{long: 1h, short: 5m, burn_rate: 14.4, severity: page, for: 2m}]
        policy:
          hard_stop: [uptime]
          block_on_alert: page
    """
    now = datetime(2026, 11, 21, tzinfo=UTC)
    live = live_server(spec, now=now)
    n = 1200
    batch = pa.table(
        {
            "id": [f"r{i}" for i in range(n)],
            "ts": pa.array(
                [now - timedelta(minutes=5) + timedelta(seconds=i / 4) for i in range(n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "status": ["error" if i % 2 else "ok" for i in range(n)],
        }
    )

    def rules(document):
        return {r["rule"] for r in document["reasons"]}

    with live.client() as http:
        http.post(
            "/api/v1/predictions",
            content=arrow_bytes(batch),
            headers={"Content-Type": "application/vnd.apache.arrow.stream"},
        )
        stateless = http.get("/api/v1/gate").json()
        engine = live.service.enable_alerts(backoff=0.01)
        engine.evaluate()
        pending = http.get("/api/v1/gate").json()
        live.clock.advance(timedelta(minutes=3))
        engine.evaluate()
        firing = http.get("/api/v1/gate").json()
    assert "block_on_alert" in rules(stateless)
    assert [a.state.status for a in engine.current if a.rule.kind == "burn"] == ["firing"]
    assert "block_on_alert" not in rules(pending)
    assert "block_on_alert" in rules(firing)
    assert firing["decision"] == "block"


# --- the spec refuses typos, with its own paths -----------------------------------------------


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        ('{target: 0.05, op: ">="}', "'demographic_parity_difference' is lower-is-better"),
        ("{target: abc}", "objective.target: input should be a valid number"),
        ("{target: [1]}", "objective.target: input should be a valid number"),
        ("{target: {x: 1}}", "objective.target: input should be a valid number"),
    ],
)
def test_objective_errors_name_the_yaml_path(write_spec, cli, objective, message):
    text = f"""
        service: typo
        slos:
          - name: gap
            dimension: fairness
            sli: {{metric: demographic_parity_difference, attribute: g}}
            objective: {objective}
    """
    run = cli("validate", write_spec(text))
    assert run.exit_code == 2
    assert message in run.stderr
    path = run.stderr.split(": ")[2]
    assert path.startswith("slos[0].objective")
    node = yaml.safe_load(textwrap.dedent(text))["slos"][0]
    for part in path.removeprefix("slos[0].").split("."):
        assert isinstance(node, dict) and part in node, (path, part)
        node = node[part]


def test_a_reverse_op_can_be_meant(write_spec, cli):
    run = cli(
        "validate",
        write_spec("""
            service: leak
            slos:
              - name: too-good
                dimension: accuracy
                sli: {metric: accuracy}
                objective: {target: 0.99, op: "<=", allow_reverse_op: true}
        """),
    )
    assert run.exit_code == 0, run.stderr


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("min_remaining: {up: 75}", "policy.min_remaining.up: must be a share from 0 to 1"),
        ("min_remaining: {up: -0.1}", "policy.min_remaining.up: must be a share from 0 to 1"),
        (
            "risk_score: {weights: {up: 1}, max: 2}",
            "policy.risk_score.max: input should be less than or equal to 1",
        ),
        ("risk_score: {weights: {up: 0}, max: 0.5}", "at least one weight must be above 0"),
        (
            "max_burn_rate: {up: {window: 90s, rate: 2}}",
            "policy.max_burn_rate.up.window: 1m30s is not a multiple of bucket 1m",
        ),
    ],
)
def test_policy_shares_and_windows_are_checked(write_spec, cli, policy, message):
    text = f"""
        service: shares
        slos:
          - {{name: up, dimension: availability, objective: {{target: 0.99}}}}
        policy:
          {policy}
    """
    run = cli("validate", write_spec(text))
    assert run.exit_code == 2
    assert message in run.stderr
