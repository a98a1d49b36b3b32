"""Composite SLOs: the spec's checks, the weighted budget and burn rates against a numpy
oracle computed from the raw records, a composite of one SLO equal to that SLO, undefined
components, components with different windows, and composites in the CLI's evaluate, gate,
alerts and rules."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from mlslo.api import evaluate_files
from mlslo.client import arrow_bytes
from mlslo.errors import SpecError
from mlslo.moments import parse_duration
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources
from mlslo.spec import parse_spec

AT = datetime(2026, 11, 21, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "examples" / "reference"
STREAM = {"Content-Type": "application/vnd.apache.arrow.stream"}


def spec_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_spec(textwrap.dedent(text))
    return caught.value


SLOS = """
service: s
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.999}}
  - name: accuracy
    dimension: accuracy
    sli: {metric: accuracy}
    objective: {target: 0.9}
"""


# --- the spec -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("composites", "path", "words"),
    [
        (
            "[{name: m, objective: 0.9, components: [{slo: uptime}, {slo: acuracy}]}]",
            "composites[0].components[1].slo",
            "names SLO 'acuracy', which is not in slos (did you mean 'accuracy'?)",
        ),
        (
            "[{name: m, objective: 0.9, components: [{slo: uptime, weight: 0}]}]",
            "composites[0].components[0].weight",
            "greater than 0",
        ),
        (
            "[{name: m, objective: 1, components: [{slo: uptime}]}]",
            "composites[0].objective",
            "less than 1",
        ),
        (
            "[{name: m, objective: 0, components: [{slo: uptime}]}]",
            "composites[0].objective",
            "greater than 0",
        ),
        (
            "[{name: m, objective: 0.9, components: []}]",
            "composites[0].components",
            "at least 1",
        ),
        (
            "[{name: uptime, objective: 0.9, components: [{slo: accuracy}]}]",
            "composites[0].name",
            "already the name of an SLO",
        ),
        (
            "[{name: m, objective: 0.9, components: [{slo: uptime}]},"
            " {name: m, objective: 0.9, components: [{slo: accuracy}]}]",
            "composites[1].name",
            "used twice",
        ),
        (
            "[{name: m, objective: 0.9, components: [{slo: uptime}, {slo: uptime, weight: 2}]}]",
            "composites[0].components[1].slo",
            "a component twice",
        ),
        (
            "[{name: m, objective: 0.9, components: [{slo: uptime}]},"
            " {name: n, objective: 0.9, components: [{slo: m}]}]",
            "composites[1].components[0].slo",
            "a component is an SLO, not a composite",
        ),
        (
            "[{name: m, objective: 0.9, components: [{slo: uptime}], wieght: 2}]",
            "composites[0].wieght",
            "unknown field",
        ),
    ],
)
def test_the_spec_checks_composites_with_located_errors(composites, path, words):
    error = spec_error(SLOS + f"composites: {composites}\n")
    assert error.path == path, str(error)
    assert words in str(error)
    assert error.line is not None


def test_a_policy_names_a_composite_and_a_typo_gets_a_suggestion():
    valid = parse_spec(
        SLOS
        + "composites: [{name: fraud-model, objective: 0.9, components: [{slo: uptime}]}]\n"
        + "policy: {hard_stop: [fraud-model], risk_score: {weights: {fraud-model: 1}, max: 0.5}}\n"
    )
    assert valid.resolve("fraud-model").names == ("fraud-model",)
    error = spec_error(
        SLOS
        + "composites: [{name: fraud-model, objective: 0.9, components: [{slo: uptime}]}]\n"
        + "policy: {min_remaining: {fraud-modle: 0.5}}\n"
    )
    assert error.path == "policy.min_remaining.fraud-modle"
    assert "did you mean 'fraud-model'?" in str(error)


# --- records and the numpy oracle -----------------------------------------------------------

WINDOWS = {"accuracy": 30, "uptime": 30, "freshness": 7}
TARGETS = {"accuracy": 0.9, "uptime": 0.99, "freshness": 0.95}


def records(seed: int) -> pa.Table:
    """Predictions over the 4 days before AT: a wrong share, an error share and a stale share
    that change over time, so every burn window differs."""
    rng = np.random.default_rng(seed)
    n = 3000
    age = np.sort(rng.integers(1, 4 * 24 * 60, n))[::-1]  # minutes before AT
    ts = np.datetime64(AT.replace(tzinfo=None), "m") - age.astype("timedelta64[m]")
    drift = 1 + 3 * (age < 90)  # the last 90 minutes are worse
    wrong = rng.random(n) < 0.04 * drift
    error = rng.random(n) < 0.004 * drift
    lag = np.where(rng.random(n) < 0.02 * drift, 40, 3)  # minutes
    label = rng.integers(0, 2, n)
    return pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": pa.array(ts.astype("datetime64[us]")).cast(pa.timestamp("us", tz="UTC")),
            "event_ts": pa.array((ts - lag.astype("timedelta64[m]")).astype("datetime64[us]")).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "status": np.where(error, "error", "ok"),
            "label": label,
            "prediction": np.where(wrong, 1 - label, label),
        }
    )


def bad_flags(table: pa.Table) -> dict[str, np.ndarray]:
    label = table["label"].to_numpy()
    lag = (
        table["ts"].cast(pa.int64()).to_numpy() - table["event_ts"].cast(pa.int64()).to_numpy()
    ) / 60e6
    return {
        "accuracy": table["prediction"].to_numpy() != label,
        "uptime": table["status"].to_numpy(zero_copy_only=False) == "error",
        "freshness": lag > 15,
    }


def minutes_before(table: pa.Table) -> np.ndarray:
    at = np.datetime64(AT.replace(tzinfo=None), "us").astype(np.int64)
    return (at - table["ts"].cast(pa.int64()).to_numpy()) / 60e6


def oracle_rate(table: pa.Table, slo: str, minutes: float) -> float | None:
    """The occurrences burn rate of ``slo`` over the last ``minutes`` before AT."""
    inside = minutes_before(table) <= minutes
    if not inside.any():
        return None
    return float(bad_flags(table)[slo][inside].mean() / (1 - TARGETS[slo]))


def spec_text(weights: dict[str, float], extra: str = "") -> str:
    components = ", ".join(f"{{slo: {k}, weight: {w}}}" for k, w in weights.items())
    return f"""
service: fraud-scoring
slos:
  - {{name: accuracy, dimension: accuracy, sli: {{metric: accuracy}},
      objective: {{target: 0.9}}}}
  - {{name: uptime, dimension: availability, objective: {{target: 0.99}}}}
  - {{name: freshness, dimension: freshness, sli: {{lag_threshold: 15m}},
      objective: {{target: 0.95}}, window: 7d}}
composites:
  - {{name: fraud-model, objective: 0.95, components: [{components}]{extra}}}
"""


def evaluate_text(text: str, table: pa.Table, tmp_path: Path, at: datetime = AT) -> dict[str, Any]:
    path = tmp_path / "records.parquet"
    pq.write_table(table, path)
    return evaluation_json(evaluate_files(parse_spec(text), Sources(str(path)), at))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_budget_and_burn_rates_match_a_numpy_oracle_from_the_records(seed, tmp_path):
    rng = np.random.default_rng(100 + seed)
    weights = dict(zip(WINDOWS, np.round(rng.uniform(0.2, 5, 3), 3).tolist(), strict=True))
    table = records(seed)
    document = evaluate_text(spec_text(weights), table, tmp_path)
    composite = document["composites"][0]
    w = np.array(list(weights.values())) / sum(weights.values())
    bad = bad_flags(table)
    consumed = np.array([bad[s].mean() / (1 - TARGETS[s]) for s in WINDOWS])
    expected = float(w @ consumed)
    assert composite["budget"]["consumed"] == pytest.approx(expected, rel=1e-9)
    assert composite["budget"]["remaining"] == pytest.approx(1 - expected, rel=1e-9)
    assert composite["sli"]["value"] == pytest.approx(1 - 0.05 * expected, rel=1e-12)
    assert composite["met"] == (expected <= 1)
    assert [c["weight"] for c in composite["components"]] == pytest.approx(w.tolist())
    for key, rate in composite["burn_rates"].items():
        minutes = parse_duration(key).total_seconds() / 60
        parts = []
        for index, slo in enumerate(WINDOWS):
            own = max(1, round(minutes * WINDOWS[slo] / 30))  # the same share of its window
            value = oracle_rate(table, slo, own)
            if value is not None:
                parts.append(w[index] * value)
        if not parts:
            assert rate is None, key
        else:
            assert rate == pytest.approx(sum(parts), rel=1e-9), key
    hours = composite["time_to_exhaustion"]["1h"]
    one_hour = composite["burn_rates"]["1h"]
    assert hours == pytest.approx((1 - expected) * 720 / one_hour, rel=1e-9)


def test_weights_are_shares_and_a_composite_of_one_slo_is_that_slo(tmp_path):
    table = records(7)
    base = evaluate_text(spec_text({"accuracy": 2, "uptime": 1, "freshness": 1}), table, tmp_path)
    scaled = evaluate_text(
        spec_text({"accuracy": 20, "uptime": 10, "freshness": 10}), table, tmp_path
    )
    assert scaled["composites"] == base["composites"]


def single(window: str, target: float, good: int, bad: int, spread: int) -> tuple[str, pa.Table]:
    text = f"""
service: s
slos:
  - {{name: uptime, dimension: availability, objective: {{target: {target}}}, window: {window},
      absent_after: off}}
composites:
  - {{name: alone, objective: 0.99, window: {window}, components: [{{slo: uptime, weight: 3}}]}}
"""
    n = good + bad
    age = np.linspace(0, spread, n, endpoint=False).astype(int) + 1
    ts = np.datetime64(AT.replace(tzinfo=None), "m") - age.astype("timedelta64[m]")
    status = np.array(["ok"] * good + ["error"] * bad)
    np.random.default_rng(n).shuffle(status)
    table = pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": pa.array(ts.astype("datetime64[us]")).cast(pa.timestamp("us", tz="UTC")),
            "status": status,
        }
    )
    return text, table


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    window=st.sampled_from(["30d", "7d", "1d"]),
    target=st.sampled_from([0.9, 0.99, 0.999]),
    good=st.integers(0, 400),
    bad=st.integers(0, 40),
    spread=st.integers(1, 3 * 24 * 60),
)
def test_a_composite_of_one_component_equals_that_component(
    tmp_path, window, target, good, bad, spread
):
    text, table = single(window, target, good, bad, spread)
    if good + bad == 0:
        table = table.slice(0, 0)
    document = evaluate_text(text, table, tmp_path)
    slo, composite = document["slos"][0], document["composites"][0]
    assert composite["budget"] == slo["budget"]
    assert composite["met"] == slo["met"]
    assert composite["burn_rates"] == slo["burn_rates"]
    assert composite["time_to_exhaustion"] == slo["time_to_exhaustion"]
    assert composite["burn_rate_samples"] == slo["burn_rate_samples"]


# --- undefined components and different windows --------------------------------------------


def reference_spec(**changes: Any) -> str:
    data = yaml.safe_load((REFERENCE / "composite" / "spec.yaml").read_text())
    for slo in data["slos"]:
        slo.update(changes.get(slo["name"], {}))
    data["composites"][0].update(changes.get("fraud-model", {}))
    return yaml.safe_dump(data)


def reference_evaluation(text: str, tmp_path: Path) -> dict[str, Any]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    sources = Sources(
        str(REFERENCE / "fairness" / "predictions.csv"),
        outcomes=str(REFERENCE / "uptime" / "outcomes.csv"),
    )
    at = datetime(2026, 12, 1, tzinfo=UTC)
    return evaluation_json(evaluate_files(parse_spec(text), sources, at))


@pytest.mark.parametrize(
    ("undefined", "expected"),
    [
        ("consumed", 0.5 * (1 - 354 / 381) / 0.08 + 0.25 * 0.64 + 0.25 * 1),
        ("ignore", (0.5 * (1 - 354 / 381) / 0.08 + 0.25 * 0.64) / 0.75),
    ],
)
def test_an_undefined_component_counts_as_spent_or_is_left_out(undefined, expected, tmp_path):
    text = reference_spec(
        fairness={"filter": {"group": "C"}}, **{"fraud-model": {"undefined": undefined}}
    )
    composite = reference_evaluation(text, tmp_path)["composites"][0]
    fairness = composite["components"][2]
    assert fairness["status"] == "no_data"
    assert fairness["undefined"] is True
    assert fairness["counted"] is (undefined == "consumed")
    assert composite["budget"]["consumed"] == pytest.approx(expected, rel=1e-9)
    if undefined == "ignore":
        assert round(composite["budget"]["consumed"], 3) == 0.804  # as docs/concepts.md says


def test_a_composite_with_no_judged_component_is_not_judged(tmp_path):
    nowhere = {"filter": {"group": "C"}}
    text = reference_spec(accuracy=nowhere, uptime=nowhere, fairness=nowhere)
    table = pa.table(
        {
            "id": ["a"],
            "ts": pa.array([AT - timedelta(minutes=5)]).cast(pa.timestamp("us", tz="UTC")),
            "group": ["A"],
            "label": [1],
            "prediction": [1],
            "status": ["ok"],
        }
    )
    document = evaluate_text(text, table, tmp_path)
    assert {s["budget"]["status"] for s in document["slos"]} == {"no_data"}
    composite = document["composites"][0]
    assert composite["budget"] == {
        "consumed": None,
        "remaining": None,
        "status": "no_data",
        "reason": None,
    }
    assert composite["met"] is None and composite["sli"]["value"] is None
    assert all(rate is None for rate in composite["burn_rates"].values())


def test_components_with_different_windows_read_their_share_of_each_window(tmp_path):
    document = reference_evaluation(reference_spec(**{"fraud-model": {"window": "7d"}}), tmp_path)
    composite = document["composites"][0]
    uptime = next(s for s in document["slos"] if s["name"] == "uptime")
    # The composite's 7-day window: its 1h-equivalent is 14m; uptime (30d) reads 1h there.
    assert list(composite["burn_rates"])[:4] == ["1m", "7m", "14m", "28m"]
    assert composite["burn_rates"]["14m"] == pytest.approx(0.25 * uptime["burn_rates"]["1h"])
    assert composite["burn_rates"]["1h24m"] == pytest.approx(0.25 * uptime["burn_rates"]["6h"])
    # Time to exhaustion is read against the composite's own 7-day window.
    remaining = composite["budget"]["remaining"]
    assert composite["time_to_exhaustion"]["1h"] == pytest.approx(
        remaining * 7 * 24 / composite["burn_rates"]["14m"]
    )
    # The budget is the same whatever the composite's window: shares add up as they are.
    assert composite["budget"]["consumed"] == pytest.approx(0.852913385827, rel=1e-9)


# --- the CLI --------------------------------------------------------------------------------


def reference_args(spec: Path | str) -> list[str]:
    return [
        "--spec",
        str(spec),
        "--data",
        str(REFERENCE / "fairness" / "predictions.csv"),
        "--outcomes",
        str(REFERENCE / "uptime" / "outcomes.csv"),
        "--at",
        "2026-12-01T00:00:00Z",
    ]


def test_gate_blocks_on_a_composite_and_weighs_it_in_the_risk_score(cli, tmp_path):
    spec = tmp_path / "gate.yaml"
    data = yaml.safe_load((REFERENCE / "composite" / "spec.yaml").read_text())
    data["policy"] = {
        "hard_stop": ["fraud-model"],
        "max_burn_rate": {"fraud-model": {"window": "90m", "rate": 4}},
        "risk_score": {"weights": {"fraud-model": 3, "uptime": 1}, "max": 0.99},
    }
    spec.write_text(yaml.safe_dump(data))
    run = cli("gate", *reference_args(spec), "--format", "json")
    assert run.exit_code == 1, run.stderr
    document = run.json()
    composite = document["composites"][0]
    consumed = composite["budget"]["consumed"]
    terms = {t["slo"]: t for t in document["risk_terms"]}
    assert terms["fraud-model"]["weight"] == pytest.approx(0.75)
    assert terms["fraud-model"]["consumed"] == pytest.approx(consumed)
    assert document["risk_score"] == pytest.approx(0.75 * consumed + 0.25 * 0.64)
    # 90m is no standard window: it is measured for the composite and, as 90m of 30 days,
    # for its components (fairness reads 42m of its 14 days; uptime's 90m holds 23:00).
    assert composite["burn_rates"]["1h30m"] == pytest.approx(0.25 * 20.0)
    fairness = next(s for s in document["slos"] if s["name"] == "fairness")
    assert "42m" in fairness["burn_rates"]
    reasons = [(r["slo"], r["rule"]) for r in document["reasons"]]
    assert reasons == [("fraud-model", "max_burn_rate")]
    assert (
        "fraud-model burns its error budget 5.00× over the last 1h30m"
        in (document["reasons"][0]["message"])
    )


def test_alerts_and_rules_include_the_composite(cli, tmp_path):
    run = cli("alerts", *reference_args(REFERENCE / "composite" / "spec.yaml"), "--format", "json")
    rows = [r for r in run.json()["alerts"] if r["slo"] == "fraud-model"]
    assert {r["rule"] for r in rows} == {
        "page-1h-5m",
        "page-6h-30m",
        "ticket-1d-2h",
        "ticket-3d-6h",
        "exhausted",
    }
    assert all(r["dimension"] == "composite" for r in rows)
    by_rule = {r["rule"]: r for r in rows}
    # 1d at 0.61x and 2h at 3.67x: not both above 3; 3d and 6h at 0.38x and 1.44x: no.
    assert by_rule["ticket-1d-2h"]["long_burn_rate"] == pytest.approx(0.25 * 88 / 72000 / 0.0005)
    assert by_rule["page-1h-5m"]["status"] == "suppressed"  # the 5m window holds no samples
    rules = cli("rules", str(REFERENCE / "composite" / "spec.yaml"))
    document = yaml.safe_load(rules.stdout)
    alerts = [r for group in document["groups"] for r in group["rules"] if "alert" in r]
    composite = [a for a in alerts if a["labels"]["slo"] == "fraud-model"]
    assert {a["labels"]["rule"] for a in composite} == set(by_rule)
    assert all("absent" not in a["labels"]["rule"] for a in composite)


def test_evaluate_prints_the_composite_row_and_validate_lists_it(cli):
    run = cli(
        "evaluate", *reference_args(REFERENCE / "composite" / "spec.yaml"), "--format", "markdown"
    )
    assert run.exit_code == 0, run.stderr
    row = next(line for line in run.stdout.splitlines() if line.startswith("| fraud-model"))
    assert row.split(" | ")[1:7] == ["composite", "91.47%", ">= 90%", "yes", "14.7%", "budget low"]
    check = cli("validate", str(REFERENCE / "composite" / "spec.yaml"))
    assert check.exit_code == 0, check.stderr
    assert (
        "composite fraud-model: reliability >= 90% from accuracy 50.0%, uptime 25.0%, "
        "fairness 25.0%" in check.stdout
    )
    assert "covered by no rule" not in check.stdout + check.stderr


# --- the service ----------------------------------------------------------------------------


def test_the_service_serves_composites_in_status_metrics_and_alerts(live_server, tmp_path):
    table = records(11)
    text = spec_text({"accuracy": 2, "uptime": 1, "freshness": 1})
    live = live_server(text, now=AT)
    predictions = table.drop_columns(["label"])
    labels = pa.table(
        {
            "id": table["id"],
            "ts": pa.compute.add(table["ts"], pa.scalar(timedelta(seconds=1))),
            "label": table["label"],
        }
    )
    with live.client() as http:
        for kind, body in (("predictions", predictions), ("labels", labels)):
            response = http.post(f"/api/v1/{kind}", content=arrow_bytes(body), headers=STREAM)
            assert response.status_code == 200, response.text
        status = http.get("/api/v1/slos").json()
        metrics = http.get("/metrics").text
        http.cookies.set("mlslo_token", live.admin)
        page = http.get("/slo/fraud-model", follow_redirects=False)
    served = status["composites"][0]
    from_files = evaluate_text(text, table, tmp_path)["composites"][0]
    assert served == from_files
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }
    base = {"dimension": "composite", "service": "fraud-scoring", "slo": "fraud-model"}

    def sample(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted({**base, "window": "30d", **labels}.items())))]

    remaining = sample("mlslo_error_budget_remaining_ratio")
    assert remaining == pytest.approx(served["budget"]["remaining"])
    value = sample("mlslo_sli", metric="reliability")
    assert value == pytest.approx(served["sli"]["value"])
    for key, rate in served["burn_rates"].items():
        if rate is not None:
            assert sample("mlslo_burn_rate", burn_window=key) == pytest.approx(rate)
    assert sample("mlslo_error_budget_status", status=served["budget"]["status"]) == 1
    weights = {
        dict(key)["slo"]: value
        for (name, key), value in samples.items()
        if name == "mlslo_composite_weight"
    }
    assert weights == {"accuracy": 0.5, "uptime": 0.25, "freshness": 0.25}
    assert page.status_code == 303
    assert page.headers["location"] == "/#composite-fraud-model"
    live.service.enable_alerts()
    assert live.service.alerts is not None
    alerts = live.service.alerts.evaluate(AT)
    keys = {a.rule.key for a in alerts if a.slo.name == "fraud-model"}
    assert "fraud-model/page-1h-5m" in keys and "fraud-model/exhausted" in keys
    burning = next(a for a in alerts if a.rule.key == "fraud-model/page-1h-5m")
    assert burning.check.long_rate == pytest.approx(served["burn_rates"]["1h"])
    assert "composite SLO fraud-model" in burning.description()


def test_a_candidate_is_judged_through_the_composites_it_is_part_of(cli, write_spec, tmp_path):
    from test_gate import CANDIDATE_SPEC

    spec = write_spec(
        CANDIDATE_SPEC.replace(
            "    policies:",
            "    composites:\n"
            "      - name: fraud-model\n"
            "        objective: 0.9\n"
            "        components: [{slo: uptime}, {slo: fairness, weight: 3}]\n"
            "    policies:",
        ).replace(
            "production: {hard_stop: [fairness, uptime]}", "production: {hard_stop: [fraud-model]}"
        )
    )
    rows = []
    for version, gap in (("v1", 0), ("v2", 30)):
        for group, hits in (("A", 90), ("B", 90 - gap)):
            rows += [(version, group, 1, int(i < hits)) for i in range(100)]
            rows += [(version, group, 0, int(i < 5)) for i in range(100)]
    path = tmp_path / "versions.parquet"
    noon = datetime(2026, 11, 20, 12, tzinfo=UTC)
    pq.write_table(
        pa.table(
            {
                "id": [f"p{i}" for i in range(len(rows))],
                "ts": pa.array([noon + timedelta(seconds=i) for i in range(len(rows))]).cast(
                    pa.timestamp("us", tz="UTC")
                ),
                "model_version": [r[0] for r in rows],
                "group": [r[1] for r in rows],
                "label": [r[2] for r in rows],
                "prediction": [r[3] for r in rows],
                "status": ["ok"] * len(rows),
            }
        ),
        path,
    )
    args = ["gate", "--spec", str(spec), "--data", str(path), "--at", "2026-11-21T00:00:00Z"]
    live = cli(*args, "-f", "json")
    # Live, both versions together: the gap is (0.9 - 0.75) = 0.15, three budgets of fairness.
    assert live.exit_code == 1, live.stdout
    assert live.json()["composites"][0]["budget"]["consumed"] == pytest.approx(0.75 * 3)
    bad = cli(*args, "--candidate", "model_version=v2", "-f", "json")
    assert bad.exit_code == 1, bad.stdout
    # The candidate's gap of 0.30 spends 6 budgets of fairness: 0.75 x 6 = 4.5 > 1.
    assert [(r["slo"], r["rule"], r.get("scope")) for r in bad.json()["reasons"]] == [
        ("fraud-model", "hard_stop", "candidate model_version=v2")
    ]
    assert bad.json()["reasons"][0]["value"] == pytest.approx(1 - 0.75 * 0.30 / 0.05)
    # v1 alone has no gap: the candidate's composite is untouched by the live v2 records.
    assert cli(*args, "--candidate", "model_version=v1").exit_code == 0


def test_the_report_lists_the_composite(cli, tmp_path):
    out = tmp_path / "report.md"
    run = cli("report", *reference_args(REFERENCE / "composite" / "spec.yaml"), "--out", str(out))
    assert run.exit_code == 0, run.stderr
    row = next(line for line in out.read_text().splitlines() if "fraud-model" in line)
    assert "91.47%" in row and "14.7%" in row


def test_composites_survive_an_openslo_round_trip():
    from mlslo.render.openslo import openslo_yaml
    from mlslo.spec.openslo import import_openslo

    text = reference_spec(**{"fraud-model": {"window": "7d", "undefined": "ignore"}})
    spec = parse_spec(text)
    imported = import_openslo([("exported.yaml", openslo_yaml(spec))])
    assert [str(n) for n in imported.notes] == []
    assert imported.spec is not None
    assert imported.spec.composites == spec.composites
    assert parse_spec(imported.yaml()).composites == spec.composites
