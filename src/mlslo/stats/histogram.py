"""Log-bucketed histograms: mergeable by addition, percentiles within 1 % relative error.

A positive value ``x`` falls in bin ``floor(log(x) / log(GAMMA))``; every value of bin ``b``
lies in ``[GAMMA**b, GAMMA**(b+1))`` and is represented by the geometric midpoint, so any
percentile read back is within ``sqrt(GAMMA) - 1`` (~0.995 %) of a true order statistic.
Zero and negative values (a clock skew making lag negative) share the bin ``ZERO_BIN``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlslo.stats.confidence import z_value

GAMMA = 1.02
LOG_GAMMA = math.log(GAMMA)
ZERO_BIN = -100_000


def bin_of(values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The bin index of each value (the same formula the scan runs in SQL)."""
    x = np.asarray(values, dtype=np.float64)
    out = np.full(x.shape, ZERO_BIN, dtype=np.int64)
    positive = x > 0
    out[positive] = np.floor(np.log(x[positive]) / LOG_GAMMA).astype(np.int64)
    return out


def representative(bins: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """The value that stands for each bin: its geometric midpoint (0 for the zero bin)."""
    values = np.power(GAMMA, bins.astype(np.float64) + 0.5)
    return np.where(bins == ZERO_BIN, 0.0, values)


def _value_at_ranks(
    bins: npt.NDArray[np.int64], counts: npt.NDArray[np.float64], ranks: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Values of the sorted sample at (0-based, integral) ranks, from a sorted histogram."""
    cumulative = np.cumsum(counts)
    position = np.searchsorted(cumulative, ranks, side="right")
    position = np.minimum(position, len(bins) - 1)
    return representative(bins[position])


@dataclass(frozen=True)
class Compacted:
    """A histogram as sorted, unique, non-empty bins with their summed counts. Compact once
    (:func:`compact`), then read any number of percentiles and chart points from it."""

    bins: npt.NDArray[np.int64]
    counts: npt.NDArray[np.float64]

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0-100) as numpy's default linear interpolation would give it.
        Returns None for an empty histogram."""
        total = float(self.counts.sum())
        if total <= 0:
            return None
        rank = q / 100.0 * (total - 1)
        low, high = math.floor(rank), math.ceil(rank)
        lo_value, hi_value = _value_at_ranks(
            self.bins, self.counts, np.array([low, high], dtype=np.float64)
        )
        return float(lo_value + (hi_value - lo_value) * (rank - low))

    def percentile_interval(self, q: float, confidence: float = 0.95) -> tuple[float, float] | None:
        """A distribution-free interval for the q-th percentile from binomial order
        statistics."""
        n = float(self.counts.sum())
        if n <= 0:
            return None
        p = q / 100.0
        spread = z_value(confidence) * math.sqrt(n * p * (1 - p))
        low_rank = max(0.0, math.floor(n * p - spread) - 1)
        high_rank = min(n - 1, math.ceil(n * p + spread))
        low, high = _value_at_ranks(
            self.bins, self.counts, np.array([low_rank, high_rank], dtype=np.float64)
        )
        return float(low), float(high)

    def points(self, most: int = 120) -> list[list[float]]:
        """The histogram as ``[value, count]`` pairs for charts, merging neighbouring bins so
        there are at most ``most`` of them."""
        b, c = self.bins, self.counts
        if b.size == 0:
            return []
        values = representative(b)
        group = max(1, -(-b.size // most))
        starts = np.arange(0, b.size, group)
        weights = np.add.reduceat(c, starts)
        centres = np.add.reduceat(values * c, starts) / weights
        return [[float(v), float(w)] for v, w in zip(centres, weights, strict=True)]


def compact(bins: npt.ArrayLike, counts: npt.ArrayLike) -> Compacted:
    """Sorted, unique, non-empty bins with their summed counts (linear time). ``bins`` need
    not be sorted or unique; compacting a compacted histogram changes nothing."""
    b = np.asarray(bins, dtype=np.int64)
    c = np.asarray(counts, dtype=np.float64)
    zero = b == ZERO_BIN
    zero_count = float(c[zero].sum())
    b, c = b[~zero], c[~zero]
    out_bins: list[npt.NDArray[np.int64]] = []
    out_counts: list[npt.NDArray[np.float64]] = []
    if zero_count > 0:
        out_bins.append(np.array([ZERO_BIN], dtype=np.int64))
        out_counts.append(np.array([zero_count]))
    if b.size:
        low = int(b.min())
        summed = np.bincount(b - low, weights=c)
        keep = np.flatnonzero(summed > 0)
        out_bins.append(keep.astype(np.int64) + low)
        out_counts.append(summed[keep].astype(np.float64))
    if not out_bins:
        return Compacted(np.zeros(0, dtype=np.int64), np.zeros(0))
    return Compacted(np.concatenate(out_bins), np.concatenate(out_counts))


def percentile(bins: npt.ArrayLike, counts: npt.ArrayLike, q: float) -> float | None:
    """The q-th percentile (0-100) as numpy's default linear interpolation would give it.

    ``bins`` need not be sorted or unique. Returns None for an empty histogram.
    """
    return compact(bins, counts).percentile(q)


def percentile_interval(
    bins: npt.ArrayLike, counts: npt.ArrayLike, q: float, confidence: float = 0.95
) -> tuple[float, float] | None:
    """A distribution-free interval for the q-th percentile from binomial order statistics."""
    return compact(bins, counts).percentile_interval(q, confidence)


def histogram_points(
    bins: npt.ArrayLike, counts: npt.ArrayLike, most: int = 120
) -> list[list[float]]:
    """The histogram as ``[value, count]`` pairs for charts, merging neighbouring bins so
    there are at most ``most`` of them."""
    return compact(bins, counts).points(most)
