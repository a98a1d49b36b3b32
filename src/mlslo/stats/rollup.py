"""Rollups: the sufficient statistics of each SLO per time bucket x slice, and their windows.

A :class:`Rollup` is what the scan returns and what the service stores. It merges by
addition. :mod:`mlslo.stats.timeline` lays one SLO's statistics on a grid of buckets for windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

BUCKET = "bucket"
SEP = "/"
VERSION = "__version"
"""The model version column of a calibrated CBPE SLO's score bins (null: none recorded)."""
LAST = "last:"
"""A statistic named ``last:<stat>`` holds the last bucket in which ``<stat>`` counted an
event (rollups summed between edges keep it, as a bucket no longer says): merged by max."""
Array = npt.NDArray[np.float64]


_ARROW_TYPES: dict[type, pa.DataType] = {np.int64: pa.int64(), np.float64: pa.float64()}


def numbers(column: pa.ChunkedArray, dtype: type[np.int64] | type[np.float64]) -> Any:
    """A numeric column as a numpy array (nulls as NaN, or 0 for integers).

    Without nulls the chunks' buffers are read directly: pyarrow's own ``to_numpy`` imports
    pandas on first use, which costs more than a whole evaluation of a small rollup.
    """
    column = column.cast(_ARROW_TYPES[dtype])
    if column.null_count:
        converted = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
        return converted if dtype is np.float64 else np.nan_to_num(converted).astype(dtype)
    parts = [
        np.frombuffer(chunk.buffers()[1], dtype=dtype)[chunk.offset : chunk.offset + len(chunk)]
        for chunk in column.chunks
        if len(chunk)
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def stat_column(slo: str, stat: str) -> str:
    return f"{slo}{SEP}{stat}"


@dataclass(frozen=True)
class Rollup:
    """Statistics per bucket (``floor(epoch / bucket_seconds)``) and slice.

    ``table`` has the integer ``bucket``, one column per slice attribute, and one float column
    per statistic named ``"<slo>/<stat>"``. ``histograms`` holds, per percentile SLO, rows of
    ``(bucket, bin, count)`` (a calibrated CBPE SLO's score bins also have the model
    ``VERSION``). ``deduplicated`` says a repeated prediction id was counted once,
    and ``repeated_ids`` how many repeats were left out (None when nobody looked).

    With ``histogram_edges`` (ascending bucket indexes) the histograms are summed between
    consecutive edges: a row's ``bucket`` is the edge that starts its span, and only windows
    that start and end on an edge (or outside the edges, where rows stay per bucket) can be
    read from them. None: every histogram row is one bucket.

    ``count_edges`` does the same for the statistics of ``table``, which then also holds the
    ``last:<stat>`` buckets (see :data:`LAST`).
    """

    bucket_seconds: int
    slice_columns: tuple[str, ...]
    table: pa.Table
    histograms: Mapping[str, pa.Table] = field(default_factory=dict)
    deduplicated: bool = False
    repeated_ids: int | None = None
    histogram_edges: tuple[int, ...] | None = None
    sliced_histograms: Mapping[str, pa.Table] = field(default_factory=dict)
    """Per percentile SLO, rows of ``(bucket, <slice columns>, bin, count)``: kept only when
    attribution asks for a percentile's slices (the scan's ``histogram_slices``)."""
    count_edges: tuple[int, ...] | None = None

    def merge(self, other: Rollup) -> Rollup:
        """The rollup of the union of both inputs (statistics add up)."""
        return merge_all([self, other])


def empty_rollup(bucket_seconds: int, slice_columns: Sequence[str] = ()) -> Rollup:
    """A rollup with no events."""
    columns = {BUCKET: pa.array([], pa.int64())}
    columns.update({c: pa.nulls(0) for c in slice_columns})
    return Rollup(bucket_seconds, tuple(slice_columns), pa.table(columns))


def merge_all(rollups: Sequence[Rollup]) -> Rollup:
    """One rollup from many (one concatenation and one grouped sum)."""
    first = rollups[0]
    for other in rollups[1:]:
        if other.bucket_seconds != first.bucket_seconds:
            raise ValueError("cannot merge rollups with different bucket sizes")
        if list(other.slice_columns) != list(first.slice_columns):
            raise ValueError("cannot merge rollups sliced by different attributes")
    if len(rollups) == 1:
        return first
    keys = [BUCKET, *first.slice_columns]
    combined = pa.concat_tables([r.table for r in rollups], promote_options="permissive")
    histograms: dict[str, pa.Table] = {}
    names = dict.fromkeys(n for r in rollups for n in r.histograms)
    for name in names:
        parts = [r.histograms[name] for r in rollups if name in r.histograms]
        table = pa.concat_tables(parts, promote_options="permissive")
        histograms[name] = _sum_by(table, [c for c in table.column_names if c != "count"])
    sliced: dict[str, pa.Table] = {}
    for name in dict.fromkeys(n for r in rollups for n in r.sliced_histograms):
        parts = [r.sliced_histograms[name] for r in rollups if name in r.sliced_histograms]
        table = pa.concat_tables(parts, promote_options="permissive")
        sliced[name] = _sum_by(table, [c for c in table.column_names if c != "count"])
    counts = [r.repeated_ids for r in rollups if r.repeated_ids is not None]
    edges = {r.histogram_edges for r in rollups if r.histograms}
    if len(edges) > 1:
        raise ValueError("cannot merge histograms summed between different edges")
    count_edges = {r.count_edges for r in rollups if r.table.num_rows}
    if len(count_edges) > 1:
        raise ValueError("cannot merge counts summed between different edges")
    return Rollup(
        first.bucket_seconds,
        first.slice_columns,
        _sum_by(combined, keys),
        histograms,
        deduplicated=first.deduplicated,
        repeated_ids=sum(counts) if counts else None,
        histogram_edges=next(iter(edges), None),
        sliced_histograms=sliced,
        count_edges=next(iter(count_edges), None),
    )


def _sum_by(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    values = [c for c in table.column_names if c not in keys]
    if table.num_rows == 0:
        return table
    how = {c: "max" if SEP + LAST in c else "sum" for c in values}
    grouped = table.group_by(list(keys), use_threads=False).aggregate([(c, how[c]) for c in values])
    return grouped.select([*keys, *(f"{c}_{how[c]}" for c in values)]).rename_columns(
        [*keys, *values]
    )


# --- from the scan's grouped rows -------------------------------------------------------------

CHECKS = "x"


def all_valid(rows: pa.Table) -> bool:
    """No value check failed and every record has a timestamp."""
    if CHECKS in rows.column_names and pc.sum(rows[CHECKS]).as_py():
        return False
    return bool(rows.num_rows == 0 or rows[BUCKET].null_count == 0)


def stat_table(result: pa.Table, names: Mapping[str, str]) -> pa.Table:
    """Keys, then one float column per statistic (from the alias that computed it)."""
    aliases = set(names.values())
    keys = [c for c in result.column_names if c not in aliases and c != CHECKS]
    columns = {c: result[c] for c in keys}
    for stat, alias in names.items():
        column = result[alias]
        if column.type != pa.float64():
            column = column.cast(pa.float64())
        columns[stat] = pc.fill_null(column, 0.0) if column.null_count else column
    return pa.table(columns)


def histogram_tables(rows: pa.Table, names: Sequence[str]) -> dict[str, pa.Table]:
    """Per percentile SLO, its (bucket, bin, count) rows from the ``h<i>`` count columns;
    any other column of ``rows`` is a slice column, kept between the bucket and the bin."""
    counted = {f"h{i}" for i in range(len(names))}
    sliced = [c for c in rows.column_names if c not in (BUCKET, "bin", *counted)]
    out = {}
    for i, name in enumerate(names):
        count = rows[f"h{i}"].cast(pa.float64())  # an engine may count in decimals
        mine = rows.filter(count.cast(pa.bool_()))  # > 0, with no Python scalar (pandas)
        out[name] = pa.table(
            {
                BUCKET: mine[BUCKET].cast(pa.int64()),
                **{c: mine[c] for c in sliced},
                "bin": mine["bin"].cast(pa.int64()),
                "count": mine[f"h{i}"].cast(pa.float64()),
            }
        )
    return out


def split_histograms(
    tables: Mapping[str, pa.Table],
) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
    """The histograms as every window reads them, (bucket, bin, count), and those that came
    with slice columns as they came (for :attr:`Rollup.sliced_histograms`)."""
    plain: dict[str, pa.Table] = {}
    sliced: dict[str, pa.Table] = {}
    for name, table in tables.items():
        if [c for c in table.column_names if c != VERSION] == [BUCKET, "bin", "count"]:
            plain[name] = table
            continue
        sliced[name] = table
        plain[name] = _sum_by(table.select([BUCKET, "bin", "count"]), [BUCKET, "bin"])
    return plain, sliced


def outcome_rollup(
    rows: pa.Table,
    bucket_seconds: int,
    slices: Sequence[str],
    count_edges: tuple[int, ...] | None = None,
) -> Rollup:
    """Outcome counts carry no slice attributes: their slice columns are null."""
    for column in slices:
        rows = rows.append_column(column, pa.nulls(rows.num_rows))
    rows = rows.select(
        [BUCKET, *slices, *(c for c in rows.column_names if c != BUCKET and c not in slices)]
    )
    return Rollup(bucket_seconds, tuple(slices), rows, {}, count_edges=count_edges)


def deduplicated(rollup: Rollup, counted: pa.Table) -> Rollup:
    """``rollup`` marked as counting each prediction id once, with the number of repeats
    left out (the one value of ``counted``)."""
    value = counted.column(0)[0].as_py() if counted.num_rows else 0
    return replace(rollup, deduplicated=True, repeated_ids=int(value or 0))
