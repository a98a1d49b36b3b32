"""One SLO's statistics laid on a dense grid of buckets, with prefix sums, so the sum over
any window is two lookups; every SLI of every window is computed from those sums by the pure
functions in :mod:`mlslo.measure.sli`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlslo.stats.calibration import Calibration
from mlslo.stats.rollup import BUCKET, SEP, Array, Rollup, numbers


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
    calibration: Calibration | None = None
    """The score calibration fitted on the labelled history, for CBPE estimates."""

    def get(self, name: str) -> float:
        return float(self.sums.get(name, 0.0))


class Timeline:
    """One SLO's statistics on a dense grid of buckets starting at ``first``.

    The grid grows as later buckets arrive; :meth:`add` adds a rollup delta in place (the
    service keeps timelines current at ingest time); prefix sums are rebuilt lazily, so the
    sum over any window is two lookups. Histogram rows are kept sorted by bucket, so a
    window's histogram is one contiguous slice.
    """

    def __init__(
        self,
        slo: str,
        first: int,
        size: int,
        *,
        group_by: Sequence[str] = (),
        histogram: bool = False,
    ) -> None:
        self.slo = slo
        self.first = first
        self.size = size
        self.group_by = tuple(group_by)
        self._stats: dict[str, Array] = {}
        self.groups: list[tuple[Any, ...]] | None = [] if group_by else None
        self._group_index: dict[tuple[Any, ...], int] = {}
        self._prefix: dict[str, Array] | None = None
        self._summed: dict[str, tuple[Array, Array]] = {}
        self._has_histogram = histogram
        self._hist_buckets = np.zeros(0, dtype=np.int64)
        self._hist_bins = np.zeros(0, dtype=np.int64)
        self._hist_counts = np.zeros(0, dtype=np.float64)
        self._hist_extra: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Array]] = []

    # --- building ------------------------------------------------------------------------

    def _capacity(self) -> int:
        return next(iter(self._stats.values())).shape[0] if self._stats else self.size

    def _ensure(self, names: Sequence[str], end: int) -> None:
        """Make room for buckets up to ``end`` (exclusive) and for every stat in ``names``."""
        needed = max(end - self.first, self.size)
        capacity = self._capacity()
        width = len(self.groups) if self.groups is not None else None
        if needed > capacity:
            grown = max(needed, capacity * 2, 64)
            for name, values in self._stats.items():
                bigger = np.zeros((grown, *values.shape[1:]), dtype=np.float64)
                bigger[: values.shape[0]] = values
                self._stats[name] = bigger
            capacity = grown
        for name in names:
            if name not in self._stats:
                shape = (capacity,) if width is None else (capacity, max(width, 1))
                self._stats[name] = np.zeros(shape, dtype=np.float64)
        self.size = max(self.size, needed)

    def _codes(self, rows: pa.Table) -> npt.NDArray[np.int64]:
        """Group codes for the rows (new groups widen the arrays). Each attribute is
        dictionary-encoded, so only the distinct combinations become Python tuples."""
        assert self.groups is not None
        if not rows.num_rows:
            return np.empty(0, dtype=np.int64)
        combined = np.zeros(rows.num_rows, dtype=np.int64)
        dictionaries = []
        for column in self.group_by:
            encoded = pc.dictionary_encode(rows[column].combine_chunks(), null_encoding="encode")
            values = encoded.dictionary.to_pylist()
            indices = np.frombuffer(encoded.indices.buffers()[1], dtype=np.int32)
            offset = encoded.indices.offset
            combined = combined * len(values) + indices[offset : offset + rows.num_rows]
            dictionaries.append(values)
        distinct, inverse = np.unique(combined, return_inverse=True)
        local = np.empty(len(distinct), dtype=np.int64)
        for i, code in enumerate(distinct.tolist()):
            parts = []
            for values in reversed(dictionaries):
                code, index = divmod(code, len(values))
                parts.append(values[index])
            key = tuple(reversed(parts))
            found = self._group_index.get(key)
            if found is None:
                found = len(self.groups)
                self._group_index[key] = found
                self.groups.append(key)
            local[i] = found
        width = max(len(self.groups), 1)
        for name, values in self._stats.items():
            if values.shape[1] < width:
                wider = np.zeros((values.shape[0], width), dtype=np.float64)
                wider[:, : values.shape[1]] = values
                self._stats[name] = wider
        return local[inverse.reshape(-1)]

    def add(self, rollup: Rollup, where: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Add this SLO's rows of ``rollup`` (a delta, or the whole of it)."""
        table = rollup.table
        if where:
            for column, wanted in where.items():
                table = table.filter(pc.is_in(table[column], value_set=pa.array(list(wanted))))
        prefix = self.slo + SEP
        columns = [c for c in table.column_names if c.startswith(prefix)]
        if table.num_rows and columns:
            buckets = numbers(table[BUCKET], np.int64)
            keep = buckets >= self.first
            offsets = buckets[keep] - self.first
            names = [c[len(prefix) :] for c in columns]
            self._ensure(names, int(buckets.max()) + 1)
            if self.groups is not None:
                codes = self._codes(table if keep.all() else table.filter(pa.array(keep)))
                width = max(len(self.groups), 1)
                cells = offsets * width + codes
            for name, column in zip(names, columns, strict=True):
                values = numbers(table[column], np.float64)
                if not np.isfinite(values).all():
                    values = np.nan_to_num(values)
                target = self._stats[name]
                if self.groups is None:
                    target[: self.size] += np.bincount(
                        offsets, weights=values[keep], minlength=self.size
                    )[: self.size]
                else:
                    sums = np.bincount(cells, weights=values[keep], minlength=self.size * width)
                    target[: self.size, :width] += sums[: self.size * width].reshape(
                        self.size, width
                    )
            self._prefix = None
        rows = rollup.histograms.get(self.slo)
        if self._has_histogram and rows is not None and rows.num_rows:
            buckets = numbers(rows[BUCKET], np.int64)
            keep = buckets >= self.first
            self._ensure([], int(buckets.max()) + 1)
            self._hist_extra.append(
                (
                    buckets[keep],
                    numbers(rows["bin"], np.int64)[keep],
                    numbers(rows["count"], np.float64)[keep],
                )
            )

    def _sorted_histogram(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Array]:
        if self._hist_extra:
            parts = [(self._hist_buckets, self._hist_bins, self._hist_counts), *self._hist_extra]
            buckets = np.concatenate([p[0] for p in parts])
            bins = np.concatenate([p[1] for p in parts])
            counts = np.concatenate([p[2] for p in parts])
            if buckets.size and np.any(np.diff(buckets) < 0):
                order = np.argsort(buckets, kind="stable")
                buckets, bins, counts = buckets[order], bins[order], counts[order]
            self._hist_buckets, self._hist_bins, self._hist_counts = buckets, bins, counts
            self._hist_extra = []
        return self._hist_buckets, self._hist_bins, self._hist_counts

    def _prefixes(self) -> dict[str, Array]:
        if self._prefix is None:
            self._prefix = {k: _prefix(v[: self.size]) for k, v in self._stats.items()}
        return self._prefix

    # --- reading ---------------------------------------------------------------------------

    def _clip(self, start: int, end: int) -> tuple[int, int]:
        a = min(max(start - self.first, 0), self.size)
        b = min(max(end - self.first, 0), self.size)
        return a, max(a, b)

    def window(self, start: int, end: int, excluded: Sequence[tuple[int, int]] = ()) -> WindowStats:
        """Sums over the buckets ``[start, end)`` less the ``excluded`` bucket ranges."""
        pieces = _subtract(start, end, excluded)
        prefixes = self._prefixes()
        sums: dict[str, float] = {}
        group_sums: dict[str, Array] | None = None if self.groups is None else {}
        for name, p in prefixes.items():
            total: Any = 0.0
            for lo, hi in pieces:
                a, b = self._clip(lo, hi)
                total = total + (p[b] - p[a])
            if group_sums is not None:
                group_sums[name] = (
                    np.asarray(total, dtype=np.float64)
                    if not np.isscalar(total)
                    else np.zeros(len(self.groups or []))
                )
            else:
                sums[name] = float(total)
        histogram = None
        if self._has_histogram:
            buckets, bins, counts = self._sorted_histogram()
            parts_bins, parts_counts = [], []
            for lo, hi in pieces:
                i = int(np.searchsorted(buckets, lo, side="left"))
                j = int(np.searchsorted(buckets, hi, side="left"))
                parts_bins.append(bins[i:j])
                parts_counts.append(counts[i:j])
            histogram = Histogram(
                np.concatenate(parts_bins) if parts_bins else np.zeros(0, dtype=np.int64),
                np.concatenate(parts_counts) if parts_counts else np.zeros(0),
            )
        groups = None
        if self.groups is not None and group_sums is not None:
            known = self.groups
            order = sorted(range(len(known)), key=lambda i: tuple(_sort_key(v) for v in known[i]))
            groups = [known[i] for i in order]
            group_sums = {k: v[order] if len(v) == len(order) else v for k, v in group_sums.items()}
        return WindowStats(sums, group_sums, groups, histogram)

    def last_active(
        self, stat: str, start: int, end: int, excluded: Sequence[tuple[int, int]] = ()
    ) -> int | None:
        """The last bucket of ``[start, end)`` less ``excluded`` in which the count ``stat``
        is above 0 (None: none is). Counts never fall, so their prefix sums never decrease
        and a bisection finds it: no pass over the buckets."""
        prefix = self._prefixes().get(stat)
        if prefix is None:
            return None
        if prefix.ndim > 1:
            summed = self._summed.get(stat)
            if summed is None or summed[0] is not prefix:
                summed = (prefix, prefix.sum(axis=1))
                self._summed[stat] = summed
            prefix = summed[1]
        for lo, hi in reversed(_subtract(start, end, excluded)):
            a, b = self._clip(lo, hi)
            if prefix[b] - prefix[a] < 0.5:
                continue
            reached = int(np.searchsorted(prefix[a : b + 1], prefix[b] - 0.5, side="right"))
            return self.first + a + reached - 1
        return None


def _sort_key(value: Any) -> tuple[int, str]:
    return (1, "") if value is None else (0, str(value))


def _subtract(start: int, end: int, excluded: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[start, end)`` minus the excluded ranges, as disjoint ranges."""
    pieces = [(start, end)]
    for lo, hi in excluded:
        out = []
        for a, b in pieces:
            if hi <= a or lo >= b:
                out.append((a, b))
                continue
            if a < lo:
                out.append((a, lo))
            if hi < b:
                out.append((hi, b))
        pieces = out
    return [(a, b) for a, b in pieces if b > a]


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
    histogram: bool = False,
    where: Mapping[str, Sequence[Any]] | None = None,
) -> Timeline:
    """Lay ``slo``'s statistics of ``rollup`` on a grid starting at bucket ``first``."""
    timeline = Timeline(slo, first, size, group_by=group_by, histogram=histogram)
    timeline.add(rollup, where=where)
    return timeline
