"""Notifications: payloads for a generic webhook, Slack and Alertmanager (pure), and a
sender per notifier that retries with backoff on its own thread, so a notifier that is down
never stalls evaluation."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx

from mlslo.alerts.rules import AlertRule, Check, check_fields, slo_title
from mlslo.alerts.state import AlertState
from mlslo.durations import format_duration
from mlslo.render import iso
from mlslo.spec import AnySLO, Notifier
from mlslo.views import hours_text

log = logging.getLogger("mlslo.alerts")
Kind = Literal["firing", "resolved", "repeat"]


@dataclass(frozen=True)
class Alert:
    """A rule of an SLO with its latest check and state: what notifications describe."""

    service: str
    slo: AnySLO
    rule: AlertRule
    check: Check
    state: AlertState
    at: datetime
    dashboard_url: str | None = None

    @property
    def alertname(self) -> str:
        return self.rule.alertname

    @property
    def link(self) -> str | None:
        if not self.dashboard_url:
            return None
        return f"{self.dashboard_url.rstrip('/')}/slo/{self.slo.name}"

    def summary(self) -> str:
        resolved = self.state.status == "resolved"
        name = f"{self.service}: {self.slo.name}"
        if self.rule.kind == "exhausted":
            return f"{name} error budget is {'no longer ' if resolved else ''}exhausted"
        if resolved:
            return f"{name} no longer burns its error budget faster than {self.rule.burn_rate:g}×"
        return f"{name} is burning its error budget {_rate(self.check.long_rate)}"

    def description(self) -> str:
        slo = self.slo
        resolved = self.state.status == "resolved"
        parts = [slo_title(slo)]
        if self.rule.kind == "burn":
            assert self.rule.long is not None and self.rule.short is not None
            rates = (
                f"{_rate(self.check.long_rate)} over the last {format_duration(self.rule.long)} "
                f"and {_rate(self.check.short_rate)} over the last "
                f"{format_duration(self.rule.short)} (threshold {self.rule.burn_rate:g}×"
            )
            if resolved:
                parts.append(f"has recovered: its burn rate is now {rates})")
            else:
                parts.append(
                    f"is burning its error budget {rates}; 1× spends the budget in exactly one "
                    "window)"
                )
        else:
            parts.append(
                "has budget left again" if resolved else "has spent its whole error budget"
            )
        remaining = self.check.remaining
        if remaining is not None and remaining >= 0:
            parts.append(f"{remaining * 100:.1f}% of the budget is left")
        elif remaining is not None:
            parts.append(f"the budget is overspent by {-remaining * 100:.1f}%")
        if (
            not resolved
            and self.check.hours_left is not None
            and remaining is not None
            and remaining > 0
        ):
            parts.append(f"at the recent rate it is gone in {hours_text(self.check.hours_left)}")
        text = f"{parts[0]} {parts[1]}"
        if len(parts) > 2:
            text += "; " + "; ".join(parts[2:])
        text += "."
        if slo.runbook_url:
            text += f" Runbook: {slo.runbook_url}."
        if self.link:
            text += f" Dashboard: {self.link}."
        return text

    def as_dict(self) -> dict[str, Any]:
        def optional_iso(moment: datetime | None) -> str | None:
            return None if moment is None else iso(moment)

        rule = self.rule
        return {
            "key": rule.key,
            "alertname": self.alertname,
            "service": self.service,
            "slo": self.slo.name,
            "dimension": self.slo.dimension,
            "rule": rule.name,
            "severity": rule.severity,
            "status": self.state.status,
            "since": optional_iso(self.state.since),
            "fired_at": optional_iso(self.state.fired_at),
            "resolved_at": optional_iso(self.state.resolved_at),
            **check_fields(rule, self.check),
            "summary": self.summary(),
            "description": self.description(),
            "runbook_url": self.slo.runbook_url,
            "dashboard_url": self.link,
        }


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}×"


# --- payloads --------------------------------------------------------------------------------


def webhook_payload(
    service: str, notifications: Sequence[tuple[Kind, Alert]], at: datetime
) -> dict[str, Any]:
    """mlslo's own JSON: one POST per evaluation with every notification due."""
    return {
        "version": "1",
        "service": service,
        "sent_at": iso(at),
        "alerts": [{"event": kind, **alert.as_dict()} for kind, alert in notifications],
    }


def slack_payload(
    service: str, notifications: Sequence[tuple[Kind, Alert]], at: datetime
) -> dict[str, Any]:
    """Slack's incoming-webhook message: a fallback text and one section per alert."""
    blocks: list[dict[str, Any]] = []
    lines = []
    for kind, alert in notifications:
        icon = (
            ":white_check_mark:"
            if kind == "resolved"
            else (":rotating_light:" if alert.rule.severity == "page" else ":warning:")
        )
        title = (
            "RESOLVED" if kind == "resolved" else ("STILL FIRING" if kind == "repeat" else "FIRING")
        )
        header = f"{icon} *{title}* · {alert.rule.severity} · {alert.summary()}"
        link = f"\n<{alert.link}|Open the dashboard>" if alert.link else ""
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"{header}\n{alert.description()}{link}"},
            }
        )
        lines.append(f"{title}: {alert.summary()}")
    return {"text": "\n".join(lines) or f"{service}: no alerts", "blocks": blocks}


def alertmanager_payload(alerts: Sequence[tuple[Kind, Alert]]) -> list[dict[str, Any]]:
    """Alertmanager's v2 API body: labels, annotations, startsAt/endsAt, generatorURL."""
    out = []
    for kind, alert in alerts:
        labels = {
            "alertname": alert.alertname,
            "service": alert.service,
            "slo": alert.slo.name,
            "dimension": alert.slo.dimension,
            "severity": alert.rule.severity,
            "rule": alert.rule.name,
            "window": str(alert.slo.window),
        }
        annotations = {"summary": alert.summary(), "description": alert.description()}
        if alert.slo.runbook_url:
            annotations["runbook_url"] = alert.slo.runbook_url
        if alert.check.long_rate is not None:
            annotations["burn_rate_long"] = f"{alert.check.long_rate:.3f}"
        if alert.check.short_rate is not None:
            annotations["burn_rate_short"] = f"{alert.check.short_rate:.3f}"
        if alert.check.remaining is not None:
            annotations["budget_remaining"] = f"{alert.check.remaining:.4f}"
        if alert.check.hours_left is not None:
            annotations["time_to_exhaustion"] = hours_text(alert.check.hours_left)
        entry: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations,
            "startsAt": iso(alert.state.fired_at or alert.at),
        }
        if kind == "resolved" and alert.state.resolved_at is not None:
            entry["endsAt"] = iso(alert.state.resolved_at)
        if alert.link:
            entry["generatorURL"] = alert.link
        out.append(entry)
    return out


# --- delivery ---------------------------------------------------------------------------------


Delivered = Callable[[str, Sequence[tuple[Kind, Alert]]], None]


class Sender:
    """Delivers one notifier's messages in order, retrying with backoff, on its own thread."""

    def __init__(
        self,
        notifier: Notifier,
        service: str,
        *,
        delivered: Delivered,
        transport: httpx.BaseTransport | None = None,
        attempts: int = 5,
        backoff: float = 1.0,
    ) -> None:
        self.notifier = notifier
        self.service = service
        self.delivered = delivered
        self.attempts = attempts
        self.backoff = backoff
        self.http = httpx.Client(timeout=10.0, transport=transport, headers=dict(notifier.headers))
        self.queue: queue.Queue[tuple[Sequence[tuple[Kind, Alert]], datetime] | None] = (
            queue.Queue()
        )
        self.sent = 0
        self.failed = 0
        self.in_flight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"mlslo-notify-{notifier.name}", daemon=True
        )
        self.thread.start()

    def wants(self, alert: Alert) -> bool:
        severities = self.notifier.severities
        return severities is None or alert.rule.severity in severities

    def submit(self, notifications: Sequence[tuple[Kind, Alert]], at: datetime) -> None:
        with self._lock:
            for kind, alert in notifications:
                self.in_flight.add((alert.rule.key, kind))
        self.queue.put((list(notifications), at))

    def busy(self, key: str, kind: Kind) -> bool:
        with self._lock:
            return (key, kind) in self.in_flight

    def stop(self) -> None:
        """Stop promptly: a delivery waiting to retry gives up (it stays due, so the next
        engine sends it again); the client closes only after the thread is done."""
        self._stopping.set()
        self.queue.put(None)
        self.thread.join(timeout=15)
        self.http.close()

    def payload(self, notifications: Sequence[tuple[Kind, Alert]], at: datetime) -> Any:
        kind = self.notifier.type
        if kind == "slack":
            return slack_payload(self.service, notifications, at)
        if kind == "alertmanager":
            return alertmanager_payload(notifications)
        return webhook_payload(self.service, notifications, at)

    def url(self) -> str:
        if self.notifier.type == "alertmanager":
            return self.notifier.url.rstrip("/") + "/api/v2/alerts"
        return self.notifier.url

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            notifications, at = item
            ok = self._post(self.payload(notifications, at))
            if ok:
                self.sent += 1
                self.delivered(self.notifier.name, notifications)
            else:
                self.failed += 1
            with self._lock:
                for kind, alert in notifications:
                    self.in_flight.discard((alert.rule.key, kind))

    def _post(self, payload: Any) -> bool:
        delay = self.backoff
        for attempt in range(self.attempts):
            if self._stopping.is_set():
                return False
            try:
                response = self.http.post(self.url(), json=payload)
                if response.status_code < 300:
                    return True
                reason = f"{response.status_code} {response.text[:200]}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    log.error("notifier %s rejected a notification: %s", self.notifier.name, reason)
                    return False
            except (httpx.HTTPError, RuntimeError) as exc:
                reason = str(exc)
            if attempt < self.attempts - 1:
                log.warning(
                    "notifier %s failed (%s); retrying in %.1fs", self.notifier.name, reason, delay
                )
                if self._stopping.wait(delay):
                    return False
                delay = min(delay * 2, 60.0)
        log.error("notifier %s gave up after %d attempts", self.notifier.name, self.attempts)
        return False
