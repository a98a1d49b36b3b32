"""Composite SLOs: one budget for a whole product (``fraud-model``) made of the budgets of
its SLOs, each with a weight. The arithmetic is in :mod:`mlslo.measure.composite`; the
definition, with a worked example, in ``docs/concepts.md``."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from mlslo.spec.slos import AnySLO, BurnAlert, Window
from mlslo.spec.types import Name, Strict

COMPOSITE = "composite"
"""What a composite shows where an SLO shows its dimension (tables, /metrics labels)."""


class Component(Strict):
    """One SLO of a composite and its weight (weights need not sum to 1: each is divided by
    their sum)."""

    slo: str
    weight: float = Field(default=1.0, gt=0)


class Composite(Strict):
    """A budget made of the weighted consumption of its components' budgets.

    ``objective`` puts the composite on the familiar scale of a target: its reliability is
    ``1 - (1 - objective) x consumed``, so it meets the objective exactly while the weighted
    consumption is at most 1. ``window`` is the length its burn-rate windows and time to
    exhaustion are read against (each component keeps its own window; a burn window of the
    composite reads the same share of every component's window). ``undefined`` says what a
    component whose budget cannot be computed adds: its whole budget (``consumed``, the
    default) or nothing, its weight shared by the others (``ignore``)."""

    name: Name
    description: str | None = None
    objective: float = Field(gt=0, lt=1)
    components: list[Component] = Field(min_length=1)
    window: Window = Window(rolling=timedelta(days=30))
    undefined: Literal["consumed", "ignore"] = "consumed"
    alerts: list[BurnAlert] | None = None
    runbook_url: str | None = None

    @property
    def dimension(self) -> str:
        return COMPOSITE

    @property
    def metric(self) -> str:
        return "reliability"

    @property
    def min_samples(self) -> int:
        """A composite's burn rate rests on components that each have enough samples."""
        return 1

    @property
    def absent_after(self) -> None:
        """Absent events are each component's own alert."""
        return None

    @property
    def weights(self) -> dict[str, float]:
        """Each component's weight divided by the sum of the weights."""
        total = sum(c.weight for c in self.components)
        return {c.slo: c.weight / total for c in self.components}


def component_window(
    duration: timedelta, composite: Window, component: Window, bucket: timedelta
) -> timedelta:
    """The window of a component that a burn window of the composite reads: the same share
    of the component's window, in whole buckets (at least one). With equal windows it is the
    same duration."""
    share = duration / composite.nominal_length
    buckets = max(1, round(share * component.nominal_length / bucket))
    return buckets * bucket


Judged = AnySLO | Composite
"""What alerts and the gate judge: an SLO or a composite."""
