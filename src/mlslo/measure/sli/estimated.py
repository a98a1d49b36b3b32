"""Estimated quality of unlabelled predictions (CBPE: confidence-based performance estimation).

With calibrated scores, a prediction scored ``s`` for the positive class is a true positive
with probability ``s`` if predicted positive, else a false negative with probability ``s``.
Summing scores over unlabelled rows gives the expected confusion counts, hence an estimate of
any binary metric before the labels arrive. Raw scores are rarely calibrated, so the scores
are first mapped through a calibration fitted on the labelled history (isotonic by default),
one per model version, each applied to its own version's scores. A version with too few
labelled records of its own goes through the calibration of all versions together, or keeps
its raw scores when that is not fitted either; the estimate is then flagged. It is
reported beside, never mixed into, the realized value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlslo.measure.sli.classification import Confusion, binary_value
from mlslo.spec.slis import AccuracySLI
from mlslo.stats.calibration import Calibration, ScoreBins, expected_confusion
from mlslo.stats.timeline import WindowStats

INSUFFICIENT = "insufficient_calibration"


def measure(sli: AccuracySLI, stats: WindowStats) -> dict[str, Any]:
    n = stats.get("unlabelled")
    raw = Confusion(stats.get("etp"), stats.get("efp"), stats.get("efn"), stats.get("etn"))
    raw_value = binary_value(sli.metric, raw) if n > 0 else None
    out: dict[str, Any] = {
        "value": raw_value,
        "n": int(n),
        "method": "cbpe",
        "reason": None if raw_value is not None else "no unlabelled scored predictions",
    }
    calibrations = stats.calibration
    method = sli.calibration_method
    if method is None or calibrations is None:
        return out
    histogram = stats.histogram
    pending = (
        ScoreBins.per_version(histogram.bins, histogram.counts, histogram.versions)
        if histogram is not None
        else {}
    )
    versions = sorted(
        dict.fromkeys([*calibrations.versions, *pending]),
        key=lambda v: (v is None, str(v)),
    )
    expected = np.zeros(4)
    entries = []
    applied_any = False
    flagged = False
    for version in versions:
        calibration, applied = calibrations.applied(version)
        own = calibrations.versions.get(version) or Calibration(method, 0)
        bins = pending.get(version)
        waiting = bins.pending if bins is not None else 0.0
        if waiting > 0:
            flagged = flagged or applied != "own"
            applied_any = applied_any or applied != "raw"
            expected += expected_confusion(bins, calibration) if bins is not None else 0.0
        entries.append(
            {
                "model_version": version,
                "pending": int(waiting),
                "applied": applied,
                **describe(own, sli.calibration_min_labels),
            }
        )
    out["calibration"] = (
        entries[0] if len(entries) == 1 else _summary(entries, method, sli.calibration_min_labels)
    )
    out["calibrations"] = entries
    out["uncalibrated_value"] = raw_value
    if flagged or not entries:
        out["flags"] = [INSUFFICIENT]
    if n > 0 and applied_any:
        out["value"] = binary_value(sli.metric, Confusion(*(float(x) for x in expected)))
    return out


def _summary(entries: list[dict[str, Any]], method: str, min_labels: int) -> dict[str, Any]:
    """The calibration over all versions: their labelled records, each version's ECE
    weighted by them (every version is calibrated on its own)."""
    fitted = [e for e in entries if e["status"] == "fitted"]
    weight = sum(e["labelled"] for e in fitted)

    def mean(key: str) -> float | None:
        return sum(e[key] * e["labelled"] for e in fitted) / weight if weight else None

    return {
        "method": method,
        "labelled": sum(e["labelled"] for e in entries),
        "min_labels": min_labels,
        "status": "fitted" if all(e["applied"] == "own" for e in entries) else INSUFFICIENT,
        "ece_before": mean("ece_before"),
        "ece_after": mean("ece_after"),
        "reliability": [],
    }


def describe(calibration: Calibration, min_labels: int) -> dict[str, Any]:
    """The calibration as reports show it: method, labelled records, ECE before and after
    (on the labelled records it was fitted on) and the reliability diagram's points."""
    return {
        "method": calibration.method,
        "labelled": calibration.labelled,
        "min_labels": min_labels,
        "status": "fitted" if calibration.fitted else INSUFFICIENT,
        "ece_before": calibration.ece_before,
        "ece_after": calibration.ece_after,
        "reliability": [
            {"score": raw, "calibrated": cal, "observed": observed, "n": int(n)}
            for raw, cal, observed, n in calibration.reliability
        ],
    }
