"""Confidence intervals for SLIs (95 % unless told otherwise). Pure functions.

Wilson for proportions (good at 0 and 1, unlike the normal approximation), Newcombe's hybrid
score interval for differences of proportions, Katz's log method for ratios, and the delta
method for smooth functions of confusion counts (F1, balanced accuracy) and for means (MAE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

Interval = tuple[float, float]


def z_value(confidence: float = 0.95) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: float, n: float, confidence: float = 0.95) -> Interval | None:
    """Wilson score interval for ``successes / n``; None when ``n`` is 0."""
    if n <= 0:
        return None
    z = z_value(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def wilson_arrays(
    successes: npt.NDArray[np.float64], n: npt.NDArray[np.float64], confidence: float = 0.95
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """:func:`wilson` for many proportions at once (the same arithmetic, so the same
    floats); NaN where ``n`` is 0."""
    z = z_value(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = successes / n
        denominator = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
        low = np.where(successes <= 0, 0.0, np.maximum(0.0, centre - half))
        high = np.where(successes >= n, 1.0, np.minimum(1.0, centre + half))
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def newcombe(
    x1: float, n1: float, x2: float, n2: float, confidence: float = 0.95
) -> Interval | None:
    """Newcombe's hybrid score interval for ``x1/n1 - x2/n2`` (method 10)."""
    a = wilson(x1, n1, confidence)
    b = wilson(x2, n2, confidence)
    if a is None or b is None:
        return None
    p1, p2 = x1 / n1, x2 / n2
    difference = p1 - p2
    lower = difference - math.sqrt((p1 - a[0]) ** 2 + (b[1] - p2) ** 2)
    upper = difference + math.sqrt((a[1] - p1) ** 2 + (p2 - b[0]) ** 2)
    return max(-1.0, lower), min(1.0, upper)


def katz_ratio(
    x1: float, n1: float, x2: float, n2: float, confidence: float = 0.95
) -> Interval | None:
    """Katz log interval for the ratio ``(x1/n1) / (x2/n2)``; 0.5 is added to empty cells."""
    if n1 <= 0 or n2 <= 0:
        return None
    numerator_empty = x1 == 0
    if x1 == 0 or x2 == 0:
        x1, x2, n1, n2 = x1 + 0.5, x2 + 0.5, n1 + 0.5, n2 + 0.5
    ratio = (x1 / n1) / (x2 / n2)
    se = math.sqrt(max(0.0, 1 / x1 - 1 / n1 + 1 / x2 - 1 / n2))
    z = z_value(confidence)
    low = 0.0 if numerator_empty else ratio * math.exp(-z * se)
    return low, ratio * math.exp(z * se)


def delta_ratio(
    numerator: Sequence[float],
    denominator: Sequence[float],
    counts: Sequence[float],
    confidence: float = 0.95,
) -> Interval | None:
    """Delta-method interval for ``(w . c) / (v . c)`` where ``c`` are multinomial counts.

    F1 is ``2tp / (2tp + fp + fn)``: ``w = (2, 0, 0, 0)``, ``v = (2, 1, 1, 0)`` over
    ``c = (tp, fp, fn, tn)``.
    """
    n = float(sum(counts))
    if n <= 0:
        return None
    p = [c / n for c in counts]
    num = sum(w * q for w, q in zip(numerator, p, strict=True))
    den = sum(v * q for v, q in zip(denominator, p, strict=True))
    if den <= 0:
        return None
    value = num / den
    gradient = [
        (w * den - v * num) / (den * den) for w, v in zip(numerator, denominator, strict=True)
    ]
    mean = sum(g * q for g, q in zip(gradient, p, strict=True))
    variance = (sum(g * g * q for g, q in zip(gradient, p, strict=True)) - mean * mean) / n
    half = z_value(confidence) * math.sqrt(max(variance, 0.0))
    return value - half, value + half


def mean_interval(
    total: float, total_squares: float, n: float, confidence: float = 0.95
) -> Interval | None:
    """Normal interval for a mean from its sum and sum of squares (MAE from Σ|e| and Σe²)."""
    if n < 2:
        return None
    mean = total / n
    variance = max(total_squares / n - mean * mean, 0.0) * n / (n - 1)
    half = z_value(confidence) * math.sqrt(variance / n)
    return mean - half, mean + half


def clamp(interval: Interval | None, low: float = 0.0, high: float = 1.0) -> Interval | None:
    """``interval`` cut to ``[low, high]`` (None stays None); ``high=math.inf`` leaves the
    upper end as it is."""
    if interval is None:
        return None
    upper = interval[1] if high == math.inf else min(high, interval[1])
    return max(low, interval[0]), upper
