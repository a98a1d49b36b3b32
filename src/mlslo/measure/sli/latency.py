"""Latency: the share of responses within a threshold, or a latency percentile (ms)."""

from __future__ import annotations

from mlslo.measure.sli.base import Measurement, within_or_percentile
from mlslo.spec import LatencySLI
from mlslo.stats.timeline import WindowStats


def measure(sli: LatencySLI, stats: WindowStats) -> Measurement:
    return within_or_percentile(
        stats,
        sli.percentile,
        what="latencies",
        empty_reason="no responses with a latency in the window",
    )
