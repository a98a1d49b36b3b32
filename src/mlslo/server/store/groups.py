"""How many distinct values each sliced attribute may take. Every value is a slice the
rollups keep for the whole retention, so a sender that writes a fresh value into every record
(a request id in ``group``) would grow memory and every status query without bound. Past the
cap a batch is refused, naming the attribute; or, if the service folds, new values are
written as :data:`OTHER` and count there."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from mlslo.inputs.bodies import BatchError, FieldError
from mlslo.server.store.database import Database, quoted

OTHER = "(other)"
"""The value records of a folded attribute value are counted under."""


class GroupValues:
    def __init__(self, db: Database, cap: int = 1000, fold: bool = False) -> None:
        self.db = db
        self.cap = cap
        self.fold = fold
        self._known: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Read the values again on next use (records were deleted, or the spec changed)."""
        with self._lock:
            self._known.clear()

    def admit(self, batch: pa.Table, attributes: Sequence[str]) -> tuple[pa.Table, int]:
        """The batch with every attribute within the cap, and how many records were folded.
        New values are taken in row order while there is room; they count as taken at once,
        so concurrent batches cannot pass the cap together."""
        folded = 0
        with self._lock:
            for attribute in attributes:
                if attribute not in batch.column_names:
                    continue
                column = batch[attribute].combine_chunks()
                known = self._values(attribute)
                fresh = [v for v in pc.unique(column.drop_null()).to_pylist() if v not in known]
                if len(known) + len(fresh) <= self.cap:
                    known.update(fresh)
                    continue
                room = max(self.cap - len(known), 0)
                order = pc.index_in(pa.array(fresh, pa.string()), column)
                first_seen = [v for _, v in sorted(zip(order.to_pylist(), fresh, strict=True))]
                if not self.fold:
                    raise _too_many(attribute, column, first_seen, len(known), self.cap)
                if room and OTHER not in known:
                    room -= 1
                admitted = set(first_seen[:room])
                known.update(admitted)
                known.add(OTHER)
                outside = pc.and_(
                    pc.is_valid(column),
                    pc.invert(pc.is_in(column, pa.array(sorted(known), pa.string()))),
                )
                folded += pc.sum(pc.cast(outside, pa.int64())).as_py() or 0
                index = batch.column_names.index(attribute)
                batch = batch.set_column(
                    index, attribute, pc.if_else(outside, pa.scalar(OTHER), column)
                )
        return batch, folded

    def _values(self, attribute: str) -> set[str]:
        known = self._known.get(attribute)
        if known is None:
            parts = [
                f"SELECT DISTINCT {quoted(attribute)} AS v FROM {table}"
                for table in ("predictions", "outcomes")
                if attribute in self.db.columns(table)
            ]
            rows = self.db.fetch(" UNION ".join(parts)) if parts else pa.table({"v": []})
            known = self._known[attribute] = {v for v in rows["v"].to_pylist() if v is not None}
        return known


def _too_many(
    attribute: str, column: pa.Array, fresh: Sequence[str], known: int, cap: int
) -> BatchError:
    """Name the first record whose value does not fit."""
    value = fresh[max(cap - known, 0)]
    row = pc.index(column, value).as_py() + 1
    return BatchError(
        [
            FieldError(
                row,
                attribute,
                f"'{value}' passes the cap of {cap:,} distinct values of '{attribute}' "
                f"({known:,} kept, {len(fresh):,} new in this batch); send a grouping with "
                "fewer values (not an id), or raise the service's cap",
            )
        ]
    )
