"""Freshness: the share of served data within a lag threshold, or a lag percentile (seconds).

Lag is served time minus the time the newest input was produced (``ts - event_ts``). A record
whose ``event_ts`` lies beyond ``ts + skew_tolerance`` comes from clocks that disagree: it is
counted in ``clock_skew``, and a lag-threshold SLI counts it as a bad event (the scan leaves
it out of ``good``) rather than as the freshest data there is.
"""

from __future__ import annotations

from dataclasses import replace

from mlslo.measure.sli.base import Measurement, within_or_percentile
from mlslo.spec import FreshnessSLI
from mlslo.stats.timeline import WindowStats


def measure(sli: FreshnessSLI, stats: WindowStats) -> Measurement:
    result = within_or_percentile(
        stats,
        sli.percentile,
        what="input lags",
        empty_reason="no predictions with an event time in the window",
    )
    return replace(result, detail={**result.detail, "clock_skew": int(stats.get("clock_skew"))})
