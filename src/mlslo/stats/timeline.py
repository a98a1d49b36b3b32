"""One SLO's statistics laid on a dense grid of buckets, with prefix sums, so the sum over
any window is two lookups; every SLI of every window is computed from those sums by the pure
functions in :mod:`mlslo.measure.sli`."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlslo.stats.calibration import VERSION_SPAN, Calibrations
from mlslo.stats.cells import BLOCK, GroupCells, distinct_groups
from mlslo.stats.rollup import BUCKET, LAST, SEP, VERSION, Array, Rollup, numbers


@dataclass(frozen=True)
class Histogram:
    """A window's histogram: bins and counts (unsorted, possibly repeated bins). With
    ``versions`` (a calibrated CBPE SLO's score bins) a bin's model version is
    ``versions[bin // VERSION_SPAN]`` and its score bin ``bin % VERSION_SPAN``."""

    bins: npt.NDArray[np.int64]
    counts: Array
    versions: tuple[Any, ...] | None = None

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
    calibration: Calibrations | None = None
    """The score calibrations fitted on the labelled history, for CBPE estimates."""

    def get(self, name: str) -> float:
        return float(self.sums.get(name, 0.0))


class Timeline:
    """One SLO's statistics on a dense grid of buckets starting at ``first``.

    The grid grows as later buckets arrive; :meth:`add` adds a rollup delta in place (the
    service keeps timelines current at ingest time); prefix sums are rebuilt lazily, so the
    sum over any window is two lookups. With ``group_by``, the dense grid holds the totals
    over all groups and the per-group sums are kept compactly in :class:`GroupCells`.
    Histogram rows are kept sorted by bucket, so a window's histogram is one contiguous
    slice.
    """

    def __init__(
        self,
        slo: str,
        first: int,
        size: int,
        *,
        group_by: Sequence[str] = (),
        histogram: bool = False,
        versioned: bool = False,
        edges: Sequence[int] | None = None,
    ) -> None:
        self.slo = slo
        self.first = first
        self.size = size
        self._edges: npt.NDArray[np.int64] | None = None
        if edges:
            # the counts were summed between these buckets: slot k holds the span
            # [edges[k], edges[k + 1]), the last slot what came after the last edge
            self._edges = np.asarray(edges, dtype=np.int64)
            self.size = len(edges)
        self._last: dict[str, npt.NDArray[np.int64]] = {}
        self.group_by = tuple(group_by)
        self._stats: dict[str, Array] = {}
        self.groups: list[tuple[Any, ...]] | None = [] if group_by else None
        self._group_index: dict[tuple[Any, ...], int] = {}
        self._prefix: dict[str, Array] | None = None
        self._cells: GroupCells | None = None
        if group_by:  # one block per span: every window on edges reads whole blocks
            self._cells = GroupCells(block=1 if self._edges is not None else BLOCK)
        self._order: tuple[npt.NDArray[np.int64], list[tuple[Any, ...]]] | None = None
        self._lock = threading.Lock()
        self._has_histogram = histogram
        self._hist_buckets = np.zeros(0, dtype=np.int64)
        self._hist_bins = np.zeros(0, dtype=np.int64)
        self._hist_counts = np.zeros(0, dtype=np.float64)
        self._hist_extra: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Array]] = []
        self._hist_edges: frozenset[int] | None = None
        self._hist_added = False
        self._hist_span: tuple[int, int] = (0, 0)
        self.versions: list[Any] | None = [] if versioned else None
        self._version_index: dict[Any, int] = {}

    def nbytes(self) -> int:
        """The bytes the arrays hold (for the service's memory gauge and benchmarks)."""
        arrays: list[npt.NDArray[Any]] = [*self._stats.values(), *(self._prefix or {}).values()]
        arrays += [self._hist_buckets, self._hist_bins, self._hist_counts]
        arrays += [a for extra in self._hist_extra for a in extra]
        arrays += list(self._last.values())
        total = sum(a.nbytes for a in arrays)
        return total + (0 if self._cells is None else self._cells.nbytes())

    # --- building ------------------------------------------------------------------------

    def _capacity(self) -> int:
        return next(iter(self._stats.values())).shape[0] if self._stats else self.size

    def _slots(self, buckets: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Where buckets lie on the grid (below 0: before it)."""
        if self._edges is None:
            return buckets - self.first
        slots = np.searchsorted(self._edges, buckets, side="right") - 1
        return np.where(buckets < self._edges[0], -1, slots)

    def _slot(self, moment: int) -> int:
        """Where a window starting or ending at bucket ``moment`` cuts the grid."""
        if self._edges is None:
            return moment - self.first
        edges = self._edges
        if moment > edges[-1]:
            return self.size
        found = int(np.searchsorted(edges, moment, side="left"))
        if moment >= edges[0] and edges[found] != moment:
            raise ValueError(
                f"{self.slo}: the counts are summed between edges and bucket {moment} is "
                "not one; scan with the edges of every window read"
            )
        return found

    def _ensure(self, names: Sequence[str], end: int) -> None:
        """Make room for slots up to ``end`` (exclusive) and for every stat in ``names``."""
        needed = max(end, self.size)
        capacity = self._capacity()
        if needed > capacity:
            grown = max(needed, capacity * 2, 64)
            for name, values in self._stats.items():
                bigger = np.zeros((grown, *values.shape[1:]), dtype=np.float64)
                bigger[: values.shape[0]] = values
                self._stats[name] = bigger
            capacity = grown
        for name in names:
            if name not in self._stats:
                self._stats[name] = np.zeros(capacity, dtype=np.float64)
        self.size = max(self.size, needed)

    def _codes(self, rows: pa.Table) -> npt.NDArray[np.int64]:
        """Group codes for the rows (new groups widen the arrays)."""
        assert self.groups is not None
        if not rows.num_rows:
            return np.empty(0, dtype=np.int64)
        distinct, inverse = distinct_groups(rows, self.group_by)
        local = np.empty(len(distinct), dtype=np.int64)
        for i, key in enumerate(distinct):
            found = self._group_index.get(key)
            if found is None:
                found = len(self.groups)
                self._group_index[key] = found
                self.groups.append(key)
            local[i] = found
        return local[inverse]

    def add(self, rollup: Rollup, where: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Add this SLO's rows of ``rollup`` (a delta, or the whole of it). The service adds
        while status reads run, so adding and reading take turns."""
        with self._lock:
            self._add(rollup, where)

    def _add(self, rollup: Rollup, where: Mapping[str, Sequence[Any]] | None) -> None:
        table = rollup.table
        if where:
            for column, wanted in where.items():
                table = table.filter(pc.is_in(table[column], value_set=pa.array(list(wanted))))
        prefix = self.slo + SEP
        columns = [c for c in table.column_names if c.startswith(prefix)]
        if table.num_rows and columns:
            buckets = numbers(table[BUCKET], np.int64)
            slots = self._slots(buckets)
            keep = slots >= 0
            offsets = slots[keep]
            names = [c[len(prefix) :] for c in columns]
            lasts = [n for n in names if n.startswith(LAST)]
            names = [n for n in names if not n.startswith(LAST)]
            self._ensure(names, int(offsets.max()) + 1 if offsets.size else 0)
            for name in lasts:
                self._add_last(name, offsets, numbers(table[prefix + name], np.int64)[keep])
            kept: dict[str, Array] = {}
            for name in names:
                column = prefix + name
                values = numbers(table[column], np.float64)
                if not np.isfinite(values).all():
                    values = np.nan_to_num(values)
                kept[name] = values[keep]
                self._stats[name][: self.size] += np.bincount(
                    offsets, weights=kept[name], minlength=self.size
                )[: self.size]
            if self._cells is not None and self.groups is not None:
                codes = self._codes(table if keep.all() else table.filter(pa.array(keep)))
                self._cells.add(offsets, codes, kept, len(self.groups))
            self._prefix = None
        rows = rollup.histograms.get(self.slo)
        if self._has_histogram and rows is not None and rows.num_rows:
            self._set_edges(rollup.histogram_edges)
            buckets = numbers(rows[BUCKET], np.int64)
            keep = buckets >= self.first
            if self._edges is None:
                self._ensure([], int(buckets.max()) + 1 - self.first)
            bins = numbers(rows["bin"], np.int64)
            if self.versions is not None:
                bins = bins + self._version_codes(rows) * VERSION_SPAN
            self._hist_extra.append(
                (buckets[keep], bins[keep], numbers(rows["count"], np.float64)[keep])
            )

    def _version_codes(self, rows: pa.Table) -> npt.NDArray[np.int64]:
        """The index of each row's model version in :attr:`versions` (new ones appended)."""
        assert self.versions is not None
        if VERSION in rows.column_names:
            column = rows[VERSION].combine_chunks().cast(pa.string())
        else:
            column = pa.nulls(rows.num_rows, pa.string())
        encoded = pc.dictionary_encode(column, null_encoding="encode")
        codes = []
        for value in encoded.dictionary.to_pylist():
            if value not in self._version_index:
                self._version_index[value] = len(self.versions)
                self.versions.append(value)
            codes.append(self._version_index[value])
        indices: npt.NDArray[np.int64] = numbers(pa.chunked_array([encoded.indices]), np.int64)
        return np.asarray(codes, dtype=np.int64)[indices]

    def _add_last(self, name: str, slots: npt.NDArray[np.int64], last: Any) -> None:
        """Keep per slot the last bucket holding an event (for :meth:`last_active`)."""
        kept = self._last.get(name)
        if kept is None or kept.size < self.size:
            grown = np.full(self.size, -1, dtype=np.int64)
            if kept is not None:
                grown[: kept.size] = kept
            kept = grown
        np.maximum.at(kept, slots, last)
        self._last[name] = kept

    def _set_edges(self, edges: tuple[int, ...] | None) -> None:
        given = None if edges is None else frozenset(edges)
        if self._hist_added and given != self._hist_edges:
            raise ValueError("cannot add histograms summed between other edges")
        self._hist_added = True
        self._hist_edges = given
        if edges:
            self._hist_span = (edges[0], edges[-1])

    def _check_edge(self, moment: int) -> None:
        """A window read from histograms summed between edges must start and end on one."""
        low, high = self._hist_span
        if self._hist_edges is not None and low < moment < high and moment not in self._hist_edges:
            raise ValueError(
                f"{self.slo}: the histogram is summed between edges and bucket {moment} is "
                "not one; scan with the edges of every window read"
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
        a = min(max(self._slot(start), 0), self.size)
        b = min(max(self._slot(end), 0), self.size)
        return a, max(a, b)

    def window(self, start: int, end: int, excluded: Sequence[tuple[int, int]] = ()) -> WindowStats:
        """Sums over the buckets ``[start, end)`` less the ``excluded`` bucket ranges."""
        with self._lock:
            return self._window(start, end, excluded)

    def _window(self, start: int, end: int, excluded: Sequence[tuple[int, int]]) -> WindowStats:
        pieces = _subtract(start, end, excluded)
        sums: dict[str, float] = {}
        group_sums: dict[str, Array] | None = None
        if self._cells is not None:
            found = self._cells.window([self._clip(lo, hi) for lo, hi in pieces])
            width = len(self.groups or [])
            group_sums = {name: found.get(name, np.zeros(width)) for name in self._stats}
        else:
            for name, p in self._prefixes().items():
                total = 0.0
                for lo, hi in pieces:
                    a, b = self._clip(lo, hi)
                    total += float(p[b] - p[a])
                sums[name] = total
        histogram = None
        if self._has_histogram:
            buckets, bins, counts = self._sorted_histogram()
            parts_bins, parts_counts = [], []
            for lo, hi in pieces:
                self._check_edge(lo)
                self._check_edge(hi)
                i = int(np.searchsorted(buckets, lo, side="left"))
                j = int(np.searchsorted(buckets, hi, side="left"))
                parts_bins.append(bins[i:j])
                parts_counts.append(counts[i:j])
            histogram = Histogram(
                np.concatenate(parts_bins) if parts_bins else np.zeros(0, dtype=np.int64),
                np.concatenate(parts_counts) if parts_counts else np.zeros(0),
                None if self.versions is None else tuple(self.versions),
            )
        groups = None
        if self.groups is not None and group_sums is not None:
            order, groups = self._group_order()
            group_sums = {k: v[order] for k, v in group_sums.items()}
        return WindowStats(sums, group_sums, groups, histogram)

    def _group_order(self) -> tuple[npt.NDArray[np.int64], list[tuple[Any, ...]]]:
        """Group indices in the order results list them, and the groups in that order (groups
        are only ever appended, so both are kept until a new group arrives; every window
        shares the one list)."""
        known = self.groups or []
        if self._order is None or len(self._order[1]) != len(known):
            order = sorted(range(len(known)), key=lambda i: tuple(_sort_key(v) for v in known[i]))
            self._order = (np.asarray(order, dtype=np.int64), [known[i] for i in order])
        return self._order

    def last_active(
        self, stat: str, start: int, end: int, excluded: Sequence[tuple[int, int]] = ()
    ) -> int | None:
        """The last bucket of ``[start, end)`` less ``excluded`` in which the count ``stat``
        is above 0 (None: none is). Counts never fall, so their prefix sums never decrease
        and a bisection finds it: no pass over the buckets."""
        with self._lock:
            return self._last_active(stat, start, end, excluded)

    def _last_active(
        self, stat: str, start: int, end: int, excluded: Sequence[tuple[int, int]]
    ) -> int | None:
        prefix = self._prefixes().get(stat)
        if prefix is None:
            return None
        for lo, hi in reversed(_subtract(start, end, excluded)):
            a, b = self._clip(lo, hi)
            if prefix[b] - prefix[a] < 0.5:
                continue
            reached = int(np.searchsorted(prefix[a : b + 1], prefix[b] - 0.5, side="right"))
            slot = a + reached - 1
            if self._edges is None:
                return self.first + slot
            last = self._last.get(LAST + stat)
            if last is None or last[slot] < 0:
                raise ValueError(f"{self.slo}: the counts hold no last bucket of '{stat}'")
            return int(last[slot])
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
    versioned: bool = False,
) -> Timeline:
    """Lay ``slo``'s statistics of ``rollup`` on a grid starting at bucket ``first`` (one
    slot per span when the rollup's counts were summed between edges; ``versioned``: its
    histogram is score bins per model version)."""
    timeline = Timeline(
        slo,
        first,
        size,
        group_by=group_by,
        histogram=histogram,
        versioned=versioned,
        edges=rollup.count_edges,
    )
    timeline.add(rollup, where=where)
    return timeline
