"""Fairness SLIs checked against Fairlearn (an independent oracle) on generated data.

Between-group gaps and ratios with 2, 3 and 5 groups and with intersectional groups, per-group
rates against ``MetricFrame.by_group``, the reference-group method against a hand computation,
undefined rates (a group with no positives) and ``min_group_size``.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import close, evaluate_table

AT = datetime(2026, 11, 21, tzinfo=UTC)
AT_TEXT = "2026-11-21T00:00:00Z"
GROUPS = ["A", "B", "C", "D", "E"]
REGIONS = ["x", "y"]
METRICS = (
    "true_positive_rate_difference",
    "false_positive_rate_difference",
    "equalized_odds_difference",
    "demographic_parity_difference",
    "disparate_impact_ratio",
)
RATE_FUNCTIONS = {
    "true_positive_rate": true_positive_rate,
    "false_positive_rate": false_positive_rate,
    "selection_rate": selection_rate,
}
RATES_OF = {
    "true_positive_rate_difference": ("true_positive_rate",),
    "false_positive_rate_difference": ("false_positive_rate",),
    "equalized_odds_difference": ("true_positive_rate", "false_positive_rate"),
    "demographic_parity_difference": ("selection_rate",),
    "disparate_impact_ratio": ("selection_rate",),
}


def stamps(n: int) -> list[datetime]:
    """``n`` timestamps inside the 30-day window that ends at ``AT``."""
    return [AT - timedelta(minutes=1 + (11 * i) % (28 * 24 * 60)) for i in range(n)]


def evaluate(spec_text: str, frame: pd.DataFrame) -> dict[str, Any]:
    """Evaluate ``spec_text`` on the rows of ``frame`` through the library, by SLO name."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.append_column("ts", pa.array(stamps(len(frame)), pa.timestamp("us", "UTC")))
    return evaluate_table(spec_text, table, AT)


def fairness_spec(attribute: str, extra: str = "", metrics: tuple[str, ...] = METRICS) -> str:
    slos = "".join(
        f"""
          - name: {metric}
            dimension: fairness
            sli: {{metric: {metric}, attribute: {attribute}{extra}}}
            objective: {{target: {0.8 if metric == "disparate_impact_ratio" else 0.1}}}"""
        for metric in metrics
    )
    return "service: oracle\nslos:" + textwrap.dedent(slos)


def cell_rows(min_size: int = 2) -> st.SearchStrategy[list[tuple[int, int]]]:
    """(label, prediction) rows of one group, with at least one positive and one negative
    label so that every rate of the group is defined."""
    pair = st.tuples(st.integers(0, 1), st.integers(0, 1))

    def force(rows: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [(1, rows[0][1]), (0, rows[1][1]), *rows[2:]]

    return st.lists(pair, min_size=max(min_size, 2), max_size=40).map(force)


def frame_of(cells: dict[tuple[str, ...], list[tuple[int, int]]], columns: list[str]) -> Any:
    records = [
        {**dict(zip(columns, key, strict=True)), "label": label, "prediction": prediction}
        for key, rows in cells.items()
        for label, prediction in rows
    ]
    return pd.DataFrame.from_records(records)


def fairlearn_values(frame: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    """Fairlearn's value of every metric (between groups)."""
    y_true, y_pred = frame["label"].to_numpy(), frame["prediction"].to_numpy()
    features = frame[columns] if len(columns) > 1 else frame[columns[0]]

    def gap(function: Any) -> float:
        return float(
            MetricFrame(
                metrics=function, y_true=y_true, y_pred=y_pred, sensitive_features=features
            ).difference()
        )

    return {
        "true_positive_rate_difference": gap(true_positive_rate),
        "false_positive_rate_difference": gap(false_positive_rate),
        "equalized_odds_difference": float(
            equalized_odds_difference(y_true, y_pred, sensitive_features=features)
        ),
        "demographic_parity_difference": float(
            demographic_parity_difference(y_true, y_pred, sensitive_features=features)
        ),
        "disparate_impact_ratio": float(
            demographic_parity_ratio(y_true, y_pred, sensitive_features=features)
        ),
    }


def by_group(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    features = frame[columns] if len(columns) > 1 else frame[columns[0]]
    return MetricFrame(
        metrics=RATE_FUNCTIONS,
        y_true=frame["label"].to_numpy(),
        y_pred=frame["prediction"].to_numpy(),
        sensitive_features=features,
    ).by_group


def denominators(frame: pd.DataFrame, columns: list[str]) -> dict[tuple[Any, ...], dict]:
    out = {}
    for key, rows in frame.groupby(columns):
        out[tuple(key)] = {
            "true_positive_rate": int((rows["label"] == 1).sum()),
            "false_positive_rate": int((rows["label"] == 0).sum()),
            "selection_rate": len(rows),
        }
    return out


def assert_groups_match(slo: dict[str, Any], frame: pd.DataFrame, columns: list[str]) -> None:
    """``sli.groups[*].rates`` equal Fairlearn's ``MetricFrame.by_group`` (and the counts)."""
    expected = by_group(frame, columns)
    sizes = denominators(frame, columns)
    groups = slo["sli"]["groups"]
    assert len(groups) == len(expected)
    for entry in groups:
        key = tuple(entry["group"][c] for c in columns)
        row = expected.loc[key if len(key) > 1 else key[0]]
        assert set(entry["rates"]) == set(RATES_OF[slo["name"]])
        for rate, measured in entry["rates"].items():
            assert measured["value"] == close(float(row[rate])), (key, rate)
            assert measured["n"] == sizes[key][rate]
            assert measured["excluded"] is None
            # 1e-12 forgives the float noise of a Wilson bound at 0 (see the classification
            # oracle's test_interval_of_a_zero_value_contains_zero).
            assert measured["ci"][0] - 1e-12 <= measured["value"] <= measured["ci"][1] + 1e-12


def assert_gap_ci_contains(slo: dict[str, Any]) -> None:
    """A gap's (Newcombe) interval contains the gap. Ratios have their own tests below."""
    if slo["name"] == "disparate_impact_ratio":
        return
    value, ci = slo["sli"]["value"], slo["sli"]["ci"]
    assert ci is not None, slo["name"]
    assert ci[0] - 1e-12 <= value <= ci[1] + 1e-12, f"{slo['name']}: {value} outside {ci}"


def assert_matches_fairlearn(result: dict[str, Any], frame: pd.DataFrame, columns: list[str]):
    expected = fairlearn_values(frame, columns)
    for metric in METRICS:
        slo = result[metric]
        value = expected[metric]
        if np.isnan(value):  # no group selected at all: the ratio is 0/0
            assert metric == "disparate_impact_ratio"
            assert slo["sli"]["value"] is None
            assert slo["sli"]["reason"]
            assert slo["budget"]["status"] == "insufficient_data"
        else:
            assert slo["sli"]["value"] == close(value), metric
            assert slo["budget"]["status"] != "insufficient_data"
            assert_gap_ci_contains(slo)
        assert slo["sli"]["label_coverage"] == 1.0
        assert slo["sli"]["n"] == len(frame)  # every row is labelled: both counts agree
        assert_groups_match(slo, frame, columns)


# --- between groups --------------------------------------------------------------------------


@pytest.mark.parametrize("n_groups", [2, 3, 5])
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_between_groups_equal_fairlearn(n_groups: int, data: st.DataObject) -> None:
    cells = {(g,): data.draw(cell_rows(), label=g) for g in GROUPS[:n_groups]}
    frame = frame_of(cells, ["group"])
    result = evaluate(fairness_spec("group"), frame)
    assert_matches_fairlearn(result, frame, ["group"])


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_intersectional_groups_equal_fairlearn(data: st.DataObject) -> None:
    groups = data.draw(st.sampled_from([GROUPS[:2], GROUPS[:3]]))
    cells = {(g, r): data.draw(cell_rows(), label=f"{g},{r}") for g in groups for r in REGIONS}
    frame = frame_of(cells, ["group", "region"])
    result = evaluate(fairness_spec("[group, region]"), frame)
    assert_matches_fairlearn(result, frame, ["group", "region"])


def test_intersectional_through_the_cli(cli: Any, write_spec: Any, write_records: Any) -> None:
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame(
        {
            "group": rng.choice(["A", "B", "C"], n),
            "region": rng.choice(["north", "south"], n),
            "label": rng.integers(0, 2, n),
        }
    )
    # A model that favours group A in the north.
    favoured = (frame["group"] == "A") & (frame["region"] == "north")
    frame["prediction"] = (rng.random(n) < np.where(favoured, 0.8, 0.4)).astype(int)
    spec = write_spec(fairness_spec("[group, region]"))
    data = write_records(
        {**{c: frame[c].tolist() for c in frame.columns}, "ts": stamps(n)}, fmt="ndjson"
    )
    run = cli("evaluate", "--spec", spec, "--data", data, "--at", AT_TEXT, "--format", "json")
    assert run.exit_code == 0, run.stderr
    result = {slo["name"]: slo for slo in run.json()["slos"]}
    assert_matches_fairlearn(result, frame, ["group", "region"])
    assert result["demographic_parity_difference"]["met"] is False


# --- reference group -------------------------------------------------------------------------


def hand_rates(frame: pd.DataFrame, columns: list[str]) -> dict[tuple[Any, ...], dict]:
    """Per-group rates by plain counting."""
    out = {}
    for key, rows in frame.groupby(columns):
        y, p = rows["label"].to_numpy(), rows["prediction"].to_numpy()
        out[tuple(key)] = {
            "true_positive_rate": float(np.sum((p == 1) & (y == 1)) / np.sum(y == 1)),
            "false_positive_rate": float(np.sum((p == 1) & (y == 0)) / np.sum(y == 0)),
            "selection_rate": float(np.mean(p == 1)),
        }
    return out


def symmetric_ratio(a: float, b: float) -> float:
    """min(a/b, b/a), with equal rates (0/0 included) a ratio of 1."""
    if a == b:
        return 1.0
    if a == 0 or b == 0:
        return 0.0
    return min(a / b, b / a)


def reference_value(metric: str, rates: dict[tuple[Any, ...], dict], ref: tuple) -> float:
    others = [g for g in rates if g != ref]
    if metric == "disparate_impact_ratio":
        return min(
            symmetric_ratio(rates[g]["selection_rate"], rates[ref]["selection_rate"])
            for g in others
        )
    return max(abs(rates[g][rate] - rates[ref][rate]) for rate in RATES_OF[metric] for g in others)


@pytest.mark.parametrize(
    ("columns", "reference"),
    [(["group"], ("B",)), (["group", "region"], ("A", "y"))],
    ids=["single", "intersectional"],
)
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_reference_group_by_hand(
    columns: list[str], reference: tuple[str, ...], data: st.DataObject
) -> None:
    groups = GROUPS[: data.draw(st.integers(2, 4), label="groups")]
    keys = (
        [(g,) for g in groups] if len(columns) == 1 else [(g, r) for g in groups for r in REGIONS]
    )
    cells = {key: data.draw(cell_rows(), label=",".join(key)) for key in keys}
    frame = frame_of(cells, columns)
    attribute = columns[0] if len(columns) == 1 else f"[{', '.join(columns)}]"
    group = reference[0] if len(reference) == 1 else f"[{', '.join(reference)}]"
    extra = f", method: reference, reference_group: {group}"
    result = evaluate(fairness_spec(attribute, extra), frame)
    rates = hand_rates(frame, columns)
    for metric in METRICS:
        slo = result[metric]
        assert slo["sli"]["value"] == close(reference_value(metric, rates, reference)), metric
        assert slo["budget"]["status"] != "insufficient_data"
        assert_gap_ci_contains(slo)


def test_reference_ratio_interval_contains_the_value() -> None:
    """The reference group selects less often than the other group: the symmetric ratio is
    r_ref / r_other = 0.5, and its interval must contain 0.5 (not be an interval for 2.0)."""
    frame = pd.DataFrame(
        {
            "group": ["A"] * 100 + ["B"] * 100,
            "label": [1, 0] * 100,
            "prediction": [1] * 80 + [0] * 20 + [1] * 40 + [0] * 60,
        }
    )
    spec = fairness_spec(
        "group", ", method: reference, reference_group: B", metrics=("disparate_impact_ratio",)
    )
    slo = evaluate(spec, frame)["disparate_impact_ratio"]
    assert slo["sli"]["value"] == close(symmetric_ratio(0.8, 0.4)) == 0.5
    low, high = slo["sli"]["ci"]
    assert low <= 0.5 <= high, f"interval {slo['sli']['ci']} does not contain 0.5"


def test_ratio_interval_contains_a_zero_ratio() -> None:
    """Group B is never selected: the ratio is exactly 0 and its interval must reach 0."""
    frame = pd.DataFrame(
        {
            "group": ["A"] * 50 + ["B"] * 50,
            "label": [1, 0] * 50,
            "prediction": [1] * 25 + [0] * 25 + [0] * 50,
        }
    )
    spec = fairness_spec("group", metrics=("disparate_impact_ratio",))
    slo = evaluate(spec, frame)["disparate_impact_ratio"]
    expected = demographic_parity_ratio(
        frame["label"], frame["prediction"], sensitive_features=frame["group"]
    )
    assert slo["sli"]["value"] == close(float(expected)) == 0.0
    low, high = slo["sli"]["ci"]
    assert low <= 0.0 <= high, f"interval {slo['sli']['ci']} does not contain 0"


# --- undefined rates and small groups ---------------------------------------------------------


def test_group_without_positives_is_undefined_through_the_cli(
    cli: Any, write_spec: Any, write_records: Any
) -> None:
    frame = pd.DataFrame(
        {
            "group": ["A"] * 6 + ["B"] * 6 + ["C"] * 3,
            # A: 3 positives, 3 negatives; B: 2 and 4; C: no positive label at all.
            "label": [1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0],
            "prediction": [1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0],
        }
    )
    spec = write_spec(fairness_spec("group"))
    data = write_records(
        {**{c: frame[c].tolist() for c in frame.columns}, "ts": stamps(len(frame))}
    )
    run = cli("evaluate", "--spec", spec, "--data", data, "--at", AT_TEXT, "--format", "json")
    assert run.exit_code == 0, run.stderr
    result = {slo["name"]: slo for slo in run.json()["slos"]}
    for metric in ("true_positive_rate_difference", "equalized_odds_difference"):
        slo = result[metric]
        assert slo["sli"]["value"] is None, metric
        assert "group=C" in slo["sli"]["reason"]
        assert "group=A" not in slo["sli"]["reason"]
        assert slo["budget"]["status"] == "insufficient_data"
        assert slo["met"] is None
        entry = next(g for g in slo["sli"]["groups"] if g["group"] == {"group": "C"})
        assert entry["rates"]["true_positive_rate"]["value"] is None
        assert entry["rates"]["true_positive_rate"]["n"] == 0
        assert entry["rates"]["true_positive_rate"]["excluded"]
    # Fairlearn reports group C's TPR as 0, a fake gap of 2/3; mlslo refuses to.
    fake = MetricFrame(
        metrics=true_positive_rate,
        y_true=frame["label"],
        y_pred=frame["prediction"],
        sensitive_features=frame["group"],
    )
    assert fake.by_group["C"] == 0.0
    assert fake.difference() == pytest.approx(2 / 3)
    # Rates that C does have are still compared.
    for metric in ("false_positive_rate_difference", "demographic_parity_difference"):
        assert result[metric]["sli"]["value"] == close(fairlearn_values(frame, ["group"])[metric])


@pytest.mark.parametrize(
    "metric", ["demographic_parity_difference", "true_positive_rate_difference"]
)
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_min_group_size_leaves_small_groups_out(metric: str, data: st.DataObject) -> None:
    minimum = 8
    cells = {(g,): data.draw(cell_rows(), label=g) for g in GROUPS[:4]}
    frame = frame_of(cells, ["group"])
    spec = fairness_spec("group", f", min_group_size: {minimum}", metrics=(metric,))
    slo = evaluate(spec, frame)[metric]
    rate = RATES_OF[metric][0]
    sizes = denominators(frame, ["group"])
    large = [key[0] for key, size in sizes.items() if size[rate] >= minimum]
    for entry in slo["sli"]["groups"]:
        measured = entry["rates"][rate]
        small = measured["n"] < minimum
        assert measured["n"] == sizes[(entry["group"]["group"],)][rate]
        assert (measured["excluded"] is not None) == small, entry
        assert (entry["group"]["group"] in large) == (not small)
    if len(large) < 2:
        assert slo["sli"]["value"] is None
        assert slo["sli"]["reason"]
        assert slo["budget"]["status"] == "insufficient_data"
        return
    kept = frame[frame["group"].isin(large)]
    function = true_positive_rate if rate == "true_positive_rate" else selection_rate
    expected = MetricFrame(
        metrics=function,
        y_true=kept["label"],
        y_pred=kept["prediction"],
        sensitive_features=kept["group"],
    ).difference()
    assert slo["sli"]["value"] == close(float(expected))
