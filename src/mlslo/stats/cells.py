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

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Ints = npt.NDArray[np.integer[Any]]

BLOCK = 60
"""Buckets per block: an hour of the default 1-minute buckets."""
CHUNKS_KEPT = 8
"""A block's cells arrive as one chunk per added delta; past this many they are merged."""


class _Cells:
    """The non-empty cells of one block: offsets in the block, group codes and values, sorted
    by (offset, group) once merged."""

    __slots__ = ("chunks", "merged")

    def __init__(self) -> None:
        self.chunks: list[tuple[Ints, Ints, dict[str, Array]]] = []
        self.merged = True

    def append(self, offsets: Ints, codes: Ints, values: dict[str, Array]) -> None:
        self.chunks.append((offsets, codes, values))
        self.merged = False
        if len(self.chunks) > CHUNKS_KEPT:
            self.merge()

    def merge(self) -> tuple[Ints, Ints, dict[str, Array]]:
        if self.merged:
            return self.chunks[0]
        offsets = np.concatenate([c[0] for c in self.chunks]).astype(np.int64)
        codes = np.concatenate([c[1] for c in self.chunks]).astype(np.int64)
        names = dict.fromkeys(n for c in self.chunks for n in c[2])
        width = int(codes.max()) + 1 if codes.size else 1
        keys, inverse = np.unique(offsets * width + codes, return_inverse=True)
        inverse = inverse.reshape(-1)
        values: dict[str, Array] = {}
        for name in names:
            column = np.concatenate([c[2].get(name, np.zeros(c[0].shape[0])) for c in self.chunks])
            values[name] = np.asarray(
                np.bincount(inverse, weights=column, minlength=keys.size), dtype=np.float64
            )
        occupied = np.zeros(keys.size, dtype=bool)
        for summed in values.values():
            occupied |= summed != 0
        keys = keys[occupied]
        merged = (
            (keys // width).astype(np.int16),
            (keys % width).astype(np.int32),
            {name: column[occupied] for name, column in values.items()},
        )
        self.chunks = [merged]
        self.merged = True
        return merged


class GroupCells:
    """Sums of named statistics per bucket and group (see the module's docstring)."""

    def __init__(self) -> None:
        self.width = 0
        self._blocks: dict[str, Array] = {}
        self._cells: dict[int, _Cells] = {}
        self._prefix: dict[str, Array] | None = None

    @property
    def names(self) -> list[str]:
        return list(self._blocks)

    def nbytes(self) -> int:
        """The bytes the arrays hold (for benchmarks and tests of memory)."""
        total = sum(a.nbytes for a in self._blocks.values())
        total += sum(a.nbytes for a in (self._prefix or {}).values())
        for cells in self._cells.values():
            for offsets, codes, values in cells.chunks:
                total += offsets.nbytes + codes.nbytes + sum(v.nbytes for v in values.values())
        return total

    def _grow(self, names: Sequence[str], blocks: int, width: int) -> None:
        rows = next(iter(self._blocks.values())).shape[0] if self._blocks else 0
        columns = self.width
        if blocks > rows or width > columns:
            rows = max(blocks, rows * 2, 8) if blocks > rows else rows
            columns = max(width, columns)
            for name, values in self._blocks.items():
                bigger = np.zeros((rows, columns), dtype=np.float64)
                bigger[: values.shape[0], : values.shape[1]] = values
                self._blocks[name] = bigger
        for name in names:
            if name not in self._blocks:
                self._blocks[name] = np.zeros((max(rows, 8), columns), dtype=np.float64)
        self.width = columns

    def add(self, offsets: Ints, codes: Ints, values: Mapping[str, Array], width: int) -> None:
        """Add ``values[name][i]`` to bucket ``offsets[i]`` (from the grid's first bucket)
        of group ``codes[i]``; ``width`` is the number of groups known."""
        if not offsets.size:
            self._grow(list(values), 0, width)
            return
        blocks = offsets // BLOCK
        self._grow(list(values), int(blocks.max()) + 1, width)
        rows = self._blocks[next(iter(values))].shape[0]
        cells = blocks * self.width + codes
        for name, column in values.items():
            summed = np.bincount(cells, weights=column, minlength=rows * self.width)
            self._blocks[name] += summed[: rows * self.width].reshape(rows, self.width)
        order = np.argsort(blocks, kind="stable")
        ordered = blocks[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], ordered.size]
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            block = int(ordered[lo])
            pick = order[lo:hi]
            self._cells.setdefault(block, _Cells()).append(
                (offsets[pick] - block * BLOCK).astype(np.int16),
                codes[pick].astype(np.int32),
                {name: column[pick] for name, column in values.items()},
            )
        self._prefix = None

    def _prefixes(self) -> dict[str, Array]:
        if self._prefix is None:
            prefix = {}
            for name, values in self._blocks.items():
                out = np.zeros((values.shape[0] + 1, self.width), dtype=np.float64)
                np.cumsum(values[:, : self.width], axis=0, out=out[1:])
                prefix[name] = out
            self._prefix = prefix
        return self._prefix

    def _partial(self, lo: int, hi: int, sums: dict[str, Array]) -> None:
        """Add the cells of buckets ``[lo, hi)``, which lie in one block."""
        if hi <= lo:
            return
        block = lo // BLOCK
        cells = self._cells.get(block)
        if cells is None:
            return
        offsets, codes, values = cells.merge()
        i = int(np.searchsorted(offsets, lo - block * BLOCK, side="left"))
        j = int(np.searchsorted(offsets, hi - block * BLOCK, side="left"))
        if j <= i:
            return
        picked = codes[i:j]
        for name, column in values.items():
            sums[name] += np.bincount(picked, weights=column[i:j], minlength=self.width)[
                : self.width
            ]

    def window(self, a: int, b: int, sums: dict[str, Array]) -> None:
        """Add the per-group sums over buckets ``[a, b)`` (offsets from the grid's first
        bucket) to ``sums``."""
        if b <= a:
            return
        first_whole = -(-a // BLOCK)
        last_whole = b // BLOCK
        if first_whole > last_whole:
            self._partial(a, b, sums)
            return
        prefix = self._prefixes()
        for name, p in prefix.items():
            top = min(last_whole, p.shape[0] - 1)
            bottom = min(first_whole, top)
            sums[name] += p[top] - p[bottom]
        self._partial(a, first_whole * BLOCK, sums)
        self._partial(last_whole * BLOCK, b, sums)
