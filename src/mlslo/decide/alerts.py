"""Alerts decided from evaluations: each burn-rate rule checked against an evaluated SLO, and
the state machine inactive -> pending -> firing -> resolved. Pure: the service keeps the
state and sends the notifications.

An alert is pending while its condition holds for less than its ``for`` duration, firing
after, and resolved once the condition no longer holds. The state is a plain value, so the
service can persist it and a restart neither loses nor re-sends an alert. A window with fewer
samples than the SLO's ``min_samples`` never fires (ML metrics are noisy on thin data). The
``absent`` rule fires while an SLO has had no event for longer than its ``absent_after``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from mlslo.measure.composite import CompositeEvaluation
from mlslo.measure.evaluate import Evaluation, SLOEvaluation
from mlslo.moments import format_duration
from mlslo.spec import Spec
from mlslo.spec.alert_rules import AlertRule, slo_rules
from mlslo.spec.composites import Judged

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


@dataclass(frozen=True)
class Check:
    """A rule's condition at one moment, with what a person needs to judge it."""

    rule: AlertRule
    active: bool
    suppressed: str | None
    long_rate: float | None
    short_rate: float | None
    long_samples: int
    short_samples: int
    remaining: float | None
    hours_left: float | None
    last_event: datetime | None = None


def check(rule: AlertRule, result: SLOEvaluation | CompositeEvaluation, min_samples: int) -> Check:
    """Whether ``rule`` holds for the evaluated SLO (or composite) ``result``."""
    remaining = result.budget.remaining
    hours = result.time_to_exhaustion.get("1h")
    if rule.kind == "absent":
        return Check(
            rule, result.absent, None, None, None, 0, 0, remaining, hours, result.last_event
        )
    if rule.kind == "exhausted":
        status = result.budget.status
        suppressed = None
        if status in ("no_data", "insufficient_data"):
            suppressed = f"budget status is {status}"
        return Check(
            rule,
            status == "exhausted",
            suppressed,
            None,
            None,
            0,
            0,
            remaining,
            hours,
            result.last_event,
        )
    assert rule.long is not None and rule.short is not None and rule.burn_rate is not None
    long = result.burn_rate(rule.long)
    short = result.burn_rate(rule.short)
    long_rate = long.value if long else None
    short_rate = short.value if short else None
    long_n = long.n if long else 0
    short_n = short.n if short else 0
    suppressed = None
    for label, n in (("long", long_n), ("short", short_n)):
        if n < min_samples:
            window = rule.long if label == "long" else rule.short
            suppressed = (
                f"the {format_duration(window)} window has {n} samples, fewer than "
                f"min_samples {min_samples}: too few to fire"
            )
            break
    burning = (
        long_rate is not None
        and short_rate is not None
        and long_rate > rule.burn_rate
        and short_rate > rule.burn_rate
    )
    return Check(
        rule,
        burning and suppressed is None,
        suppressed,
        long_rate,
        short_rate,
        long_n,
        short_n,
        remaining,
        hours,
        result.last_event,
    )


def checks(spec: Spec, evaluation: Evaluation) -> list[tuple[Judged, AlertRule, Check]]:
    """Every rule of every SLO and composite checked against one evaluation."""
    out: list[tuple[Judged, AlertRule, Check]] = []
    results: list[SLOEvaluation | CompositeEvaluation] = [
        *evaluation.slos,
        *evaluation.composites,
    ]
    for result in results:
        for rule in slo_rules(result.slo, spec.bucket):
            out.append((result.slo, rule, check(rule, result, result.slo.min_samples)))
    return out
