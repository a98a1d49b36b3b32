"""Availability (uptime): successful responses over all responses."""

from __future__ import annotations

from mlslo.rollup import WindowStats
from mlslo.sli.base import Measurement, ratio


def measure(stats: WindowStats) -> Measurement:
    return ratio(stats.get("ok"), stats.get("total"), empty_reason="no responses in the window")
