"""The service's pull mode: on a schedule (or when an admin asks), read the records that
reached the spec's sources since the last watermark, less a lateness allowance, and ingest
them through the same path as ``POST /api/v1/predictions``, ``/labels`` and ``/outcomes``.

Reading the lateness allowance again is harmless: a prediction whose id is kept already is
left out before it reaches the writer (so it is not counted as a repeat either), a label no
newer than the one kept changes nothing, and an outcome row equal to one kept since the
start of the read is taken for that row. The watermark is kept in the store, with a
fingerprint of the sources, so a restart goes on from it; a source that fails is logged and
reported, and the next pull tries again from the same watermark.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from mlslo.errors import DataError, MlsloError, UsageError
from mlslo.inputs.frames import name_of
from mlslo.inputs.normalize import NORMALIZERS
from mlslo.render.format import iso
from mlslo.scan.files import Sources
from mlslo.scan.pull import read_since, sources_fingerprint
from mlslo.server.store import Kind, Store
from mlslo.server.store.database import naive, quoted

WATERMARK_KEY = "pull_watermark"
CHUNK = 500_000
KINDS: tuple[Kind, ...] = ("predictions", "labels", "outcomes")


@dataclass
class PullStatus:
    """What the pulls have done, for ``GET /api/v1/pull``, /readyz and /metrics."""

    pulls: int = 0
    failures: int = 0
    last_pull: datetime | None = None
    last_success: datetime | None = None
    watermark: datetime | None = None
    read_from: datetime | None = None
    rows_read: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    accepted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    rows_read_total: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    last_error: str | None = None

    def json(self) -> dict[str, Any]:
        def moment(value: datetime | None) -> str | None:
            return None if value is None else iso(value)

        return {
            "pulls": self.pulls,
            "failures": self.failures,
            "last_pull": moment(self.last_pull),
            "last_success": moment(self.last_success),
            "watermark": moment(self.watermark),
            "read_from": moment(self.read_from),
            "rows_read": dict(self.rows_read),
            "accepted": dict(self.accepted),
            "rows_read_total": dict(self.rows_read_total),
            "last_error": self.last_error,
        }


class Puller:
    """Pulls the records of ``sources`` into ``store``; one pull at a time."""

    def __init__(
        self,
        store: Store,
        sources: Sources,
        *,
        clock: Callable[[], datetime],
        lateness: timedelta = timedelta(hours=1),
        max_skew: timedelta = timedelta(minutes=5),
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        if lateness < timedelta(0):
            raise UsageError("the lateness allowance cannot be negative", parameter="lateness")
        self.store = store
        self.sources = sources
        self.clock = clock
        self.lateness = lateness
        self.max_skew = max_skew
        self.log = log
        self.fingerprint = sources_fingerprint(sources)
        self.status = PullStatus(watermark=self.stored_watermark())
        self._lock = threading.Lock()

    def stored_watermark(self) -> datetime | None:
        """The watermark kept in the store for these sources (None: never pulled)."""
        text = self.store.db.meta(WATERMARK_KEY)
        if text is None:
            return None
        stored = json.loads(text)
        if stored.get("sources") != self.fingerprint:
            return None
        return datetime.fromisoformat(stored["watermark"])

    def pull(self) -> PullStatus:
        """Read and ingest what is new; a failure is recorded in the status, not raised."""
        with self._lock:
            now = self.clock()
            try:
                self._pull(now)
            except Exception as exc:
                shown = str(exc) if isinstance(exc, MlsloError) else f"{type(exc).__name__}: {exc}"
                self.status.failures += 1
                self.status.last_error = shown.splitlines()[0] if shown else type(exc).__name__
                self.log(f"pull failed, will try again from the same watermark: {shown}")
            else:
                self.status.last_success = now
                self.status.last_error = None
            self.status.pulls += 1
            self.status.last_pull = now
            return self.status

    def _pull(self, now: datetime) -> None:
        spec = self.store.spec
        max_age = self.store.writer.max_age
        earliest = now - max_age if max_age is not None else None
        watermark = self.stored_watermark()
        since = watermark - self.lateness if watermark is not None else earliest
        if since is None:
            since = now - timedelta(days=36500)
        if earliest is not None:
            since = max(since, earliest)
        pulled = read_since(spec, self.sources, since, now)
        read = pulled.rows
        accepted: dict[str, int] = dict.fromkeys(KINDS, 0)
        tables = {"predictions": pulled.predictions, "labels": pulled.labels}
        tables["outcomes"] = pulled.outcomes
        for kind in KINDS:
            table = tables[kind]
            if table is None or not table.num_rows:
                continue
            for start in range(0, table.num_rows, CHUNK):
                try:
                    batch = NORMALIZERS[kind](
                        table.slice(start, CHUNK),
                        spec,
                        now=now,
                        max_skew=self.max_skew,
                        max_age=max_age,
                    )
                except MlsloError as exc:
                    raise DataError(
                        f"in the {kind} read from {iso(since)} on: {exc}; the watermark stays, "
                        "so the next pull reads them again once they are fixed",
                        source=name_of(getattr(self.sources, kind)),
                    ) from None
                if kind == "predictions":
                    batch = self._unseen(batch)
                batch, folded = self.store.writer.admit(kind, batch)
                if kind == "outcomes":
                    batch = self._unstored_outcomes(batch, since)
                if batch.num_rows:
                    submitted = self.store.writer.submit(kind, batch, folded=folded)
                    accepted[kind] += submitted.result().accepted
        self.store.db.set_meta(
            WATERMARK_KEY,
            json.dumps({"sources": self.fingerprint, "watermark": now.isoformat()}),
        )
        self.status.watermark = now
        self.status.read_from = since
        self.status.rows_read = read
        self.status.accepted = accepted
        for name, count in read.items():
            self.status.rows_read_total[name] += count

    def _unseen(self, batch: pa.Table) -> pa.Table:
        """The predictions whose id the store does not keep yet."""
        seen = self.store.writer.seen
        with self.store.db.registered("mlslo_pulled", batch):
            hashes = seen.hashes("mlslo_pulled")
        return batch.filter(pa.array(~seen.seen(hashes)))

    def _unstored_outcomes(self, batch: pa.Table, since: datetime) -> pa.Table:
        """The outcome rows not kept already among those from ``since`` on (as many copies
        of a row as the source has more than the store)."""
        columns = ", ".join(quoted(c) for c in batch.column_names)
        with self.store.db.registered("mlslo_pulled", batch):
            fresh = self.store.db.fetch(
                f"SELECT {columns} FROM mlslo_pulled EXCEPT ALL "
                f"SELECT {columns} FROM outcomes WHERE ts >= ?",
                [naive(since)],
            )
        return fresh.cast(batch.schema)
