"""A real service for the fuzz tests (one per test module), a fingerprint of everything its
store keeps, and the check that an error answer is the JSON envelope.

``MLSLO_FUZZ_EXAMPLES`` raises the number of examples per test (``make fuzz``); unset, the
run is the bounded one the suite always runs, with a fixed seed.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from conftest import Clock, ThreadedServer, serve, shutdown
from mlslo.server import Service
from mlslo.server.store import Store
from mlslo.server.store.check import TABLES as STORE_TABLES
from mlslo.spec import load_spec

LONG_RUN = "MLSLO_FUZZ_EXAMPLES" in os.environ


def examples(bounded: int) -> int:
    """Examples per test: ``bounded`` in the suite, ``$MLSLO_FUZZ_EXAMPLES`` in a long run."""
    return int(os.environ.get("MLSLO_FUZZ_EXAMPLES", bounded))


NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
SPEC = """
service: fuzzed
attributes: [region]
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.99}}
  - name: latency
    dimension: latency
    sli: {latency_threshold: 250ms}
    objective: {target: 0.9}
  - name: freshness
    dimension: freshness
    sli: {lag_threshold: 15m}
    objective: {target: 0.9}
  - name: accuracy
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.8}
  - name: fair
    dimension: fairness
    sli: {metric: true_positive_rate_difference, attribute: group, positive_label: 1}
    objective: {target: 0.2}
policy:
  hard_stop: [uptime, fair]
  soft_stop: [accuracy]
"""
TABLES = tuple(t for t in STORE_TABLES if t not in ("alert_state", "alert_events", "meta"))
"""Every table of the store a request can write: a rejected request changes none of them.
(The alert loop writes its state on its own schedule, so it is left out.)"""


@dataclass
class Target:
    """The service under fuzz and what was sent to it."""

    url: str
    service: Service
    admin: str
    clock: Clock
    sent: Counter[int] = field(default_factory=Counter)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=60)

    def fingerprint(self) -> list[tuple[str, int, int]]:
        """Rows and a hash of their contents, per table (one query)."""
        db = self.service.store.db
        present = {str(row[0]) for row in db.run("SELECT table_name FROM duckdb_tables()")}
        parts = [
            f"SELECT '{table}', count(*), coalesce(bit_xor(hash(t)), 0) FROM {table} t"
            for table in TABLES
            if table in present
        ]
        rows = db.run(" UNION ALL ".join(parts) + " ORDER BY 1")
        return [(str(name), int(count), int(digest)) for name, count, digest in rows]

    def keep_admin(self) -> None:
        """A fuzzed ``DELETE /api/v1/tokens/{id}`` may revoke the fuzzer's own token: then
        it gets a new one, as an operator would."""
        token = self.service.store.tokens.verify(self.admin)
        if token is None or token.revoked_at is not None:
            self.admin = self.service.store.tokens.create("admin", "fuzz")[1]

    def summary(self) -> str:
        total = sum(self.sent.values())
        by_class = Counter(f"{status // 100}xx" for status in self.sent.elements())
        classes = ", ".join(f"{k}: {v}" for k, v in sorted(by_class.items()))
        return f"{total} requests" + (f" ({classes})" if classes else "")


def report(config: Any, line: str) -> None:
    """A line on the terminal after the module's tests (past output capture), so a long run
    says how many requests it sent."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@contextmanager
def target(folder: Path, seed: list[dict[str, Any]] | None = None) -> Iterator[Target]:
    """The real service on 127.0.0.1 over a DuckDB file in ``folder``, with alerting on and
    ``seed`` predictions stored, stopped on exit."""
    spec_path = folder / "spec.yaml"
    spec_path.write_text(textwrap.dedent(SPEC).lstrip())
    clock = Clock(NOW)
    store = Store.open(folder / "fuzz.duckdb", load_spec(spec_path), clock=clock)
    admin = store.tokens.create("admin", "fuzz")[1]
    service = Service(
        store,
        spec_path,
        clock=clock,
        max_body=1024 * 1024,
        maintenance_interval=timedelta(days=1),
    )
    service.enable_alerts(backoff=0.01)
    server: ThreadedServer = serve(service)
    live = Target(f"http://127.0.0.1:{server.port}", service, admin, clock)
    try:
        if seed:
            with live.client() as http:
                http.post("/api/v1/predictions", json=seed).raise_for_status()
        yield live
    finally:
        shutdown(server, service)


def seed_predictions(count: int = 20) -> list[dict[str, Any]]:
    """Predictions over the last hour with every field the spec reads."""
    rows = []
    for i in range(count):
        ts = NOW - timedelta(minutes=3 * i + 1)
        rows.append(
            {
                "id": f"seed{i}",
                "ts": ts.isoformat(),
                "status": "error" if i % 7 == 0 else "ok",
                "latency_ms": 40 + 30 * i,
                "event_ts": (ts - timedelta(minutes=i)).isoformat(),
                "prediction": i % 2,
                "label": (i // 2) % 2,
                "group": "a" if i % 3 else "b",
                "region": "eu" if i % 2 else "us",
            }
        )
    return rows


def envelope_problem(content_type: str, text: str) -> str | None:
    """Why an error answer is not ``{"errors": [{"row", "field", "message"}, ...]}`` (None
    when it is)."""
    if not content_type.startswith("application/json"):
        return f"content type {content_type!r}"
    try:
        body = json.loads(text)
    except ValueError:
        return "body is not JSON"
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return f"no errors list: {str(body)[:200]}"
    if not body["errors"]:
        return "empty errors list"
    for item in body["errors"]:
        if not isinstance(item, dict) or set(item) != {"row", "field", "message"}:
            return f"error item {item!r}"
        if not isinstance(item["message"], str) or not item["message"]:
            return f"error item without a message: {item!r}"
        if item["row"] is not None and not (isinstance(item["row"], int) and item["row"] >= 1):
            return f"row {item['row']!r}"
        if item["field"] is not None and not isinstance(item["field"], str):
            return f"field {item['field']!r}"
    return None
