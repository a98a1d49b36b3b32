"""Calibration per model version: two versions miscalibrated in opposite directions, whose
mix changes between the labelled history and the recent unlabelled predictions. One fit per
version recovers the held-back realized value where one pooled fit cannot; each version's
estimate is scikit-learn's (IsotonicRegression, LogisticRegression) fitted on that version's
labelled scores; a version with too few labels falls back to the pooled fit and is flagged;
the store gives the same answer as files."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from conftest import evaluate_store, evaluate_table
from mlslo.render.documents import evaluation_json
from mlslo.server.store import Store
from mlslo.spec import parse_spec

AT = datetime(2026, 11, 21, tzinfo=UTC)
HISTORY = {"v1": 8000, "v2": 8000}
RECENT = {"v1": 600, "v2": 5400}
POWER = {"v1": 3.0, "v2": 1 / 3, "v3": 1.0}
"""A version's true positive rate at score ``s`` is ``s ** POWER``: v1 overconfident, v2
underconfident."""


def spec(calibration: str = "isotonic", min_labels: int = 100) -> str:
    return textwrap.dedent(
        f"""
        service: versions
        slos:
          - name: quality
            dimension: accuracy
            sli: {{metric: accuracy, estimate: cbpe, calibration: {calibration},
                  calibration_min_labels: {min_labels}}}
            objective: {{target: 0.5}}
            window: 30d
        """
    )


def versions_log(
    history: dict[str, int], recent: dict[str, int], seed: int = 3
) -> tuple[pa.Table, np.ndarray]:
    """Labelled history, then unlabelled recent predictions, per version; and the held-back
    labels of the recent ones (in the table's order)."""
    rng = np.random.default_rng(seed)
    parts: list[dict[str, Any]] = []
    held: list[np.ndarray] = []
    for labelled, counts in ((True, history), (False, recent)):
        for version, n in counts.items():
            scores = np.round(rng.uniform(0, 1, n), 6)
            labels = (rng.uniform(0, 1, n) < scores ** POWER[version]).astype(np.int64)
            parts.append(
                {
                    "model_version": [version] * n,
                    "score": scores,
                    "prediction": (scores >= 0.5).astype(np.int64),
                    "label": labels if labelled else [None] * n,
                }
            )
            if not labelled:
                held.append(labels)
    total = sum(len(p["score"]) for p in parts)
    first = AT - timedelta(days=29)
    table = pa.table(
        {
            "id": [f"p{i}" for i in range(total)],
            "ts": [first + timedelta(seconds=100 * i) for i in range(total)],
            "model_version": [v for p in parts for v in p["model_version"]],
            "prediction": np.concatenate([p["prediction"] for p in parts]),
            "score": np.concatenate([p["score"] for p in parts]),
            "label": pa.array([y for p in parts for y in list(p["label"])], pa.int64()),
        }
    )
    return table, np.concatenate(held)


def oracle(table: pa.Table, model: str) -> float:
    """CBPE accuracy with scikit-learn's fit per version on its own labelled raw scores."""
    frame = table.to_pandas()
    right = 0.0
    pending = 0
    for _, part in frame.groupby("model_version"):
        known = part[part.label.notna()]
        waiting = part[part.label.isna()]
        if model == "isotonic":
            fitted = IsotonicRegression(out_of_bounds="clip").fit(known.score, known.label)
            p = fitted.predict(waiting.score)
        else:
            logistic = LogisticRegression(C=1e12, tol=1e-12, max_iter=10_000)
            logistic.fit(known[["score"]], known.label.astype(int))
            p = logistic.predict_proba(waiting[["score"]])[:, 1]
        right += float(np.where(waiting.prediction == 1, p, 1 - p).sum())
        pending += len(waiting)
    return right / pending


@pytest.fixture(scope="module")
def log() -> tuple[pa.Table, np.ndarray]:
    return versions_log(HISTORY, RECENT)


def estimate_of(spec_text: str, table: pa.Table) -> dict[str, Any]:
    estimated: dict[str, Any] = evaluate_table(spec_text, table, AT)["quality"]["sli"]["estimated"]
    return estimated


@pytest.mark.parametrize(("method", "tolerance"), [("isotonic", 0.01), ("platt", 0.02)])
def test_one_fit_per_version_recovers_what_a_pooled_fit_cannot(log, method, tolerance):
    """Platt's logistic curve cannot follow ``s ** 3`` exactly: a wider tolerance."""
    table, held = log
    realized = accuracy_score(held, table["prediction"].to_numpy()[-len(held) :])
    per_version = estimate_of(spec(method), table)
    pooled = estimate_of(spec(method), table.drop_columns(["model_version"]))
    assert [c["model_version"] for c in per_version["calibrations"]] == ["v1", "v2"]
    assert [c["model_version"] for c in pooled["calibrations"]] == [None]
    assert per_version["value"] == pytest.approx(oracle(table, method), abs=2e-3)
    error = abs(per_version["value"] - realized)
    pooled_error = abs(pooled["value"] - realized)
    assert error < tolerance < 2 * tolerance < pooled_error
    assert "flags" not in per_version
    for entry in per_version["calibrations"]:
        assert entry["status"] == "fitted" and entry["applied"] == "own"
        assert entry["labelled"] == HISTORY[entry["model_version"]]
        assert entry["pending"] == RECENT[entry["model_version"]]
        assert entry["ece_after"] < entry["ece_before"] / 2


def test_each_versions_ece_is_its_own(log):
    """ECE before calibration per version, from its labelled raw scores (10 equal bins)."""
    table, _ = log
    estimate = estimate_of(spec(), table)
    frame = table.to_pandas()
    for entry in estimate["calibrations"]:
        known = frame[(frame.model_version == entry["model_version"]) & frame.label.notna()]
        coarse = np.minimum((known.score * 10).astype(int), 9)
        gaps = known.score.groupby(coarse).sum() - known.label.groupby(coarse).sum()
        assert entry["ece_before"] == pytest.approx(gaps.abs().sum() / len(known), abs=2e-3)
    summary = estimate["calibration"]
    assert summary["labelled"] == sum(HISTORY.values())
    weights = [e["labelled"] for e in estimate["calibrations"]]
    expected = np.average([e["ece_after"] for e in estimate["calibrations"]], weights=weights)
    assert summary["ece_after"] == pytest.approx(expected)


def test_a_version_without_enough_labels_falls_back_to_the_pooled_fit():
    table, _ = versions_log({"v1": 4000, "v2": 4000, "v3": 40}, {"v1": 300, "v2": 300, "v3": 900})
    estimate = estimate_of(spec(min_labels=100), table)
    assert estimate["flags"] == ["insufficient_calibration"]
    by_version = {e["model_version"]: e for e in estimate["calibrations"]}
    assert by_version["v3"]["status"] == "insufficient_calibration"
    assert by_version["v3"]["applied"] == "pooled"
    assert by_version["v3"]["labelled"] == 40
    assert by_version["v1"]["applied"] == "own"
    assert estimate["calibration"]["status"] == "insufficient_calibration"
    frame = table.to_pandas()
    known = frame[frame.label.notna()]
    pooled = IsotonicRegression(out_of_bounds="clip").fit(known.score, known.label)
    right = 0.0
    for version, part in frame[frame.label.isna()].groupby("model_version"):
        mine = known[known.model_version == version]
        fitted = (
            pooled
            if version == "v3"
            else IsotonicRegression(out_of_bounds="clip").fit(mine.score, mine.label)
        )
        p = fitted.predict(part.score)
        right += float(np.where(part.prediction == 1, p, 1 - p).sum())
    assert estimate["value"] == pytest.approx(right / 1500, abs=3e-3)


def test_the_store_calibrates_per_version_as_files_do(tmp_path: Path, log):
    table, _ = log
    text = spec()
    store = Store.open(tmp_path / "s.duckdb", parse_spec(text), clock=lambda: AT)
    try:
        store.writer.bulk_load(table)
        document = evaluation_json(evaluate_store(store, AT))
    finally:
        store.close()
    served = {s["name"]: s for s in document["slos"]}["quality"]["sli"]["estimated"]
    from_files = estimate_of(text, table)
    assert served["value"] == pytest.approx(from_files["value"], abs=1e-9)
    assert served["calibrations"] == from_files["calibrations"]
