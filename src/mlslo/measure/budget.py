"""Error budgets, burn rates and forecasts Pure functions over numbers.

Occurrences: ``allowed_bad = (1 - target) * valid``, ``consumed = bad / allowed_bad``.
Aggregate: the allowed error is the distance from the ideal to the bound:
``consumed = (1 - value) / (1 - target)`` for ``>=`` (ideal 1), ``value / target`` for ``<=``
(ideal 0). ``remaining = 1 - consumed``; a burn rate is the consumed share measured on a
shorter window alone, so a burn rate of 1 spends exactly the budget over the SLO window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from mlslo.measure.windows import burn_key
from mlslo.spec import Op, Window

TOLERANCE = 1e-9
Status = Literal["healthy", "low", "exhausted", "no_data", "insufficient_data"]


@dataclass(frozen=True)
class Budget:
    """``reason`` says why a budget with numbers is not judged (an SLO whose events
    stopped)."""

    consumed: float | None
    remaining: float | None
    status: Status
    reason: str | None = None


@dataclass(frozen=True)
class BurnRate:
    """The share of the budget spent over ``window`` alone, as if that pace went on for the
    whole SLO window; ``n`` samples behind it."""

    window: timedelta
    value: float | None
    n: int

    @property
    def key(self) -> str:
        return burn_key(self.window)


def consumed_occurrences(good: float, valid: float, target: float) -> float | None:
    """Share of the allowed bad events already spent."""
    if valid <= 0:
        return None
    return (valid - good) / ((1 - target) * valid)


def consumed_aggregate(value: float, target: float, op: Op) -> float:
    """Share of the allowed distance between the ideal value and the bound already spent."""
    if op == ">=":
        return (1 - value) / (1 - target)
    return value / target


def is_met(value: float | None, target: float, op: Op) -> bool | None:
    """Whether ``value`` satisfies the bound, with a 1e-9 tolerance (0.05 meets <= 0.05)."""
    if value is None:
        return None
    if op == ">=":
        return value >= target - TOLERANCE
    return value <= target + TOLERANCE


def snap(value: float | None) -> float | None:
    """Round values within the tolerance of 0 to exactly 0 (0.05/0.05 leaves 0, not -1e-16)."""
    if value is None:
        return None
    return 0.0 if abs(value) < TOLERANCE else value


def budget(
    consumed: float | None,
    *,
    n: int,
    min_samples: int,
    defined: bool,
    low_share: float,
    has_data: bool = False,
) -> Budget:
    """The budget and its status: no_data, insufficient_data, exhausted, low or healthy.

    ``has_data`` says the window holds records even when ``n`` is 0 (predictions still
    awaiting their labels): the status is then insufficient_data, not no_data.
    """
    remaining = snap(None if consumed is None else 1 - consumed)
    consumed = None if remaining is None else 1 - remaining
    if n <= 0:
        return Budget(None, None, "insufficient_data" if has_data else "no_data")
    if not defined or n < min_samples or remaining is None:
        return Budget(consumed, remaining, "insufficient_data")
    if remaining <= 0:
        return Budget(consumed, remaining, "exhausted")
    if remaining < low_share:
        return Budget(consumed, remaining, "low")
    return Budget(consumed, remaining, "healthy")


def time_to_exhaustion(
    remaining: float | None, burn_rate: float | None, window: Window
) -> float | None:
    """Hours until the budget is gone if the given burn rate continues (0 if already gone)."""
    if remaining is None:
        return None
    if remaining <= 0:
        return 0.0
    if burn_rate is None or burn_rate <= 0:
        return None
    return remaining * window.nominal_length.total_seconds() / 3600 / burn_rate
