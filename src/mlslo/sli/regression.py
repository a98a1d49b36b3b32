"""Regression error: MAE, RMSE and MAPE from sums of errors (rows with label 0 are left out
of MAPE, where the percentage is undefined)."""

from __future__ import annotations

import math

from mlslo.confidence import mean_interval
from mlslo.rollup import WindowStats
from mlslo.sli.base import Measurement, divide

STATISTICS = ("predictions", "labelled", "sae", "sse", "sse2", "n_ape", "sape", "sape2")


def measure(metric: str, stats: WindowStats) -> Measurement:
    n = stats.get("labelled")
    coverage = divide(n, stats.get("predictions"))
    if n <= 0:
        return Measurement(
            None, 0, label_coverage=coverage, reason="no labelled predictions in the window yet"
        )
    if metric == "mae":
        value = stats.get("sae") / n
        interval = _non_negative(mean_interval(stats.get("sae"), stats.get("sse"), n))
        return Measurement(value, int(n), interval, label_coverage=coverage)
    if metric == "rmse":
        mse = stats.get("sse") / n
        interval = _non_negative(mean_interval(stats.get("sse"), stats.get("sse2"), n))
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
        interval = _non_negative(mean_interval(stats.get("sape"), stats.get("sape2"), count))
        return Measurement(value, int(count), interval, label_coverage=coverage)
    raise ValueError(f"unknown regression metric {metric!r}")


def _non_negative(interval: tuple[float, float] | None) -> tuple[float, float] | None:
    return None if interval is None else (max(0.0, interval[0]), interval[1])
