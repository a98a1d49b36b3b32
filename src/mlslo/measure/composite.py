"""Composite SLOs evaluated from their components' evaluations. Pure: numbers in, numbers out.

With normalised weights ``w_i`` (each weight over their sum) and each component's consumed
share ``c_i`` of its own budget, over its own window:

* ``consumed = Σ w_i c_i`` — not clipped: an overspent component overspends the composite in
  proportion to its weight, as its burn rates do; ``remaining = 1 - consumed``;
* ``reliability = 1 - (1 - objective) x consumed``, so the composite meets its objective
  exactly while ``consumed <= 1``;
* a burn rate over a window ``W`` of the composite is ``Σ w_i r_i``, where ``r_i`` is the
  component's burn rate over the same share of its own window; a component with no rate there
  (no events) or one resting on fewer than its ``min_samples`` adds nothing (it spends no
  budget, or too little is known to fire its own alert); with no component rate at all the
  composite's is undefined;
* a component whose budget cannot be judged counts as fully consumed (``c_i = 1``), or is
  left out with its weight shared by the others (``undefined: ignore``); with no component
  judged, the composite is not judged either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from mlslo.measure import budget as budgeting
from mlslo.measure.budget import BurnRate
from mlslo.spec import Window
from mlslo.spec.composites import Composite, component_window

UNJUDGED = ("no_data", "insufficient_data")


class _Judged(Protocol):
    @property
    def window(self) -> Window: ...
    @property
    def min_samples(self) -> int: ...


class Component(Protocol):
    """What a composite reads of a component's evaluation."""

    @property
    def slo(self) -> _Judged: ...
    @property
    def budget(self) -> budgeting.Budget: ...
    def burn_rate(self, window: timedelta) -> BurnRate | None: ...


@dataclass(frozen=True)
class ComponentResult:
    """One component's part: its normalised ``weight``, its budget, and whether it was
    ``counted`` (``consumed`` is then the share it adds, 1 for an undefined budget)."""

    slo: str
    weight: float
    status: str
    consumed: float | None
    counted: bool
    undefined: bool


@dataclass(frozen=True)
class CompositeEvaluation:
    composite: Composite
    components: tuple[ComponentResult, ...]
    value: float | None
    """The composite's reliability, ``1 - (1 - objective) x consumed``."""
    met: bool | None
    budget: budgeting.Budget
    burn_rates: tuple[BurnRate, ...]
    time_to_exhaustion: Mapping[str, float | None]
    last_event: None = None
    absent: bool = False

    @property
    def name(self) -> str:
        return self.composite.name

    @property
    def slo(self) -> Composite:
        """The composite's spec, where an SLO's evaluation holds its SLO."""
        return self.composite

    def burn_rate(self, window: timedelta) -> BurnRate | None:
        for rate in self.burn_rates:
            if rate.window == window:
                return rate
        return None


def consumed_share(
    composite: Composite, results: Mapping[str, Component]
) -> tuple[float | None, str, tuple[ComponentResult, ...]]:
    """The weighted consumption, the status it has when it cannot be computed, and each
    component's part."""
    weights = composite.weights
    parts = []
    for name, weight in weights.items():
        budget = results[name].budget
        undefined = budget.consumed is None or budget.status in UNJUDGED
        counted = not undefined or composite.undefined == "consumed"
        consumed = 1.0 if undefined and counted else budget.consumed
        parts.append(ComponentResult(name, weight, budget.status, consumed, counted, undefined))
    if all(p.undefined for p in parts):
        status = "no_data" if all(p.status == "no_data" for p in parts) else "insufficient_data"
        return None, status, tuple(parts)
    kept = [p for p in parts if p.counted]
    total = math.fsum(p.weight for p in kept)
    share = math.fsum(p.weight * (p.consumed or 0.0) for p in kept) / total
    return share, "", tuple(parts)


def composite_burn_rate(
    composite: Composite,
    window: timedelta,
    results: Mapping[str, Component],
    bucket: timedelta,
) -> BurnRate:
    """The weighted burn rate over ``window`` of the composite, from the components' burn
    rates over the same share of their windows (the pace at which the composite's budget is
    spent: a component without a rate there spends none of it)."""
    weighted, samples = [], 0
    for name, weight in composite.weights.items():
        result = results[name]
        span = component_window(window, composite.window, result.slo.window, bucket)
        rate = result.burn_rate(span)
        if rate is None or rate.value is None or rate.n < result.slo.min_samples:
            continue
        weighted.append(weight * rate.value)
        samples += rate.n
    if not weighted:
        return BurnRate(window, None, 0)
    return BurnRate(window, math.fsum(weighted), samples)


def evaluate_composite(
    composite: Composite,
    results: Mapping[str, Component],
    windows: list[timedelta],
    bucket: timedelta,
    low_share: float,
) -> CompositeEvaluation:
    """The composite from its components' evaluations (``results``, by SLO name), with its
    burn rates over ``windows``."""
    consumed, unjudged, parts = consumed_share(composite, results)
    if consumed is None:
        budget = budgeting.Budget(None, None, unjudged)  # type: ignore[arg-type]
    else:
        counted = sum(1 for p in parts if p.counted)
        budget = budgeting.budget(
            consumed, n=counted, min_samples=1, defined=True, low_share=low_share
        )
    value = None
    met = None
    if budget.consumed is not None:
        value = 1 - (1 - composite.objective) * budget.consumed
        met = budget.remaining is not None and budget.remaining >= -budgeting.TOLERANCE
    rates = tuple(composite_burn_rate(composite, w, results, bucket) for w in windows)
    tte: dict[str, float | None] = {}
    for key, duration in (("1h", timedelta(hours=1)), ("1d", timedelta(days=1))):
        span = composite.window.scale(duration, bucket)
        rate = next((r.value for r in rates if r.window == span), None)
        tte[key] = budgeting.time_to_exhaustion(budget.remaining, rate, composite.window)
    return CompositeEvaluation(composite, parts, value, met, budget, rates, tte)
