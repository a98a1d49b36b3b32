"""The prediction ids a store keeps, so a repeated id is refused wherever in the retention its
first copy lies: 64-bit hashes (DuckDB's ``hash``) in a sorted array with a small sorted tail,
8 bytes an id. Two different ids sharing a hash is a chance of about n² / 2⁶⁵ — one in ten
thousand for 35 million ids — and would refuse the later one as a repeat."""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

from mlslo.server.store.database import Database

Hashes = npt.NDArray[np.uint64]
TAIL = 262_144
"""Hashes added since the last merge; merged into the sorted array past this size."""


class SeenIds:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._sorted: Hashes = np.empty(0, dtype=np.uint64)
        self._tail: Hashes = np.empty(0, dtype=np.uint64)
        self.loaded = False

    def load(self) -> None:
        """Read every kept prediction id's hash (on open, and after retention deleted some)."""
        table = self.db.fetch("SELECT hash(id) AS h FROM predictions")
        hashes = np.unique(table["h"].to_numpy().astype(np.uint64, copy=False))
        with self._lock:
            self._sorted, self._tail = hashes, np.empty(0, dtype=np.uint64)
            self.loaded = True

    def hashes(self, view: str) -> Hashes:
        """The hash of each id of a registered view's ``id`` column, in row order."""
        table = self.db.fetch(f"SELECT hash(id) AS h FROM {view}")
        return np.asarray(table["h"].to_numpy(), dtype=np.uint64)

    def seen(self, hashes: Hashes) -> npt.NDArray[np.bool_]:
        """Which of ``hashes`` belong to ids already kept."""
        if not self.loaded:
            self.load()
        with self._lock:
            return _contains(self._sorted, hashes) | _contains(self._tail, hashes)

    def add(self, hashes: Hashes) -> None:
        """Remember ids just committed."""
        if not hashes.size:
            return
        with self._lock:
            tail = np.union1d(self._tail, hashes)
            if tail.size > TAIL:
                self._sorted = np.union1d(self._sorted, tail)
                tail = np.empty(0, dtype=np.uint64)
            self._tail = tail

    @property
    def count(self) -> int:
        with self._lock:
            return int(self._sorted.size + self._tail.size)


def _contains(sorted_hashes: Hashes, hashes: Hashes) -> npt.NDArray[np.bool_]:
    if not sorted_hashes.size:
        return np.zeros(hashes.shape, dtype=bool)
    position = np.searchsorted(sorted_hashes, hashes)
    found = np.minimum(position, sorted_hashes.size - 1)
    return np.asarray(sorted_hashes[found] == hashes)
