"""Durations as people write them in SLO specs: ``250ms``, ``15m``, ``1h30m``, ``30d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS: dict[str, timedelta] = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
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
    for number, unit in _PART.findall(compact):
        total += float(number) * _UNITS[unit]
    if total <= timedelta(0):
        raise ValueError(f"'{text}' must be longer than zero")
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
