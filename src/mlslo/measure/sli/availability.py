"""Availability (uptime): successful responses over all responses."""

from __future__ import annotations

from mlslo.measure.sli.base import Measurement, ratio
from mlslo.stats.timeline import WindowStats


def measure(stats: WindowStats) -> Measurement:
    return ratio(stats.get("ok"), stats.get("total"), empty_reason="no responses in the window")
