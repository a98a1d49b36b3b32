"""Rollups: the sufficient statistics of each SLO per time bucket x slice, and their windows.

A :class:`Rollup` is what the scan returns and what the service stores. It merges by
addition. :class:`Timeline` lays one SLO's statistics on a dense grid of buckets with prefix
sums, so the sum over any window is two lookups; every SLI of every window is computed from
those sums by the pure functions in :mod:`mlslo.sli`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

BUCKET = "bucket"
SEP = "/"
Array = npt.NDArray[np.float64]


def stat_column(slo: str, stat: str) -> str:
    return f"{slo}{SEP}{stat}"


@dataclass(frozen=True)
class Rollup:
    """Statistics per bucket (``floor(epoch / bucket_seconds)``) and slice.

    ``table`` has the integer ``bucket``, one column per slice attribute, and one float column
    per statistic named ``"<slo>/<stat>"``. ``histograms`` holds, per percentile SLO, rows of
    ``(bucket, bin, count)``.
    """

    bucket_seconds: int
    slice_columns: tuple[str, ...]
    table: pa.Table
    histograms: Mapping[str, pa.Table] = field(default_factory=dict)

    def columns_of(self, slo: str) -> list[str]:
        prefix = slo + SEP
        return [c for c in self.table.column_names if c.startswith(prefix)]

    def merge(self, other: Rollup) -> Rollup:
        """The rollup of the union of both inputs (statistics add up)."""
        if other.bucket_seconds != self.bucket_seconds:
            raise ValueError("cannot merge rollups with different bucket sizes")
        keys = [BUCKET, *self.slice_columns]
        if list(other.slice_columns) != list(self.slice_columns):
            raise ValueError("cannot merge rollups sliced by different attributes")
        combined = pa.concat_tables([self.table, other.table], promote_options="permissive")
        table = _sum_by(combined, keys)
        histograms = dict(self.histograms)
        for name, rows in other.histograms.items():
            if name in histograms:
                rows = pa.concat_tables([histograms[name], rows])
            histograms[name] = _sum_by(rows, [BUCKET, "bin"])
        return Rollup(self.bucket_seconds, self.slice_columns, table, histograms)


def _sum_by(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    values = [c for c in table.column_names if c not in keys]
    if table.num_rows == 0:
        return table
    grouped = table.group_by(list(keys), use_threads=False).aggregate([(c, "sum") for c in values])
    return grouped.select([*keys, *(f"{c}_sum" for c in values)]).rename_columns([*keys, *values])


@dataclass(frozen=True)
class Histogram:
    """A window's histogram: bins and counts (unsorted, possibly repeated bins)."""

    bins: npt.NDArray[np.int64]
    counts: Array

    @property
    def total(self) -> float:
        return float(self.counts.sum())


@dataclass(frozen=True)
class WindowStats:
    """Everything an SLI family needs for one window: scalar sums, per-group sums, histogram."""

    sums: Mapping[str, float]
    group_sums: Mapping[str, Array] | None = None
    groups: Sequence[tuple[Any, ...]] | None = None
    histogram: Histogram | None = None

    def get(self, name: str) -> float:
        return float(self.sums.get(name, 0.0))


class Timeline:
    """One SLO's statistics on the dense bucket grid ``[first, first + size)``."""

    def __init__(
        self,
        first: int,
        size: int,
        stats: Mapping[str, Array],
        groups: Sequence[tuple[Any, ...]] | None = None,
        group_stats: Mapping[str, npt.NDArray[np.float64]] | None = None,
        histogram: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Array] | None = None,
    ) -> None:
        self.first = first
        self.size = size
        self._prefix = {k: _prefix(v) for k, v in stats.items()}
        self.groups = list(groups) if groups is not None else None
        self._group_prefix = (
            {k: _prefix(v) for k, v in group_stats.items()} if group_stats is not None else None
        )
        self._histogram = histogram

    def _clip(self, start: int, end: int) -> tuple[int, int]:
        a = min(max(start - self.first, 0), self.size)
        b = min(max(end - self.first, 0), self.size)
        return a, max(a, b)

    def window(self, start: int, end: int) -> WindowStats:
        """Sums over the buckets ``[start, end)`` (absolute bucket numbers)."""
        a, b = self._clip(start, end)
        sums = {k: float(p[b] - p[a]) for k, p in self._prefix.items()}
        group_sums = None
        if self._group_prefix is not None:
            group_sums = {k: p[b] - p[a] for k, p in self._group_prefix.items()}
        histogram = None
        if self._histogram is not None:
            buckets, bins, counts = self._histogram
            lo = int(np.searchsorted(buckets, start, side="left"))
            hi = int(np.searchsorted(buckets, end, side="left"))
            histogram = Histogram(bins[lo:hi], counts[lo:hi])
        return WindowStats(sums, group_sums, self.groups, histogram)

    def total(self, name: str, start: int, end: int) -> float:
        a, b = self._clip(start, end)
        p = self._prefix[name]
        return float(p[b] - p[a])


def _prefix(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    shape = (values.shape[0] + 1, *values.shape[1:])
    out = np.zeros(shape, dtype=np.float64)
    np.cumsum(values, axis=0, out=out[1:])
    return out


def build_timeline(
    rollup: Rollup,
    slo: str,
    first: int,
    size: int,
    *,
    group_by: Sequence[str] = (),
    where: Mapping[str, Sequence[Any]] | None = None,
    excluded: Sequence[tuple[int, int]] = (),
) -> Timeline:
    """Lay ``slo``'s statistics on the grid; sum slices, or keep groups of ``group_by``.

    ``where`` keeps only slices whose attribute values are listed (the candidate check);
    ``excluded`` are bucket ranges removed from every window (corrections).
    """
    table = rollup.table
    if where:
        for column, values in where.items():
            mask = pc.is_in(table[column], value_set=pa.array(list(values)))
            table = table.filter(mask)
    columns = rollup.columns_of(slo)
    names = [c.split(SEP, 1)[1] for c in columns]
    buckets = (
        table[BUCKET].to_numpy(zero_copy_only=False).astype(np.int64)
        if table.num_rows
        else np.zeros(0, dtype=np.int64)
    )
    offset = buckets - first
    inside = (offset >= 0) & (offset < size)
    for lo, hi in excluded:
        inside &= ~((buckets >= lo) & (buckets < hi))
    offset = offset[inside]

    def values_of(name: str) -> Array:
        values = table[name].to_numpy(zero_copy_only=False) if table.num_rows else np.zeros(0)
        return np.nan_to_num(np.asarray(values, dtype=np.float64))[inside]

    stats: dict[str, Array] = {
        n: np.bincount(offset, weights=values_of(c), minlength=size)[:size].astype(np.float64)
        for n, c in zip(names, columns, strict=True)
    }
    groups = None
    group_stats = None
    if group_by:
        codes, groups = _group_codes(table, group_by)
        codes = codes[inside]
        g = max(len(groups), 1)
        flat = offset * g + codes
        group_stats = {
            n: np.bincount(flat, weights=values_of(c), minlength=size * g)[: size * g]
            .reshape(size, g)
            .astype(np.float64)
            for n, c in zip(names, columns, strict=True)
        }
    histogram = None
    if slo in rollup.histograms:
        histogram = _histogram_rows(rollup.histograms[slo], first, size, excluded)
    return Timeline(first, size, stats, groups, group_stats, histogram)


def _group_codes(
    table: pa.Table, columns: Sequence[str]
) -> tuple[npt.NDArray[np.int64], list[tuple[Any, ...]]]:
    """Dense codes for each distinct combination of ``columns`` (nulls are a group)."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int64), []
    combined = np.zeros(table.num_rows, dtype=np.int64)
    dictionaries = []
    for column in columns:
        encoded = pc.dictionary_encode(table[column]).combine_chunks()
        dictionary = encoded.dictionary.to_pylist()
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        indices = np.where(np.isnan(indices.astype(np.float64)), len(dictionary), indices).astype(
            np.int64
        )
        dictionaries.append([*dictionary, None])
        combined = combined * (len(dictionary) + 1) + indices
    unique, codes = np.unique(combined, return_inverse=True)
    groups = []
    for value in unique.tolist():
        parts = []
        for dictionary in reversed(dictionaries):
            value, index = divmod(value, len(dictionary))
            parts.append(dictionary[index])
        groups.append(tuple(reversed(parts)))
    order = sorted(range(len(groups)), key=lambda i: tuple(_sort_key(v) for v in groups[i]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], [groups[i] for i in order]


def _sort_key(value: Any) -> tuple[int, str]:
    return (1, "") if value is None else (0, str(value))


def _histogram_rows(
    rows: pa.Table, first: int, size: int, excluded: Sequence[tuple[int, int]]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Array]:
    buckets = rows[BUCKET].to_numpy(zero_copy_only=False).astype(np.int64)
    bins = rows["bin"].to_numpy(zero_copy_only=False).astype(np.int64)
    counts = rows["count"].to_numpy(zero_copy_only=False).astype(np.float64)
    keep = (buckets >= first) & (buckets < first + size)
    for lo, hi in excluded:
        keep &= ~((buckets >= lo) & (buckets < hi))
    buckets, bins, counts = buckets[keep], bins[keep], counts[keep]
    order = np.argsort(buckets, kind="stable")
    return buckets[order], bins[order], counts[order]
