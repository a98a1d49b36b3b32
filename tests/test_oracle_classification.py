"""Classification SLIs checked against scikit-learn (an independent oracle) on generated data.

Binary metrics for integer and string labels, multiclass macro/micro averages (with
``zero_division=0`` semantics: a class whose value is undefined counts as 0 in the macro
average), undefined metrics (``value: null``, never 0), confidence intervals that contain the
value, and CBPE estimates against expected confusion counts computed by hand.
"""

from __future__ import annotations

import math
import textwrap
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)

from conftest import close, evaluate_table

AT = datetime(2026, 11, 21, tzinfo=UTC)
AT_TEXT = "2026-11-21T00:00:00Z"
BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "specificity", "balanced_accuracy")
# (negative, positive) label pairs: ints, ints with 0 as the positive class, strings.
LABEL_KINDS = [(0, 1), (1, 0), ("no", "yes")]


def stamps(n: int) -> list[datetime]:
    """``n`` distinct timestamps inside the 30-day window that ends at ``AT``."""
    return [AT - timedelta(minutes=1 + (7 * i) % (28 * 24 * 60)) for i in range(n)]


def evaluate(spec_text: str, table: pa.Table) -> dict[str, Any]:
    return evaluate_table(spec_text, table, AT)


def yaml_scalar(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def assert_ci_contains(slo: dict[str, Any], slack: float = 0.0) -> None:
    """The interval contains the value. ``slack`` forgives float noise (a Wilson bound of
    2.8e-17 for 0 successes) in the property tests; the exact check is
    :func:`test_interval_of_a_zero_value_contains_zero`."""
    value, ci = slo["sli"]["value"], slo["sli"]["ci"]
    assert ci is not None, f"{slo['name']}: a defined value needs an interval"
    assert ci[0] - slack <= value <= ci[1] + slack, f"{slo['name']}: {value} outside {ci}"


def assert_undefined(slo: dict[str, Any]) -> None:
    """An undefined metric: null value with a reason, and no budget verdict (never 0)."""
    assert slo["sli"]["value"] is None, f"{slo['name']} should be undefined: {slo['sli']}"
    assert isinstance(slo["sli"]["reason"], str) and slo["sli"]["reason"]
    assert slo["budget"]["status"] == "insufficient_data"
    assert slo["budget"]["consumed"] is None
    assert slo["met"] is None


def sklearn_quiet(function: Any, *args: Any, **kwargs: Any) -> float:
    """Call a scikit-learn metric with its warnings silenced (undefined classes warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(function(*args, **kwargs))


def nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value


# --- binary ----------------------------------------------------------------------------------


def binary_spec(positive: Any) -> str:
    slos = "".join(
        f"""
          - name: {metric}
            dimension: accuracy
            sli: {{metric: {metric}, positive_label: {yaml_scalar(positive)}}}
            objective: {{target: 0.5}}"""
        for metric in BINARY_METRICS
    )
    return "service: oracle\nslos:" + textwrap.dedent(slos)


def binary_oracle(y_true: list[Any], y_pred: list[Any], negative: Any, positive: Any) -> dict:
    """scikit-learn's value of every binary metric (None where the metric is undefined)."""
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[negative, positive]).ravel()
    common = {"pos_label": positive, "zero_division": np.nan}
    both_classes = tp + fn > 0 and tn + fp > 0
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": nan_to_none(float(precision_score(y_true, y_pred, **common))),
        "recall": nan_to_none(float(recall_score(y_true, y_pred, **common))),
        "f1": nan_to_none(float(f1_score(y_true, y_pred, **common))),
        "specificity": float(tn / (tn + fp)) if tn + fp > 0 else None,
        "balanced_accuracy": (
            sklearn_quiet(balanced_accuracy_score, y_true, y_pred) if both_classes else None
        ),
    }


def binary_rows(negative: Any, positive: Any) -> st.SearchStrategy[list[tuple[Any, Any, bool]]]:
    """(label, prediction, labelled?) rows; about one in five has no label yet."""
    value = st.sampled_from([negative, positive])
    labelled = st.integers(0, 4).map(lambda k: k > 0)
    return st.lists(st.tuples(value, value, labelled), min_size=1, max_size=150)


def binary_table(rows: list[tuple[Any, Any, bool]]) -> pa.Table:
    predictions = pa.array([prediction for _, prediction, _ in rows])
    labels = pa.array([label if known else None for label, _, known in rows], predictions.type)
    return pa.table(
        {
            "id": [f"p{i}" for i in range(len(rows))],
            "ts": stamps(len(rows)),
            "label": labels,
            "prediction": predictions,
        }
    )


@pytest.mark.parametrize(("negative", "positive"), LABEL_KINDS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_binary_metrics_equal_sklearn(negative: Any, positive: Any, data: st.DataObject) -> None:
    rows = data.draw(binary_rows(negative, positive))
    result = evaluate(binary_spec(positive), binary_table(rows))
    known = [(label, prediction) for label, prediction, ok in rows if ok]
    for metric in BINARY_METRICS:
        slo = result[metric]
        assert slo["sli"]["label_coverage"] == close(len(known) / len(rows))
        if not known:
            assert slo["sli"]["n"] == 0
            assert_undefined(slo)
            continue
        assert slo["sli"]["n"] == len(known)
        y_true = [label for label, _ in known]
        y_pred = [prediction for _, prediction in known]
        expected = binary_oracle(y_true, y_pred, negative, positive)[metric]
        if expected is None:
            assert_undefined(slo)
        else:
            assert slo["sli"]["value"] == close(expected), metric
            assert_ci_contains(slo, slack=1e-12)
            assert slo["budget"]["status"] != "insufficient_data"


@pytest.mark.parametrize("n", [5, 10, 17, 20])
def test_interval_of_a_zero_value_contains_zero(n: int) -> None:
    """Every prediction wrong: accuracy is exactly 0, and its Wilson interval must reach 0."""
    spec = """
        service: oracle
        slos:
          - name: accuracy
            dimension: accuracy
            sli: {metric: accuracy}
            objective: {target: 0.9}
    """
    table = pa.table({"ts": stamps(n), "label": [0] * n, "prediction": [1] * n})
    slo = evaluate(spec, table)["accuracy"]
    assert slo["sli"]["value"] == float(accuracy_score([0] * n, [1] * n)) == 0.0
    assert_ci_contains(slo)


EMPTY_DENOMINATORS = [
    # metric, labels, predictions: each leaves the metric's denominator empty
    ("precision", [1, 0, 1, 0], [0, 0, 0, 0]),
    ("recall", [0, 0, 0, 0], [1, 0, 1, 0]),
    ("f1", [0, 0, 0], [0, 0, 0]),
    ("specificity", [1, 1, 1], [1, 0, 1]),
    ("balanced_accuracy", [1, 1, 1], [1, 0, 0]),
]


@pytest.mark.parametrize(("metric", "labels", "predictions"), EMPTY_DENOMINATORS)
def test_empty_denominator_is_null_not_zero(
    metric: str, labels: list[int], predictions: list[int]
) -> None:
    spec = f"""
        service: oracle
        slos:
          - name: {metric}
            dimension: accuracy
            sli: {{metric: {metric}, positive_label: 1}}
            objective: {{target: 0.9}}
    """
    table = pa.table({"ts": stamps(len(labels)), "label": labels, "prediction": predictions})
    slo = evaluate(spec, table)[metric]
    assert_undefined(slo)
    assert slo["sli"]["n"] == len(labels)
    assert slo["sli"]["label_coverage"] == 1.0


def test_precision_without_positive_predictions_through_the_cli(
    cli: Any, write_spec: Any, write_records: Any
) -> None:
    spec = write_spec("""
        service: oracle
        slos:
          - name: precision
            dimension: accuracy
            sli: {metric: precision, positive_label: "fraud"}
            objective: {target: 0.9}
          - name: recall
            dimension: accuracy
            sli: {metric: recall, positive_label: "fraud"}
            objective: {target: 0.9}
    """)
    labels = ["fraud", "ok", "fraud", "ok", "ok"]
    predictions = ["ok"] * 5
    data = write_records(
        {
            "id": [f"p{i}" for i in range(5)],
            "ts": stamps(5),
            "label": labels,
            "prediction": predictions,
        },
        fmt="csv",
    )
    run = cli("evaluate", "--spec", spec, "--data", data, "--at", AT_TEXT, "--format", "json")
    assert run.exit_code == 0, run.stderr
    precision, recall = run.json()["slos"]
    assert_undefined(precision)
    assert "positive predictions" in precision["sli"]["reason"]
    expected = recall_score(labels, predictions, pos_label="fraud", zero_division=np.nan)
    assert recall["sli"]["value"] == close(float(expected)) == 0.0
    assert recall["budget"]["status"] == "exhausted"
    assert_ci_contains(recall)


# --- multiclass ------------------------------------------------------------------------------

MULTICLASS_SLOS = [
    ("precision", "macro"),
    ("recall", "macro"),
    ("f1", "macro"),
    ("precision", "micro"),
    ("recall", "micro"),
    ("f1", "micro"),
    ("accuracy", "macro"),
    ("accuracy", "micro"),
    ("balanced_accuracy", "macro"),
]


def multiclass_spec() -> str:
    slos = "".join(
        f"""
          - name: {metric}-{average}
            dimension: accuracy
            sli: {{metric: {metric}, average: {average}}}
            objective: {{target: 0.5}}"""
        for metric, average in MULTICLASS_SLOS
    )
    return "service: oracle\nslos:" + textwrap.dedent(slos)


def multiclass_oracle(metric: str, average: str, y_true: list[Any], y_pred: list[Any]) -> float:
    if metric == "accuracy":
        return float(accuracy_score(y_true, y_pred))
    if metric == "balanced_accuracy":
        return sklearn_quiet(balanced_accuracy_score, y_true, y_pred)
    function = {"precision": precision_score, "recall": recall_score, "f1": f1_score}[metric]
    return float(function(y_true, y_pred, average=average, zero_division=0))


CLASS_SETS = [[0, 1, 2, 3], ["cat", "dog", "emu"]]


@pytest.mark.parametrize("classes", CLASS_SETS, ids=["ints", "strings"])
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_multiclass_metrics_equal_sklearn(classes: list[Any], data: st.DataObject) -> None:
    value = st.sampled_from(classes)
    labelled = st.integers(0, 5).map(lambda k: k > 0)
    rows = data.draw(st.lists(st.tuples(value, value, labelled), min_size=1, max_size=150))
    result = evaluate(multiclass_spec(), binary_table(rows))
    known = [(label, prediction) for label, prediction, ok in rows if ok]
    y_true = [label for label, _ in known]
    y_pred = [prediction for _, prediction in known]
    for metric, average in MULTICLASS_SLOS:
        slo = result[f"{metric}-{average}"]
        if not known:
            assert_undefined(slo)
            continue
        expected = multiclass_oracle(metric, average, y_true, y_pred)
        assert not math.isnan(expected)  # some class always has a defined value
        assert slo["sli"]["n"] == len(known)
        assert slo["sli"]["value"] == close(expected), (metric, average)
        assert_ci_contains(slo, slack=1e-12)


def test_macro_average_counts_undefined_classes_as_zero() -> None:
    """Class 2 is never predicted: its precision is undefined and counts as 0, as in
    scikit-learn's default (``zero_division=0``); the SLI says how many classes did."""
    labels = [0, 0, 1, 1, 2, 2]
    predictions = [0, 1, 1, 1, 0, 1]
    result = evaluate(
        multiclass_spec(), pa.table({"ts": stamps(6), "label": labels, "prediction": predictions})
    )
    expected = precision_score(labels, predictions, average="macro", zero_division=0)
    assert expected == pytest.approx((1 / 2 + 2 / 4 + 0) / 3)
    assert result["precision-macro"]["sli"]["value"] == close(float(expected))
    assert result["precision-macro"]["sli"]["classes_without_a_defined_value"] == 1
    left_out = precision_score(labels, predictions, average="macro", zero_division=np.nan)
    assert result["precision-macro"]["sli"]["value"] != pytest.approx(float(left_out))
    recall = result["recall-macro"]["sli"]
    assert recall["value"] == close(float(recall_score(labels, predictions, average="macro")))
    assert "classes_without_a_defined_value" not in recall


# --- CBPE ------------------------------------------------------------------------------------

CBPE_METRICS = ("f1", "precision", "recall", "accuracy", "specificity", "balanced_accuracy")


def cbpe_spec() -> str:
    slos = "".join(
        f"""
          - name: {metric}
            dimension: accuracy
            sli: {{metric: {metric}, estimate: cbpe}}
            objective: {{target: 0.5}}"""
        for metric in CBPE_METRICS
    )
    return "service: oracle\nslos:" + textwrap.dedent(slos)


def weighted_oracle(metric: str, predicted: np.ndarray, scores: np.ndarray) -> float | None:
    """The metric by scikit-learn on expected counts: each unlabelled row is a positive with
    weight ``score`` and a negative with weight ``1 - score``."""
    y_true = np.concatenate([np.ones_like(predicted), np.zeros_like(predicted)])
    y_pred = np.concatenate([predicted, predicted])
    weights = np.concatenate([scores, 1 - scores])
    if metric == "specificity":
        tn, fp, _, _ = confusion_matrix(
            y_true, y_pred, labels=[0, 1], sample_weight=weights
        ).ravel()
        return float(tn / (tn + fp)) if tn + fp > 0 else None
    if metric == "balanced_accuracy":
        recall = weighted_oracle("recall", predicted, scores)
        specificity = weighted_oracle("specificity", predicted, scores)
        return None if recall is None or specificity is None else (recall + specificity) / 2
    if metric == "accuracy":
        return float(accuracy_score(y_true, y_pred, sample_weight=weights))
    function = {"precision": precision_score, "recall": recall_score, "f1": f1_score}[metric]
    value = function(y_true, y_pred, sample_weight=weights, zero_division=np.nan)
    return nan_to_none(float(value))


score_values = st.one_of(
    st.floats(0, 1, allow_nan=False), st.sampled_from([0.0, 1.0, 0.5]), st.none()
)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([0, 1]),  # label (when labelled)
            st.sampled_from([0, 1]),  # prediction
            st.integers(0, 2).map(lambda k: k > 0),  # unlabelled?
            score_values,
        ),
        min_size=1,
        max_size=200,
    )
)
def test_cbpe_equals_expected_confusion_counts(rows: list[tuple[int, int, bool, Any]]) -> None:
    table = pa.table(
        {
            "id": [f"p{i}" for i in range(len(rows))],
            "ts": stamps(len(rows)),
            "label": pa.array([None if pending else y for y, _, pending, _ in rows], pa.int64()),
            "prediction": [p for _, p, _, _ in rows],
            "score": pa.array([s for *_, s in rows], pa.float64()),
        }
    )
    result = evaluate(cbpe_spec(), table)
    pending = [(p, s) for _, p, is_pending, s in rows if is_pending and s is not None]
    predicted = np.array([p for p, _ in pending], dtype=np.int64)
    scores = np.array([s for _, s in pending], dtype=np.float64)
    positive = predicted == 1
    etp, efp = scores[positive].sum(), (1 - scores[positive]).sum()
    efn, etn = scores[~positive].sum(), (1 - scores[~positive]).sum()
    assert etp + efp + efn + etn == pytest.approx(len(pending))  # one expected row each
    by_hand = 2 * etp / (2 * etp + efp + efn) if 2 * etp + efp + efn > 0 else None
    for metric in CBPE_METRICS:
        estimated = result[metric]["sli"]["estimated"]
        assert estimated["method"] == "cbpe"
        assert estimated["n"] == len(pending)
        if not pending:
            assert estimated["value"] is None
            assert estimated["reason"]
            continue
        expected = weighted_oracle(metric, predicted, scores)
        if metric == "f1":
            assert (expected is None) == (by_hand is None)
            if by_hand is not None:
                assert expected == pytest.approx(by_hand, rel=1e-12, abs=1e-15)
        if expected is None:
            assert estimated["value"] is None
        else:
            assert estimated["value"] == close(expected), metric


def test_cbpe_f1_by_hand_and_kept_apart_from_the_realized_value() -> None:
    """Two labelled rows (F1 realized = 1) and four scored, unlabelled ones."""
    table = pa.table(
        {
            "ts": stamps(6),
            "label": pa.array([1, 0, None, None, None, None], pa.int64()),
            "prediction": [1, 0, 1, 1, 0, 0],
            "score": [0.9, 0.1, 0.8, 0.4, 0.3, 0.05],
        }
    )
    slo = evaluate(cbpe_spec(), table)["f1"]
    etp, efp, efn = 0.8 + 0.4, 0.2 + 0.6, 0.3 + 0.05
    assert slo["sli"]["value"] == 1.0
    assert slo["sli"]["label_coverage"] == close(2 / 6)
    assert slo["sli"]["estimated"]["value"] == close(2 * etp / (2 * etp + efp + efn))
    assert slo["sli"]["estimated"]["n"] == 4
