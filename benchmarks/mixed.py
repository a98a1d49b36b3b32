"""A fixed mixed load on a running ``mlslo serve``, shared by the soak and crash benchmarks:
prediction batches, labels for predictions already acknowledged, status GETs and gate calls,
each from its own thread and keep-alive connection, at fixed intervals. It remembers what the
server acknowledged, so the caller can check that every acknowledged record was stored."""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

SPEC = """\
# Written by the soak and crash benchmarks: every dimension, 30-day windows, a policy.
service: bench-mixed
slos:
  - {name: availability, dimension: availability, objective: {target: 0.999}, window: 30d}
  - {name: latency, dimension: latency, sli: {latency_threshold: 250ms},
     objective: {target: 0.99}, window: 30d}
  - {name: freshness, dimension: freshness, sli: {lag_threshold: 15m},
     objective: {target: 0.95}, window: 30d}
  - {name: accuracy, dimension: accuracy, sli: {metric: f1, positive_label: 1},
     objective: {target: 0.9}, window: 30d}
  - {name: fairness, dimension: fairness,
     sli: {metric: true_positive_rate_difference, attribute: group},
     objective: {target: 0.05}, window: 30d}
policy:
  hard_stop: [availability, fairness]
  soft_stop: [accuracy, freshness, latency]
"""
ARROW = "application/vnd.apache.arrow.stream"
GROUPS = [f"g{i}" for i in range(10)]


@dataclass
class Call:
    """One request: when it was sent (monotonic s), what, how long it took, its status
    (0: no answer)."""

    at: float
    kind: str
    ms: float
    status: int
    rows: int = 0


@dataclass
class Rates:
    """The fixed load: a request of each kind every so many seconds."""

    prediction_batch: int = 200
    prediction_every: float = 0.25
    label_batch: int = 100
    label_every: float = 1.0
    status_every: float = 0.5
    gate_every: float = 5.0


@dataclass
class Load:
    """Runs the workers against ``url`` until :meth:`stop`; ``prefix`` keeps ids unique
    across runs against one store."""

    url: str
    prefix: str
    rates: Rates = field(default_factory=Rates)
    seed: int = 0
    calls: list[Call] = field(default_factory=list)
    predictions: list[str] = field(default_factory=list)
    """Acknowledged prediction ids."""
    labels: dict[str, int] = field(default_factory=dict)
    """Acknowledged labels: prediction id -> label."""
    errors: list[BaseException] = field(default_factory=list)
    """Failures of the load itself (not of the server): any makes the run invalid."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        workers: list[tuple[str, float, Callable[[Any, int], Call]]] = [
            ("predictions", self.rates.prediction_every, self._post_predictions),
            ("labels", self.rates.label_every, self._post_labels),
            ("status", self.rates.status_every, self._get_status),
            ("gate", self.rates.gate_every, self._get_gate),
        ]
        for name, every, work in workers:
            thread = threading.Thread(target=self._loop, args=(name, every, work), name=name)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _loop(self, kind: str, every: float, work: Callable[[Any, int], Call]) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=30) as http:
            due = time.monotonic()
            step = 0
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    call = work(http, step)
                except httpx.HTTPError:
                    call = Call(began, kind, (time.monotonic() - began) * 1000, 0)
                except Exception as exc:
                    self.errors.append(exc)
                    self._stop.set()
                    return
                with self._lock:
                    self.calls.append(call)
                step += 1
                due += every
                self._stop.wait(max(0.0, due - time.monotonic()))

    def _post_predictions(self, http: Any, step: int) -> Call:
        import numpy as np
        import pyarrow as pa

        from mlslo.client import arrow_bytes

        n = self.rates.prediction_batch
        rng = np.random.default_rng([self.seed, step])
        now = datetime.now(UTC)
        ids = [f"{self.prefix}-{step}-{i}" for i in range(n)]
        truth = rng.random(n) < 0.3
        score = 1 / (1 + np.exp(-(np.where(truth, 2.2, -2.2) + rng.standard_normal(n))))
        table = pa.table(
            {
                "id": ids,
                "ts": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
                "model": ["fraud-scorer"] * n,
                "model_version": ["v1"] * n,
                "status": pa.array(["ok", "error"]).take(
                    pa.array((rng.random(n) < 0.0005).astype(np.int64))
                ),
                "latency_ms": rng.lognormal(np.log(62.0), 0.55, n),
                "event_ts": pa.array(
                    [now - timedelta(seconds=float(s)) for s in rng.exponential(210.0, n)],
                    pa.timestamp("us", tz="UTC"),
                ),
                "prediction": (score >= 0.5).astype(np.int64),
                "score": score,
                "group": pa.array(GROUPS).take(pa.array(rng.integers(0, len(GROUPS), n))),
            }
        )
        body = arrow_bytes(table)
        began = time.monotonic()
        response = http.post("/api/v1/predictions", content=body, headers={"Content-Type": ARROW})
        ms = (time.monotonic() - began) * 1000
        if response.status_code == 200:
            accepted = response.json()["accepted"]
            if accepted != n:
                raise RuntimeError(f"{n} new predictions sent, {accepted} accepted")
            with self._lock:
                self.predictions.extend(ids)
        return Call(began, "predictions", ms, response.status_code, n)

    def _post_labels(self, http: Any, step: int) -> Call:
        with self._lock:
            start = len(self.labels)
            ids = self.predictions[start : start + self.rates.label_batch]
        began = time.monotonic()
        if not ids:
            return Call(began, "labels", 0.0, 204)
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        labels = {i: zlib.crc32(i.encode()) % 2 for i in ids}
        body = json.dumps([{"id": i, "ts": now, "label": v} for i, v in labels.items()])
        response = http.post(
            "/api/v1/labels", content=body, headers={"Content-Type": "application/json"}
        )
        ms = (time.monotonic() - began) * 1000
        if response.status_code == 200:
            with self._lock:
                self.labels.update(labels)
        return Call(began, "labels", ms, response.status_code, len(ids))

    def _get_status(self, http: Any, step: int) -> Call:
        began = time.monotonic()
        response = http.get("/api/v1/slos")
        return Call(began, "status", (time.monotonic() - began) * 1000, response.status_code)

    def _get_gate(self, http: Any, step: int) -> Call:
        began = time.monotonic()
        response = http.get("/api/v1/gate")
        return Call(began, "gate", (time.monotonic() - began) * 1000, response.status_code)
