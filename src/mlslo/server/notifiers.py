"""Delivering notifications: a sender per notifier that posts the payloads of
:mod:`mlslo.render.notifications` in order, retrying with backoff on its own thread, so a
notifier that is down never stalls evaluation."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import httpx

from mlslo.render.notifications import (
    Alert,
    Kind,
    alertmanager_payload,
    slack_payload,
    webhook_payload,
)
from mlslo.spec import Notifier

log = logging.getLogger("mlslo.alerts")

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
