"""Estimated quality of unlabelled predictions (CBPE: confidence-based performance estimation).

With calibrated scores, a prediction scored ``s`` for the positive class is a true positive
with probability ``s`` if predicted positive, else a false negative with probability ``s``.
Summing scores over unlabelled rows gives the expected confusion counts, hence an estimate of
any binary metric before the labels arrive. It is reported beside, never mixed into, the
realized value.
"""

from __future__ import annotations

from typing import Any

from mlslo.measure.sli.classification import Confusion, binary_value
from mlslo.stats.timeline import WindowStats


def measure(metric: str, stats: WindowStats) -> dict[str, Any]:
    n = stats.get("unlabelled")
    expected = Confusion(stats.get("etp"), stats.get("efp"), stats.get("efn"), stats.get("etn"))
    value = binary_value(metric, expected) if n > 0 else None
    return {
        "value": value,
        "n": int(n),
        "method": "cbpe",
        "reason": None if value is not None else "no unlabelled scored predictions",
    }
