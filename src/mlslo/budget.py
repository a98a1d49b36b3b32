"""Error budgets, burn rates and forecasts (DESIGN.md §3). Pure functions over numbers.

Occurrences: ``allowed_bad = (1 - target) * valid``, ``consumed = bad / allowed_bad``.
Aggregate: the allowed error is the distance from the ideal to the bound:
``consumed = (1 - value) / (1 - target)`` for ``>=`` (ideal 1), ``value / target`` for ``<=``
(ideal 0). ``remaining = 1 - consumed``; a burn rate is the consumed share measured on a
shorter window alone, so a burn rate of 1 spends exactly the budget over the SLO window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from mlslo.durations import format_duration
from mlslo.spec import Op, Window

TOLERANCE = 1e-9
REFERENCE_WINDOW = timedelta(days=30)
STANDARD_BURN_WINDOWS: tuple[timedelta, ...] = (
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=3),
)
Status = Literal["healthy", "low", "exhausted", "no_data", "insufficient_data"]


@dataclass(frozen=True)
class Budget:
    consumed: float | None
    remaining: float | None
    status: Status


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


def burn_windows(window: Window, bucket: timedelta) -> list[timedelta]:
    """The SRE Workbook's burn windows (5m .. 3d for 30 days), scaled to the SLO window and
    rounded to whole buckets."""
    return list(dict.fromkeys(scaled(s, window, bucket) for s in STANDARD_BURN_WINDOWS))


def scaled(duration: timedelta, window: Window, bucket: timedelta) -> timedelta:
    """One duration of the 30-day scheme scaled to ``window`` (whole buckets, at least one)."""
    buckets = max(1, round(duration * (window.nominal_length / REFERENCE_WINDOW) / bucket))
    return buckets * bucket


HEADLINE_WINDOWS = (timedelta(hours=1), timedelta(hours=6), timedelta(days=1))


def headline_windows(window: Window, bucket: timedelta) -> list[timedelta]:
    """The window's equivalents of 1h, 6h and 1d of a 30-day window: the burn rates worth a
    glance."""
    return list(dict.fromkeys(scaled(s, window, bucket) for s in HEADLINE_WINDOWS))


def burn_key(duration: timedelta) -> str:
    return format_duration(duration)


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


def window_bounds(window: Window, end: datetime) -> tuple[datetime, datetime]:
    """The ``[start, end)`` of ``window`` ending at ``end`` (calendar: the period so far)."""
    if window.rolling is not None:
        return end - window.rolling, end
    day = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if window.calendar == "week":
        start = day - timedelta(days=day.weekday())
    else:
        start = day.replace(day=1)
    return start, end
