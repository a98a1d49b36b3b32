"""Regression error: MAE, RMSE and MAPE from sums of errors (rows with label 0 are left out
of MAPE, where the percentage is undefined)."""

from __future__ import annotations

import math

from mlslo.measure.sli.base import Measurement, divide
from mlslo.stats.confidence import clamp, mean_interval
from mlslo.stats.timeline import WindowStats


def measure(metric: str, stats: WindowStats) -> Measurement:
    n = stats.get("labelled")
    coverage = divide(n, stats.get("predictions"))
    if n <= 0:
        return Measurement(
            None, 0, label_coverage=coverage, reason="no labelled predictions in the window yet"
        )
    if metric == "mae":
        value = stats.get("sae") / n
        interval = clamp(mean_interval(stats.get("sae"), stats.get("sse"), n), 0.0, math.inf)
        return Measurement(value, int(n), interval, label_coverage=coverage)
    if metric == "rmse":
        mse = stats.get("sse") / n
        interval = clamp(mean_interval(stats.get("sse"), stats.get("sse2"), n), 0.0, math.inf)
        root = None if interval is None else (math.sqrt(interval[0]), math.sqrt(interval[1]))
        return Measurement(math.sqrt(mse), int(n), root, label_coverage=coverage)
    if metric == "mape":
        count = stats.get("n_ape")
        if count <= 0:
            return Measurement(
                None,
                int(n),
                label_coverage=coverage,
                reason="every label is 0, so MAPE is undefined",
            )
        value = stats.get("sape") / count
        interval = clamp(mean_interval(stats.get("sape"), stats.get("sape2"), count), 0.0, math.inf)
        return Measurement(value, int(count), interval, label_coverage=coverage)
    raise ValueError(f"unknown regression metric {metric!r}")
