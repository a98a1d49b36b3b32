"""The service's store: one DuckDB file, one writer, rollups kept current at ingest time.

Raw records (predictions, labels, outcome counts) are kept for a retention period; the
statistics of every SLO per bucket and slice are added at ingest time, in the same
transaction as the records they come from. Each concern has its own module and object:
:mod:`.rollups` (statistics, what an evaluation at a moment reads), :mod:`.ingest` (the one
writer), :mod:`.tokens`, :mod:`.overrides`, :mod:`.audit` (gate decisions),
:mod:`.alert_state` and :mod:`.retention`, all over one :class:`~.database.Database`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from mlslo.server.store.alert_state import AlertStates
from mlslo.server.store.audit import GateAudit
from mlslo.server.store.database import Database, StoreError, damaged
from mlslo.server.store.groups import GroupValues
from mlslo.server.store.ingest import Ingest, IngestResult, Kind
from mlslo.server.store.overrides import Overrides
from mlslo.server.store.retention import Retention
from mlslo.server.store.rollups import Progress, Rollups, rollup_fingerprint, service_slices
from mlslo.server.store.tokens import SCOPES, Scope, Token, Tokens
from mlslo.spec import Spec

__all__ = [
    "SCOPES",
    "IngestResult",
    "Kind",
    "Scope",
    "Store",
    "StoreError",
    "Token",
    "rollup_fingerprint",
    "service_slices",
]


class Store:
    """Everything the service keeps, in one DuckDB file. Open it with :meth:`Store.open`."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime],
        retention: timedelta,
        label_horizon: timedelta,
        max_groups: int = 1000,
        fold_groups: bool = False,
    ) -> None:
        self.db = db
        self.clock = clock
        self.rollups = Rollups(db, clock)
        self.groups = GroupValues(db, cap=max_groups, fold=fold_groups)
        self.writer = Ingest(db, self.rollups, clock, max_age=retention, groups=self.groups)
        self.tokens = Tokens(db, clock)
        self.overrides = Overrides(db, clock)
        self.audit = GateAudit(db)
        self.alert_states = AlertStates(db)
        self.retention = Retention(
            db,
            self.rollups,
            clock,
            keep=retention,
            label_horizon=label_horizon,
            seen=self.writer.seen,
            groups=self.groups,
        )

    @classmethod
    def open(
        cls,
        path: str | Path,
        spec: Spec,
        *,
        clock: Callable[[], datetime] | None = None,
        retention: timedelta = timedelta(days=35),
        label_horizon: timedelta = timedelta(days=30),
        progress: Progress | None = None,
        memory_limit: str = "512MB",
        max_groups: int = 1000,
        fold_groups: bool = False,
    ) -> Store:
        """Open (or create) the store at ``path`` for ``spec``, rebuilding rollups if the
        spec's statistics changed since the file was last used."""
        store = cls(
            Database.open(path, memory_limit=memory_limit),
            clock=clock or (lambda: datetime.now(UTC)),
            retention=retention,
            label_horizon=label_horizon,
            max_groups=max_groups,
            fold_groups=fold_groups,
        )
        try:
            store.rollups.configure(spec, progress=progress)
            store.writer.seen.load()
        except duckdb.Error as exc:
            store.db.close()
            raise damaged(store.path, exc) from None
        except BaseException:
            store.db.close()
            raise
        return store

    @classmethod
    def open_admin(cls, path: str | Path) -> Store:
        """Open an existing store only for token and override administration (no spec)."""
        if not Path(path).exists():
            raise StoreError(
                f"{path}: no such database; start the server once on it to create it, or "
                "check the path"
            )
        return cls(
            Database.open(path, create=False),
            clock=lambda: datetime.now(UTC),
            retention=timedelta(days=35),
            label_horizon=timedelta(days=30),
        )

    @property
    def path(self) -> str:
        return self.db.path

    @property
    def spec(self) -> Spec:
        spec = self.rollups.spec
        if spec is None:
            raise StoreError("the store was opened for administration only")
        return spec

    @property
    def ready(self) -> bool:
        return self.rollups.ready

    def configure(self, spec: Spec, *, progress: Progress | None = None) -> bool:
        """Adopt ``spec`` (rebuilding the rollups if their inputs changed)."""
        rebuilt = self.rollups.configure(spec, progress=progress)
        self.groups.forget()
        return rebuilt

    def counts(self) -> dict[str, int]:
        """How many records of each kind are kept."""
        out = {}
        for table in ("predictions", "labels", "held_labels", "outcomes"):
            row = self.db.one(f"SELECT count(*) FROM {table}")
            out[table] = int(row[0]) if row else 0
        return out

    def memory(self) -> dict[str, int]:
        """Bytes held by each part of the store: DuckDB's buffer pool (capped by its memory
        limit), the kept prediction ids (8 bytes each, for the whole retention) and the SLOs'
        timelines."""
        row = self.db.one("SELECT sum(memory_usage_bytes) FROM duckdb_memory()")
        with self.rollups.cache_lock:
            timelines = list(self.rollups.timelines.values())
        return {
            "duckdb": int(row[0] or 0) if row else 0,
            "ids": self.writer.seen.count * 8,
            "timelines": sum(t.nbytes() for t in timelines),
        }

    def start(self) -> None:
        self.writer.start()

    def stop(self) -> None:
        self.writer.stop()

    def close(self) -> None:
        self.writer.stop()
        self.db.close()
