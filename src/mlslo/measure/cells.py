"""The window's statistics of one SLO, summed per slice (and fairness group, and step) into
small arrays that attribution measures slices and periods from. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlslo.spec import HOUR, AnySLO, needs_histogram
from mlslo.stats.rollup import BUCKET, SEP, Rollup, numbers
from mlslo.stats.timeline import Histogram, WindowStats

HistogramRows = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]
"""(bucket, bin, count) of a percentile SLO's histogram."""


def kept(
    buckets: npt.NDArray[np.int64], a: int, b: int, excluded: Sequence[tuple[int, int]]
) -> Any:
    keep = (buckets >= a) & (buckets < b)
    for lo, hi in excluded:
        keep &= (buckets < lo) | (buckets >= hi)
    return keep


def window_rows(
    rollup: Rollup, slo: str, a: int, b: int, excluded: Sequence[tuple[int, int]]
) -> tuple[pa.Table, list[str]]:
    """The rollup's rows of the window (bucket, slice columns, the SLO's statistics) and the
    names of the statistics."""
    table = rollup.table
    prefix = slo + SEP
    stats = [c for c in table.column_names if c.startswith(prefix)]
    table = table.select([BUCKET, *rollup.slice_columns, *stats])
    table = table.rename_columns(
        [BUCKET, *rollup.slice_columns, *(c[len(prefix) :] for c in stats)]
    )
    names = [c[len(prefix) :] for c in stats]
    if not table.num_rows:
        return table, names
    keep = kept(numbers(table[BUCKET], np.int64), a, b, excluded)
    return table.filter(pa.array(keep)), names


def histogram_rows(
    rollup: Rollup, slo: AnySLO, a: int, b: int, excluded: Sequence[tuple[int, int]]
) -> HistogramRows | None:
    """(bucket, bin, count) arrays of a percentile SLO's histogram in the window."""
    if not needs_histogram(slo):
        return None
    rows = rollup.histograms.get(slo.name)
    if rows is None or not rows.num_rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    buckets = numbers(rows[BUCKET], np.int64)
    keep = kept(buckets, a, b, excluded)
    return (
        buckets[keep],
        numbers(rows["bin"], np.int64)[keep],
        numbers(rows["count"], np.float64)[keep],
    )


def sliced_histogram_rows(
    rollup: Rollup,
    slo: AnySLO,
    columns: Sequence[str],
    a: int,
    b: int,
    excluded: Sequence[tuple[int, int]],
) -> tuple[list[tuple[Any, ...]], npt.NDArray[np.int64], npt.NDArray[np.float64]] | None:
    """A percentile SLO's histogram in the window summed per slice key of ``columns``
    (``hour``: the hour of the bucket) and bin: the keys, bins and counts. None when the
    rollup did not keep the histogram per value of those columns."""
    named = [c for c in columns if c != HOUR]
    rows = rollup.sliced_histograms.get(slo.name) if named else rollup.histograms.get(slo.name)
    if rows is None or any(c not in rows.column_names for c in named):
        return None
    if not rows.num_rows:
        return [], np.zeros(0, dtype=np.int64), np.zeros(0)
    buckets = numbers(rows[BUCKET], np.int64)
    rows = rows.filter(pa.array(kept(buckets, a, b, excluded)))
    keys = [*named, "bin"]
    if HOUR in columns:
        hours = numbers(rows[BUCKET], np.int64) * rollup.bucket_seconds // 3600 * 3600
        rows = rows.append_column("__hour", pa.array(hours, pa.int64()))
        keys = ["__hour", *keys]
    if not rows.num_rows:
        return [], np.zeros(0, dtype=np.int64), np.zeros(0)
    summed = rows.group_by(keys, use_threads=False).aggregate([("count", "sum")])
    lists = {c: summed[c].to_pylist() for c in keys if c != "bin"}
    if "__hour" in lists:
        lists["__hour"] = [datetime.fromtimestamp(h, UTC) for h in lists["__hour"]]
    order = ["__hour" if c == HOUR else c for c in columns]
    found = [tuple(lists[c][i] for c in order) for i in range(summed.num_rows)]
    return found, numbers(summed["bin"], np.int64), numbers(summed["count_sum"], np.float64)


class Cells:
    """The window's statistics summed per slice key (and fairness group, and bucket when
    asked): small arrays the slices and periods are measured from."""

    def __init__(
        self,
        keys: list[tuple[Any, ...]],
        groups: list[tuple[Any, ...]],
        buckets: npt.NDArray[np.int64],
        names: list[str],
        values: npt.NDArray[np.float64],
        grouped: bool,
    ) -> None:
        self.keys = keys
        self.groups = groups
        self.buckets = buckets
        self.names = names
        self.values = values
        self.grouped = grouped

    def distinct(self) -> list[tuple[Any, ...]]:
        return list(dict.fromkeys(self.keys))

    def mask(self, key: tuple[Any, ...]) -> npt.NDArray[np.bool_]:
        return np.array([k == key for k in self.keys], dtype=bool)

    def stats(
        self,
        mask: npt.NDArray[np.bool_],
        histogram: tuple[Any, Any, Any] | None = None,
        span: tuple[int, int] | None = None,
    ) -> WindowStats:
        """The statistics of the cells in ``mask``, with the ``histogram`` rows (sorted by
        bucket) of the buckets in ``span``."""
        values = self.values[mask] if len(self.values) else np.zeros((0, len(self.names)))
        sums = {n: float(values[:, i].sum()) for i, n in enumerate(self.names)}
        found = None
        if histogram is not None:
            buckets, bins, counts = histogram
            lo, hi = 0, len(buckets)
            if span is not None:
                lo = int(np.searchsorted(buckets, span[0], side="left"))
                hi = int(np.searchsorted(buckets, span[1], side="left"))
            found = Histogram(bins[lo:hi], counts[lo:hi])
        if not self.grouped:
            return WindowStats(sums, histogram=found)
        picked = [g for g, keep in zip(self.groups, mask, strict=True) if keep]
        order = sorted(dict.fromkeys(picked), key=lambda g: tuple(_sort_key(v) for v in g))
        index = {g: i for i, g in enumerate(order)}
        codes = np.array([index[g] for g in picked], dtype=np.int64)
        group_sums = {
            n: np.bincount(codes, weights=values[:, i], minlength=len(order)).astype(np.float64)
            for i, n in enumerate(self.names)
        }
        return WindowStats(sums, group_sums, order, found)


def _sort_key(value: Any) -> tuple[int, str]:
    return (1, "") if value is None else (0, str(value))


def sum_cells(
    rows: pa.Table,
    names: Sequence[str],
    columns: Sequence[str],
    groups: Sequence[str],
    bucket_seconds: int,
    *,
    step: str | None = None,
) -> Cells:
    """``rows`` summed per slice key of ``columns`` (``hour``: the hour of the bucket), per
    fairness group of ``groups`` and, with ``step``, per value of that integer column
    (``Cells.buckets``)."""
    table = rows
    if HOUR in columns and table.num_rows:
        hours = numbers(table[BUCKET], np.int64) * bucket_seconds // 3600 * 3600
        table = table.append_column("__hour", pa.array(hours, pa.int64()))
    keys = ["__hour" if c == HOUR else c for c in columns]
    grouping = list(dict.fromkeys([*keys, *groups, *([step] if step else [])]))
    if not grouping:
        summed = pa.table(
            {n: pa.array([pc.sum(table[n]).as_py() or 0.0], pa.float64()) for n in names}
        )
        count = 1
    elif table.num_rows:
        summed = table.group_by(grouping, use_threads=False).aggregate([(n, "sum") for n in names])
        summed = summed.rename_columns(
            [c[:-4] if c.endswith("_sum") and c[:-4] in names else c for c in summed.column_names]
        )
        count = summed.num_rows
    else:
        return Cells(
            [],
            [],
            np.zeros(0, dtype=np.int64),
            list(names),
            np.zeros((0, len(names))),
            bool(groups),
        )
    lists = {c: summed[c].to_pylist() for c in grouping}
    if "__hour" in lists:
        lists["__hour"] = [
            None if h is None else datetime.fromtimestamp(h, UTC) for h in lists["__hour"]
        ]
    slice_keys = [tuple(lists[c][i] for c in keys) for i in range(count)]
    group_keys = [tuple(lists[c][i] for c in groups) for i in range(count)]
    buckets = numbers(summed[step], np.int64) if step else np.zeros(count, dtype=np.int64)
    values = (
        np.column_stack([numbers(summed[n], np.float64) for n in names])
        if names
        else np.zeros((count, 0))
    )
    return Cells(slice_keys, group_keys, buckets, list(names), values, bool(groups))
