"""How mlslo writes numbers, durations and statuses for people: one spelling of each, used by
the terminal table, the Markdown, the report, the dashboard and every notification.

Values are read from an SLO's entry in the JSON document (or from the SLO itself) through
:class:`Shape`: the metric, its unit and how its budget is counted decide how a value reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlslo.measure.windows import burn_key, headline_windows
from mlslo.moments import format_duration
from mlslo.spec import AnySLO, Window
from mlslo.spec.composites import Composite, Judged

SHARE_METRICS = ("availability", "fast_share", "fresh_share")
STATUS_WORDS = {
    "healthy": ("✓", "healthy"),
    "low": ("⚠", "budget low"),
    "exhausted": ("✗", "budget exhausted"),
    "no_data": ("∅", "no data"),
    "insufficient_data": ("?", "too little data"),
}
"""Each budget status as an icon and words."""
NONE = "—"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def json_number(value: float | None) -> float | None:
    """Finite floats to 12 significant digits (0.05 stays 0.05, not 0.050000000000000044)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(f"{value:.12g}")


@dataclass(frozen=True)
class Shape:
    """What decides how an SLO's values read: its metric, unit (``s``, ``ms`` or none) and
    budgeting (a timeslice SLO's value is a share of good slices)."""

    metric: str
    unit: str | None
    budgeting: str

    @classmethod
    def of(cls, slo: AnySLO) -> Shape:
        return cls(slo.metric, slo.unit, slo.effective_budgeting)

    @classmethod
    def of_entry(cls, entry: Mapping[str, Any]) -> Shape:
        """From an SLO's entry in the JSON document."""
        return cls(entry["metric"], entry["objective"].get("unit"), entry["budgeting"])

    def inner(self) -> Shape:
        """The shape of a timeslice SLO's per-slice value."""
        return Shape(self.metric, self.unit, "aggregate")


def value_text(shape: Shape, value: float | None) -> str:
    """A measured value: ``99.968%``, ``0.8333``, ``28.0 min``, ``212 ms``,
    ``98.50% of slices good``."""
    if value is None:
        return NONE
    if shape.budgeting == "timeslices":
        return f"{value * 100:.2f}% of slices good"
    if shape.unit == "s":
        return seconds_text(value)
    if shape.unit == "ms":
        return f"{value:.0f} ms" if abs(value) >= 10 else f"{value:.2f} ms"
    if shape.metric in SHARE_METRICS:
        return f"{value * 100:.3f}%"
    return f"{value:.4f}"


def bound_text(shape: Shape, value: float | None, significant: int = 6) -> str:
    """A bound or an axis tick, without trailing zeros: ``95%``, ``0.92``, ``15 min``,
    ``250 ms`` (with at most ``significant`` digits)."""
    if value is None:
        return NONE
    if shape.unit == "s":
        return seconds_text(value, significant=significant)
    if shape.unit == "ms":
        return f"{value:.{significant}g} ms"
    if shape.metric in SHARE_METRICS or shape.budgeting == "timeslices":
        return f"{value * 100:.{significant}g}%"
    return f"{value:.{significant}g}"


def objective_text(entry: Mapping[str, Any]) -> str:
    """An SLO's objective from its JSON entry: ``>= 0.92``, ``<= 15 min``, ``>= 99% of 1h
    slices with <= 0.05``."""
    objective = entry["objective"]
    shape = Shape.of_entry(entry)
    if shape.budgeting == "timeslices":
        return (
            f">= {objective['target'] * 100:g}% of {objective.get('slice')} slices with "
            f"{objective['timeslice_op']} "
            f"{bound_text(shape.inner(), objective['timeslice_target'])}"
        )
    return f"{objective['op']} {bound_text(shape, objective['target'])}"


def slo_objective_text(slo: AnySLO) -> str:
    """The same, from the SLO itself."""
    objective: dict[str, Any] = {"op": slo.op, "target": slo.target, "unit": slo.unit}
    if slo.timeslice_target is not None:
        objective.update(
            timeslice_target=slo.timeslice_target,
            timeslice_op=slo.slice_op,
            slice=format_duration(slo.slice) if slo.slice else None,
        )
    entry = {"metric": slo.metric, "budgeting": slo.effective_budgeting, "objective": objective}
    return objective_text(entry)


def seconds_text(value: float, significant: int | None = None) -> str:
    """A duration in seconds in the largest unit that keeps it above 1: ``45.0 s``,
    ``28.0 min``, ``2.5 h``, ``1.5 d`` (one decimal; or, with ``significant``, at most that
    many digits and no trailing zeros: ``15 min``)."""
    size, unit = next(
        ((s, u) for s, u in ((86400, "d"), (3600, "h"), (60, "min")) if abs(value) >= s), (1, "s")
    )
    amount = value / size
    return f"{amount:.1f} {unit}" if significant is None else f"{amount:.{significant}g} {unit}"


def share_text(value: float | None) -> str:
    """A share of a budget: ``39.6%``."""
    return NONE if value is None else f"{value * 100:.1f}%"


def rate_text(value: float | None) -> str:
    """A burn rate: ``14.40×``."""
    return NONE if value is None else f"{value:.2f}×"


def threshold_text(value: float | None) -> str:
    """An alert's burn-rate threshold: ``14.4×``."""
    return NONE if value is None else f"{value:g}×"


def headline_rates(entry: Mapping[str, Any], window: Window, bucket: timedelta) -> str:
    """The burn rates over the window's equivalents of 1h, 6h and 1d of a 30-day window:
    ``1h 2.00×, 6h 0.50×, 1d 0.10×``."""
    rates = entry["burn_rates"]
    keys = (burn_key(w) for w in headline_windows(window, bucket))
    return ", ".join(f"{key} {rate_text(rates[key])}" for key in keys if key in rates)


def hours_text(hours: float | None) -> str:
    """A time to exhaustion: ``30.0 hours``, ``3.5 days`` (from 48 hours on), ``now``."""
    if hours is None:
        return NONE
    if hours <= 0:
        return "now"
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


def met_text(value: bool | None) -> str:
    return NONE if value is None else ("yes" if value else "NO")


def status_text(status: str) -> str:
    """A budget status in words: ``budget low``, ``too little data``."""
    return STATUS_WORDS[status][1]


def status_icon(status: str) -> str:
    return STATUS_WORDS[status][0]


def slo_title(slo: Judged) -> str:
    """``SLO name (dimension: metric objective over window)``: how alerts name their SLO
    (a composite: its objective and weighted components)."""
    if isinstance(slo, Composite):
        parts = ", ".join(f"{name} {share_text(w)}" for name, w in slo.weights.items())
        return (
            f"composite SLO {slo.name} (reliability >= {slo.objective * 100:g}% from {parts} "
            f"over {slo.window})"
        )
    return (
        f"SLO {slo.name} ({slo.dimension}: {slo.metric} {slo_objective_text(slo)} "
        f"over {slo.window})"
    )
