"""Acknowledged data survives a crash: SIGKILL the server while a client streams batches."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import duckdb
import httpx
import pyarrow as pa
import pytest

from conftest import free_port, start_mlslo_serve
from mlslo.client import arrow_bytes

pytestmark = pytest.mark.integration
SPEC = """service: crash
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.99}}
"""


def _batch(start: int, size: int) -> pa.Table:
    base = datetime.now(UTC) - timedelta(hours=1)
    return pa.table(
        {
            "id": [f"req-{i}" for i in range(start, start + size)],
            "ts": pa.array(
                [base + timedelta(milliseconds=i) for i in range(start, start + size)],
                pa.timestamp("us", tz="UTC"),
            ),
            "status": ["ok" if i % 50 else "error" for i in range(start, start + size)],
        }
    )


def test_sigkill_during_ingest_loses_no_acknowledged_record(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    db = tmp_path / "crash.duckdb"
    port = free_port()
    server = start_mlslo_serve(spec, db, port)
    acknowledged: list[tuple[int, int]] = []
    stop = threading.Event()

    def stream() -> None:
        sent = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            while not stop.is_set():
                size = 500
                try:
                    response = http.post(
                        "/api/v1/predictions",
                        content=arrow_bytes(_batch(sent, size)),
                        headers={"Content-Type": "application/vnd.apache.arrow.stream"},
                    )
                except httpx.HTTPError:
                    return
                if response.status_code == 200:
                    acknowledged.append((sent, size))
                sent += size

    sender = threading.Thread(target=stream)
    sender.start()
    while len(acknowledged) < 20:
        time.sleep(0.01)
    os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=30)
    stop.set()
    sender.join(timeout=30)
    assert server.returncode == -signal.SIGKILL

    restarted = start_mlslo_serve(spec, db, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            uptime = http.get("/api/v1/slos").json()["slos"][0]
            resend = http.post(
                "/api/v1/predictions",
                content=arrow_bytes(_batch(0, 500)),
                headers={"Content-Type": "application/vnd.apache.arrow.stream"},
            )
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
    assert resend.json() == {"accepted": 0, "duplicates": 500, "folded": 0}
    con = duckdb.connect(str(db), read_only=True)
    try:
        stored, distinct = con.execute(
            "SELECT count(*), count(DISTINCT id) FROM predictions"
        ).fetchone()
        ids = {row[0] for row in con.execute("SELECT id FROM predictions").fetchall()}
    finally:
        con.close()
    expected = {f"req-{i}" for start, size in acknowledged for i in range(start, start + size)}
    assert expected <= ids
    assert stored == distinct
    assert uptime["sli"]["valid"] == stored
    assert stored - len(expected) <= 500


def test_sighup_reloads_the_spec_and_rebuilds_from_raw_records(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    db = tmp_path / "reload.duckdb"
    port = free_port()
    server = start_mlslo_serve(spec, db, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            accepted = http.post(
                "/api/v1/predictions",
                content=arrow_bytes(_batch(0, 1000)),
                headers={"Content-Type": "application/vnd.apache.arrow.stream"},
            ).json()["accepted"]
            spec.write_text(
                SPEC + "  - {name: strict, dimension: availability, objective: {target: 0.999}}\n"
            )
            server.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            names: list[str] = []
            while time.monotonic() < deadline:
                slos = http.get("/api/v1/slos").json()["slos"]
                names = [s["name"] for s in slos]
                if "strict" in names:
                    break
                time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert accepted == 1000
    assert names == ["uptime", "strict"]
    strict = slos[1]
    assert (strict["sli"]["good"], strict["sli"]["valid"]) == (980, 1000)
    assert server.returncode == 0
