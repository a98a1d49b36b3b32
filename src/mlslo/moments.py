"""Durations and moments as people write them: ``250ms``, ``15m``, ``1h30m``, ``30d``, ``2w``;
``2026-01-31T12:00:00Z`` or ``now``. One parser of each for the spec, the CLI and the API."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_UNITS: dict[str, timedelta] = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
LONGEST = timedelta(days=36_500)
"""The longest duration anything takes: a hundred years."""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""Moments (``--at``, ``?at=``) lie in [EARLIEST, LATEST): time is counted from the epoch,
and a window reaching past either end means a typo, not a question."""
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")


def parse_duration(text: str) -> timedelta:
    """Parse ``'1h30m'`` into a timedelta; raise ValueError with the accepted forms."""
    compact = text.strip().replace(" ", "")
    if not compact or not _WHOLE.match(compact):
        raise ValueError(
            f"'{text}' is not a duration; write a number and a unit such as 250ms, 90s, 15m, "
            "6h, 30d or 2w (units can be combined: 1h30m)"
        )
    total = timedelta(0)
    try:
        for number, unit in _PART.findall(compact):
            total += float(number) * _UNITS[unit]
    except OverflowError:
        raise ValueError(f"'{text}' is too long; durations go up to {LONGEST.days:,}d") from None
    if total <= timedelta(0):
        raise ValueError(f"'{text}' must be longer than zero")
    if total > LONGEST:
        raise ValueError(f"'{text}' is too long; durations go up to {LONGEST.days:,}d")
    return total


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling: ``timedelta(minutes=90)`` -> ``'1h30m'``."""
    micros = round(value.total_seconds() * 1_000_000)
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    out = []
    for unit, size in (
        ("d", 86_400_000_000),
        ("h", 3_600_000_000),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
    ):
        count, micros = divmod(micros, size)
        if count:
            out.append(f"{count}{unit}")
    if micros:
        out.append(f"{micros / 1000:g}ms")
    return sign + "".join(out)


_OFFSET_AS_SPACE = re.compile(r" (\d{2}:?\d{2})$")


def parse_moment(text: str | None, now: Callable[[], datetime]) -> datetime:
    """A moment in UTC: ISO-8601 (a time without a zone is UTC), or ``now`` (also when
    ``text`` is None). An unencoded ``+00:00`` in a URL arrives as `` 00:00`` and is read as
    meant. Raises ValueError with the accepted form."""
    if text is None or text.strip().lower() == "now":
        return now().astimezone(UTC)
    cleaned = _OFFSET_AS_SPACE.sub(r"+\1", text.strip()).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(
            f"'{text}' is not an ISO-8601 time; write e.g. 2026-11-30T00:00:00Z"
        ) from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if not EARLIEST <= moment < LATEST:
        raise ValueError(
            f"'{text}' is outside the times mlslo evaluates, {EARLIEST:%Y-%m-%d} to "
            f"{LATEST:%Y-%m-%d}"
        )
    return moment
