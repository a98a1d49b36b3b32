"""Calibrated CBPE: the binned isotonic and Platt fits against scikit-learn, the calibrated
estimate against the realized value of labels held back, the ECE before and after, and the
``insufficient_calibration`` flag."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from conftest import evaluate_table
from mlslo.errors import SpecError
from mlslo.spec import parse_spec
from mlslo.stats import calibration as cal

AT = datetime(2026, 11, 21, tzinfo=UTC)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.floats(0.1, 10)),
        min_size=1,
        max_size=60,
    )
)
def test_pool_adjacent_violators_matches_scikit_learn(points: list[tuple[float, float]]) -> None:
    values = np.array([v for v, _ in points])
    weights = np.array([w for _, w in points])
    x = np.arange(len(points), dtype=np.float64)
    expected = IsotonicRegression().fit(x, values, sample_weight=weights).predict(x)
    np.testing.assert_allclose(cal.pool_adjacent_violators(values, weights), expected, atol=1e-9)


def test_platt_on_bins_matches_logistic_regression() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 400)
    counts = rng.integers(1, 30, 400).astype(np.float64)
    positives = rng.binomial(counts.astype(np.int64), 1 / (1 + np.exp(-(4 * x - 2)))).astype(
        np.float64
    )
    a, b = cal.platt(x, positives, counts)
    features = np.concatenate([x, x])[:, None]
    targets = np.concatenate([np.ones_like(x), np.zeros_like(x)])
    weights = np.concatenate([positives, counts - positives])
    model = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000)
    model.fit(features, targets, sample_weight=weights)
    assert a == pytest.approx(float(model.coef_[0][0]), rel=1e-4)
    assert b == pytest.approx(float(model.intercept_[0]), rel=1e-4, abs=1e-6)


def miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores whose true positive rate is ``score ** 3`` (overconfident), a 0.5 threshold."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0, 1, n)
    labels = (rng.uniform(0, 1, n) < scores**3).astype(np.int64)
    return scores, (scores >= 0.5).astype(np.int64), labels


def records(history: int, recent: int, seed: int = 7) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """``history`` labelled and then ``recent`` unlabelled predictions in the 30-day window;
    returns the recent predictions and their held-back labels too."""
    scores, predicted, labels = miscalibrated(history + recent, seed)
    n = history + recent
    stamps = [AT - timedelta(days=29) + timedelta(seconds=60 * i) for i in range(n)]
    shown = [int(y) if i < history else None for i, y in enumerate(labels)]
    table = pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": stamps,
            "prediction": predicted,
            "score": scores,
            "label": pa.array(shown, pa.int64()),
        }
    )
    return table, predicted[history:], labels[history:]


def spec(metric: str, calibration: str | None = None, min_labels: int | None = None) -> str:
    options = f"metric: {metric}, estimate: cbpe"
    if calibration is not None:
        options += f", calibration: {calibration}"
    if min_labels is not None:
        options += f", calibration_min_labels: {min_labels}"
    return textwrap.dedent(
        f"""
        service: calibrated
        slos:
          - name: quality
            dimension: accuracy
            sli: {{{options}}}
            objective: {{target: 0.5}}
            window: 30d
        """
    )


def isotonic_oracle(table: pa.Table, history: int, metric: str) -> float:
    """The CBPE estimate with scikit-learn's isotonic fit on the raw labelled scores."""
    scores = np.asarray(table["score"].to_numpy(), dtype=np.float64)
    labels = np.asarray(table["label"].to_numpy(zero_copy_only=False)[:history], dtype=np.float64)
    predicted = np.asarray(table["prediction"].to_numpy())[history:]
    model = IsotonicRegression(out_of_bounds="clip").fit(scores[:history], labels)
    p = model.predict(scores[history:])
    y_true = np.concatenate([np.ones_like(predicted), np.zeros_like(predicted)])
    y_pred = np.concatenate([predicted, predicted])
    weights = np.concatenate([p, 1 - p])
    if metric == "accuracy":
        return float(accuracy_score(y_true, y_pred, sample_weight=weights))
    return float(f1_score(y_true, y_pred, sample_weight=weights))


@pytest.fixture(scope="module")
def held_back() -> tuple[pa.Table, np.ndarray, np.ndarray]:
    return records(20_000, 10_000)


@pytest.mark.parametrize("metric", ["accuracy", "f1"])
def test_isotonic_estimate_matches_scikit_learn_and_the_held_back_labels(
    held_back: tuple[pa.Table, np.ndarray, np.ndarray], metric: str
) -> None:
    table, predicted, labels = held_back
    estimate = evaluate_table(spec(metric), table, AT)["quality"]["sli"]["estimated"]
    realized = (
        accuracy_score(labels, predicted) if metric == "accuracy" else f1_score(labels, predicted)
    )
    assert estimate["n"] == 10_000
    assert estimate["calibration"]["status"] == "fitted"
    assert estimate["calibration"]["labelled"] == 20_000
    assert "flags" not in estimate
    assert estimate["value"] == pytest.approx(isotonic_oracle(table, 20_000, metric), abs=2e-3)
    raw_error = abs(estimate["uncalibrated_value"] - realized)
    assert abs(estimate["value"] - realized) < 0.01 < raw_error


def test_ece_before_and_after_from_the_same_bins(
    held_back: tuple[pa.Table, np.ndarray, np.ndarray],
) -> None:
    table, _, _ = held_back
    estimate = evaluate_table(spec("accuracy"), table, AT)["quality"]["sli"]["estimated"]
    scores = np.asarray(table["score"].to_numpy())[:20_000]
    labels = np.asarray(table["label"].to_numpy(zero_copy_only=False)[:20_000], dtype=float)
    coarse = np.minimum((scores * 10).astype(int), 9)
    ece = sum(abs(scores[coarse == b].sum() - labels[coarse == b].sum()) for b in range(10)) / len(
        scores
    )
    calibration = estimate["calibration"]
    assert calibration["ece_before"] == pytest.approx(ece, abs=2e-3)
    assert calibration["ece_after"] < 0.01 < calibration["ece_before"]
    observed = [row["observed"] for row in calibration["reliability"]]
    assert observed == sorted(observed)
    assert sum(row["n"] for row in calibration["reliability"]) == 20_000


def test_platt_estimate_is_calibrated_too(
    held_back: tuple[pa.Table, np.ndarray, np.ndarray],
) -> None:
    table, predicted, labels = held_back
    estimate = evaluate_table(spec("accuracy", "platt"), table, AT)["quality"]["sli"]["estimated"]
    assert estimate["calibration"]["method"] == "platt"
    raw_error = abs(estimate["uncalibrated_value"] - accuracy_score(labels, predicted))
    assert abs(estimate["value"] - accuracy_score(labels, predicted)) < raw_error


def test_too_few_labels_flag_the_estimate_and_keep_the_raw_scores() -> None:
    table, _, _ = records(50, 200, seed=1)
    estimate = evaluate_table(spec("f1", min_labels=51), table, AT)["quality"]["sli"]["estimated"]
    assert estimate["flags"] == ["insufficient_calibration"]
    assert estimate["calibration"]["status"] == "insufficient_calibration"
    assert estimate["calibration"]["labelled"] == 50
    assert estimate["value"] == estimate["uncalibrated_value"]
    enough = evaluate_table(spec("f1", min_labels=50), table, AT)["quality"]["sli"]["estimated"]
    assert enough["calibration"]["status"] == "fitted"
    assert enough["value"] != enough["uncalibrated_value"]


def test_calibration_none_keeps_raw_scores(
    held_back: tuple[pa.Table, np.ndarray, np.ndarray],
) -> None:
    table, _, _ = held_back
    estimate = evaluate_table(spec("f1", "none"), table, AT)["quality"]["sli"]["estimated"]
    assert "calibration" not in estimate
    scores = np.asarray(table["score"].to_numpy())[20_000:]
    predicted = np.asarray(table["prediction"].to_numpy())[20_000:] == 1
    tp = scores[predicted].sum()
    fp = (1 - scores[predicted]).sum()
    fn = scores[~predicted].sum()
    assert estimate["value"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-9)


def test_calibration_needs_an_estimate() -> None:
    text = spec("f1", "isotonic").replace(", estimate: cbpe", "")
    with pytest.raises(SpecError, match="calibration applies to estimate: cbpe"):
        parse_spec(text)


def test_reliability_rows_are_plain_numbers(
    held_back: tuple[pa.Table, np.ndarray, np.ndarray],
) -> None:
    table, _, _ = held_back
    rows: list[dict[str, Any]] = evaluate_table(spec("f1"), table, AT)["quality"]["sli"][
        "estimated"
    ]["calibration"]["reliability"]
    assert len(rows) == 10
    assert all(0 <= row["calibrated"] <= 1 for row in rows)
