"""Export to OpenSLO and import back gives the spec back, and it evaluates to the same numbers.

Hypothesis generates specs over every dimension and SLI form, rolling and calendar windows,
objectives with and without an explicit op, all three budgeting modes (timeslices included),
custom, standard and no burn-rate alerts, policies, corrections, notifiers and names OpenSLO
cannot spell. Each is written with :func:`mlslo.render.openslo.openslo_yaml`, every document is
checked against the OpenSLO v1 JSON Schema shipped in tests/data/openslo/schema, and the stream
is read back with :func:`mlslo.spec.openslo.import_openslo` (and its YAML parsed again). The
two specs must be identical, field by field and type by type, and evaluating both on the same
generated records (Parquet, through the real scan) must give the same evaluation, the same
alert checks and the same gate decision under every policy.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mlslo.api import evaluate_files
from mlslo.decide.alerts import checks
from mlslo.decide.gate import judge
from mlslo.render.documents import alerts_json, evaluation_json, gate_json
from mlslo.render.openslo import openslo_yaml
from mlslo.scan.files import Sources
from mlslo.spec import Spec, parse_spec
from mlslo.spec.openslo import import_openslo
from openslo_schema import assert_valid_openslo

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SHARES = [0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9995]
BUCKETS = ["30s", "1m", "5m", "1h"]


# --- records ---------------------------------------------------------------------------------


def _records(n: int = 6000, seed: int = 7) -> pa.Table:
    """Prediction records over the 40 days before AT: every field any SLO reads, some labels
    missing (for CBPE and label coverage), two groups and regions (for fairness and filters)."""
    rng = np.random.default_rng(seed)
    ts = AT - timedelta(days=40) + rng.uniform(0, 40 * 86400, n) * timedelta(seconds=1)
    truth = rng.integers(0, 2, n)
    agree = rng.uniform(size=n) < 0.85
    prediction = np.where(agree, truth, 1 - truth)
    score = np.clip(np.where(prediction == 1, 0.7, 0.3) + rng.normal(0, 0.15, n), 0, 1)
    label = [int(v) if rng.uniform() < 0.8 else None for v in truth]
    lag = rng.exponential(300, n)
    served = pa.array(list(ts), pa.timestamp("us", tz="UTC"))
    return pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": served,
            "served_at": served,
            "model": ["fraud"] * n,
            "model_version": rng.choice(["v1", "v2"], n).tolist(),
            "status": np.where(rng.uniform(size=n) < 0.01, "error", "ok").tolist(),
            "latency_ms": rng.lognormal(4.5, 0.6, n).tolist(),
            "event_ts": pa.array(
                [t - timedelta(seconds=float(s)) for t, s in zip(ts, lag, strict=True)],
                pa.timestamp("us", tz="UTC"),
            ),
            "prediction": prediction.tolist(),
            "label": pa.array(label, pa.int64()),
            "score": score.tolist(),
            "group": rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2]).tolist(),
            "region": rng.choice(["eu", "us"], n).tolist(),
        }
    )


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    path = tmp_path_factory.mktemp("openslo") / "records.parquet"
    pq.write_table(_records(), path)
    return Sources(str(path))


# --- specs -----------------------------------------------------------------------------------

NAMES = ["uptime", "Uptime", "p99_Latency", "fresh.share", "f1", "gap", "tail-lag", "ACC", "err"]


@st.composite
def _objective(draw: st.DrawFn, slo: dict[str, Any], events: bool, kind: str) -> None:
    """Fill in objective and budgeting: ``kind`` is how the bound is written (share, duration
    in ms or s, a gap, a ratio, an error)."""
    bounds = {
        "share": SHARES,
        "ms": ["80ms", "250ms", "1.5ms", "2s"],
        "s": ["90s", "10m", "0.5s"],
        "gap": [0.02, 0.1, 0.3],
        "ratio": [0.5, 0.8],
        "error": [0.2, 0.5, 3.0],
    }[kind]
    choices = ["default", "aggregate", "timeslices"] + (["occurrences"] if events else [])
    budgeting = draw(st.sampled_from(choices))
    objective: dict[str, Any] = {}
    if budgeting == "timeslices":
        slo["budgeting"] = "timeslices"
        slo["slice"] = draw(st.sampled_from(["1h", "6h", "1d"]))
        objective["target"] = draw(st.sampled_from(SHARES))
        objective["timeslice_target"] = draw(st.sampled_from(SHARES if events else bounds))
    else:
        if budgeting != "default":
            slo["budgeting"] = budgeting
        objective["target"] = draw(st.sampled_from(SHARES if events else bounds))
    if draw(st.booleans()):
        objective["op"] = "<=" if kind in ("ms", "s", "gap", "error") and not events else ">="
    slo["objective"] = objective


@st.composite
def _slo(draw: st.DrawFn, name: str) -> dict[str, Any]:
    form = draw(
        st.sampled_from(
            [
                "availability",
                "latency_threshold",
                "latency_percentile",
                "freshness_threshold",
                "freshness_percentile",
                "accuracy",
                "classification",
                "multiclass",
                "regression",
                "fairness",
            ]
        )
    )
    slo: dict[str, Any] = {"name": name}
    kind = "share"
    events = True
    if form == "availability":
        slo["dimension"] = "availability"
    elif form.startswith("latency"):
        slo["dimension"] = "latency"
        if form.endswith("threshold"):
            slo["sli"] = {"latency_threshold": draw(st.sampled_from(["100ms", "150.5ms", "1s"]))}
        else:
            slo["sli"] = {"percentile": draw(st.sampled_from([50, 90, 99, 99.9]))}
            kind, events = "ms", False
    elif form.startswith("freshness"):
        slo["dimension"] = "freshness"
        if form.endswith("threshold"):
            slo["sli"] = {"lag_threshold": draw(st.sampled_from(["5m", "15m", "90s"]))}
        else:
            slo["sli"] = {"percentile": draw(st.sampled_from([75, 95]))}
            kind, events = "s", False
    elif form in ("accuracy", "classification", "multiclass", "regression"):
        slo["dimension"] = "accuracy"
        sli: dict[str, Any] = {}
        if form == "accuracy":
            sli["metric"] = "accuracy"
        elif form == "regression":
            sli["metric"] = draw(st.sampled_from(["mae", "rmse", "mape"]))
            kind, events = "error", False
        else:
            sli["metric"] = draw(
                st.sampled_from(["precision", "recall", "f1", "specificity", "balanced_accuracy"])
            )
            events = False
            if form == "multiclass":
                sli["average"] = draw(st.sampled_from(["macro", "micro"]))
                if draw(st.booleans()):
                    sli["classes"] = [0, 1]
            elif draw(st.booleans()):
                sli["estimate"] = "cbpe"
            if draw(st.booleans()):
                sli["positive_label"] = draw(st.sampled_from([1, 0]))
        if draw(st.booleans()):
            sli["label_delay"] = draw(st.sampled_from(["1d", "6h"]))
        slo["sli"] = sli
    else:
        slo["dimension"] = "fairness"
        metric = draw(
            st.sampled_from(
                [
                    "true_positive_rate_difference",
                    "false_positive_rate_difference",
                    "equalized_odds_difference",
                    "demographic_parity_difference",
                    "disparate_impact_ratio",
                ]
            )
        )
        sli = {"metric": metric}
        pair = draw(st.booleans())
        sli["attribute"] = ["group", "region"] if pair else "group"
        if draw(st.booleans()):
            sli["method"] = "reference"
            sli["reference_group"] = ["A", "eu"] if pair else "A"
        if draw(st.booleans()):
            sli["min_group_size"] = 20
        slo["sli"] = sli
        kind, events = ("ratio" if metric == "disparate_impact_ratio" else "gap"), False
    draw(_objective(slo, events, kind))
    window = draw(
        st.sampled_from(["1h", "6h", "1d", "7d", "30d", "90d", "45m", "week", "month", None])
    )
    if window is not None:
        slo["window"] = draw(st.sampled_from([window, {"calendar": window}]))
        if window not in ("week", "month"):
            slo["window"] = draw(st.sampled_from([window, {"rolling": window}]))
    if draw(st.booleans()):
        slo["description"] = draw(
            st.sampled_from(["Short.", "Two\nlines — ünïcode", "x" * 1200 + " long"])
        )
    if draw(st.booleans()):
        slo["min_samples"] = draw(st.sampled_from([5, 50]))
    if draw(st.booleans()):
        slo["max_ci_width"] = draw(st.sampled_from([0.5, 0.05]))
    if draw(st.booleans()):
        slo["filter"] = draw(
            st.sampled_from([{"region": "eu"}, {"model_version": ["v1", "v2"]}, {"model": "fraud"}])
        )
    alerts = draw(st.sampled_from(["standard", "none", "custom"]))
    if alerts == "none":
        slo["alerts"] = []
    elif alerts == "custom":
        slo["alerts"] = draw(st.lists(_alert(), min_size=1, max_size=3))
    if draw(st.booleans()):
        slo["runbook_url"] = "https://runbooks.example.com/slo"
    return slo


@st.composite
def _alert(draw: st.DrawFn) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "long": draw(st.sampled_from(["1h", "90m", "1d", "1h30s", "6h"])),
        "short": draw(st.sampled_from(["5m", "7m", "30s"])),
        "burn_rate": draw(st.sampled_from([1, 2.5, 14.4])),
    }
    if draw(st.booleans()):
        alert["severity"] = draw(st.sampled_from(["page", "ticket"]))
    if draw(st.booleans()):
        alert["for"] = draw(st.sampled_from(["15m", "90s", "1m"]))
    return alert


def _policy(draw: st.DrawFn, names: list[str], dimensions: list[str]) -> dict[str, Any]:
    refs = st.sampled_from([*names, *(f"dimension:{d}" for d in dimensions)])
    policy: dict[str, Any] = {}
    if draw(st.booleans()):
        policy["hard_stop"] = draw(st.lists(refs, max_size=2, unique=True))
    if draw(st.booleans()):
        policy["soft_stop"] = draw(st.lists(refs, max_size=2, unique=True))
    if draw(st.booleans()):
        policy["min_remaining"] = {draw(refs): draw(st.sampled_from([0, 0.25, 0.5]))}
    if draw(st.booleans()):
        policy["max_burn_rate"] = {draw(refs): {"window": "1h", "rate": 14.4}}
    if draw(st.booleans()):
        policy["block_on_alert"] = draw(st.sampled_from(["page", "ticket"]))
    if draw(st.booleans()):
        policy["risk_score"] = {
            "weights": {draw(refs): 1.0},
            "max": 0.6,
            "undefined": draw(st.sampled_from(["consumed", "ignore"])),
        }
    if draw(st.booleans()):
        policy["on_insufficient_data"] = draw(st.sampled_from(["allow", "warn", "block"]))
    if draw(st.booleans()):
        policy["on_no_data"] = draw(st.sampled_from(["allow", "block"]))
    return policy


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    slos = [draw(_slo(name)) for name in names]
    bucket = draw(st.sampled_from(BUCKETS))
    spec: dict[str, Any] = {"service": draw(st.sampled_from(["fraud-scoring", "Fraud_Scoring"]))}
    if draw(st.booleans()):
        spec["description"] = draw(st.sampled_from(["Card fraud.", "y" * 1100]))
    if bucket != "1m" or draw(st.booleans()):
        spec["bucket"] = bucket
    if draw(st.booleans()):
        spec["budget_low"] = 0.3
    if draw(st.booleans()):
        spec["columns"] = {"ts": "served_at"}
    if draw(st.booleans()):
        spec["label_columns"] = {"label": "truth", "ts": "labelled_at"}
    if draw(st.booleans()):
        spec["outcome_columns"] = {"total": "requests"}
    if draw(st.booleans()):
        spec["attributes"] = ["region"]
    if draw(st.booleans()):
        spec["attribution"] = ["model_version", "region"]
    spec["slos"] = slos
    if draw(st.booleans()):
        spec["corrections"] = [
            {
                "start": "2026-03-08T00:00:00Z",
                "end": "2026-03-08T06:00:00Z",
                "reason": "label outage",
                **({"slos": [names[0]]} if draw(st.booleans()) else {}),
            }
        ]
    dimensions = sorted({s["dimension"] for s in slos})
    policies = draw(st.sampled_from(["none", "policy", "policies"]))
    if policies == "policy":
        spec["policy"] = _policy(draw, names, dimensions)
    elif policies == "policies":
        spec["policies"] = {
            "release": _policy(draw, names, dimensions),
            "Hot_fix": _policy(draw, names, dimensions),
        }
        spec["default_policy"] = "release"
    notifiers = []
    for index in range(draw(st.integers(0, 2))):
        notifier: dict[str, Any] = {
            "name": ["On_Call", "team.channel"][index],
            "type": draw(st.sampled_from(["webhook", "slack", "alertmanager"])),
            "url": "https://hooks.example.com/x?token=secret",
        }
        if draw(st.booleans()):
            notifier["severities"] = [draw(st.sampled_from(["page", "ticket"]))]
        if draw(st.booleans()):
            notifier["headers"] = {"Authorization": "Bearer t"}
        if draw(st.booleans()):
            notifier["repeat_interval"] = "12h"
        if draw(st.booleans()):
            notifier["send_resolved"] = False
        notifiers.append(notifier)
    if notifiers:
        spec["notifiers"] = notifiers
    if draw(st.booleans()):
        spec["dashboard_url"] = "https://grafana.example.com/d/fraud"
    return spec


def _valid(data: dict[str, Any]) -> Spec | None:
    """The spec, or None when the drawn combination is not a valid spec (a window that is not
    a whole number of buckets, an objective the metric does not allow, ...)."""
    from mlslo.errors import SpecError

    try:
        return parse_spec(yaml.safe_dump(data))
    except SpecError:
        return None


def _exact(spec: Spec) -> str:
    """Every field of the spec, with its type (``1`` and ``True`` differ)."""
    return json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True)


def _outcome(spec: Spec, records: Sources) -> dict[str, Any]:
    evaluation = evaluate_files(spec, records, AT)
    decisions = {
        name: gate_json(evaluation, judge(spec, evaluation, policy=name))
        for name in spec.all_policies()
    }
    return {
        "evaluation": evaluation_json(evaluation),
        "alerts": alerts_json(evaluation, checks(spec, evaluation)),
        "gate": decisions,
    }


ROUND_TRIP = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@ROUND_TRIP
@given(data=specs())
def test_export_then_import_gives_the_same_spec_and_the_same_numbers(data, records):
    spec = _valid(data)
    assume(spec is not None)  # a combination mlslo refuses has nothing to export
    assert spec is not None
    stream = openslo_yaml(spec)
    documents = [d for d in yaml.safe_load_all(stream) if d is not None]
    for document in documents:
        assert_valid_openslo(document)
    imported = import_openslo([("exported.yaml", stream)])
    assert [str(n) for n in imported.notes] == []
    assert imported.spec is not None
    assert _exact(imported.spec) == _exact(spec)
    again = parse_spec(imported.yaml())  # what `mlslo openslo import` writes reads back
    assert _exact(again) == _exact(spec)
    assert _outcome(again, records) == _outcome(spec, records)


def test_the_generated_specs_are_mostly_valid_and_cover_every_form():
    """The strategy is not vacuous: most drawn specs are valid, and across them every
    dimension, window kind, budgeting mode and alert form occurs."""
    seen: set[str] = set()
    valid = 0
    drawn = 0

    @settings(max_examples=300, deadline=None, database=None)
    @given(data=specs())
    def draw(data: dict[str, Any]) -> None:
        nonlocal valid, drawn
        drawn += 1
        spec = _valid(data)
        if spec is None:
            return
        valid += 1
        for slo in spec.slos:
            seen.add(slo.dimension)
            seen.add(slo.effective_budgeting)
            seen.add("calendar" if slo.window.calendar else "rolling")
            seen.add("standard" if slo.alerts is None else "custom" if slo.alerts else "none")
        seen.add("policies" if spec.policies else "policy" if spec.policy else "no policy")

    draw()
    assert valid >= drawn * 0.6, (valid, drawn)
    expected = {"availability", "latency", "freshness", "accuracy", "fairness"}
    expected |= {"occurrences", "aggregate", "timeslices", "calendar", "rolling"}
    expected |= {"standard", "custom", "none", "policies", "policy", "no policy"}
    assert expected <= seen, expected - seen


def test_a_spec_with_every_dimension_round_trips_to_the_same_real_numbers(records):
    """The comparison above is not of empty evaluations: on these records every SLO of this
    spec has an SLI, a budget and burn rates, and the imported spec reproduces them."""
    spec = parse_spec(
        """
service: Fraud_Scoring
bucket: 5m
columns: {ts: served_at}
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.995}, window: 7d}
  - name: p95
    dimension: latency
    sli: {percentile: 95}
    budgeting: timeslices
    slice: 1d
    objective: {target: 0.9, timeslice_target: 400ms}
  - {name: fresh, dimension: freshness, sli: {lag_threshold: 15m}, objective: {target: 0.9}}
  - name: F1_score
    dimension: accuracy
    sli: {metric: f1, estimate: cbpe}
    objective: {target: 0.8}
    window: month
    alerts: [{long: 1d, short: 2h, burn_rate: 2, severity: ticket, for: 30m}]
  - name: gap
    dimension: fairness
    sli: {metric: demographic_parity_difference, attribute: [group, region]}
    objective: {target: 0.1}
    filter: {model_version: [v1, v2]}
policies:
  release: {hard_stop: [uptime], min_remaining: {dimension:accuracy: 0.2}}
  hotfix: {risk_score: {weights: {uptime: 1, gap: 1}, max: 0.9}}
default_policy: release
"""
    )
    imported = import_openslo([("exported.yaml", openslo_yaml(spec))])
    assert imported.notes == ()
    assert imported.spec is not None
    original, again = _outcome(spec, records), _outcome(imported.spec, records)
    values = [slo["sli"]["value"] for slo in original["evaluation"]["slos"]]
    assert all(isinstance(v, float) for v in values), values
    assert all(slo["budget"]["consumed"] is not None for slo in original["evaluation"]["slos"])
    assert set(original["gate"]) == {"release", "hotfix"}
    assert again == original
