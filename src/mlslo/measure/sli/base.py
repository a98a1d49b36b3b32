"""The value every SLI family returns, and helpers shared by the event-ratio families."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlslo.stats.confidence import Interval, wilson
from mlslo.stats.histogram import compact
from mlslo.stats.timeline import WindowStats


@dataclass(frozen=True)
class Measurement:
    """An SLI over one window.

    ``value`` is None when the SLI is undefined (``reason`` says why: no positives in a group,
    no labels yet); ``n`` is the number of samples it rests on; ``good``/``valid`` are set for
    event ratios (they drive occurrence budgeting); ``detail`` carries per-group rates,
    estimates and the like for reports.
    """

    value: float | None
    n: int
    ci: Interval | None = None
    good: float | None = None
    valid: float | None = None
    label_coverage: float | None = None
    reason: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def ratio(good: float, valid: float, *, empty_reason: str) -> Measurement:
    """A share of good events with its Wilson interval."""
    if valid <= 0:
        return Measurement(None, 0, None, good, valid, reason=empty_reason)
    return Measurement(good / valid, int(valid), wilson(good, valid), good, valid)


def distribution_percentile(stats: WindowStats, q: float, *, what: str) -> Measurement:
    """The q-th percentile of the window's histogram with an order-statistic interval."""
    histogram = stats.histogram
    if histogram is None or histogram.total <= 0:
        return Measurement(None, 0, reason=f"no {what} recorded in the window")
    compacted = compact(histogram.bins, histogram.counts)
    value = compacted.percentile(q)
    interval = compacted.percentile_interval(q)
    detail = {
        "percentiles": {f"p{p:g}": compacted.percentile(p) for p in (50, 90, 95, 99)},
        "histogram": compacted.points(),
    }
    return Measurement(value, int(histogram.total), interval, detail=detail)


def within_or_percentile(
    stats: WindowStats, percentile: float | None, *, what: str, empty_reason: str
) -> Measurement:
    """The two SLIs of a measured quantity (latency, lag): the share of events within its
    threshold (the ``good`` and ``total`` counts), or its ``percentile``."""
    if percentile is not None:
        return distribution_percentile(stats, percentile, what=what)
    return ratio(stats.get("good"), stats.get("total"), empty_reason=empty_reason)


def divide(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None
