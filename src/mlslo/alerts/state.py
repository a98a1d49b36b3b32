"""The alert state machine: inactive -> pending -> firing -> resolved. Pure.

An alert is pending while its condition holds for less than its ``for`` duration, firing
after, and resolved once the condition no longer holds. The state is a plain value, so the
service can persist it and a restart neither loses nor re-sends an alert.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

Status = Literal["inactive", "pending", "firing", "resolved"]
Event = Literal["firing", "resolved"]


@dataclass(frozen=True)
class AlertState:
    key: str
    status: Status = "inactive"
    since: datetime | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    notified: tuple[tuple[str, datetime], ...] = ()

    def last_notified(self, notifier: str) -> datetime | None:
        return dict(self.notified).get(notifier)

    def with_notified(self, notifier: str, at: datetime | None) -> AlertState:
        entries = dict(self.notified)
        if at is None:
            entries.pop(notifier, None)
        else:
            entries[notifier] = at
        return replace(self, notified=tuple(sorted(entries.items())))

    def as_dict(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return None if moment is None else moment.isoformat()

        return {
            "key": self.key,
            "status": self.status,
            "since": iso(self.since),
            "fired_at": iso(self.fired_at),
            "resolved_at": iso(self.resolved_at),
            "notified": {k: iso(v) for k, v in self.notified},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertState:
        def moment(text: str | None) -> datetime | None:
            return None if text is None else datetime.fromisoformat(text)

        notified = tuple(
            sorted(
                (k, v)
                for k, v in ((k, moment(v)) for k, v in data.get("notified", {}).items())
                if v is not None
            )
        )
        return cls(
            data["key"],
            data["status"],
            moment(data.get("since")),
            moment(data.get("fired_at")),
            moment(data.get("resolved_at")),
            notified,
        )


def advance(
    state: AlertState, active: bool, at: datetime, for_: timedelta
) -> tuple[AlertState, Event | None]:
    """The next state after observing the condition at ``at``, and the event to notify."""
    if active:
        if state.status in ("inactive", "resolved"):
            state = AlertState(state.key, "pending", since=at, notified=state.notified)
        if state.status == "pending" and state.since is not None and at - state.since >= for_:
            return replace(state, status="firing", fired_at=at, resolved_at=None), "firing"
        return state, None
    if state.status == "firing":
        return replace(state, status="resolved", resolved_at=at), "resolved"
    if state.status == "pending":
        return AlertState(state.key, "inactive", notified=state.notified), None
    return state, None
