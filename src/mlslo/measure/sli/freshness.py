"""Freshness: the share of served data within a lag threshold, or a lag percentile (seconds).

Lag is served time minus the time the newest input was produced (``ts - event_ts``).
"""

from __future__ import annotations

from mlslo.measure.sli.base import Measurement, within_or_percentile
from mlslo.spec import FreshnessSLI
from mlslo.stats.timeline import WindowStats


def measure(sli: FreshnessSLI, stats: WindowStats) -> Measurement:
    return within_or_percentile(
        stats,
        sli.percentile,
        what="input lags",
        empty_reason="no predictions with an event time in the window",
    )
