"""Per-group statistics on a bucket grid, kept compactly.

A dense grid of buckets x groups costs the same for every group whether it saw one record
in a month or one every second: 30 days of 1-minute buckets are 43,200 cells per statistic
and group, 1.7 MB for five statistics, twice that with prefix sums. Here a grid holds two
things instead:

* the totals of each block of :data:`BLOCK` buckets, dense (blocks x groups), with prefix
  sums over blocks, so the whole blocks of a window are two lookups;
* the (bucket, group) cells that hold records, per block, for the partial blocks at a
  window's two edges.

Sums are of the same values, so counts (whole numbers) come out exactly as from the dense
grid.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Array = npt.NDArray[np.float64]
Ints = npt.NDArray[np.integer[Any]]

BLOCK = 60
"""Buckets per block: an hour of the default 1-minute buckets."""
CHUNKS_KEPT = 8
"""A block's cells arrive as one chunk per added delta; past this many they are merged."""


Distinct = tuple[list[tuple[Any, ...]], npt.NDArray[np.int64]]
_recent: list[tuple[weakref.ref[pa.Table], tuple[str, ...], Distinct]] = []
_recent_lock = threading.Lock()
RECENT_TABLES = 4


def distinct_groups(rows: pa.Table, columns: Sequence[str]) -> Distinct:
    """The distinct combinations of ``columns`` in ``rows`` and each row's index among them.
    Every fairness SLO on the same attributes reads the same rollup, so the last few tables'
    answers are kept (by identity, without keeping the tables alive)."""
    key = tuple(columns)
    with _recent_lock:
        for known, known_key, found in _recent:
            if known() is rows and known_key == key:
                return found
    found = _distinct(rows, key)
    with _recent_lock:
        _recent[:] = [(weakref.ref(rows), key, found), *(e for e in _recent if e[0]() is not None)]
        del _recent[RECENT_TABLES:]
    return found


def _distinct(rows: pa.Table, columns: Sequence[str]) -> Distinct:
    """Each attribute is dictionary-encoded, so only the distinct combinations become Python
    tuples; combinations are numbered by a pass over a dense table of every possible one
    when there are not many more of those than rows (no sort)."""
    combined = np.zeros(rows.num_rows, dtype=np.int64)
    dictionaries = []
    space = 1
    for column in columns:
        encoded = pc.dictionary_encode(rows[column].combine_chunks(), null_encoding="encode")
        values = encoded.dictionary.to_pylist()
        indices = np.frombuffer(encoded.indices.buffers()[1], dtype=np.int32)
        offset = encoded.indices.offset
        combined = combined * len(values) + indices[offset : offset + rows.num_rows]
        dictionaries.append(values)
        space *= max(len(values), 1)
    if space <= max(4 * rows.num_rows, 1 << 16):
        present = np.zeros(space, dtype=bool)
        present[combined] = True
        distinct = np.flatnonzero(present)
        inverse = (np.cumsum(present, dtype=np.int64) - 1)[combined]
    else:
        distinct, inverse = np.unique(combined, return_inverse=True)
    groups = []
    for code in distinct.tolist():
        parts = []
        for values in reversed(dictionaries):
            code, index = divmod(code, len(values))
            parts.append(values[index])
        groups.append(tuple(reversed(parts)))
    inverse = inverse.reshape(-1).astype(np.int64, copy=False)
    inverse.setflags(write=False)
    return groups, inverse


class _Cells:
    """The non-empty cells of one block: offsets in the block, group codes and a row of
    values per cell (one column per statistic), sorted by (offset, group) once merged."""

    __slots__ = ("chunks", "merged")

    def __init__(self) -> None:
        self.chunks: list[tuple[Ints, Ints, Array]] = []
        self.merged = True

    def append(self, offsets: Ints, codes: Ints, values: Array) -> None:
        self.chunks.append((offsets, codes, values))
        self.merged = False
        if len(self.chunks) > CHUNKS_KEPT:
            self.merge(values.shape[1])

    def merge(self, stats: int) -> tuple[Ints, Ints, Array]:
        """The cells as one sorted chunk with ``stats`` value columns."""
        if self.merged and self.chunks[0][2].shape[1] == stats:
            return self.chunks[0]
        offsets = np.concatenate([c[0] for c in self.chunks]).astype(np.int64)
        codes = np.concatenate([c[1] for c in self.chunks]).astype(np.int64)
        rows = np.zeros((offsets.size, stats), dtype=np.float64)
        at = 0
        for _, _, values in self.chunks:
            rows[at : at + values.shape[0], : values.shape[1]] = values
            at += values.shape[0]
        width = int(codes.max()) + 1 if codes.size else 1
        keys, inverse = np.unique(offsets * width + codes, return_inverse=True)
        summed = np.zeros((keys.size, stats), dtype=np.float64)
        np.add.at(summed, inverse.reshape(-1), rows)
        occupied = (summed != 0).any(axis=1)
        keys = keys[occupied]
        merged = (
            (keys // width).astype(np.int16),
            (keys % width).astype(np.int32),
            summed[occupied],
        )
        self.chunks = [merged]
        self.merged = True
        return merged


class GroupCells:
    """Sums of named statistics per bucket and group (see the module's docstring)."""

    def __init__(self, block: int = BLOCK) -> None:
        """``block`` buckets per block; with 1, every window reads whole blocks and no cell
        is kept."""
        self.block = block
        self.width = 0
        self.names: list[str] = []
        self._blocks = np.zeros((0, 0, 0), dtype=np.float64)
        self._cells: dict[int, _Cells] = {}
        self._prefix: Array | None = None

    def nbytes(self) -> int:
        """The bytes the arrays hold (for benchmarks and tests of memory)."""
        total = self._blocks.nbytes + (0 if self._prefix is None else self._prefix.nbytes)
        for cells in self._cells.values():
            for offsets, codes, values in cells.chunks:
                total += offsets.nbytes + codes.nbytes + values.nbytes
        return total

    def _grow(self, names: Sequence[str], blocks: int, width: int) -> None:
        for name in names:
            if name not in self.names:
                self.names.append(name)
        rows, columns, stats = self._blocks.shape
        if blocks > rows or width > columns or len(self.names) > stats:
            grown = max(blocks, rows * 2, 8) if blocks > rows else max(rows, 8)
            bigger = np.zeros((grown, max(width, columns), len(self.names)), dtype=np.float64)
            bigger[:rows, :columns, :stats] = self._blocks
            self._blocks = bigger
        self.width = self._blocks.shape[1]

    def add(self, offsets: Ints, codes: Ints, values: Mapping[str, Array], width: int) -> None:
        """Add ``values[name][i]`` to bucket ``offsets[i]`` (from the grid's first bucket)
        of group ``codes[i]``; ``width`` is the number of groups known."""
        blocks = offsets // self.block
        self._grow(list(values), int(blocks.max()) + 1 if blocks.size else 0, width)
        if not offsets.size:
            return
        matrix = np.zeros((offsets.size, len(self.names)), dtype=np.float64)
        for name, column in values.items():
            matrix[:, self.names.index(name)] = column
        rows = self._blocks.shape[0]
        cells = blocks * self.width + codes
        for k in range(len(self.names)):
            summed = np.bincount(cells, weights=matrix[:, k], minlength=rows * self.width)
            self._blocks[:, :, k] += summed[: rows * self.width].reshape(rows, self.width)
        self._prefix = None
        if self.block == 1:
            return
        order = np.argsort(blocks, kind="stable")
        ordered = blocks[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], ordered.size]
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            block = int(ordered[lo])
            pick = order[lo:hi]
            self._cells.setdefault(block, _Cells()).append(
                (offsets[pick] - block * self.block).astype(np.int16),
                codes[pick].astype(np.int32),
                matrix[pick],
            )
        self._prefix = None

    def _prefixes(self) -> Array:
        if self._prefix is None:
            rows, width, stats = self._blocks.shape
            out = np.zeros((rows + 1, width, stats), dtype=np.float64)
            np.cumsum(self._blocks, axis=0, out=out[1:])
            self._prefix = out
        return self._prefix

    def _partial(self, lo: int, hi: int, sums: Array) -> None:
        """Add the cells of buckets ``[lo, hi)``, which lie in one block."""
        if hi <= lo:
            return
        block = lo // self.block
        cells = self._cells.get(block)
        if cells is None:
            return
        offsets, codes, values = cells.merge(len(self.names))
        i, j = np.searchsorted(offsets, (lo - block * self.block, hi - block * self.block)).tolist()
        if j > i:
            picked = codes[i:j]
            for k in range(sums.shape[1]):
                sums[:, k] += np.bincount(picked, weights=values[i:j, k], minlength=sums.shape[0])

    def window(self, pieces: Sequence[tuple[int, int]]) -> dict[str, Array]:
        """The per-group sums of every statistic over the buckets of ``pieces`` (``[a, b)``
        offsets from the grid's first bucket)."""
        sums = np.zeros((self.width, len(self.names)), dtype=np.float64)
        for a, b in pieces:
            if b <= a:
                continue
            first_whole = -(-a // self.block)
            last_whole = b // self.block
            if first_whole > last_whole:
                self._partial(a, b, sums)
                continue
            prefix = self._prefixes()
            top = min(last_whole, prefix.shape[0] - 1)
            sums += prefix[top] - prefix[min(first_whole, top)]
            self._partial(a, first_whole * self.block, sums)
            self._partial(last_whole * self.block, b, sums)
        return {name: sums[:, k] for k, name in enumerate(self.names)}
