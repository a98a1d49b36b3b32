"""SLI families: pure functions from a window's sufficient statistics to a measurement."""

from __future__ import annotations

from dataclasses import replace

from mlslo.measure.sli import (
    availability,
    classification,
    estimated,
    fairness,
    freshness,
    latency,
    regression,
)
from mlslo.measure.sli.base import Measurement
from mlslo.spec import (
    AccuracySLO,
    AnySLO,
    AvailabilitySLO,
    FairnessSLO,
    FreshnessSLO,
    LatencySLO,
)
from mlslo.stats.timeline import WindowStats

__all__ = ["Measurement", "measure"]


def measure(slo: AnySLO, stats: WindowStats, *, detail: bool = True) -> Measurement:
    """The SLI of ``slo`` over one window. Without ``detail`` a fairness SLI leaves out its
    per-group rates (a burn-rate window or a series point does not show them)."""
    if isinstance(slo, AvailabilitySLO):
        return availability.measure(stats)
    if isinstance(slo, LatencySLO):
        return latency.measure(slo.sli, stats)
    if isinstance(slo, FreshnessSLO):
        return freshness.measure(slo.sli, stats)
    if isinstance(slo, AccuracySLO):
        if slo.sli.regression:
            return regression.measure(slo.sli.metric, stats)
        result = classification.measure(slo.sli, stats)
        if slo.sli.estimate == "cbpe":
            estimate = estimated.measure(slo.sli, stats)
            result = replace(result, detail={**result.detail, "estimated": estimate})
        return result
    if isinstance(slo, FairnessSLO):
        return fairness.measure(slo.sli, stats, detail=detail)
    raise TypeError(f"unknown SLO type {type(slo).__name__}")
