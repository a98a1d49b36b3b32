"""The service's alert loop: each cycle it evaluates, checks the rules and advances their
states (pure, in :mod:`mlslo.decide.alerts`), keeps the states in the store, sends what is
due to each notifier and records the history."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx

from mlslo.decide.alerts import AlertState, advance, checks
from mlslo.decide.policy import Firing
from mlslo.measure.evaluate import Evaluation
from mlslo.render.format import iso
from mlslo.render.notifications import Alert, Kind
from mlslo.server.notifiers import Sender
from mlslo.server.store.alert_state import AlertStates
from mlslo.spec import Spec

log = logging.getLogger("mlslo.alerts")


class AlertEngine:
    """Runs the alert rules on the service's evaluations and notifies."""

    def __init__(
        self,
        spec: Callable[[], Spec],
        evaluate: Callable[[datetime], Evaluation],
        states: AlertStates,
        clock: Callable[[], datetime],
        *,
        dashboard_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        backoff: float = 1.0,
    ) -> None:
        self._spec = spec
        self._evaluate = evaluate
        self.states_store = states
        self.clock = clock
        self.dashboard_url = dashboard_url
        self.transport = transport
        self.backoff = backoff
        self._lock = threading.Lock()
        self.states = {k: AlertState.from_dict(v) for k, v in states.load().items()}
        self.current: list[Alert] = []
        self.evaluated_at: datetime | None = None
        self.senders: dict[str, Sender] = {}
        self._dirty: set[str] = set()
        self.configure()

    @property
    def spec(self) -> Spec:
        return self._spec()

    def configure(self) -> None:
        """(Re)create one sender per notifier of the spec."""
        for sender in self.senders.values():
            sender.stop()
        self.senders = {
            n.name: Sender(
                n,
                self.spec.service,
                delivered=self._delivered,
                transport=self.transport,
                backoff=self.backoff,
            )
            for n in self.spec.notifiers
        }

    def stop(self) -> None:
        for sender in self.senders.values():
            sender.stop()
        self.senders = {}

    def evaluate(self, at: datetime | None = None) -> list[Alert]:
        """One cycle: check every rule, advance states, persist, send what is due."""
        moment = at or self.clock()
        evaluation = self._evaluate(moment)
        dashboard = self.dashboard_url or self.spec.dashboard_url
        alerts: list[Alert] = []
        events: list[tuple[datetime, str, dict[str, Any]]] = []
        with self._lock:
            keys = set()
            for slo, rule, result in checks(self.spec, evaluation):
                keys.add(rule.key)
                before = self.states.get(rule.key, AlertState(rule.key))
                after, event = advance(before, result.active, moment, rule.for_)
                alert = Alert(self.spec.service, slo, rule, result, after, moment, dashboard)
                alerts.append(alert)
                if after != before:
                    self.states[rule.key] = after
                    self._dirty.add(rule.key)
                if event is not None:
                    events.append((moment, rule.key, {"event": event, **alert.as_dict()}))
            for stale in set(self.states) - keys:
                del self.states[stale]
            self.current = alerts
            self.evaluated_at = moment
            self._persist(events)
        self._dispatch(alerts, moment)
        return alerts

    def _persist(self, events: Sequence[tuple[datetime, str, dict[str, Any]]]) -> None:
        changed = {k: self.states[k].as_dict() for k in self._dirty if k in self.states}
        if changed or events:
            self.states_store.save(changed, events)
        self._dirty = set()

    def _dispatch(self, alerts: Sequence[Alert], at: datetime) -> None:
        """Send what is due, judged from the states as they are now (a delivery may have
        been recorded since the evaluation read them), under the lock that records them."""
        with self._lock:
            fresh = [replace(a, state=self.states.get(a.rule.key, a.state)) for a in alerts]
            for name, sender in self.senders.items():
                self._dispatch_to(name, sender, fresh, at)

    def _dispatch_to(
        self, name: str, sender: Sender, alerts: Sequence[Alert], at: datetime
    ) -> None:
        due: list[tuple[Kind, Alert]] = []
        notifier = sender.notifier
        for alert in alerts:
            if sender.wants(alert):
                kind = _due(
                    alert,
                    name,
                    notifier.type == "alertmanager",
                    notifier.send_resolved,
                    notifier.repeat_interval,
                    at,
                )
                if kind is not None and not sender.busy(alert.rule.key, kind):
                    due.append((kind, alert))
        if due:
            sender.submit(due, at)

    def _delivered(self, notifier: str, notifications: Sequence[tuple[Kind, Alert]]) -> None:
        with self._lock:
            for _, alert in notifications:
                state = self.states.get(alert.rule.key)
                if state is not None:
                    self.states[alert.rule.key] = state.with_notified(notifier, alert.at)
                    self._dirty.add(alert.rule.key)
            self._persist([])

    def history(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.states_store.events(limit)
        return [{**r, "at": iso(r["at"])} for r in rows]

    def firing(self) -> list[Firing]:
        """The alerts firing after the last cycle (the gate's ``block_on_alert`` reads
        them)."""
        with self._lock:
            return [
                Firing(a.slo.name, a.rule.name, a.rule.severity)
                for a in self.current
                if a.state.status == "firing"
            ]

    def counts(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        with self._lock:
            for alert in self.current:
                key = (alert.rule.severity, alert.state.status)
                out[key] = out.get(key, 0) + 1
        return out


def _due(
    alert: Alert, notifier: str, refresh: bool, send_resolved: bool, repeat: timedelta, at: datetime
) -> Kind | None:
    """What, if anything, this notifier should be told about the alert now.

    Derived from the persisted state, so a restart neither loses nor re-sends a notification.
    Alertmanager wants firing alerts re-sent on every evaluation (it deduplicates them)."""
    state = alert.state
    last = state.last_notified(notifier)
    if state.status == "firing":
        fired = state.fired_at
        if last is None or (fired is not None and last < fired):
            return "firing"
        if refresh:
            return "firing"
        if at - last >= repeat:
            return "repeat"
        return None
    if (
        state.status == "resolved"
        and send_resolved
        and last is not None
        and state.resolved_at is not None
        and last < state.resolved_at
    ):
        return "resolved"
    return None
