"""Estimated quality of unlabelled predictions (CBPE: confidence-based performance estimation).

With calibrated scores, a prediction scored ``s`` for the positive class is a true positive
with probability ``s`` if predicted positive, else a false negative with probability ``s``.
Summing scores over unlabelled rows gives the expected confusion counts, hence an estimate of
any binary metric before the labels arrive. Raw scores are rarely calibrated, so the scores
are first mapped through a calibration fitted on the labelled history (isotonic by default);
with too few labelled records the raw scores stand and the estimate is flagged. It is
reported beside, never mixed into, the realized value.
"""

from __future__ import annotations

from typing import Any

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
    calibration = stats.calibration
    if sli.calibration_method is None or calibration is None:
        return out
    out["calibration"] = describe(calibration, sli.calibration_min_labels)
    out["uncalibrated_value"] = raw_value
    if not calibration.fitted:
        out["flags"] = [INSUFFICIENT]
        return out
    histogram = stats.histogram
    if n > 0 and histogram is not None:
        tp, fp, fn, tn = expected_confusion(
            ScoreBins.from_histogram(histogram.bins, histogram.counts), calibration
        )
        out["value"] = binary_value(sli.metric, Confusion(tp, fp, fn, tn))
    return out


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
