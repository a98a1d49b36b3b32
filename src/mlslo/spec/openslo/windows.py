"""The time window and budgeting method of an OpenSLO SLO, as mlslo's ``window`` and
``budgeting``: rolling windows as they are (a month read as 30 days), calendar months and weeks
as mlslo's (which start at 00:00 UTC on the first, or on Monday), and a report of every
difference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mlslo.moments import format_duration
from mlslo.spec.openslo import format as fmt
from mlslo.spec.openslo.documents import Path, Reader, mapping, sequence

_ALPHA_UNITS = {
    "second": "s",
    "minute": "m",
    "hour": "h",
    "day": "d",
    "week": "w",
    "month": "M",
    "quarter": "Q",
    "year": "Y",
}


def _alpha_window(item: dict[str, Any]) -> dict[str, Any]:
    """A v1alpha ``timeWindows`` entry (count and unit) in v1's form."""
    unit = _ALPHA_UNITS.get(str(item.get("unit", "")).lower(), "?")
    out = {"duration": f"{item.get('count')}{unit}", "isRolling": item.get("isRolling")}
    if item.get("calendar"):
        out["calendar"] = item["calendar"]
    return out


class WindowReader(Reader):
    """The window and budgeting of one SLO document."""

    def window(self) -> str | dict[str, Any] | None:
        if fmt.WINDOW in self.annotations:
            return self.annotations[fmt.WINDOW]
        spec = self.doc.spec
        if self.doc.api == fmt.API_VERSION_ALPHA:
            items = [_alpha_window(mapping(w)) for w in sequence(spec.get("timeWindows"))]
            path: Path = ("spec", "timeWindows")
        else:
            items = [mapping(w) for w in sequence(spec.get("timeWindow"))]
            path = ("spec", "timeWindow")
        if not items:
            self.note("has no time window: mlslo's default, 30d rolling, applies", "spec")
            return None
        if len(items) > 1:
            self.note("only the first time window is read", *path, 1)
        item = items[0]
        parsed = fmt.parse_shorthand(item.get("duration"))
        if parsed is None:
            self.note(f"duration {item.get('duration')!r} is not a duration", *path, 0)
            return None
        length, unit = parsed
        calendar = item.get("calendar")
        rolling = item.get("isRolling")
        if rolling is True or (rolling is None and not calendar):
            if unit in ("M", "Q", "Y"):
                self.note(
                    f"a rolling {item['duration']} is read as {format_duration(length)}",
                    *path,
                    0,
                    "duration",
                )
            return format_duration(length)
        kind = "month" if (unit == "M" and length == fmt.MONTH) else None
        if length == timedelta(weeks=1):
            kind = "week"
        if kind is None:
            self.note(
                f"a calendar window of {item['duration']} is read as a rolling "
                f"{format_duration(length)} window: mlslo's calendar windows are a week or a month",
                *path,
                0,
            )
            return format_duration(length)
        self._calendar_start(mapping(calendar), kind, (*path, 0, "calendar"))
        return {"calendar": kind}

    def _calendar_start(self, calendar: dict[str, Any], kind: str, path: Path) -> None:
        start = calendar.get("startTime")
        zone = str(calendar.get("timeZone", ""))
        moment = start if isinstance(start, datetime) else None
        if isinstance(start, str):
            try:
                moment = datetime.fromisoformat(start)
            except ValueError:
                moment = None
        aligned = (
            moment is not None
            and moment.replace(tzinfo=None).time() == datetime.min.time()
            and (moment.day == 1 if kind == "month" else moment.weekday() == 0)
            and (moment.tzinfo in (None, UTC))
            and zone in fmt.UTC_ZONES
        )
        if not aligned:
            first = "the first of the month" if kind == "month" else "Monday"
            self.note(
                f"starts at {start} {zone}: mlslo's calendar {kind}s start at 00:00 UTC on {first}",
                *path,
            )
