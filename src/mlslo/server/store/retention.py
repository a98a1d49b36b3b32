"""Retention: raw records, rollups, audit rows and alert history older than they need to be
are deleted, and the rollup delta rows are folded into one row per bucket and slice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from mlslo.measure.windows import bucket_floor, scan_range
from mlslo.server.store.database import Database, naive
from mlslo.server.store.groups import GroupValues
from mlslo.server.store.ids import SeenIds
from mlslo.server.store.rollups import Rollups

BATCH_KEYS_KEPT = timedelta(days=7)
FORGET_EVERY = timedelta(days=1)
"""How often the ids of predictions past retention are forgotten (a reload of the ids kept,
seconds for tens of millions)."""


class Retention:
    def __init__(
        self,
        db: Database,
        rollups: Rollups,
        clock: Callable[[], datetime],
        *,
        keep: timedelta,
        label_horizon: timedelta,
        seen: SeenIds,
        groups: GroupValues | None = None,
    ) -> None:
        self.db = db
        self.rollups = rollups
        self.clock = clock
        self.keep = keep
        self.label_horizon = label_horizon
        self.seen = seen
        self.groups = groups
        self._forgotten: datetime | None = None

    def prune(self) -> dict[str, int]:
        """Delete what is past retention: raw records after ``keep``, labels waiting for
        their prediction after ``label_horizon``, rollups older than the longest window, and
        audit and alert history with the raw records. Returns the rows deleted per table."""
        scan = self.rollups.scan
        spec = self.rollups.spec
        assert scan is not None and spec is not None
        now = self.clock()
        raw_cutoff = naive(now - self.keep)
        start, _ = scan_range(spec, now)
        bucket_cutoff = bucket_floor(start, scan.bucket_seconds) - 1
        oldest_kept = min(bucket_cutoff, bucket_floor(now - self.keep, scan.bucket_seconds))
        deleted = {}
        with self.db.lock:
            for table, column, cutoff in (
                ("predictions", "ts", raw_cutoff),
                ("outcomes", "ts", raw_cutoff),
                ("labels", "ts", naive(now - self.keep - self.label_horizon)),
                ("held_labels", "received_at", naive(now - self.label_horizon)),
                ("batches", "received_at", naive(now - BATCH_KEYS_KEPT)),
                ("gate_decisions", '"at"', raw_cutoff),
                ("alert_events", '"at"', raw_cutoff),
            ):
                gone = self.db.run(f"DELETE FROM {table} WHERE {column} < ? RETURNING 1", [cutoff])
                deleted[table] = len(gone)
            for table, cutoff_bucket in (
                ("rollup_rows", bucket_cutoff),
                ("histogram_rows", bucket_cutoff),
                ("repeated_ids", oldest_kept),
            ):
                gone = self.db.run(
                    f"DELETE FROM {table} WHERE bucket < ? RETURNING 1", [cutoff_bucket]
                )
                deleted[table] = len(gone)
        if self.groups is not None and (deleted["predictions"] or deleted["outcomes"]):
            self.groups.forget()
        if deleted["predictions"] and (
            self._forgotten is None or now - self._forgotten >= FORGET_EVERY
        ):
            self.seen.load()
            self._forgotten = now
        return deleted

    def compact(self) -> None:
        """Rewrite the rollup delta rows as one row per bucket and slice."""
        with self.db.transaction():
            self.db.run(f"CREATE TABLE rollup_compact AS {self.rollups.summed_rows()}")
            self.db.run("DROP TABLE rollup_rows")
            self.db.run("ALTER TABLE rollup_compact RENAME TO rollup_rows")
            self.db.run(
                "CREATE TABLE histogram_compact AS SELECT slo, bucket, bin, "
                "sum(count) AS count, version FROM histogram_rows "
                "GROUP BY slo, bucket, bin, version"
            )
            self.db.run("DROP TABLE histogram_rows")
            self.db.run("ALTER TABLE histogram_compact RENAME TO histogram_rows")
