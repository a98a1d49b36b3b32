"""Latency: the share of responses within a threshold, or a latency percentile (ms)."""

from __future__ import annotations

from mlslo.measure.sli.base import Measurement, distribution_percentile, ratio
from mlslo.spec import LatencySLI
from mlslo.stats.timeline import WindowStats


def measure(sli: LatencySLI, stats: WindowStats) -> Measurement:
    if sli.percentile is not None:
        return distribution_percentile(stats, sli.percentile, what="latencies")
    return ratio(
        stats.get("good"),
        stats.get("total"),
        empty_reason="no responses with a latency in the window",
    )
