"""A status read runs while ingestion adds to the same timeline: neither sees the other's
half-done work, and nothing added is lost."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa

from mlslo.stats.rollup import Rollup
from mlslo.stats.timeline import Timeline

STATS = ("predictions", "tp", "fn")


def _delta(rng: np.random.Generator, step: int) -> Rollup:
    n = 50
    groups = [f"g{i}" for i in rng.integers(0, 3 + step // 10, n)]
    table = pa.table(
        {
            "bucket": pa.array(rng.integers(0, 3000, n), pa.int64()),
            "group": groups,
            **{f"fair/{s}": pa.array(np.ones(n)) for s in STATS},
        }
    )
    return Rollup(60, ("group",), table)


def test_reads_during_adds_fail_nothing_and_lose_nothing():
    rng = np.random.default_rng(3)
    deltas = [_delta(rng, step) for step in range(400)]
    timeline = Timeline("fair", 0, 3000, group_by=("group",))
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                got = timeline.window(0, 3000)
                assert got.group_sums is not None and got.groups is not None
                for sums in got.group_sums.values():
                    assert len(sums) == len(got.groups)
                timeline.last_active("predictions", 0, 3000)
            except BaseException as exc:
                failures.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    for delta in deltas:
        timeline.add(delta)
    done.set()
    for reader in readers:
        reader.join()
    assert failures == []
    got = timeline.window(0, 3000)
    assert got.group_sums is not None
    assert got.group_sums["predictions"].sum() == 400 * 50
    expected: dict[str, float] = {}
    for delta in deltas:
        for group in delta.table["group"].to_pylist():
            expected[group] = expected.get(group, 0.0) + 1.0
    assert dict(zip([g for (g,) in got.groups or []], got.group_sums["tp"], strict=True)) == (
        expected
    )
