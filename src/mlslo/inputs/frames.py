"""Records already in memory: a pandas or Polars DataFrame, a pyarrow Table or
RecordBatchReader, a DuckDB relation, or anything that exports the Arrow PyCapsule stream
interface (``__arrow_c_stream__``).

The scan registers such a table with its DuckDB connection and reads it there, as it reads a
file: nothing is copied through pandas. Only a stream (a RecordBatchReader, a DuckDB relation
of another connection, any other ``__arrow_c_stream__`` exporter) is read into an Arrow table
first, once, because the scan reads its sources more than once (and a gate may scan again).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

import pyarrow as pa

from mlslo.errors import UsageError


@runtime_checkable
class ArrowStreamExportable(Protocol):
    """An object that exports its records through the Arrow PyCapsule stream interface."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...


@dataclass(frozen=True, eq=False)
class InMemory:
    """Records held in memory, ready to register with DuckDB: a pandas or Polars DataFrame
    or an Arrow table, which the scan may read more than once. ``name`` stands for them in
    messages (``predictions (pandas DataFrame)``)."""

    table: Any
    name: str


Records: TypeAlias = str | InMemory
"""Where a role's records are: a file, glob or folder, or a table in memory."""


def name_of(location: Records) -> str:
    """How a source is named in messages."""
    return location.name if isinstance(location, InMemory) else location


def _kind(records: object) -> str:
    kind = type(records)
    module = kind.__module__.split(".")[0]
    return f"{module} {kind.__name__}"


def as_location(records: object, *, role: str) -> Records:
    """A path (``str`` or ``os.PathLike``) as a file location; a table in memory wrapped for
    registration; anything else a :class:`~mlslo.errors.UsageError` naming ``role``."""
    if isinstance(records, str):
        return records
    if isinstance(records, os.PathLike):
        return str(os.fspath(records))
    name = f"{role} ({_kind(records)})"
    if isinstance(records, pa.Table | pa.RecordBatch) or _is_dataframe(records):
        return InMemory(records, name)
    if isinstance(records, pa.RecordBatchReader):
        return InMemory(records.read_all(), name)
    if isinstance(records, ArrowStreamExportable):
        return InMemory(pa.table(records), name)
    raise UsageError(
        f"cannot read {_kind(records)} as records; pass a path or glob, a pandas or Polars "
        "DataFrame, a pyarrow Table or RecordBatchReader, a DuckDB relation, or an object "
        "with __arrow_c_stream__",
        parameter=role,
    )


def _is_dataframe(records: object) -> bool:
    """A pandas or Polars DataFrame (DuckDB scans both natively)."""
    module = type(records).__module__.split(".")[0]
    return module in ("pandas", "polars") and type(records).__name__ == "DataFrame"
