"""Writing records: predictions, labels and outcome counts, with their rollup deltas in the
same transaction, so a crash never leaves the two out of step.

Writes go through one writer thread that commits concurrent batches together (group commit)
and acknowledges each batch only after its commit returns. A label that arrives before its
prediction is held and applied when the prediction comes. A repeated prediction id is
counted once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlslo.inputs.bodies import BatchError, FieldError
from mlslo.inputs.normalize import NORMALIZERS
from mlslo.server.store.database import Database, StoreError, constant_time, naive
from mlslo.server.store.groups import GroupValues
from mlslo.server.store.ids import SeenIds
from mlslo.server.store.rollups import Progress, Rollups, negated, service_slices
from mlslo.stats.rollup import Rollup

Kind = Literal["predictions", "labels", "outcomes"]
BULK_CHUNK = 500_000


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    replayed: bool = False
    folded: int = 0


@dataclass
class _Job:
    kind: Kind
    batch: pa.Table
    future: Future[IngestResult]
    key: str | None = None
    fingerprint: str | None = None
    folded: int = 0


class Ingest:
    """The store's one writer."""

    def __init__(
        self,
        db: Database,
        rollups: Rollups,
        clock: Callable[[], datetime],
        seen: SeenIds | None = None,
        max_age: timedelta | None = None,
        groups: GroupValues | None = None,
    ) -> None:
        self.db = db
        self.rollups = rollups
        self.clock = clock
        self.max_age = max_age
        """Records older than this (the retention) are refused: they would be pruned at once."""
        self.seen = seen or SeenIds(db)
        self.groups = groups or GroupValues(db)
        self._new_ids: list[npt.NDArray[np.uint64]] = []
        self.counters: dict[str, int] = {}
        self._held = bool(self.db.one("SELECT count(*) FROM held_labels")[0])
        self._repeats: dict[int, int] = {}
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._writer: threading.Thread | None = None

    # --- the writer thread ------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (the service does; without it, writes are synchronous)."""
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

    def submit(
        self,
        kind: Kind,
        batch: pa.Table,
        key: str | None = None,
        fingerprint: str | None = None,
        folded: int = 0,
    ) -> Future[IngestResult]:
        """Queue a validated batch; the future resolves after its commit.

        A batch sent again with the same idempotency ``key`` is not applied twice: its first
        result comes back. The key is bound to what it was first used for — the kind of
        record, the caller and the body, summed up in ``fingerprint`` — so the same key with
        another request is refused (409), never answered with the first one's result.
        ``folded`` (what :meth:`admit` folded) is counted once the batch is written."""
        job = _Job(kind, batch, Future(), key, fingerprint, folded)
        if self._writer is None:
            self._commit_isolated([job])
        else:
            self._queue.put(job)
        return job.future

    def admit(self, kind: Kind, batch: pa.Table) -> tuple[pa.Table, int]:
        """The batch with its attributes within the distinct-value cap (refused past it, or
        new values folded into ``(other)``), and how many records were folded."""
        if kind == "labels" or self.rollups.spec is None:
            return batch, 0
        return self.groups.admit(batch, service_slices(self.rollups.spec))

    def records(
        self,
        kind: Kind,
        records: pa.Table,
        key: str | None = None,
        *,
        max_skew: timedelta = timedelta(minutes=5),
    ) -> IngestResult:
        """Validate records (as the API does) and write them; returns after the commit."""
        assert self.rollups.spec is not None
        batch = NORMALIZERS[kind](
            records, self.rollups.spec, now=self.clock(), max_skew=max_skew, max_age=self.max_age
        )
        batch, folded = self.admit(kind, batch)
        return self.submit(kind, batch, key, folded=folded).result()

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
            self._commit_isolated(jobs)

    def _commit_isolated(self, jobs: list[_Job]) -> None:
        """Commit the jobs together; if that fails, commit each on its own, so one bad batch
        never fails another client's batch."""
        try:
            self._commit(jobs)
        except Exception as exc:
            if len(jobs) == 1:
                jobs[0].future.set_exception(exc)
                return
            for job in jobs:
                try:
                    self._commit([job])
                except Exception as single:
                    job.future.set_exception(single)

    def _commit(self, jobs: list[_Job]) -> None:
        """Apply jobs in order in one transaction; resolve each future after COMMIT."""
        results: dict[int, IngestResult | BaseException] = {}
        deltas: list[Rollup] = []
        self._repeats = {}
        self._new_ids = []
        with self.db.transaction():
            fresh = self._replayed(jobs, results)
            for kind, group in _runs(fresh):
                handler = {
                    "predictions": self._predictions,
                    "labels": self._labels,
                    "outcomes": self._outcomes,
                }[kind]
                group_results, delta = handler([j.batch for j in group])
                for job, result in zip(group, group_results, strict=True):
                    result = replace(result, folded=job.folded)
                    results[id(job)] = result
                    if job.key is not None:
                        self.db.run(
                            "INSERT INTO batches BY NAME SELECT ? AS key, ? AS kind, "
                            "? AS received_at, ? AS accepted, ? AS duplicates, "
                            "? AS fingerprint, ? AS folded",
                            [
                                job.key,
                                job.kind,
                                naive(self.clock()),
                                result.accepted,
                                result.duplicates,
                                job.fingerprint,
                                result.folded,
                            ],
                        )
                if delta is not None:
                    self.rollups.append(delta)
                    deltas.append(delta)
        for ids in self._new_ids:
            self.seen.add(ids)
        labelled = any(job.kind == "labels" for job in jobs)
        self.rollups.add_to_timelines(
            deltas, labels_at=self.clock() if labelled else None, repeats=self._repeats
        )
        for job in jobs:
            outcome = results[id(job)]
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
                continue
            result = outcome
            if result.replayed:
                job.future.set_result(result)
                continue
            self.counters[job.kind] = self.counters.get(job.kind, 0) + result.accepted
            self.counters[f"{job.kind}_duplicates"] = (
                self.counters.get(f"{job.kind}_duplicates", 0) + result.duplicates
            )
            if result.folded:
                self.counters[f"{job.kind}_folded"] = (
                    self.counters.get(f"{job.kind}_folded", 0) + result.folded
                )
            job.future.set_result(result)

    def _replayed(
        self, jobs: list[_Job], results: dict[int, IngestResult | BaseException]
    ) -> list[_Job]:
        """Jobs whose idempotency key was committed before get their first result back (or a
        409 when the key was used for another request); the others are fresh."""
        fresh = []
        seen: dict[str, _Job] = {}
        for job in jobs:
            if job.key is None:
                fresh.append(job)
                continue
            row = self.db.one(
                "SELECT accepted, duplicates, kind, fingerprint, folded FROM batches WHERE key = ?",
                [job.key],
            )
            first = seen.get(job.key)
            if row is not None and (row[2] != job.kind or row[3] not in (None, job.fingerprint)):
                results[id(job)] = _key_reused(job.key)
            elif row is not None:
                results[id(job)] = IngestResult(
                    int(row[0]), int(row[1]), replayed=True, folded=int(row[4] or 0)
                )
            elif first is not None and (first.kind, first.fingerprint) != (
                job.kind,
                job.fingerprint,
            ):
                results[id(job)] = _key_reused(job.key)
            elif first is not None:
                results[id(job)] = IngestResult(
                    0, job.batch.num_rows, replayed=True, folded=first.folded
                )
            else:
                seen[job.key] = job
                fresh.append(job)
        return fresh

    # --- one kind of record each ------------------------------------------------------------

    def _predictions(self, batches: list[pa.Table]) -> tuple[list[IngestResult], Rollup | None]:
        combined, owners = _concat(batches)
        first = _first_occurrence(combined["id"])
        repeated = combined.filter(pc.invert(first))["ts"]
        combined = combined.append_column("__owner", pa.array(owners)).filter(first)
        with self.db.registered("mlslo_new", combined):
            hashes = self.seen.hashes("mlslo_new")
        fresh = pa.array(~self.seen.seen(hashes))
        again = combined.filter(pc.invert(fresh))["ts"]
        refused = pa.chunked_array([*repeated.chunks, *again.chunks], pa.timestamp("us"))
        for bucket, count in self.rollups.count_repeated(self._buckets(refused)).items():
            self._repeats[bucket] = self._repeats.get(bucket, 0) + count
        self._new_ids.append(hashes[np.asarray(fresh)])
        combined = combined.filter(fresh)
        accepted = combined["__owner"].to_numpy()
        results = _per_owner(len(batches), [b.num_rows for b in batches], accepted)
        if not combined.num_rows:
            return results, None
        rows = combined.drop_columns(["__owner"])
        received = constant_time(self.clock(), rows.num_rows)
        effective = rows
        with self.db.registered("mlslo_rows", rows.append_column("received_at", received)):
            self.db.run("INSERT INTO predictions BY NAME SELECT * FROM mlslo_rows")
            if self._held:
                held = self.db.one(
                    "SELECT count(*) FROM held_labels WHERE id IN (SELECT id FROM mlslo_rows)"
                )
                if held and held[0]:
                    effective = self.rollups.effective(
                        "SELECT * EXCLUDE (received_at) FROM mlslo_rows", [], labels="held_labels"
                    )
                    self.db.run("DELETE FROM held_labels WHERE id IN (SELECT id FROM mlslo_rows)")
                    self._held = bool(self.db.one("SELECT count(*) FROM held_labels")[0])
        return results, self.rollups.delta(effective)

    def _buckets(self, ts: pa.ChunkedArray) -> pa.Array:
        """The bucket of each timestamp."""
        seconds = self.rollups.scan.bucket_seconds if self.rollups.scan is not None else 60
        micros = pc.cast(ts.combine_chunks(), pa.int64())
        return pc.divide(micros, seconds * 1_000_000)

    def _labels(self, batches: list[pa.Table]) -> tuple[list[IngestResult], Rollup | None]:
        combined, owners = _concat(batches)
        combined = combined.append_column("__owner", pa.array(owners))
        with self.db.registered("mlslo_new", combined):
            accepted = self.db.fetch(
                """
                WITH ranked AS (
                    SELECT *, row_number() OVER (PARTITION BY id ORDER BY ts DESC, __owner) AS r
                    FROM mlslo_new),
                newest AS (SELECT * FROM ranked WHERE r = 1),
                existing AS (SELECT id, max(ts) AS ts FROM labels
                             WHERE id IN (SELECT id FROM newest) GROUP BY id)
                SELECT n.id, n.ts, n.label, n.__owner FROM newest n
                LEFT JOIN existing e ON n.id = e.id
                WHERE e.ts IS NULL OR n.ts > e.ts"""
            )
        results = _per_owner(
            len(batches), [b.num_rows for b in batches], accepted["__owner"].to_numpy()
        )
        if not accepted.num_rows:
            return results, None
        rows = accepted.drop_columns(["__owner"])
        rows = rows.append_column("received_at", constant_time(self.clock(), rows.num_rows))
        with self.db.registered("mlslo_labels", rows):
            before = self.rollups.effective(
                "SELECT * EXCLUDE (received_at) FROM predictions WHERE id IN "
                "(SELECT id FROM mlslo_labels)",
                [],
            )
            self.db.run("INSERT INTO labels SELECT * FROM mlslo_labels")
            self.db.run("""
                INSERT INTO held_labels SELECT * FROM mlslo_labels
                WHERE id NOT IN (SELECT id FROM predictions WHERE id IN
                                 (SELECT id FROM mlslo_labels))""")
            self.db.run(
                "DELETE FROM held_labels WHERE id IN (SELECT id FROM predictions "
                "WHERE id IN (SELECT id FROM mlslo_labels))"
            )
        self._held = True
        if not before.num_rows:
            return results, None
        with self.db.registered("mlslo_before", before):
            after = self.rollups.effective("SELECT * FROM mlslo_before", [])
        return results, self.rollups.delta(after).merge(negated(self.rollups.delta(before)))

    def _outcomes(self, batches: list[pa.Table]) -> tuple[list[IngestResult], Rollup | None]:
        combined, _ = _concat(batches)
        received = constant_time(self.clock(), combined.num_rows)
        with self.db.registered("mlslo_rows", combined.append_column("received_at", received)):
            self.db.run("INSERT INTO outcomes BY NAME SELECT * FROM mlslo_rows")
        results = [IngestResult(b.num_rows, 0) for b in batches]
        return results, self.rollups.outcome_delta(combined)

    # --- a history at once ------------------------------------------------------------------

    def bulk_load(
        self,
        predictions: pa.Table,
        labels: pa.Table | None = None,
        *,
        progress: Progress | None = None,
        max_skew: timedelta = timedelta(minutes=5),
    ) -> None:
        """Load a large history at once (the demo, a backfill into an empty store): validate,
        insert the raw records, then build the rollups from them a day at a time. A history
        is taken as it happened: each record counts as arrived at its own ``ts``."""
        spec = self.rollups.spec
        assert spec is not None
        now = self.clock()
        with self.db.lock:
            count = self.db.one("SELECT count(*) FROM predictions")
            if count and count[0]:
                raise StoreError(
                    "a bulk load needs an empty store; send records through the API to add to one"
                )
            with self.db.transaction():
                pairs: tuple[tuple[Kind, pa.Table | None], ...] = (
                    ("predictions", predictions),
                    ("labels", labels),
                )
                for kind, table in pairs:
                    if table is None:
                        continue
                    for start in range(0, table.num_rows, BULK_CHUNK):
                        chunk = NORMALIZERS[kind](
                            table.slice(start, BULK_CHUNK),
                            spec,
                            now=now,
                            max_skew=max_skew,
                            max_age=self.max_age,
                        )
                        chunk, folded = self.admit(kind, chunk)
                        if folded:
                            self.counters[f"{kind}_folded"] = (
                                self.counters.get(f"{kind}_folded", 0) + folded
                            )
                        chunk = chunk.append_column("received_at", chunk["ts"])
                        with self.db.registered("mlslo_rows", chunk):
                            self.db.run(f"INSERT INTO {kind} BY NAME SELECT * FROM mlslo_rows")
            self._held = False
        self.seen.load()
        self.rollups.rebuild(progress)


def _key_reused(key: str) -> BatchError:
    return BatchError(
        [
            FieldError(
                None,
                "Idempotency-Key",
                f"'{key}' was first used for another request (another kind of record, token "
                "or body); send each batch with a key of its own",
            )
        ],
        status=409,
    )


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
