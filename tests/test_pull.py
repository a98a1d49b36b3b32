"""The service's pull mode against a real uvicorn server on 127.0.0.1 and tables in a real
DuckDB file: records and late labels appended between pulls give the same status as
``mlslo evaluate`` on the same tables at the same moment; each pull reads only what is newer
than its watermark less the lateness allowance; a restart goes on from the stored watermark
without counting anything twice; an unreachable source is reported and the server goes on
serving."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Clock, evaluate_store, free_port, serve, shutdown, start_mlslo_serve
from mlslo.api import evaluate_files
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources
from mlslo.server.pull import Puller
from mlslo.server.service import Service
from mlslo.server.store import Store
from mlslo.spec import load_spec, parse_spec
from postgres_server import PASSWORD, write_table

T = datetime(2026, 11, 21, tzinfo=UTC)
LATENESS = timedelta(minutes=30)
SPEC = """
service: pulled
bucket: 5m
slos:
  - name: uptime
    dimension: availability
    objective: {{target: 0.99}}
    window: 1d
  - name: acc
    dimension: accuracy
    sli: {{metric: accuracy}}
    objective: {{target: 0.8}}
    window: 1d
source:
  predictions: duckdb://{db}?table=predictions
  labels: duckdb://{db}?table=labels
  outcomes: duckdb://{db}?table=outcomes
"""


class Log:
    """The source: three tables of one DuckDB file, appended to between pulls."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.rng = np.random.default_rng(16)
        with self._connect() as con:
            con.execute(
                "CREATE TABLE predictions (id VARCHAR, ts TIMESTAMPTZ, status VARCHAR, "
                "prediction BIGINT)"
            )
            con.execute("CREATE TABLE labels (id VARCHAR, ts TIMESTAMPTZ, label BIGINT)")
            con.execute("CREATE TABLE outcomes (ts TIMESTAMPTZ, total BIGINT, ok BIGINT)")

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(str(self.path))
        con.execute("SET TimeZone='UTC'")
        return con

    def predictions(self, start: datetime, minutes: int, per_minute: int = 4) -> list[str]:
        """Predictions over ``minutes`` from ``start``; about 2 % fail."""
        n = minutes * per_minute
        ids = [f"p{self.count + i}" for i in range(n)]
        self.count += n
        rows = [
            (
                ids[i],
                start + timedelta(seconds=60 * i / per_minute),
                "error" if self.rng.random() < 0.02 else "ok",
                int(self.rng.integers(0, 2)),
            )
            for i in range(n)
        ]
        with self._connect() as con:
            con.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?)", rows)
        return ids

    def labels(self, ids: list[str], arrived: datetime, share: float = 0.6) -> None:
        """Labels (right about 85 % of the time) for a share of ``ids``, arriving at
        ``arrived``."""
        with self._connect() as con:
            predicted = dict(
                con.execute(
                    "SELECT id, prediction FROM predictions WHERE id IN (SELECT unnest(?))",
                    [ids],
                ).fetchall()
            )
            rows = [
                (i, arrived, predicted[i] if self.rng.random() < 0.85 else 1 - predicted[i])
                for i in ids
                if self.rng.random() < share
            ]
            con.executemany("INSERT INTO labels VALUES (?, ?, ?)", rows)

    def outcomes(self, start: datetime, minutes: int) -> None:
        with self._connect() as con:
            con.executemany(
                "INSERT INTO outcomes VALUES (?, ?, ?)",
                [(start + timedelta(minutes=m), 100, 99 if m % 7 else 90) for m in range(minutes)],
            )


@pytest.fixture
def source(tmp_path: Path) -> tuple[Log, Path]:
    log = Log(tmp_path / "log.db")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(db=log.path), encoding="utf-8")
    return log, spec


def start(spec_path: Path, db: Path, clock: Clock, sources: Sources | None = None):
    spec = load_spec(spec_path)
    store = Store.open(db, spec, clock=clock)
    service = Service(store, spec_path, clock=clock, auth=False)
    if sources is None:
        assert spec.source is not None
        source = spec.source
        sources = Sources(source.predictions, source.labels, source.outcomes)
    service.puller = Puller(store, sources, clock=clock, lateness=LATENESS)
    server = serve(service)
    return server, service, httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30)


def evaluated(cli, spec: Path, at: datetime, *sources: str, dedupe: bool = True) -> dict:
    """``mlslo evaluate`` on the same tables (ids counted once, as the server does, unless
    ``dedupe`` is false: the source's ids are unique anyway)."""
    once = ["--dedupe"] if dedupe else []
    run = cli("evaluate", "--spec", spec, *sources, "--at", at.isoformat(), *once, "-f", "json")
    assert run.exit_code in (0, 1), run.stderr
    return json.loads(run.stdout)


def without_records(document: dict) -> dict:
    """An evaluation less whether (and how) repeated ids were counted."""
    return {k: v for k, v in document.items() if k != "records"}


def samples(client: httpx.Client) -> dict[tuple[str, tuple], float]:
    """The server's /metrics, parsed: (name, labels) -> value."""
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def served(client: httpx.Client, at: datetime) -> dict:
    response = client.get("/api/v1/slos", params={"at": at.isoformat()})
    assert response.status_code == 200, response.text
    return response.json()


def test_pulls_read_only_what_is_new_and_equal_evaluate(cli, source, tmp_path):
    log, spec = source
    clock = Clock(T)
    first = log.predictions(T - timedelta(hours=6), 5 * 60)  # up to T - 1h
    log.labels(first[: len(first) // 2], T - timedelta(hours=2))
    log.outcomes(T - timedelta(hours=6), 6 * 60)
    server, service, client = start(spec, tmp_path / "store.duckdb", clock)
    try:
        assert client.get("/api/v1/pull").json()["pulls"] == 0
        status = client.post("/api/v1/pull").json()
        assert status["last_error"] is None, status
        assert status["rows_read"]["predictions"] == len(first)
        assert status["accepted"]["predictions"] == len(first)
        assert status["watermark"] == "2026-11-21T00:00:00Z"
        assert served(client, T) == evaluated(cli, spec, T)

        # An hour later: new predictions, some of them late (their ts up to 20 minutes
        # before the watermark), late labels for predictions 5 hours old, more outcomes.
        late = log.predictions(T - timedelta(minutes=20), 20)
        new = log.predictions(T, 60)
        log.labels(first[len(first) // 2 :] + late, T + timedelta(minutes=40))
        log.outcomes(T, 60)
        clock.advance(timedelta(hours=1))
        status = client.post("/api/v1/pull").json()
        assert status["last_error"] is None, status
        assert status["read_from"] == "2026-11-20T23:30:00Z"
        assert status["rows_read"]["predictions"] == len(late) + len(new)
        assert status["accepted"]["predictions"] == len(late) + len(new)
        assert status["rows_read"]["outcomes"] == 90  # 30 minutes again, 60 new
        assert status["accepted"]["outcomes"] == 60
        at = T + timedelta(hours=1)
        direct = evaluated(cli, spec, at)
        assert served(client, at) == direct
        acc = next(s for s in direct["slos"] if s["name"] == "acc")
        assert acc["sli"]["n"] > len(first) // 2  # the late labels count
        assert served(client, at)["records"]["repeated_ids"] == 0
        metrics = samples(client)
        assert metrics[("mlslo_pull_runs_total", (("outcome", "ok"),))] == 2
        expected = len(first) + len(late) + len(new)
        assert metrics[("mlslo_pull_rows_read_total", (("kind", "predictions"),))] == expected
        assert metrics[("mlslo_pull_watermark_timestamp_seconds", ())] == at.timestamp()
    finally:
        client.close()
        shutdown(server, service)

    # A restart reads from the stored watermark less the lateness, and counts nothing twice.
    server, service, client = start(spec, tmp_path / "store.duckdb", clock)
    try:
        assert client.get("/api/v1/pull").json()["watermark"] == "2026-11-21T01:00:00Z"
        status = client.post("/api/v1/pull").json()
        assert status["last_error"] is None, status
        assert status["read_from"] == "2026-11-21T00:30:00Z"
        assert status["rows_read"]["predictions"] == 30 * 4
        assert status["accepted"] == {"predictions": 0, "labels": 0, "outcomes": 0}
        assert served(client, at) == direct
    finally:
        client.close()
        shutdown(server, service)


def test_an_unreachable_source_is_reported_and_the_server_goes_on(source, tmp_path):
    log, spec = source
    log.predictions(T - timedelta(hours=2), 60)
    clock = Clock(T)
    missing = Sources(f"duckdb://{tmp_path / 'gone.db'}?table=predictions")
    server, service, client = start(spec, tmp_path / "store.duckdb", clock, missing)
    try:
        status = client.post("/api/v1/pull").json()
        assert status["failures"] == 1 and status["watermark"] is None
        assert "gone.db" in status["last_error"] and "no such DuckDB" in status["last_error"]
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["pull"]["last_error"] == status["last_error"]
        metrics = samples(client)
        assert metrics[("mlslo_pull_runs_total", (("outcome", "failed"),))] == 1
        assert metrics[("mlslo_pull_failing", ())] == 1
        sent = client.post(
            "/api/v1/predictions",
            json=[{"id": "x1", "ts": (T - timedelta(minutes=5)).isoformat(), "status": "ok"}],
        )
        assert sent.status_code == 200 and sent.json()["accepted"] == 1
        uptime = served(client, T)["slos"][0]
        assert uptime["sli"]["n"] == 1
        # The source comes back: the next pull reads it and clears the error.
        service.puller = Puller(
            service.store,
            Sources(f"duckdb://{log.path}?table=predictions"),
            clock=clock,
            lateness=LATENESS,
        )
        status = client.post("/api/v1/pull").json()
        assert status["last_error"] is None and status["rows_read"]["predictions"] == 240
        assert served(client, T)["slos"][0]["sli"]["n"] == 241
    finally:
        client.close()
        shutdown(server, service)


def test_without_pull_mode_the_pull_routes_say_so(live_server):
    live = live_server(
        "service: plain\nslos:\n  - {name: up, dimension: availability, objective: {target: 0.9}}\n"
    )
    with live.client() as client:
        response = client.get("/api/v1/pull")
        assert response.status_code == 404
        assert "--pull" in response.json()["errors"][0]["message"]
        assert "pull" not in client.get("/readyz").json()


def test_mlslo_serve_pull_pulls_on_its_schedule(source, tmp_path):
    """The command: ``mlslo serve --pull --pull-every 1s`` pulls at once and then again."""
    log, spec = source
    now = datetime.now(UTC).replace(microsecond=0)
    log.predictions(now - timedelta(hours=1), 30)
    port = free_port()
    options = ["--pull", "--pull-every", "1s", "--lateness", "10m"]
    process = start_mlslo_serve(spec, tmp_path / "s.duckdb", port, *options)
    try:
        deadline = time.monotonic() + 60
        status: dict = {}
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/api/v1/pull", timeout=2).json()
            except httpx.HTTPError:
                status = {}
            if status.get("pulls", 0) >= 2:
                break
            time.sleep(0.1)
        assert status.get("pulls", 0) >= 2, status
        assert status["rows_read_total"]["predictions"] == 120
        assert status["last_error"] is None
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_refuses_records_without_pull(cli, source):
    _, spec = source
    run = cli("serve", "--spec", spec, "--data", "x.parquet")
    assert run.exit_code == 2 and "--pull" in run.stderr


def _predictions(rng: np.random.Generator, start: datetime, n: int, first: int) -> list[dict]:
    """``n`` predictions 30 s apart from ``start``, ids from ``first``."""
    return [
        {
            "id": f"p{first + i}",
            "ts": start + timedelta(seconds=30 * i),
            "status": "error" if rng.random() < 0.03 else "ok",
            "prediction": int(rng.integers(0, 2)),
        }
        for i in range(n)
    ]


def _labels(
    rng: np.random.Generator, rows: list[dict], arrived: datetime, share: float
) -> list[dict]:
    """Labels for about ``share`` of ``rows``, arriving at ``arrived``, a fifth of them wrong."""
    return [
        {"id": r["id"], "ts": arrived, "label": r["prediction"] ^ int(rng.random() < 0.2)}
        for r in rows
        if rng.random() < share
    ]


@pytest.mark.integration
@pytest.mark.system("postgresql")
@pytest.mark.parametrize("zoned", [True, False], ids=["timestamptz", "timestamp"])
def test_pulling_from_postgres_equals_evaluate(cli, postgres, tmp_path, monkeypatch, zoned):
    monkeypatch.setenv("MLSLO_PG_PASSWORD", PASSWORD)
    suffix = "tz" if zoned else "naive"
    urls = {role: postgres.url(f"pull_{role}_{suffix}") for role in ("predictions", "labels")}
    spec = tmp_path / "spec.yaml"
    spec.write_text("\n".join(SPEC.format(db="x").splitlines()[:13]) + "\n", encoding="utf-8")
    rng = np.random.default_rng(7)

    predictions = partial(_predictions, rng)
    labels = partial(_labels, rng, share=0.6)

    def write(rows: dict[str, list[dict]]) -> None:
        for role, records in rows.items():
            write_table(
                postgres, f"pull_{role}_{suffix}", pa.Table.from_pylist(records), zoned=zoned
            )

    first = predictions(T - timedelta(hours=5), 480, 0)  # up to T - 1h
    known = {"predictions": first, "labels": labels(first[:240], T - timedelta(hours=2))}
    write(known)
    clock = Clock(T)
    sources = Sources(urls["predictions"], urls["labels"])
    given = ["--data", urls["predictions"], "--labels", urls["labels"]]
    server, service, client = start(spec, tmp_path / "store.duckdb", clock, sources)
    try:
        status = client.post("/api/v1/pull").json()
        assert status["last_error"] is None, status
        assert status["rows_read"]["predictions"] == 480
        assert without_records(served(client, T)) == without_records(
            evaluated(cli, spec, T, *given, dedupe=False)
        )
        late = predictions(T - timedelta(minutes=20), 40, 480)
        new = predictions(T, 120, 520)
        known["predictions"] = first + late + new
        known["labels"] += labels(first[240:] + late, T + timedelta(minutes=40))
        write(known)
        clock.advance(timedelta(hours=1))
        status = client.post("/api/v1/pull").json()
        assert status["last_error"] is None, status
        assert status["rows_read"]["predictions"] == 160
        at = T + timedelta(hours=1)
        document = served(client, at)
        assert document["records"] == {"deduplicated": True, "repeated_ids": 0}
        assert without_records(document) == without_records(
            evaluated(cli, spec, at, *given, dedupe=False)
        )
    finally:
        client.close()
        shutdown(server, service)


@pytest.mark.parametrize("kind", ["parquet", "delta", "iceberg"])
def test_pulling_from_files_and_tables_equals_evaluating_them(tmp_path, kind):
    """A folder of Parquet files that grows by a file, a Delta table that grows by a commit
    and an Iceberg table that grows by a snapshot: after each pull the store's evaluation is
    that of the records."""
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text("\n".join(SPEC.format(db="x").splitlines()[:13]) + "\n")
    spec = load_spec(spec_path)
    rng = np.random.default_rng(3)
    written = {"predictions": 0, "labels": 0}

    catalog_file = tmp_path / "catalog.db"
    catalog = None
    if kind == "iceberg":
        from pyiceberg.catalog.sql import SqlCatalog

        catalog = SqlCatalog(
            "pull", uri=f"sqlite:///{catalog_file}", warehouse=f"file://{tmp_path / 'warehouse'}"
        )
        catalog.create_namespace("ml")

    def append(role: str, rows: list[dict]) -> None:
        table = pa.Table.from_pylist(rows)
        if catalog is not None:
            if not written[role]:
                catalog.create_table(f"ml.{role}", schema=table.schema)
            catalog.load_table(f"ml.{role}").append(table)
        elif kind == "delta":
            from deltalake import write_deltalake

            write_deltalake(str(tmp_path / role), table, mode="append")
        else:
            (tmp_path / role).mkdir(exist_ok=True)
            pq.write_table(table, tmp_path / role / f"part-{written[role]}.parquet")
        written[role] += 1

    predictions = partial(_predictions, rng)
    labels = partial(_labels, rng, share=0.7)

    if kind == "delta":
        sources = Sources(f"delta://{tmp_path / 'predictions'}", f"delta://{tmp_path / 'labels'}")
    elif kind == "iceberg":
        sources = Sources(
            f"iceberg://{catalog_file}?table=ml.predictions",
            f"iceberg://{catalog_file}?table=ml.labels",
        )
    else:
        sources = Sources(str(tmp_path / "predictions"), str(tmp_path / "labels"))
    first = predictions(T - timedelta(hours=3), 240, 0)
    append("predictions", first)
    append("labels", labels(first[:120], T - timedelta(minutes=30)))
    clock = Clock(T)
    store = Store.open(tmp_path / "store.duckdb", spec, clock=clock)
    try:
        puller = Puller(store, sources, clock=clock, lateness=LATENESS)

        def same_as_records(at: datetime) -> None:
            records = replace(sources, dedupe=True)
            direct = evaluation_json(evaluate_files(spec, records, at))
            assert evaluation_json(evaluate_store(store, at)) == direct

        status = puller.pull()
        assert status.last_error is None and status.rows_read["predictions"] == 240
        same_as_records(T)
        late, new = predictions(T - timedelta(minutes=10), 20, 240), predictions(T, 60, 260)
        append("predictions", late + new)
        append("labels", labels(first[120:] + late, T + timedelta(minutes=20)))
        clock.advance(timedelta(minutes=30))
        status = puller.pull()
        assert status.last_error is None, status.last_error
        assert status.rows_read["predictions"] == len(late) + len(new)
        same_as_records(T + timedelta(minutes=30))
    finally:
        store.close()


def test_a_bad_record_in_the_source_is_located_and_read_again_once_fixed(tmp_path):
    """A pull that meets a record the HTTP ingest would refuse reports the source, the row
    and the field, keeps nothing of that kind and leaves the watermark; fixed, it goes in."""
    import duckdb

    path = tmp_path / "log.db"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE predictions (id VARCHAR, ts TIMESTAMPTZ, status VARCHAR)")
        con.executemany(
            "INSERT INTO predictions VALUES (?, ?, ?)",
            [("a", T - timedelta(minutes=5), "ok"), ("b", T - timedelta(minutes=4), "weird")],
        )
    spec = parse_spec(
        "service: p\nslos:\n  - {name: up, dimension: availability, "
        "objective: {target: 0.99}, window: 1d}\n"
    )
    store = Store.open(tmp_path / "store.duckdb", spec, clock=lambda: T)
    try:
        puller = Puller(store, Sources(f"duckdb://{path}?table=predictions"), clock=lambda: T)
        status = puller.pull()
        assert status.last_error is not None
        assert status.last_error.startswith(f"duckdb://{path}?table=predictions: ")
        assert "row 2, field 'status': 'weird' is not a status" in status.last_error
        assert store.counts()["predictions"] == 0
        assert puller.stored_watermark() is None
        with duckdb.connect(str(path)) as con:
            con.execute("UPDATE predictions SET status = 'error' WHERE id = 'b'")
        status = puller.pull()
        assert status.last_error is None and status.failures == 1
        assert store.counts()["predictions"] == 2
    finally:
        store.close()
