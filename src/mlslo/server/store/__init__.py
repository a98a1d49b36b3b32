"""The service's store: one DuckDB file, one writer, rollups kept current at ingest time.

Raw records (predictions, labels, outcome counts) are kept for a retention period; the
statistics of every SLO per bucket and slice are added at ingest time, in the same
transaction as the records they come from, so a status read never scans raw records and a
crash never leaves the two out of step. A label adds to the bucket of its *prediction*: the
delta is the rollup of the prediction with its new label minus the rollup with its old one.
A label that arrives before its prediction is held and applied when the prediction comes.

Writes go through one writer thread that commits concurrent batches together (group commit)
and acknowledges each batch only after its commit returns.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import ibis.expr.datatypes as dt
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlslo.decide.gate import Override
from mlslo.errors import MlsloError, NotFoundError, UsageError
from mlslo.inputs.normalize import CANONICAL_TYPES, NORMALIZERS, OUTCOME_TYPES, attribute_columns
from mlslo.measure.evaluate import Evaluation, evaluate
from mlslo.measure.windows import bucket_floor, scan_range
from mlslo.scan.batch import BatchScan, compile_batch_scan
from mlslo.spec import FairnessSLO, Spec, needs_histogram
from mlslo.stats.rollup import BUCKET, Rollup
from mlslo.stats.timeline import Timeline, build_timeline

Kind = Literal["predictions", "labels", "outcomes"]
Scope = Literal["ingest", "read", "admin"]
SCOPES: tuple[Scope, ...] = ("ingest", "read", "admin")
STORE_VERSION = "1"
DEDUPE_SPAN = timedelta(days=1)


class StoreError(MlsloError):
    """The store cannot be opened or used as asked."""


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    replayed: bool = False


@dataclass(frozen=True)
class Token:
    id: int
    name: str | None
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None

    def allows(self, needed: Scope) -> bool:
        return self.revoked_at is None and (self.scope == needed or self.scope == "admin")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def rollup_fingerprint(spec: Spec, scan: BatchScan) -> str:
    """What the stored statistics depend on (objectives and windows are not part of it, so
    changing a target never needs a rebuild; a version of mlslo that keeps other statistics
    does)."""
    parts = {
        "bucket": spec.bucket.total_seconds(),
        "slices": list(scan.slices),
        "statistics": sorted(scan.stat_columns),
        "slos": [
            {
                "name": s.name,
                "dimension": s.dimension,
                "sli": s.sli.model_dump(mode="json"),
                "filter": s.filter,
            }
            for s in spec.slos
        ],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


class Store:
    """The one writer of a DuckDB file. Open it with :meth:`Store.open`."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        spec: Spec,
        path: str,
        *,
        clock: Callable[[], datetime],
        retention: timedelta,
        label_horizon: timedelta,
    ) -> None:
        self.path = path
        self.con = con
        self.clock = clock
        self.retention = retention
        self.label_horizon = label_horizon
        self._lock = threading.RLock()
        self._cache_lock = threading.Lock()
        self._spec = spec
        self._slices: tuple[str, ...] = ()
        self._scan: BatchScan | None = None
        self._timelines: dict[str, Timeline] = {}
        self._held = True
        self._grid_first = 0
        self._rebuilding = False
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._tokens: list[tuple[str, Token]] | None = None
        self.counters: dict[str, int] = {}

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        spec: Spec,
        *,
        clock: Callable[[], datetime] | None = None,
        retention: timedelta = timedelta(days=35),
        label_horizon: timedelta = timedelta(days=30),
        progress: Callable[[int, int], None] | None = None,
        memory_limit: str = "512MB",
    ) -> Store:
        """Open (or create) the store at ``path`` for ``spec``, rebuilding rollups if the
        spec's statistics changed since the file was last used."""
        location = str(path)
        try:
            con = duckdb.connect(location)
        except duckdb.IOException as exc:
            message = str(exc).splitlines()[0]
            if "lock" in message.lower():
                raise StoreError(
                    f"{location}: the database is in use by another process (a "
                    "running mlslo server?); stop it, or go through its API "
                    "(--url)"
                ) from None
            raise StoreError(f"{location}: cannot open the database: {message}") from None
        con.execute("SET TimeZone='UTC'")
        con.execute("SET checkpoint_threshold='256MB'")
        try:
            con.execute("SET memory_limit = ?", [memory_limit])
        except duckdb.Error as exc:
            raise StoreError(
                f"--memory-limit: '{memory_limit}' is not a size DuckDB accepts "
                f"(e.g. 512MB): {str(exc).splitlines()[0]}"
            ) from None
        store = cls(
            con,
            spec,
            location,
            clock=clock or (lambda: datetime.now(UTC)),
            retention=retention,
            label_horizon=label_horizon,
        )
        store._create_tables()
        store._load_tokens()
        store.configure(spec, progress=progress)
        return store

    @classmethod
    def open_admin(cls, path: str | Path) -> Store:
        """Open a store only for token and override administration (no spec needed)."""
        if not Path(path).exists():
            raise StoreError(
                f"{path}: no such database; start the server once with --db to "
                "create it, or check the path"
            )
        from mlslo.spec import spec_from_dict

        placeholder = spec_from_dict(
            {
                "service": "admin",
                "slos": [{"name": "x", "dimension": "availability", "objective": {"target": 0.5}}],
            }
        )
        try:
            con = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            raise StoreError(
                f"{path}: the database is in use by another process (a running "
                f"mlslo server?): {str(exc).splitlines()[0]}; use the API "
                "(--url) instead"
            ) from None
        con.execute("SET TimeZone='UTC'")
        store = cls(
            con,
            placeholder,
            str(path),
            clock=lambda: datetime.now(UTC),
            retention=timedelta(days=35),
            label_horizon=timedelta(days=30),
        )
        store._create_tables()
        return store

    def _create_tables(self) -> None:
        with self._lock:
            self._run("""
                CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
                CREATE TABLE IF NOT EXISTS predictions (
                    id VARCHAR, ts TIMESTAMP, model VARCHAR, model_version VARCHAR,
                    status VARCHAR, latency_ms DOUBLE, event_ts TIMESTAMP,
                    prediction VARCHAR, score DOUBLE, label VARCHAR, received_at TIMESTAMP);
                CREATE TABLE IF NOT EXISTS labels (
                    id VARCHAR, ts TIMESTAMP, label VARCHAR, received_at TIMESTAMP);
                CREATE TABLE IF NOT EXISTS held_labels (
                    id VARCHAR, ts TIMESTAMP, label VARCHAR, received_at TIMESTAMP);
                CREATE TABLE IF NOT EXISTS outcomes (
                    ts TIMESTAMP, total BIGINT, ok BIGINT, model VARCHAR,
                    model_version VARCHAR, received_at TIMESTAMP);
                CREATE TABLE IF NOT EXISTS histogram_rows (
                    slo VARCHAR, bucket BIGINT, bin BIGINT, count DOUBLE);
                CREATE SEQUENCE IF NOT EXISTS token_ids START 1;
                CREATE TABLE IF NOT EXISTS tokens (
                    id BIGINT PRIMARY KEY, name VARCHAR, scope VARCHAR, hash VARCHAR,
                    created_at TIMESTAMP, revoked_at TIMESTAMP);
                CREATE SEQUENCE IF NOT EXISTS override_ids START 1;
                CREATE TABLE IF NOT EXISTS overrides (
                    id BIGINT PRIMARY KEY, reason VARCHAR, created_at TIMESTAMP,
                    expires_at TIMESTAMP, created_by VARCHAR, revoked_at TIMESTAMP);
                CREATE SEQUENCE IF NOT EXISTS decision_ids START 1;
                CREATE TABLE IF NOT EXISTS gate_decisions (
                    id BIGINT PRIMARY KEY, "at" TIMESTAMP, policy VARCHAR, candidate VARCHAR,
                    decision VARCHAR, caller VARCHAR, override_id BIGINT, document VARCHAR);
                CREATE TABLE IF NOT EXISTS batches (
                    key VARCHAR PRIMARY KEY, kind VARCHAR, received_at TIMESTAMP,
                    accepted BIGINT, duplicates BIGINT);
                CREATE TABLE IF NOT EXISTS alert_state (
                    key VARCHAR PRIMARY KEY, document VARCHAR);
                CREATE SEQUENCE IF NOT EXISTS alert_event_ids START 1;
                CREATE TABLE IF NOT EXISTS alert_events (
                    id BIGINT PRIMARY KEY, "at" TIMESTAMP, key VARCHAR, document VARCHAR);
            """)

    def _run(self, sql: str, params: Sequence[Any] | None = None) -> list[Any]:
        """Execute one statement to completion (DuckDB wants every result consumed)."""
        result = self.con.execute(sql, list(params) if params is not None else None)
        try:
            return result.fetchall()
        except duckdb.InvalidInputException:
            return []

    def _one(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self._run(sql, params)
        return rows[0] if rows else None

    # --- spec, schema and rollups -----------------------------------------------------------

    @property
    def spec(self) -> Spec:
        return self._spec

    @property
    def slices(self) -> tuple[str, ...]:
        return self._slices

    @property
    def ready(self) -> bool:
        return self._scan is not None and not self._rebuilding

    def configure(self, spec: Spec, *, progress: Callable[[int, int], None] | None = None) -> bool:
        """Adopt ``spec``; rebuild the rollups from raw records if their inputs changed.
        Returns whether a rebuild ran."""
        with self._lock:
            attributes = attribute_columns(spec)
            for table in ("predictions", "outcomes"):
                for column in attributes:
                    self._run(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {_q(column)} VARCHAR")
            slices = service_slices(spec)
            schema = {name: _ibis_type(kind) for name, kind in CANONICAL_TYPES.items()}
            schema.update({a: dt.string for a in attributes})
            outcome_schema = {name: _ibis_type(kind) for name, kind in OUTCOME_TYPES.items()}
            outcome_schema.update({a: dt.string for a in attributes})
            scan = compile_batch_scan(spec, schema, list(slices), outcome_schema)
            fingerprint = rollup_fingerprint(spec, scan)
            stored = self._meta("rollup_fingerprint")
            self._spec = spec
            self._slices = scan.slices
            self._scan = scan
            if stored == fingerprint and self._table_exists("rollup_rows"):
                self._load_rollup()
                return False
            self._rebuild(fingerprint, progress)
            return True

    def _meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", [key])
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def _table_exists(self, name: str) -> bool:
        row = self._one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        )
        return bool(row and row[0])

    def _rollup_columns(self) -> list[tuple[str, str]]:
        assert self._scan is not None
        return (
            [(BUCKET, "BIGINT")]
            + [(c, "VARCHAR") for c in self._scan.slices]
            + [(c, "DOUBLE") for c in self._scan.stat_columns]
        )

    def _rebuild(self, fingerprint: str, progress: Callable[[int, int], None] | None) -> None:
        """Recompute every rollup from the raw records, a day at a time."""
        assert self._scan is not None
        self._rebuilding = True
        try:
            self._run("BEGIN TRANSACTION")
            self._run("DROP TABLE IF EXISTS rollup_rows")
            columns = ", ".join(f"{_q(n)} {t}" for n, t in self._rollup_columns())
            self._run(f"CREATE TABLE rollup_rows ({columns})")
            self._run("DELETE FROM histogram_rows")
            bounds = self._one("SELECT min(ts), max(ts) FROM predictions")
            days: list[datetime] = []
            if bounds and bounds[0] is not None:
                day = bounds[0].replace(hour=0, minute=0, second=0, microsecond=0)
                while day <= bounds[1]:
                    days.append(day)
                    day += timedelta(days=1)
            for index, day in enumerate(days):
                batch = self._effective(
                    "SELECT p.* FROM predictions p WHERE p.ts >= ? AND p.ts < ?",
                    [day, day + timedelta(days=1)],
                    from_labels_table=True,
                )
                self._append_rollup(self._scan.run(self.con, batch))
                if progress is not None:
                    progress(index + 1, len(days))
            outcomes = _fetch(self.con, "SELECT * EXCLUDE (received_at) FROM outcomes")
            delta = self._scan.run_outcomes(self.con, outcomes) if outcomes.num_rows else None
            if delta is not None:
                self._append_rollup(delta)
            self._set_meta("rollup_fingerprint", fingerprint)
            self._set_meta("store_version", STORE_VERSION)
            self._run("COMMIT")
        except BaseException:
            self._run("ROLLBACK")
            raise
        finally:
            self._rebuilding = False
        self._load_rollup()

    def _effective(self, query: str, params: Sequence[Any], *, from_labels_table: bool) -> pa.Table:
        """Predictions selected by ``query`` with their effective label (the latest label
        record, else the label the prediction carried)."""
        assert self._scan is not None
        attributes = attribute_columns(self._spec)
        select = ", ".join(
            [
                *(f"p.{_q(c)}" for c in CANONICAL_TYPES if c != "label"),
                "coalesce(l.label, p.label) AS label",
                *(f"p.{_q(a)}" for a in attributes),
            ]
        )
        source = "labels" if from_labels_table else "held_labels"
        sql = f"""
            WITH p AS ({query}),
                 l AS (SELECT id, arg_max(label, ts) AS label FROM {source}
                       WHERE id IN (SELECT id FROM p) GROUP BY id)
            SELECT {select} FROM p LEFT JOIN l ON p.id = l.id"""
        return _fetch(self.con, sql, list(params))

    def _append_rollup(self, delta: Rollup) -> None:
        if delta.table.num_rows:
            self.con.register("mlslo_delta", delta.table)
            self._run("INSERT INTO rollup_rows BY NAME SELECT * FROM mlslo_delta")
            self.con.unregister("mlslo_delta")
        for name, rows in delta.histograms.items():
            if rows.num_rows:
                self.con.register("mlslo_hist", rows)
                self._run(
                    "INSERT INTO histogram_rows SELECT ?, bucket, bin, count FROM mlslo_hist",
                    [name],
                )
                self.con.unregister("mlslo_hist")

    def _load_rollup(self) -> None:
        """Read the compacted rollups of the longest window back into memory."""
        assert self._scan is not None
        start, _ = scan_range(self._spec, self.clock())
        cutoff = bucket_floor(start, self._scan.bucket_seconds) - 1
        rollup = self._rollup_between(cutoff)
        timelines = {
            slo.name: build_timeline(
                rollup,
                slo.name,
                cutoff,
                0,
                group_by=slo.sli.attributes if isinstance(slo, FairnessSLO) else (),
                histogram=needs_histogram(slo),
            )
            for slo in self._spec.slos
        }
        with self._cache_lock:
            self._timelines = timelines
            self._grid_first = cutoff
        self._held = bool(self._one("SELECT count(*) FROM held_labels")[0])

    def rollup(self) -> Rollup:
        """The rollups of the kept range, read from disk (only the candidate check needs
        them whole; evaluation uses the timelines)."""
        return self._rollup_between(self._grid_first)

    def evaluate(
        self,
        at: datetime,
        *,
        series_step: timedelta | None = None,
        slos: Sequence[str] | None = None,
    ) -> Evaluation:
        """Evaluate the SLOs at ``at`` from the timelines kept current at ingest (no scan);
        a moment older than the kept rollups is answered from the rollup rows on disk."""
        start, _ = scan_range(self._spec, at)
        assert self._scan is not None
        first = bucket_floor(start, self._scan.bucket_seconds)
        if first >= self._grid_first:
            with self._cache_lock:
                return evaluate(self._spec, self._timelines, at, series_step=series_step, slos=slos)
        return evaluate(
            self._spec, self._rollup_between(first), at, series_step=series_step, slos=slos
        )

    def _summed_rollup_rows(self, where: str = "") -> str:
        """SQL summing the rollup delta rows to one row per bucket and slice."""
        assert self._scan is not None
        keys = ", ".join(_q(k) for k in [BUCKET, *self._scan.slices])
        sums = "".join(f", sum({_q(s)}) AS {_q(s)}" for s in self._scan.stat_columns)
        return f"SELECT {keys}{sums} FROM rollup_rows {where} GROUP BY {keys}"

    def _rollup_between(self, first: int) -> Rollup:
        assert self._scan is not None
        with self._lock:
            table = _fetch(self.con, self._summed_rollup_rows("WHERE bucket >= ?"), [first])
            histograms = {}
            for (name,) in self._run("SELECT DISTINCT slo FROM histogram_rows"):
                histograms[name] = _fetch(
                    self.con,
                    "SELECT bucket, bin, sum(count) AS count FROM histogram_rows "
                    "WHERE slo = ? AND bucket >= ? GROUP BY bucket, bin ORDER BY bucket",
                    [name, first],
                )
        return Rollup(
            self._scan.bucket_seconds,
            self._scan.slices,
            _cast_rollup(table, self._scan),
            histograms,
        )

    # --- ingestion ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (the service calls this; tests may call the sync API)."""
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_loop, name="mlslo-writer", daemon=True
            )
            self._writer.start()

    def stop(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=30)
            self._writer = None

    def close(self) -> None:
        self.stop()
        with self._lock:
            self.con.close()

    def submit(self, kind: Kind, batch: pa.Table, key: str | None = None) -> Future[IngestResult]:
        """Queue a validated batch; the future resolves after its commit. A batch sent again
        with the same idempotency ``key`` is not applied twice (its first result is returned).
        """
        job = _Job(kind, batch, Future(), key)
        if self._writer is None:
            self._commit([job])
        else:
            self._queue.put(job)
        return job.future

    def ingest(
        self,
        kind: Kind,
        records: pa.Table,
        key: str | None = None,
        *,
        max_skew: timedelta = timedelta(minutes=5),
    ) -> IngestResult:
        """Validate records (as the API does) and write them; returns after the commit."""
        batch = NORMALIZERS[kind](records, self._spec, now=self.clock(), max_skew=max_skew)
        return self.submit(kind, batch, key).result()

    def _write_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            while len(jobs) < 512:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                jobs.append(more)
            self._commit(jobs)

    def _commit(self, jobs: list[_Job]) -> None:
        """Apply jobs in order in one transaction; resolve each future after COMMIT."""
        results: dict[int, IngestResult] = {}
        deltas: list[Rollup] = []
        try:
            with self._lock:
                self._run("BEGIN TRANSACTION")
                try:
                    fresh = self._replayed(jobs, results)
                    for kind, group in _runs(fresh):
                        handler = {
                            "predictions": self._predictions,
                            "labels": self._labels,
                            "outcomes": self._outcomes,
                        }[kind]
                        group_results, delta = handler([j.batch for j in group])
                        for job, result in zip(group, group_results, strict=True):
                            results[id(job)] = result
                            if job.key is not None:
                                self._run(
                                    "INSERT INTO batches VALUES (?, ?, ?, ?, ?)",
                                    [
                                        job.key,
                                        job.kind,
                                        _naive(self.clock()),
                                        result.accepted,
                                        result.duplicates,
                                    ],
                                )
                        if delta is not None:
                            self._append_rollup(delta)
                            deltas.append(delta)
                    self._run("COMMIT")
                except BaseException:
                    self._run("ROLLBACK")
                    raise
        except BaseException as exc:
            for job in jobs:
                job.future.set_exception(exc)
            return
        with self._cache_lock:
            for delta in deltas:
                for timeline in self._timelines.values():
                    timeline.add(delta)
        for job in jobs:
            result = results[id(job)]
            self.counters[job.kind] = self.counters.get(job.kind, 0) + result.accepted
            self.counters[f"{job.kind}_duplicates"] = (
                self.counters.get(f"{job.kind}_duplicates", 0) + result.duplicates
            )
            job.future.set_result(result)

    def _replayed(self, jobs: list[_Job], results: dict[int, IngestResult]) -> list[_Job]:
        """Jobs whose idempotency key was committed before get their first result back."""
        fresh = []
        seen: dict[str, _Job] = {}
        for job in jobs:
            if job.key is None:
                fresh.append(job)
                continue
            row = self._one("SELECT accepted, duplicates FROM batches WHERE key = ?", [job.key])
            if row is not None:
                results[id(job)] = IngestResult(int(row[0]), int(row[1]), replayed=True)
            elif job.key in seen:
                results[id(job)] = IngestResult(0, job.batch.num_rows, replayed=True)
            else:
                seen[job.key] = job
                fresh.append(job)
        return fresh

    def checkpoint(self) -> None:
        with self._lock:
            self._run("CHECKPOINT")

    def _predictions(self, batches: list[pa.Table]) -> tuple[list[IngestResult], Rollup | None]:
        assert self._scan is not None
        combined, owners = _concat(batches)
        first = _first_occurrence(combined["id"])
        combined = combined.append_column("__owner", pa.array(owners)).filter(first)
        lo = pc.min(combined["ts"]).as_py()
        hi = pc.max(combined["ts"]).as_py()
        self.con.register("mlslo_new", combined)
        known = _fetch(
            self.con,
            "SELECT id FROM predictions WHERE ts >= ? AND ts <= ? AND id IN "
            "(SELECT id FROM mlslo_new)",
            [lo - DEDUPE_SPAN, hi + DEDUPE_SPAN],
        )
        self.con.unregister("mlslo_new")
        fresh = pc.invert(pc.is_in(combined["id"], known["id"]))
        combined = combined.filter(fresh)
        accepted = combined["__owner"].to_numpy()
        results = _per_owner(len(batches), [b.num_rows for b in batches], accepted)
        if not combined.num_rows:
            return results, None
        rows = combined.drop_columns(["__owner"])
        received = _constant_time(self.clock(), rows.num_rows)
        self.con.register("mlslo_rows", rows.append_column("received_at", received))
        self._run("INSERT INTO predictions BY NAME SELECT * FROM mlslo_rows")
        effective = rows
        if self._held:
            held = self._one(
                "SELECT count(*) FROM held_labels WHERE id IN (SELECT id FROM mlslo_rows)"
            )
            if held and held[0]:
                effective = self._effective(
                    "SELECT * EXCLUDE (received_at) FROM mlslo_rows", [], from_labels_table=False
                )
                self._run("DELETE FROM held_labels WHERE id IN (SELECT id FROM mlslo_rows)")
                self._held = bool(self._one("SELECT count(*) FROM held_labels")[0])
        self.con.unregister("mlslo_rows")
        return results, self._scan.run(self.con, effective)

    def _labels(self, batches: list[pa.Table]) -> tuple[list[IngestResult], Rollup | None]:
        assert self._scan is not None
        combined, owners = _concat(batches)
        combined = combined.append_column("__owner", pa.array(owners))
        self.con.register("mlslo_new", combined)
        accepted = _fetch(
            self.con,
            """
            WITH ranked AS (
                SELECT *, row_number() OVER (PARTITION BY id ORDER BY ts DESC, __owner) AS r
                FROM mlslo_new),
            newest AS (SELECT * FROM ranked WHERE r = 1),
            existing AS (SELECT id, max(ts) AS ts FROM labels
                         WHERE id IN (SELECT id FROM newest) GROUP BY id)
            SELECT n.id, n.ts, n.label, n.__owner FROM newest n
            LEFT JOIN existing e ON n.id = e.id
            WHERE e.ts IS NULL OR n.ts > e.ts""",
        )
        self.con.unregister("mlslo_new")
        results = _per_owner(
            len(batches), [b.num_rows for b in batches], accepted["__owner"].to_numpy()
        )
        if not accepted.num_rows:
            return results, None
        rows = accepted.drop_columns(["__owner"])
        received = _constant_time(self.clock(), rows.num_rows)
        rows = rows.append_column("received_at", received)
        self.con.register("mlslo_labels", rows)
        before = self._effective(
            "SELECT * EXCLUDE (received_at) FROM predictions WHERE id IN "
            "(SELECT id FROM mlslo_labels)",
            [],
            from_labels_table=True,
        )
        self._run("INSERT INTO labels SELECT * FROM mlslo_labels")
        self._run("""
            INSERT INTO held_labels SELECT * FROM mlslo_labels
            WHERE id NOT IN (SELECT id FROM predictions WHERE id IN
                             (SELECT id FROM mlslo_labels))""")
        self._run(
            "DELETE FROM held_labels WHERE id IN (SELECT id FROM predictions "
            "WHERE id IN (SELECT id FROM mlslo_labels))"
        )
        self._held = True
        self.con.unregister("mlslo_labels")
        if not before.num_rows:
            return results, None
        self.con.register("mlslo_before", before)
        after = self._effective("SELECT * FROM mlslo_before", [], from_labels_table=True)
        self.con.unregister("mlslo_before")
        old = self._scan.run(self.con, before)
        new = self._scan.run(self.con, after)
        return results, new.merge(_negated(old))

    def _outcomes(self, batches: list[pa.Table]) -> tuple[list[IngestResult], Rollup | None]:
        combined, _ = _concat(batches)
        received = _constant_time(self.clock(), combined.num_rows)
        self.con.register("mlslo_rows", combined.append_column("received_at", received))
        self._run("INSERT INTO outcomes BY NAME SELECT * FROM mlslo_rows")
        self.con.unregister("mlslo_rows")
        results = [IngestResult(b.num_rows, 0) for b in batches]
        assert self._scan is not None
        return results, self._scan.run_outcomes(self.con, combined)

    def bulk_load(
        self,
        predictions: pa.Table,
        labels: pa.Table | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        max_skew: timedelta = timedelta(minutes=5),
    ) -> None:
        """Load a large history at once (the demo, a backfill into an empty store): validate,
        insert the raw records, then build the rollups from them a day at a time."""
        assert self._scan is not None
        now = self.clock()
        with self._lock:
            count = self._one("SELECT count(*) FROM predictions")
            if count and count[0]:
                raise StoreError(
                    "bulk_load needs an empty store; send records through the "
                    "API (or mlslo ingest) to add to one"
                )
            self._run("BEGIN TRANSACTION")
            try:
                for kind, table in (("predictions", predictions), ("labels", labels)):
                    if table is None:
                        continue
                    for start in range(0, table.num_rows, 500_000):
                        chunk = NORMALIZERS[kind](
                            table.slice(start, 500_000), self._spec, now=now, max_skew=max_skew
                        )
                        chunk = chunk.append_column(
                            "received_at", _constant_time(now, chunk.num_rows)
                        )
                        self.con.register("mlslo_rows", chunk)
                        self._run(f"INSERT INTO {kind} BY NAME SELECT * FROM mlslo_rows")
                        self.con.unregister("mlslo_rows")
                self._run("COMMIT")
            except BaseException:
                self._run("ROLLBACK")
                raise
            self._held = False
            fingerprint = rollup_fingerprint(self._spec, self._scan)
        self._rebuild(fingerprint, progress)

    # --- retention ---------------------------------------------------------------------------

    def prune(self) -> dict[str, int]:
        """Delete raw records past retention and rollups older than the longest window."""
        assert self._scan is not None
        now = self.clock()
        raw_cutoff = _naive(now - self.retention)
        start, _ = scan_range(self._spec, now)
        bucket_cutoff = bucket_floor(start, self._scan.bucket_seconds) - 1
        deleted = {}
        with self._lock:
            for table, column, cutoff in (
                ("predictions", "ts", raw_cutoff),
                ("outcomes", "ts", raw_cutoff),
                ("labels", "ts", _naive(now - self.retention - self.label_horizon)),
                ("held_labels", "received_at", _naive(now - self.label_horizon)),
                ("batches", "received_at", _naive(now - timedelta(days=7))),
            ):
                gone = self._run(f"DELETE FROM {table} WHERE {column} < ? RETURNING 1", [cutoff])
                deleted[table] = len(gone)
            for table in ("rollup_rows", "histogram_rows"):
                gone = self._run(
                    f"DELETE FROM {table} WHERE bucket < ? RETURNING 1", [bucket_cutoff]
                )
                deleted[table] = len(gone)
        return deleted

    def compact(self) -> None:
        """Rewrite the rollup delta rows as one row per bucket and slice."""
        assert self._scan is not None
        with self._lock:
            self._run("BEGIN TRANSACTION")
            try:
                self._run(f"CREATE TABLE rollup_compact AS {self._summed_rollup_rows()}")
                self._run("DROP TABLE rollup_rows")
                self._run("ALTER TABLE rollup_compact RENAME TO rollup_rows")
                self._run(
                    "CREATE TABLE histogram_compact AS SELECT slo, bucket, bin, "
                    "sum(count) AS count FROM histogram_rows GROUP BY ALL"
                )
                self._run("DROP TABLE histogram_rows")
                self._run("ALTER TABLE histogram_compact RENAME TO histogram_rows")
                self._run("COMMIT")
            except BaseException:
                self._run("ROLLBACK")
                raise

    def counts(self) -> dict[str, int]:
        with self._lock:
            out = {}
            for table in ("predictions", "labels", "held_labels", "outcomes"):
                row = self._one(f"SELECT count(*) FROM {table}")
                out[table] = int(row[0]) if row else 0
            return out

    # --- tokens ------------------------------------------------------------------------------

    def create_token(self, scope: Scope, name: str | None = None) -> tuple[Token, str]:
        """A new bearer token; the secret is returned once and only its hash is stored."""
        if scope not in SCOPES:
            raise UsageError(f"scope must be one of {', '.join(SCOPES)}, found '{scope}'")
        secret = "mlslo_" + secrets.token_urlsafe(32)
        now = _naive(self.clock())
        with self._lock:
            row = self._one(
                "INSERT INTO tokens VALUES (nextval('token_ids'), ?, ?, ?, ?, NULL) RETURNING id",
                [name, scope, _hash(secret), now],
            )
            self._load_tokens()
        assert row is not None
        return Token(int(row[0]), name, scope, now.replace(tzinfo=UTC), None), secret

    def revoke_token(self, token_id: int) -> Token:
        with self._lock:
            row = self._one(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? "
                "RETURNING id, name, scope, created_at, revoked_at",
                [_naive(self.clock()), token_id],
            )
            self._load_tokens()
        if row is None:
            raise NotFoundError(f"no token with id {token_id}; see mlslo token list")
        return Token(int(row[0]), row[1], row[2], row[3].replace(tzinfo=UTC), _aware(row[4]))

    def tokens(self) -> list[Token]:
        with self._lock:
            rows = self._run(
                "SELECT id, name, scope, created_at, revoked_at FROM tokens ORDER BY id"
            )
        return [Token(int(r[0]), r[1], r[2], r[3].replace(tzinfo=UTC), _aware(r[4])) for r in rows]

    def verify(self, secret: str) -> Token | None:
        """The token for ``secret`` if it exists (revoked tokens are returned, to tell 401
        from 403 honestly: a revoked token is not valid). Constant-time comparison against
        the tokens kept in memory, so the check never waits for the writer."""
        tokens = self._tokens
        if tokens is None:
            with self._lock:
                tokens = self._load_tokens()
        digest = _hash(secret)
        found = None
        for stored, token in tokens:
            if hmac.compare_digest(stored, digest):
                found = token
        return found

    def _load_tokens(self) -> list[tuple[str, Token]]:
        rows = self._run("SELECT hash, id, name, scope, created_at, revoked_at FROM tokens")
        self._tokens = [
            (r[0], Token(int(r[1]), r[2], r[3], r[4].replace(tzinfo=UTC), _aware(r[5])))
            for r in rows
        ]
        return self._tokens

    def has_tokens(self) -> bool:
        return any(t.revoked_at is None for t in self.tokens())

    # --- overrides and the gate audit log ----------------------------------------------------

    def add_override(self, reason: str, expires_at: datetime, created_by: str | None) -> Override:
        now = self.clock()
        with self._lock:
            row = self._one(
                "INSERT INTO overrides VALUES (nextval('override_ids'), ?, ?, ?, ?, NULL) "
                "RETURNING id",
                [reason, _naive(now), _naive(expires_at), created_by],
            )
        assert row is not None
        return Override(reason, now, expires_at, created_by, int(row[0]))

    def active_override(self, at: datetime) -> Override | None:
        with self._lock:
            row = self._one(
                "SELECT id, reason, created_at, expires_at, created_by FROM overrides "
                "WHERE revoked_at IS NULL AND created_at <= ? AND expires_at > ? "
                "ORDER BY id DESC LIMIT 1",
                [_naive(at), _naive(at)],
            )
        if row is None:
            return None
        return Override(
            row[1], row[2].replace(tzinfo=UTC), row[3].replace(tzinfo=UTC), row[4], int(row[0])
        )

    def overrides(self) -> list[Override]:
        with self._lock:
            rows = self._run(
                "SELECT id, reason, created_at, expires_at, created_by FROM overrides ORDER BY id"
            )
        return [
            Override(r[1], r[2].replace(tzinfo=UTC), r[3].replace(tzinfo=UTC), r[4], int(r[0]))
            for r in rows
        ]

    def record_decision(
        self,
        at: datetime,
        policy: str,
        candidate: str | None,
        decision: str,
        caller: str | None,
        override_id: int | None,
        document: dict[str, Any],
    ) -> int:
        with self._lock:
            row = self._one(
                "INSERT INTO gate_decisions VALUES (nextval('decision_ids'), ?, ?, ?, ?, ?, ?, ?)"
                " RETURNING id",
                [
                    _naive(at),
                    policy,
                    candidate,
                    decision,
                    caller,
                    override_id,
                    json.dumps(document),
                ],
            )
        assert row is not None
        return int(row[0])

    def decisions(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._run(
                'SELECT id, "at", policy, candidate, decision, caller, override_id, document '
                "FROM gate_decisions ORDER BY id DESC LIMIT ?",
                [limit],
            )
        return [
            {
                "id": r[0],
                "at": r[1].replace(tzinfo=UTC),
                "policy": r[2],
                "candidate": r[3],
                "decision": r[4],
                "caller": r[5],
                "override_id": r[6],
                "reasons": json.loads(r[7]).get("reasons", []),
            }
            for r in rows
        ]

    # --- alert state (kept as JSON documents) -------------------------------------------------

    def alert_states(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._run("SELECT key, document FROM alert_state")
        return {r[0]: json.loads(r[1]) for r in rows}

    def save_alerts(
        self,
        states: dict[str, dict[str, Any]],
        events: Sequence[tuple[datetime, str, dict[str, Any]]],
    ) -> None:
        with self._lock:
            self._run("BEGIN TRANSACTION")
            try:
                for key, document in states.items():
                    self._run(
                        "INSERT OR REPLACE INTO alert_state VALUES (?, ?)",
                        [key, json.dumps(document)],
                    )
                for at, key, document in events:
                    self._run(
                        "INSERT INTO alert_events VALUES (nextval('alert_event_ids'), ?, ?, ?)",
                        [_naive(at), key, json.dumps(document)],
                    )
                self._run("COMMIT")
            except BaseException:
                self._run("ROLLBACK")
                raise

    def alert_events(self, limit: int = 200) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._run(
                'SELECT id, "at", key, document FROM alert_events ORDER BY id DESC LIMIT ?', [limit]
            )
        return [
            {"id": r[0], "at": r[1].replace(tzinfo=UTC), "key": r[2], **json.loads(r[3])}
            for r in rows
        ]

    @contextmanager
    def locked(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            yield self.con


@dataclass
class _Job:
    kind: Kind
    batch: pa.Table
    future: Future[IngestResult]
    key: str | None = None


def service_slices(spec: Spec) -> tuple[str, ...]:
    """The service slices its rollups by the fairness attributes, ``model_version`` (for the
    candidate check) and any attributes the spec declares."""
    out: list[str] = []
    for slo in spec.slos:
        if isinstance(slo, FairnessSLO):
            out += slo.sli.attributes
    out += ["model_version", *spec.attributes]
    return tuple(dict.fromkeys(out))


def _runs(jobs: list[_Job]) -> Iterator[tuple[Kind, list[_Job]]]:
    """Consecutive jobs of the same kind, in order."""
    group: list[_Job] = []
    for job in jobs:
        if group and group[-1].kind != job.kind:
            yield group[0].kind, group
            group = []
        group.append(job)
    if group:
        yield group[0].kind, group


def _concat(batches: list[pa.Table]) -> tuple[pa.Table, Any]:
    owners = np.repeat(np.arange(len(batches), dtype=np.int64), [b.num_rows for b in batches])
    return pa.concat_tables(batches, promote_options="permissive"), owners


def _first_occurrence(ids: pa.ChunkedArray | pa.Array) -> pa.Array:
    """True for the first row of each id (later repeats in the same batch are duplicates)."""
    n = len(ids)
    indices = (
        pa.table({"id": ids, "i": pa.array(np.arange(n, dtype=np.int64))})
        .group_by("id", use_threads=False)
        .aggregate([("i", "min")])["i_min"]
    )
    mask = np.zeros(n, dtype=bool)
    mask[indices.to_numpy()] = True
    return pa.array(mask)


def _per_owner(count: int, sizes: Sequence[int], accepted_owners: Any) -> list[IngestResult]:
    owners = np.asarray(accepted_owners, dtype=np.int64)
    accepted = np.bincount(owners, minlength=count).tolist() if owners.size else [0] * count
    return [IngestResult(int(a), size - int(a)) for a, size in zip(accepted, sizes, strict=True)]


def _constant_time(moment: datetime, n: int) -> pa.Array:
    value = np.datetime64(_naive(moment), "us")
    return pa.array(np.full(n, value, dtype="datetime64[us]"), pa.timestamp("us"))


def _negated(rollup: Rollup) -> Rollup:
    keys = {BUCKET, *rollup.slice_columns}
    table = pa.table(
        {
            c: (rollup.table[c] if c in keys else pc.negate(rollup.table[c]))
            for c in rollup.table.column_names
        }
    )
    histograms = {
        n: rows.set_column(rows.column_names.index("count"), "count", pc.negate(rows["count"]))
        for n, rows in rollup.histograms.items()
    }
    return Rollup(rollup.bucket_seconds, rollup.slice_columns, table, histograms)


def _cast_rollup(table: pa.Table, scan: BatchScan) -> pa.Table:
    columns = {}
    for name in table.column_names:
        column = table[name]
        if name == BUCKET:
            column = column.cast(pa.int64())
        elif name in scan.slices:
            column = column.cast(pa.string())
        else:
            column = pc.fill_null(column.cast(pa.float64()), 0.0)
        columns[name] = column
    return pa.table(columns)


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> pa.Table:
    """Run a query and return its rows as an Arrow table (no DB-API copy)."""
    relation = con.sql(sql, params=list(params)) if params else con.sql(sql)
    table: pa.Table = relation.to_arrow_table()
    return table


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _ibis_type(kind: pa.DataType) -> Any:
    if pa.types.is_timestamp(kind):
        return dt.Timestamp()
    if pa.types.is_floating(kind):
        return dt.float64
    if pa.types.is_integer(kind):
        return dt.int64
    return dt.string
