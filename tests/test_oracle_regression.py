"""Regression SLIs (MAE, RMSE, MAPE) checked against numpy and scikit-learn on generated data."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    root_mean_squared_error,
)

from conftest import close, evaluate_table

AT = datetime(2026, 11, 21, tzinfo=UTC)
AT_TEXT = "2026-11-21T00:00:00Z"
SPEC = """
    service: oracle
    slos:
      - name: mae
        dimension: accuracy
        sli: {metric: mae}
        objective: {target: 3}
      - name: rmse
        dimension: accuracy
        sli: {metric: rmse}
        objective: {target: 5}
      - name: mape
        dimension: accuracy
        sli: {metric: mape}
        objective: {target: 0.2}
"""


def stamps(n: int) -> list[datetime]:
    """``n`` timestamps inside the 30-day window that ends at ``AT``."""
    return [AT - timedelta(minutes=1 + (5 * i) % (28 * 24 * 60)) for i in range(n)]


def evaluate(spec_text: str, table: pa.Table) -> dict[str, Any]:
    return evaluate_table(spec_text, table, AT)


def assert_ci_contains(slo: dict[str, Any]) -> None:
    value, ci = slo["sli"]["value"], slo["sli"]["ci"]
    if slo["sli"]["n"] < 2:
        return  # one error gives no spread, hence no interval
    assert ci is not None, slo["name"]
    assert ci[0] <= value <= ci[1], f"{slo['name']}: {value} outside its interval {ci}"


def oracle(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    nonzero = y_true != 0
    mape = (
        float(mean_absolute_percentage_error(y_true[nonzero], y_pred[nonzero]))
        if nonzero.any()
        else None
    )
    return {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(root_mean_squared_error(y_true, y_pred)),
        "mape": mape,
    }


magnitudes = st.floats(1e-3, 1e4, allow_nan=False, allow_infinity=False)
label_values = st.one_of(st.just(0.0), magnitudes, magnitudes.map(lambda v: -v))
prediction_values = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(label_values, prediction_values, st.integers(0, 5).map(lambda k: k > 0)),
        min_size=1,
        max_size=300,
    )
)
def test_regression_metrics_equal_sklearn(rows: list[tuple[float, float, bool]]) -> None:
    table = pa.table(
        {
            "ts": stamps(len(rows)),
            "label": pa.array([y if known else None for y, _, known in rows], pa.float64()),
            "prediction": pa.array([p for _, p, _ in rows], pa.float64()),
        }
    )
    result = evaluate(SPEC, table)
    known = [(y, p) for y, p, ok in rows if ok]
    y_true = np.array([y for y, _ in known], dtype=np.float64)
    y_pred = np.array([p for _, p in known], dtype=np.float64)
    for name in ("mae", "rmse", "mape"):
        slo = result[name]
        assert slo["sli"]["label_coverage"] == close(len(known) / len(rows))
        if not known:
            assert slo["sli"]["value"] is None
            assert slo["sli"]["reason"]
            assert slo["budget"]["status"] == "insufficient_data"
            continue
        expected = oracle(y_true, y_pred)[name]
        if expected is None:  # every label is 0: MAPE has no defined term
            assert slo["sli"]["value"] is None
            assert "0" in slo["sli"]["reason"]
            assert slo["budget"]["status"] == "insufficient_data"
            assert slo["met"] is None
            continue
        assert slo["sli"]["value"] == close(expected), name
        expected_n = int(np.count_nonzero(y_true)) if name == "mape" else len(known)
        assert slo["sli"]["n"] == expected_n
        assert_ci_contains(slo)
    if known:
        mse = mean_squared_error(y_true, y_pred)
        assert result["rmse"]["sli"]["value"] == close(math.sqrt(mse))
        assert result["mae"]["sli"]["value"] == close(float(np.mean(np.abs(y_true - y_pred))))


def test_mape_leaves_out_zero_labels() -> None:
    y_true = np.array([0.0, 2.0, 4.0, 0.0, -5.0])
    y_pred = np.array([1.0, 3.0, 3.0, 7.0, -5.0])
    table = pa.table({"ts": stamps(5), "label": y_true, "prediction": y_pred})
    result = evaluate(SPEC, table)
    by_hand = (1 / 2 + 1 / 4 + 0 / 5) / 3
    assert result["mape"]["sli"]["value"] == close(by_hand)
    assert result["mape"]["sli"]["n"] == 3
    assert result["mae"]["sli"]["value"] == close(float(np.mean(np.abs(y_true - y_pred))))
    assert result["mae"]["sli"]["n"] == 5


def test_every_label_zero_makes_mape_undefined() -> None:
    table = pa.table({"ts": stamps(3), "label": [0.0, 0.0, 0.0], "prediction": [1.0, 2.0, 3.0]})
    result = evaluate(SPEC, table)
    assert result["mape"]["sli"]["value"] is None
    assert result["mape"]["sli"]["reason"]
    assert result["mape"]["budget"]["status"] == "insufficient_data"
    assert result["mae"]["sli"]["value"] == close(2.0)


def test_regression_with_late_labels_through_the_cli(
    cli: Any, write_spec: Any, write_records: Any
) -> None:
    rng = np.random.default_rng(11)
    n = 500
    y_true = rng.integers(-50, 50, n)
    y_pred = y_true + rng.integers(-6, 7, n)
    labelled = rng.random(n) < 0.8
    ts = stamps(n)
    predictions = write_records(
        {"id": [f"r{i}" for i in range(n)], "ts": ts, "prediction": y_pred.tolist()}, fmt="csv"
    )
    labels = write_records(
        {
            "id": [f"r{i}" for i in range(n) if labelled[i]],
            "ts": [ts[i] + timedelta(seconds=30) for i in range(n) if labelled[i]],
            "label": [int(y_true[i]) for i in range(n) if labelled[i]],
        },
        fmt="csv",
    )
    spec = write_spec(SPEC)
    run = cli(
        "evaluate", "--spec", spec, "--data", predictions, "--labels", labels,
        "--at", AT_TEXT, "--format", "json",
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    result = {slo["name"]: slo for slo in run.json()["slos"]}
    expected = oracle(y_true[labelled].astype(float), y_pred[labelled].astype(float))
    for name in ("mae", "rmse", "mape"):
        slo = result[name]
        assert slo["sli"]["value"] == close(expected[name]), name
        assert slo["sli"]["label_coverage"] == close(labelled.mean())
        assert_ci_contains(slo)
        value = slo["sli"]["value"]
        assert slo["budget"]["consumed"] == close(value / slo["objective"]["target"])
