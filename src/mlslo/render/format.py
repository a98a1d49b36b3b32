"""How mlslo writes numbers, times and statuses for people."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlslo.moments import format_duration
from mlslo.spec import AnySLO

if TYPE_CHECKING:
    pass


SHARE_METRICS = ("availability", "fast_share", "fresh_share")
STATUS_STYLE = {
    "healthy": "green",
    "low": "yellow",
    "exhausted": "bold red",
    "no_data": "dim",
    "insufficient_data": "magenta",
}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def json_number(value: float | None) -> float | None:
    """Finite floats to 12 significant digits (0.05 stays 0.05, not 0.050000000000000044)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(f"{value:.12g}")


# --- human formats ---------------------------------------------------------------------------


def format_value(slo: AnySLO, value: float | None) -> str:
    """An SLI value as a person reads it: 99.968 %, 0.8333, 28.0m, 212 ms."""
    return _format(slo.metric, slo.unit, slo.effective_budgeting, value)


def format_json_value(entry: Mapping[str, Any]) -> str:
    """The same, from an SLO's entry in the JSON document."""
    return _format(
        entry["metric"], entry["sli"].get("unit"), entry["budgeting"], entry["sli"]["value"]
    )


def _format(metric: str, unit: str | None, budgeting: str, value: float | None) -> str:
    if value is None:
        return "—"
    if budgeting == "timeslices":
        return f"{value * 100:.2f}% slices"
    if unit == "s":
        return _seconds(value)
    if unit == "ms":
        return f"{value:.0f} ms" if value >= 10 else f"{value:.2f} ms"
    if metric in SHARE_METRICS:
        return f"{value * 100:.3f}%"
    return f"{value:.4f}"


def format_target(slo: AnySLO) -> str:
    if slo.effective_budgeting == "timeslices":
        length = format_duration(slo.slice) if slo.slice else "?"
        return (
            f">= {slo.target * 100:g}% of {length} slices with "
            f"{slo.slice_op} {_plain(slo, slo.timeslice_target)}"
        )
    if slo.unit is not None:
        return f"{slo.op} {_plain(slo, slo.target)}"
    if slo.metric in SHARE_METRICS:
        return f"{slo.op} {slo.target * 100:g}%"
    return f"{slo.op} {slo.target:g}"


def _plain(slo: AnySLO, value: float | None) -> str:
    if value is None:
        return "—"
    if slo.unit == "s":
        return _seconds(value)
    if slo.unit == "ms":
        return f"{value:g} ms"
    return f"{value:g}"


def _seconds(value: float) -> str:
    if value >= 86400:
        return f"{value / 86400:.1f}d"
    if value >= 3600:
        return f"{value / 3600:.1f}h"
    if value >= 60:
        return f"{value / 60:.1f}m"
    return f"{value:.1f}s"


def share_text(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def rate_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def hours_short(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 48:
        return f"{value / 24:.1f}d"
    return f"{value:.1f}h"


def met_text(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "NO")


def slo_title(slo: AnySLO) -> str:
    """``SLO name (dimension: metric objective over window)``: how alerts name their SLO."""
    return f"SLO {slo.name} ({slo.dimension}: {slo.metric} {format_target(slo)} over {slo.window})"
