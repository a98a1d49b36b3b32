"""``Client(durable=True)``: every ``log_*()`` call is on disk before it returns, so neither
a SIGKILL of the model process nor one of the server loses or doubles a logged record."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from conftest import free_port, start_mlslo_serve
from mlslo.client import Client, arrow_bytes
from mlslo.client.spool import Spool, SpoolError, key_of, kind_of

NOW = datetime(2026, 11, 21, tzinfo=UTC)
SPEC = """
service: durable
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.99}, window: 7d}
"""
CHILD = Path(__file__).with_name("sdk_child.py")


def _rows(start: int, n: int) -> list[dict]:
    return [{"id": f"r{i}", "ts": NOW, "status": "ok"} for i in range(start, start + n)]


def _read(path: Path) -> pa.Table:
    with path.open("rb") as handle:
        return ipc.open_stream(handle).read_all()


def _unreachable(tmp_path: Path, **options: object) -> Client:
    """A client whose server is not there: whatever it logs stays on this machine."""
    settings: dict = {"flush_interval": 3600, "flush_at_exit": False, "max_backoff": 3600}
    settings.update(options)
    return Client(f"http://127.0.0.1:{free_port()}", spool_dir=tmp_path / "spool", **settings)


def test_a_durable_call_is_on_disk_when_it_returns(tmp_path):
    client = _unreachable(tmp_path, durable=True)
    client.log_predictions(_rows(0, 3))
    client.log_predictions(_rows(3, 2))
    (segment,) = (tmp_path / "spool").glob("*.open")
    assert _read(segment)["id"].to_pylist() == ["r0", "r1", "r2", "r3", "r4"]
    assert client.pending == 1
    client.close(timeout=0)
    (sealed,) = (tmp_path / "spool").glob("*.arrow")
    assert sealed.stem == segment.stem
    assert _read(sealed).num_rows == 5


def test_without_durable_the_last_interval_is_only_in_memory(tmp_path):
    client = _unreachable(tmp_path)
    client.log_predictions(_rows(0, 3))
    assert list((tmp_path / "spool").iterdir()) == [tmp_path / "spool" / "rejected"]
    assert client.pending == 1
    client.close(timeout=0)
    assert len(client.spooled()) == 1, "close spools what is left"


def test_durable_batches_are_sealed_by_size_shape_kind_and_age(tmp_path):
    client = _unreachable(tmp_path, durable=True, batch_size=4)
    client.log_predictions(_rows(0, 3))
    client.log_predictions(_rows(3, 2))
    assert [_read(p).num_rows for p in client.spooled()] == [5]
    client.log_predictions([{"id": "x", "ts": NOW, "status": "ok", "latency_ms": 3.0}])
    client.log_predictions([{"id": "y", "ts": NOW, "status": "ok"}])
    client.log_outcomes({"ts": NOW, "total": 4, "ok": 4})
    assert [_read(p).num_rows for p in client.spooled()] == [5, 1]
    assert len(list((tmp_path / "spool").glob("*.open"))) == 2
    assert client.flush(timeout=0) is False
    batches = client.spooled()
    assert [(kind_of(p), _read(p).num_rows) for p in batches] == [
        ("predictions", 5),
        ("predictions", 1),
        ("predictions", 1),
        ("outcomes", 1),
    ]
    assert len({key_of(p) for p in batches}) == 4
    client.close(timeout=0)

    aging = _unreachable(tmp_path / "aging", durable=True, flush_interval=0.1)
    aging.log_labels({"id": "r0", "ts": NOW, "label": 1})
    deadline = time.monotonic() + 20
    while not aging.spooled() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [kind_of(p) for p in aging.spooled()] == ["labels"]
    aging.close(timeout=0)


def test_a_spool_that_cannot_be_written(tmp_path):
    """A durable call raises (its records were not logged); a buffered client keeps the
    records in memory and spools them once the folder is back."""
    durable = _unreachable(tmp_path / "a", durable=True)
    buffered = _unreachable(tmp_path / "b", flush_interval=0.05)
    for client in (durable, buffered):
        client.spool.rename(client.spool.with_name("away"))
        client.spool.write_text("not a folder")
    with pytest.raises(SpoolError, match=f"^{durable.spool}: cannot write the spool"):
        durable.log_predictions(_rows(0, 2))
    buffered.log_predictions(_rows(0, 2))
    deadline = time.monotonic() + 20
    while buffered.last_error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert buffered.last_error is not None and "cannot write the spool" in buffered.last_error
    assert buffered.pending == 1
    buffered.spool.unlink()
    buffered.spool.with_name("away").rename(buffered.spool)
    while not buffered.spooled() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [_read(p).num_rows for p in buffered.spooled()] == [2]
    buffered.close(timeout=0)
    durable.spool.unlink()
    durable.spool.with_name("away").rename(durable.spool)
    durable.log_predictions(_rows(2, 1))
    durable.close(timeout=0)
    assert [_read(p)["id"].to_pylist() for p in durable.spooled()] == [["r2"]]


def test_a_dead_writers_segment_is_sealed_with_its_complete_calls(tmp_path):
    folder = tmp_path / "spool"
    table = pa.table({"id": ["a", "b"], "ts": pa.array([NOW, NOW]), "status": ["ok", "ok"]})
    live = Spool(folder).segment("predictions", table.schema)
    live.append(table)
    live.append(table)
    two_calls = live.path.read_bytes()
    live.append(table)
    third_cut_short = live.path.read_bytes()[len(two_calls) : len(two_calls) + 40]
    name = f"{'1' * 20}-99999-000001-predictions-{'f' * 32}"
    (folder / f"{name}.open").write_bytes(two_calls + third_cut_short)

    spool = Spool(folder)
    assert spool.recover() == 1, "only the unlocked segment: its writer is gone"
    (sealed,) = folder.glob(f"{name}.arrow")
    assert _read(sealed)["id"].to_pylist() == ["a", "b", "a", "b"]
    assert key_of(sealed) == "f" * 32
    assert spool.writing() == [live.path], "a live writer's segment stays"
    assert live.seal() == live.path.with_suffix(".arrow")
    assert _read(live.path.with_suffix(".arrow")).num_rows == 6


def test_a_segment_that_never_got_a_record_is_dropped(tmp_path):
    folder = tmp_path / "spool"
    Spool(folder)
    (folder / f"{'2' * 20}-99999-000001-outcomes-{'e' * 32}.open").write_bytes(b"\xff\xff")
    assert Spool(folder).recover() == 1
    assert list(folder.glob("*.open")) == [] and list(folder.glob("*.arrow")) == []


def test_a_new_client_delivers_a_segment_left_open_by_a_killed_process(live_server, tmp_path):
    live = live_server(SPEC, now=NOW)
    folder = tmp_path / "spool"
    folder.mkdir()
    segment = folder / f"{'3' * 20}-99999-000001-predictions-{'d' * 32}.open"
    segment.write_bytes(arrow_bytes(pa.Table.from_pylist(_rows(0, 7))))
    client = Client(live.url, live.token("ingest"), spool_dir=folder, flush_at_exit=False)
    assert client.flush(timeout=30)
    assert client.close()
    assert live.service.store.counts()["predictions"] == 7
    assert list(folder.glob("*.open")) == []


@pytest.mark.parametrize("durable", [False, True])
def test_many_small_calls_go_out_as_one_record_batch(live_server, tmp_path, durable):
    """One call is one record batch on disk; the server reads one batch of 50 rows several
    times faster than 50 batches of one, so each batch is sent as one."""
    live = live_server(SPEC, now=NOW)
    bodies: list[bytes] = []
    real = httpx.HTTPTransport()

    class Keep(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            bodies.append(request.read())
            return real.handle_request(request)

    client = Client(
        live.url,
        live.token("ingest"),
        spool_dir=tmp_path / "spool",
        durable=durable,
        flush_at_exit=False,
        transport=Keep(),
    )
    for i in range(50):
        client.log_predictions(_rows(i, 1))
    assert client.flush(timeout=30) and client.close()
    (body,) = bodies
    sent = ipc.open_stream(body).read_all()
    assert sent["id"].to_pylist() == [f"r{i}" for i in range(50)]
    assert sent["id"].num_chunks == 1
    assert live.service.store.counts()["predictions"] == 50


# --- SIGKILL ------------------------------------------------------------------------------


def _child(url: str, token: str, spool: Path, calls: int, start: datetime) -> subprocess.Popen[str]:
    command = [sys.executable, str(CHILD), url, token, str(spool), str(calls), start.isoformat()]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=CHILD.parent)


def _lines(child: subprocess.Popen[str], until: int | None = None) -> list[str]:
    """Lines the child printed (all of them, or the first ``until``)."""
    assert child.stdout is not None
    out: list[str] = []
    while until is None or len(out) < until:
        line = child.stdout.readline()
        if not line:
            break
        if line.endswith("\n"):
            out.append(line.strip())
    return out


def _returned(lines: list[str]) -> tuple[set[int], set[int]]:
    """The calls whose log_predictions / log_outcomes returned, from the child's output."""
    predictions = {int(line[2:]) for line in lines if line.startswith("p ")}
    outcomes = {int(line[2:]) for line in lines if line.startswith("o ")}
    return predictions, outcomes


def _stored(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[int], int]:
    ids = [r[0] for r in con.execute("SELECT id FROM predictions").fetchall()]
    totals = [r[0] for r in con.execute("SELECT total FROM outcomes").fetchall()]
    repeated = con.execute("SELECT coalesce(sum(count), 0) FROM repeated_ids").fetchone()
    return ids, totals, int(repeated[0]) if repeated else 0


def _next_call(lines: list[str]) -> tuple[str, int]:
    """The call that may have returned without being printed: the one after the last line."""
    kind, number = lines[-1].split()
    return ("o", int(number)) if kind == "p" else ("p", int(number) + 1)


@pytest.mark.integration
@pytest.mark.parametrize("seed", [11, 29])
def test_sigkill_of_a_durable_client_loses_and_doubles_nothing(live_server, tmp_path, seed):
    live = live_server(SPEC, now=NOW)
    token = live.token("ingest")
    spool = tmp_path / "spool"
    calls = 400
    kill_after = random.Random(seed).randrange(40, calls)
    child = _child(live.url, token, spool, calls, NOW - timedelta(hours=1))
    lines = _lines(child, until=kill_after)
    os.kill(child.pid, signal.SIGKILL)
    lines += _lines(child)
    child.wait(timeout=30)
    child.stdout.close()  # type: ignore[union-attr]
    assert child.returncode == -signal.SIGKILL
    assert "closed" not in " ".join(lines), "the child was killed before it finished"

    client = Client(live.url, token, spool_dir=spool, flush_at_exit=False)
    assert client.flush(timeout=60)
    assert client.close()
    assert list(spool.glob("*.open")) == [] and list(spool.glob("*.arrow")) == []
    with live.service.store.db.locked() as con:
        ids, totals, repeated = _stored(con)
    _check_exactly_once(lines, ids, totals, repeated, seed)


def _check_exactly_once(
    lines: list[str], ids: list[str], totals: list[int], repeated: int, seed: int
) -> None:
    predictions, outcomes = _returned(lines)
    maybe_kind, maybe = _next_call(lines)
    stored_calls = {int(i.split("-")[0][1:]) for i in ids}
    where = f"seed {seed}, {len(lines)} calls returned"
    assert len(ids) == len(set(ids)) and repeated == 0, f"a prediction sent twice ({where})"
    assert len(ids) == 3 * len(stored_calls), where
    assert len(totals) == len(set(totals)), f"an outcome counted twice ({where})"
    assert predictions <= stored_calls, f"lost predictions ({where})"
    assert stored_calls - predictions <= ({maybe} if maybe_kind == "p" else set()), where
    stored_outcomes = {total - 1 for total in totals}
    assert outcomes <= stored_outcomes, f"lost outcomes ({where})"
    assert stored_outcomes - outcomes <= ({maybe} if maybe_kind == "o" else set()), where


@pytest.mark.integration
def test_sigkill_of_the_server_under_a_durable_client_loses_and_doubles_nothing(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.lstrip())
    db = tmp_path / "store.duckdb"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_mlslo_serve(spec, db, port)
    calls = 600
    kill_after = random.Random(5).randrange(100, 2 * calls - 400)
    child = _child(url, "", tmp_path / "spool", calls, datetime.now(UTC) - timedelta(hours=1))
    try:
        lines = _lines(child, until=kill_after)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        lines += _lines(child, until=150)
        server = start_mlslo_serve(spec, db, port)
        lines += _lines(child)
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        child.stdout.close()  # type: ignore[union-attr]
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert lines[-1] == "closed True", lines[-3:]
    con = duckdb.connect(str(db), read_only=True)
    try:
        ids, totals, repeated = _stored(con)
    finally:
        con.close()
    assert sorted(totals) == list(range(1, calls + 1)), "every outcome once"
    assert sorted(ids) == sorted(f"p{i}-{j}" for i in range(calls) for j in range(3))
    assert repeated == 0
