"""The store's rollups: every SLO's statistics per bucket and slice, kept on disk as delta rows
and in memory as timelines, so a status read never scans raw records.

A label adds to the bucket of its *prediction*: the delta is the rollup of the prediction with
its new label minus the rollup with its old one. An evaluation at a past moment ``T`` counts
only the labels that had arrived by ``T``: those received later are taken back out of the
rollups (:meth:`Rollups.at`), so yesterday's decision can be re-derived today. Predictions
and outcome counts are placed by their own ``ts``, as on files.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa
import pyarrow.compute as pc

from mlslo.inputs.normalize import CANONICAL_TYPES, OUTCOME_TYPES, attribute_columns
from mlslo.measure.windows import bucket_floor, scan_range
from mlslo.scan.batch import BatchScan, compile_batch_scan
from mlslo.scan.histograms import histogram_queries
from mlslo.server.store.database import Database, naive, quoted
from mlslo.spec import AnySLO, FairnessSLO, Spec, calibrates, needs_histogram
from mlslo.stats.rollup import BUCKET, VERSION, Rollup, histogram_tables
from mlslo.stats.timeline import Timeline, build_timeline

Progress = Callable[[int, int], None]
"""Called with (days done, days in all) while rollups are rebuilt."""


class Reading(NamedTuple):
    """A spec and the rollups an evaluation of it at one moment reads, with the repeated
    prediction ids refused in its range."""

    spec: Spec
    rollups: Rollup | Mapping[str, Timeline]
    repeated_ids: int


class Rollups:
    """The rollups of one store for its current spec (see the module's docstring)."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        self.cache_lock = threading.Lock()
        self.spec: Spec | None = None
        self.scan: BatchScan | None = None
        self.timelines: dict[str, Timeline] = {}
        self.first = 0
        self.rebuilding = False
        self.last_label: datetime | None = None
        self.repeats: dict[int, int] = {}

    @property
    def ready(self) -> bool:
        return self.scan is not None and not self.rebuilding

    # --- configuring and rebuilding ---------------------------------------------------------

    def configure(self, spec: Spec, *, progress: Progress | None = None) -> bool:
        """Adopt ``spec``; rebuild the rollups from raw records if their inputs changed.
        Returns whether a rebuild ran. Until the new rollups are ready, readers go on with
        the previous spec and its rollups (writers wait)."""
        with self.db.lock:
            for table in ("predictions", "outcomes"):
                for column in attribute_columns(spec):
                    self.db.run(
                        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {quoted(column)} VARCHAR"
                    )
            scan = store_scan(spec)
            current = self.db.meta("rollup_fingerprint") == rollup_fingerprint(
                spec, scan
            ) and self.db.table_exists("rollup_rows")
            if not current:
                self._rebuild(spec, scan, progress)
            self._load(spec, scan)
            return not current

    def rebuild(self, progress: Progress | None = None) -> None:
        """Recompute every rollup of the current spec from the raw records."""
        with self.db.lock:
            spec, scan = self._current()
            self._rebuild(spec, scan, progress)
            self._load(spec, scan)

    def _current(self) -> tuple[Spec, BatchScan]:
        if self.spec is None or self.scan is None:
            raise RuntimeError("the store has no spec yet")
        return self.spec, self.scan

    def _rebuild(self, spec: Spec, scan: BatchScan, progress: Progress | None) -> None:
        """Recompute every rollup from the raw records, one day with records at a time."""
        self.rebuilding = True
        try:
            with self.db.transaction():
                self.db.run("DROP TABLE IF EXISTS rollup_rows")
                columns = ", ".join(
                    f"{quoted(n)} {t}"
                    for n, t in [
                        (BUCKET, "BIGINT"),
                        *((c, "VARCHAR") for c in scan.slices),
                        *((c, "DOUBLE") for c in scan.stat_columns),
                    ]
                )
                self.db.run(f"CREATE TABLE rollup_rows ({columns})")
                self.db.run("DELETE FROM histogram_rows")
                days = [
                    row[0]
                    for row in self.db.run(
                        "SELECT DISTINCT date_trunc('day', ts) AS day FROM predictions ORDER BY day"
                    )
                ]
                for index, day in enumerate(days):
                    batch = self.effective(
                        "SELECT p.* FROM predictions p WHERE p.ts >= ? AND p.ts < ?",
                        [day, day + timedelta(days=1)],
                        spec=spec,
                    )
                    self.append(scan.run(self.db.con, batch))
                    if progress is not None:
                        progress(index + 1, len(days))
                outcomes = self.db.fetch("SELECT * EXCLUDE (received_at) FROM outcomes")
                delta = scan.run_outcomes(self.db.con, outcomes) if outcomes.num_rows else None
                if delta is not None:
                    self.append(delta)
                self.db.set_meta("rollup_fingerprint", rollup_fingerprint(spec, scan))
        finally:
            self.rebuilding = False

    def _load(self, spec: Spec, scan: BatchScan) -> None:
        """Read the compacted rollups of the longest window back into memory, and make
        ``spec`` current with them."""
        start, _ = scan_range(spec, self.clock())
        cutoff = bucket_floor(start, scan.bucket_seconds) - 1
        rollup = self.between(cutoff, scan)
        timelines = {
            slo.name: build_timeline(
                rollup,
                slo.name,
                cutoff,
                0,
                group_by=slo.sli.attributes if isinstance(slo, FairnessSLO) else (),
                histogram=needs_histogram(slo),
                versioned=calibrates(slo),
            )
            for slo in spec.slos
        }
        latest = self.db.one("SELECT max(received_at) FROM labels")
        repeats = {
            int(bucket): int(count)
            for bucket, count in self.db.run(
                "SELECT bucket, sum(count) FROM repeated_ids GROUP BY bucket"
            )
        }
        with self.cache_lock:
            self.repeats = repeats
            self.spec, self.scan = spec, scan
            self.timelines = timelines
            self.first = cutoff
            self.last_label = None if latest is None or latest[0] is None else latest[0]

    # --- writing ----------------------------------------------------------------------------

    def effective(
        self,
        query: str,
        params: Sequence[Any],
        *,
        labels: str = "labels",
        until: str = "",
        spec: Spec | None = None,
    ) -> pa.Table:
        """Predictions selected by ``query`` with their effective label: the latest label
        record in the table ``labels`` (those received by ``until``, a SQL expression, when
        given), else the label the prediction carried."""
        spec = spec or self.spec
        attributes = attribute_columns(spec) if spec is not None else []
        select = ", ".join(
            [
                *(f"p.{quoted(c)}" for c in CANONICAL_TYPES if c != "label"),
                "coalesce(l.label, p.label) AS label",
                *(f"p.{quoted(a)}" for a in attributes),
            ]
        )
        arrived = f"AND received_at <= {until}" if until else ""
        sql = f"""
            WITH p AS ({query}),
                 l AS (SELECT id, arg_max(label, ts) AS label FROM {labels}
                       WHERE id IN (SELECT id FROM p) {arrived} GROUP BY id)
            SELECT {select} FROM p LEFT JOIN l ON p.id = l.id"""
        return self.db.fetch(sql, list(params))

    def delta(self, batch: pa.Table) -> Rollup:
        """The rollup of a batch of predictions in the store's canonical columns."""
        return self._current()[1].run(self.db.con, batch)

    def outcome_delta(self, batch: pa.Table) -> Rollup | None:
        return self._current()[1].run_outcomes(self.db.con, batch)

    def append(self, delta: Rollup) -> None:
        """Write a delta's rows (inside the caller's transaction)."""
        if delta.table.num_rows:
            with self.db.registered("mlslo_delta", delta.table):
                self.db.run("INSERT INTO rollup_rows BY NAME SELECT * FROM mlslo_delta")
        for name, rows in delta.histograms.items():
            if rows.num_rows:
                version = quoted(VERSION) if VERSION in rows.column_names else "NULL"
                with self.db.registered("mlslo_hist", rows):
                    self.db.run(
                        "INSERT INTO histogram_rows (slo, bucket, bin, count, version) "
                        f"SELECT ?, bucket, bin, count, {version} FROM mlslo_hist",
                        [name],
                    )

    def add_to_timelines(
        self,
        deltas: Sequence[Rollup],
        *,
        labels_at: datetime | None = None,
        repeats: Mapping[int, int] | None = None,
    ) -> None:
        """After the commit: the in-memory timelines catch up with the rows written
        (``labels_at``: when labels among them were received; ``repeats``: repeated
        prediction ids refused, per bucket)."""
        with self.cache_lock:
            for bucket, count in (repeats or {}).items():
                self.repeats[bucket] = self.repeats.get(bucket, 0) + count
            for delta in deltas:
                for timeline in self.timelines.values():
                    timeline.add(delta)
            if labels_at is not None:
                received = naive(labels_at)
                if self.last_label is None or received > self.last_label:
                    self.last_label = received

    def count_repeated(self, buckets: pa.Array) -> dict[int, int]:
        """Write down refused repeated prediction ids per bucket of their ``ts`` (in the
        caller's transaction); returns the counts for :meth:`add_to_timelines`."""
        if not len(buckets):
            return {}
        counts = pa.table({"bucket": buckets}).group_by("bucket").aggregate([("bucket", "count")])
        with self.db.registered("mlslo_repeated", counts):
            self.db.run("INSERT INTO repeated_ids SELECT bucket, bucket_count FROM mlslo_repeated")
        return dict(
            zip(counts["bucket"].to_pylist(), counts["bucket_count"].to_pylist(), strict=True)
        )

    # --- reading ----------------------------------------------------------------------------

    def between(self, first: int, scan: BatchScan | None = None) -> Rollup:
        """The rollups from bucket ``first`` on, read from disk and summed."""
        scan = scan or self._current()[1]
        with self.db.lock:
            table = self.db.fetch(self.summed_rows("WHERE bucket >= ?", scan), [first])
            histograms = {}
            for (name,) in self.db.run("SELECT DISTINCT slo FROM histogram_rows"):
                rows = self.db.fetch(
                    f"SELECT bucket, version AS {quoted(VERSION)}, bin, sum(count) AS count "
                    "FROM histogram_rows WHERE slo = ? AND bucket >= ? "
                    "GROUP BY bucket, version, bin ORDER BY bucket",
                    [name, first],
                )
                if rows[VERSION].null_count == rows.num_rows:  # not score bins
                    rows = rows.drop_columns([VERSION])
                histograms[name] = rows
        return Rollup(scan.bucket_seconds, scan.slices, _cast_rollup(table, scan), histograms)

    def summed_rows(self, where: str = "", scan: BatchScan | None = None) -> str:
        """SQL summing the rollup delta rows to one row per bucket and slice."""
        scan = scan or self._current()[1]
        keys = ", ".join(quoted(k) for k in [BUCKET, *scan.slices])
        sums = "".join(f", sum({quoted(s)}) AS {quoted(s)}" for s in scan.stat_columns)
        return f"SELECT {keys}{sums} FROM rollup_rows {where} GROUP BY {keys}"

    def at(self, moment: datetime, *, whole: bool = False) -> Reading:
        """What an evaluation at ``moment`` reads: only the labels received by then.

        The live timelines when no label has arrived since ``moment`` and they cover its
        windows; otherwise the rollups on disk less the labels that arrived later. ``whole``
        asks for a :class:`Rollup` in any case (the candidate check slices it)."""
        with self.cache_lock:
            spec, scan = self._current()
            later = self.last_label is not None and self.last_label > naive(moment)
            start, _ = scan_range(spec, moment)
            first = bucket_floor(start, scan.bucket_seconds)
            repeated = sum(n for bucket, n in self.repeats.items() if bucket >= first)
            if not whole and not later and first >= self.first:
                return Reading(spec, dict(self.timelines), repeated)
        with self.db.lock:
            rollup = self.between(first, scan)
            if later:
                rollup = rollup.merge(self._taken_back(moment, spec, scan))
        return Reading(spec, rollup, repeated)

    def sliced_histogram(self, slo: AnySLO, columns: Sequence[str], first: int) -> pa.Table:
        """A percentile SLO's histogram rows ``(bucket, <columns>, bin, count)`` from bucket
        ``first`` on, read from the stored predictions: attribution asks for a percentile's
        slices, which the rollups do not keep (it would multiply their histograms)."""
        spec, scan = self._current()
        sql = _sliced_histogram_sql(spec, slo, columns)
        since = naive(datetime.fromtimestamp(first * scan.bucket_seconds, UTC)).isoformat()
        with self.db.lock:
            self.db.run(
                f"CREATE OR REPLACE TEMP VIEW {EXPLAIN_VIEW} AS SELECT * FROM predictions "
                f"WHERE ts >= TIMESTAMP '{since}'"
            )
            try:
                rows = self.db.fetch(sql)
            finally:
                self.db.run(f"DROP VIEW IF EXISTS {EXPLAIN_VIEW}")
        return histogram_tables(rows, [slo.name])[slo.name]

    def _taken_back(self, moment: datetime, spec: Spec, scan: BatchScan) -> Rollup:
        """The delta that turns today's rollups into those of ``moment``: for predictions
        whose label arrived later, their rollup with the label known then minus the one with
        today's."""
        cutoff = f"TIMESTAMP '{naive(moment).isoformat()}'"
        relabelled = (
            f"SELECT * FROM predictions WHERE id IN (SELECT id FROM labels WHERE received_at > "
            f"{cutoff})"
        )
        now = self.effective(relabelled, [], spec=spec)
        then = self.effective(relabelled, [], until=cutoff, spec=spec)
        return scan.run(self.db.con, then).merge(negated(scan.run(self.db.con, now)))


EXPLAIN_VIEW = "mlslo_explain"


def _sliced_histogram_sql(spec: Spec, slo: AnySLO, columns: Sequence[str]) -> str:
    """SQL of one percentile SLO's histogram per bucket, value of ``columns`` and bin, over
    the view :data:`EXPLAIN_VIEW` of the stored predictions."""
    schema = {name: _ibis_type(kind) for name, kind in CANONICAL_TYPES.items()}
    schema.update({a: dt.string for a in attribute_columns(spec)})
    raw = ibis.table(ibis.schema(schema), name=EXPLAIN_VIEW)
    table = raw.filter(raw.ts.notnull())
    alone = spec.model_copy(update={"slos": [slo], "composites": []})
    queries = histogram_queries(alone, table, int(spec.bucket.total_seconds()), by=columns)
    return str(ibis.to_sql(queries[0][0], dialect="duckdb"))


def store_scan(spec: Spec) -> BatchScan:
    """The spec's scan compiled for batches in the store's canonical columns."""
    attributes = attribute_columns(spec)
    schema = {name: _ibis_type(kind) for name, kind in CANONICAL_TYPES.items()}
    schema.update({a: dt.string for a in attributes})
    outcome_schema = {name: _ibis_type(kind) for name, kind in OUTCOME_TYPES.items()}
    outcome_schema.update({a: dt.string for a in attributes})
    return compile_batch_scan(
        spec.records_only(), schema, list(service_slices(spec)), outcome_schema
    )


def service_slices(spec: Spec) -> tuple[str, ...]:
    """The service slices its rollups by the fairness attributes, ``model_version`` (for the
    candidate check), any attributes the spec declares and those it attributes budgets to."""
    out: list[str] = []
    for slo in spec.slos:
        if isinstance(slo, FairnessSLO):
            out += slo.sli.attributes
    out += ["model_version", *spec.attributes, *spec.attribution]
    return tuple(dict.fromkeys(out))


def rollup_fingerprint(spec: Spec, scan: BatchScan) -> str:
    """What the stored statistics depend on (objectives and windows are not part of it, so
    changing a target never needs a rebuild; a version of mlslo that keeps other statistics
    does)."""
    parts = {
        "bucket": spec.bucket.total_seconds(),
        "slices": list(scan.slices),
        "statistics": sorted(scan.stat_columns),
        "score_bins": "per model version",
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


def negated(rollup: Rollup) -> Rollup:
    """The rollup that cancels ``rollup`` when merged with it."""
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


def _ibis_type(kind: pa.DataType) -> Any:
    if pa.types.is_timestamp(kind):
        return dt.Timestamp()
    if pa.types.is_floating(kind):
        return dt.float64
    if pa.types.is_integer(kind):
        return dt.int64
    return dt.string
