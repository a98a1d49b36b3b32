"""The SDK against a real server: batching, pandas/Arrow input, an on-disk spool that keeps
records while the server is down, exactly-once delivery after restarts, the ASGI middleware."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pytest

from conftest import Clock, ThreadedServer, evaluate_store, free_port, serve, shutdown
from mlslo.client import Client
from mlslo.integrations.asgi import MlsloMiddleware
from mlslo.server import Service
from mlslo.server.store import Store
from mlslo.spec import parse_spec

NOW = datetime(2026, 11, 21, tzinfo=UTC)
SPEC = parse_spec("""
service: sdk
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.99}, window: 7d}
  - name: latency
    dimension: latency
    sli: {latency_threshold: 250ms}
    objective: {target: 0.9}
    window: 7d
  - {name: acc, dimension: accuracy, sli: {metric: accuracy}, objective: {target: 0.8},
     window: 7d}
""")


class Server:
    """The service on a fixed loopback port that can be stopped and started again."""

    def __init__(self, path: Path, port: int) -> None:
        self.path = path
        self.port = port
        self.clock = Clock(NOW)
        self.running: tuple[ThreadedServer, Service] | None = None

    def start(self) -> None:
        store = Store.open(self.path, SPEC, clock=self.clock)
        service = Service(store, None, clock=self.clock, auth=False)
        self.running = (serve(service, self.port), service)

    def stop(self) -> None:
        assert self.running is not None
        shutdown(*self.running)
        self.running = None

    @property
    def store(self) -> Store:
        assert self.running is not None
        return self.running[1].store


@pytest.fixture
def server(tmp_path):
    running = Server(tmp_path / "sdk.duckdb", free_port())
    running.start()
    yield running
    if running.running is not None:
        running.stop()


def _records(start: int, n: int) -> list[dict]:
    return [
        {
            "id": f"p{i}",
            "ts": NOW - timedelta(minutes=30) + timedelta(seconds=i),
            "status": "ok" if i % 10 else "error",
            "latency_ms": 100.0 + i % 300,
            "prediction": i % 2,
            "label": i % 2 if i % 3 else 1 - i % 2,
        }
        for i in range(start, start + n)
    ]


def test_dicts_pandas_and_arrow_all_arrive(server, tmp_path):
    url = f"http://127.0.0.1:{server.port}"
    with Client(url, spool_dir=tmp_path / "spool", batch_size=100, flush_interval=0.2) as client:
        client.log_predictions(_records(0, 1)[0])
        client.log_predictions(_records(1, 149))
        client.log_predictions(pd.DataFrame(_records(150, 100)))
        client.log_predictions(pa.Table.from_pylist(_records(250, 50)))
        client.log_outcomes({"ts": NOW - timedelta(minutes=5), "total": 1000, "ok": 1000})
        assert client.flush(timeout=30)
        assert client.accepted == 301
    assert server.store.counts()["predictions"] == 300
    assert server.store.counts()["outcomes"] == 1
    assert not list((tmp_path / "spool").glob("*.arrow"))


def test_spool_keeps_records_while_the_server_is_down(server, tmp_path):
    url = f"http://127.0.0.1:{server.port}"
    spool = tmp_path / "spool"
    client = Client(
        url,
        spool_dir=spool,
        batch_size=50,
        flush_interval=0.1,
        max_backoff=0.5,
        flush_at_exit=False,
    )
    client.log_predictions(_records(0, 100))
    assert client.flush(timeout=30)
    server.stop()
    client.log_predictions(_records(100, 200))
    assert client.flush(timeout=1.5) is False
    assert len(client.spooled()) == 4
    assert client.last_error is not None and "cannot reach" in client.last_error
    server.start()
    assert client.flush(timeout=30)
    assert client.close(timeout=5)
    assert server.store.counts()["predictions"] == 300
    with server.store.db.locked() as con:
        assert con.execute("SELECT count(DISTINCT id) FROM predictions").fetchone()[0] == 300


def test_a_new_process_drains_what_an_old_one_spooled(server, tmp_path):
    url = f"http://127.0.0.1:{server.port}"
    spool = tmp_path / "spool"
    server.stop()
    first = Client(
        url,
        spool_dir=spool,
        batch_size=40,
        flush_interval=0.05,
        max_backoff=0.2,
        flush_at_exit=False,
    )
    first.log_predictions(_records(0, 120))
    deadline = time.monotonic() + 10
    while len(first.spooled()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.close(timeout=0.5)
    assert len(list(spool.glob("*.arrow"))) == 3
    server.start()
    second = Client(url, spool_dir=spool, flush_interval=0.05, flush_at_exit=False)
    assert second.flush(timeout=30)
    second.close()
    assert server.store.counts()["predictions"] == 120


def test_a_lost_acknowledgement_is_not_counted_twice(server, tmp_path):
    url = f"http://127.0.0.1:{server.port}"
    outcome = {"ts": NOW - timedelta(minutes=1), "total": 500, "ok": 495}
    calls = {"n": 0}
    real = httpx.HTTPTransport()

    class DropFirstAck(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = real.handle_request(request)
            calls["n"] += 1
            if calls["n"] == 1:
                response.read()
                raise httpx.ReadError("connection lost after the server committed")
            return response

    client = Client(
        url,
        spool_dir=tmp_path / "spool",
        flush_interval=0.05,
        max_backoff=0.2,
        transport=DropFirstAck(),
        flush_at_exit=False,
    )
    client.log_outcomes(outcome)
    assert client.flush(timeout=30)
    client.close()
    assert calls["n"] == 2
    assert server.store.counts()["outcomes"] == 1


def test_rejected_batches_are_set_aside_not_retried(server, tmp_path):
    url = f"http://127.0.0.1:{server.port}"
    client = Client(url, spool_dir=tmp_path / "spool", flush_interval=0.05, flush_at_exit=False)
    client.log_predictions({"id": "x", "ts": NOW, "status": "maybe"})
    assert client.flush(timeout=30)
    assert client.close() is False
    assert client.rejected == 1
    assert "status" in (client.last_error or "")
    assert len(list((tmp_path / "spool" / "rejected").glob("*.arrow"))) == 1
    assert server.store.counts()["predictions"] == 0


def test_a_field_logged_with_two_types_sets_aside_only_the_odd_records(server, tmp_path):
    """A number in one call and, in the next, a word among numbers: the calls cannot form one
    batch; each is sent alone, and the server refuses only the one with the word, naming its
    row."""
    url = f"http://127.0.0.1:{server.port}"
    client = Client(url, spool_dir=tmp_path / "spool", flush_interval=0.05, flush_at_exit=False)
    client.log_predictions(_records(0, 3))
    odd = _records(3, 3)
    odd[1]["latency_ms"] = "fast"
    client.log_predictions(odd)
    assert client.flush(timeout=30)
    client.close()
    assert (client.accepted, client.rejected) == (3, 1)
    assert "row 2, field 'latency_ms': 'fast' is not a number" in (client.last_error or "")
    assert server.store.counts()["predictions"] == 3


def test_asgi_middleware_logs_status_and_latency(server, tmp_path):
    from fastapi import FastAPI

    model = FastAPI()

    @model.post("/score")
    async def score() -> dict[str, float]:
        return {"score": 0.3}

    @model.post("/broken")
    async def broken() -> dict[str, float]:
        raise RuntimeError("model crashed")

    client = Client(
        f"http://127.0.0.1:{server.port}",
        spool_dir=tmp_path / "spool",
        flush_interval=0.05,
        flush_at_exit=False,
    )
    clock = Clock(NOW - timedelta(minutes=2))
    model.add_middleware(
        MlsloMiddleware, client=client, model="fraud", model_version="v3", clock=clock
    )

    async def traffic() -> None:
        transport = httpx.ASGITransport(app=model, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://model") as http:
            for _ in range(9):
                assert (await http.post("/score")).status_code == 200
            assert (await http.post("/broken")).status_code == 500
            assert (await http.get("/healthz")).status_code == 404

    asyncio.run(traffic())
    assert client.flush(timeout=30)
    client.close()
    with server.store.db.locked() as con:
        rows = con.execute(
            "SELECT status, model, model_version, latency_ms FROM predictions"
        ).fetchall()
    assert len(rows) == 10
    assert sorted(r[0] for r in rows) == ["error"] + ["ok"] * 9
    assert {(r[1], r[2]) for r in rows} == {("fraud", "v3")}
    assert all(r[3] >= 0 for r in rows)
    uptime = evaluate_store(server.store, NOW).slos[0]
    assert uptime.measurement.value == pytest.approx(0.9)
