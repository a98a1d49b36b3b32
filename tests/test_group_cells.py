"""Per-group timelines are kept compactly (block totals plus the cells that hold records) and
still sum every window exactly as a dense bucket x group grid does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from mlslo.stats.cells import BLOCK, GroupCells, distinct_groups
from mlslo.stats.rollup import Rollup
from mlslo.stats.timeline import Timeline

STATS = ("tp", "fn", "predictions")


def _deltas(seed: int, groups: int, buckets: int, parts: int) -> list[pd.DataFrame]:
    """Random integer deltas in any bucket order; confusion counts may be negative (a
    relabelled prediction moves between cells), prediction counts never are."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(parts):
        n = int(rng.integers(0, 400))
        frame = pd.DataFrame(
            {
                "bucket": rng.integers(1000, 1000 + buckets, n),
                "group": [f"g{i}" for i in rng.integers(0, groups, n)],
            }
        )
        for stat in STATS:
            lowest = 0 if stat == "predictions" else -1
            frame[f"fair/{stat}"] = rng.integers(lowest, 4, n).astype(float)
        out.append(frame)
    return out


def _rollup(frame: pd.DataFrame) -> Rollup:
    table = pa.table(
        {
            "bucket": pa.array(frame["bucket"].to_numpy(), pa.int64()),
            "group": pa.array(frame["group"].tolist(), pa.string()),
            **{c: pa.array(frame[c].to_numpy()) for c in frame.columns if c.startswith("fair/")},
        }
    )
    return Rollup(60, ("group",), table)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    groups=st.integers(1, 12),
    parts=st.integers(1, 20),
    start=st.integers(900, 1400),
    length=st.integers(0, 500),
    hole=st.integers(0, 300),
)
def test_every_window_sums_as_pandas_does(seed, groups, parts, start, length, hole):
    buckets = 5 * BLOCK + 7
    frames = _deltas(seed, groups, buckets, parts)
    timeline = Timeline("fair", 1000, 0, group_by=("group",))
    for frame in frames:
        timeline.add(_rollup(frame))
    excluded = [(start + hole, start + hole + 25)]
    got = timeline.window(start, start + length, excluded)

    every = pd.concat(frames)
    inside = (every["bucket"] >= start) & (every["bucket"] < start + length)
    inside &= ~((every["bucket"] >= excluded[0][0]) & (every["bucket"] < excluded[0][1]))
    expected = every[inside].groupby("group")[[f"fair/{s}" for s in STATS]].sum()
    assert got.groups == sorted((g,) for g in every["group"].unique())
    assert got.group_sums is not None
    for stat in STATS:
        oracle = expected[f"fair/{stat}"].reindex([g for (g,) in got.groups], fill_value=0.0)
        found = got.group_sums.get(stat, np.zeros(0))  # no statistic when no delta had rows
        np.testing.assert_array_equal(found, oracle.to_numpy())
    last = timeline.last_active("predictions", start, start + length, excluded)
    totals = every[inside].groupby("bucket")["fair/predictions"].sum()
    active = totals[totals > 0.5]
    assert last == (int(active.index.max()) if len(active) else None)


def test_a_group_seen_rarely_costs_little_memory():
    """A month of one-minute buckets for 1,000 groups, each seen about twice an hour: the
    dense grid would hold 43,200 x 1,000 cells per statistic (2 x 1 GB with prefix sums)."""
    rng = np.random.default_rng(7)
    minutes, groups = 30 * 1440, 1000
    cells = GroupCells()
    oracle = np.zeros(groups)
    for day in range(30):
        n = 48_000
        offsets = np.sort(rng.integers(day * 1440, (day + 1) * 1440, n))
        codes = rng.integers(0, groups, n)
        values = {s: rng.integers(0, 2, n).astype(float) for s in ("tp", "fp", "fn", "tn", "n")}
        cells.add(offsets, codes, values, groups)
        inside = (offsets >= 17) & (offsets < minutes - 3)
        oracle += np.bincount(codes[inside], weights=values["n"][inside], minlength=groups)
    sums = cells.window([(17, 200), (200, minutes - 3)])
    per_group = cells.nbytes() / groups
    dense_per_group = minutes * 5 * 8
    assert per_group < 200_000 < dense_per_group
    np.testing.assert_array_equal(sums["n"], oracle)


def _pandas_groups(table: pa.Table, columns: list[str]) -> list[tuple]:
    frame = table.to_pandas()[columns].astype(object)
    frame = frame.where(frame.notna(), None)
    return [tuple(row) for row in frame.itertuples(index=False)]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 300),
    first=st.integers(1, 50),
    second=st.integers(1, 3000),
    both=st.booleans(),
)
def test_distinct_groups_number_every_combination_once(seed, rows, first, second, both):
    """Dense numbering (few possible combinations) and sorting (many) give every row the index
    of its own combination, nulls included, and each combination appears once."""
    rng = np.random.default_rng(seed)
    a = [None if v == 0 else f"a{v}" for v in rng.integers(0, first, rows)]
    b = [None if v == 0 else int(v) for v in rng.integers(0, second, rows)]
    table = pa.table({"a": pa.array(a, pa.string()), "b": pa.array(b, pa.int64())})
    columns = ["a", "b"] if both else ["b"]
    groups, inverse = distinct_groups(table, columns)
    expected = _pandas_groups(table, columns)
    assert [groups[i] for i in inverse] == expected
    assert sorted(groups, key=repr) == sorted(set(expected), key=repr)
    assert not inverse.flags.writeable


def test_distinct_groups_are_reused_only_for_the_same_table_and_columns():
    table = pa.table({"a": ["x", "y", "x"], "b": ["p", "p", "q"]})
    first = distinct_groups(table, ["a"])
    assert distinct_groups(table, ["a"]) is first
    assert distinct_groups(table, ["a", "b"])[0] == [("x", "p"), ("x", "q"), ("y", "p")]
    same_values = pa.table({"a": ["y", "y", "x"], "b": ["p", "p", "q"]})
    groups, inverse = distinct_groups(same_values, ["a"])
    assert [groups[i] for i in inverse] == [("y",), ("y",), ("x",)]


def test_timelines_on_the_same_rollup_share_groups_but_not_codes():
    """Two fairness SLOs on one attribute read one rollup; each timeline keeps its own group
    list, so a timeline that saw groups before numbers the new ones after its own."""
    frame = _deltas(7, 5, 40, 1)[0]
    rollup = _rollup(frame)
    earlier = _rollup(frame[frame["group"] == frame["group"].iloc[-1]])
    fresh = Timeline("fair", 1000, 40, group_by=("group",))
    seasoned = Timeline("fair", 1000, 40, group_by=("group",))
    seasoned.add(earlier)
    fresh.add(rollup)
    seasoned.add(rollup)
    a, b = fresh.window(1000, 1040), seasoned.window(1000, 1040)
    assert a.groups == b.groups
    twice = rollup.table.filter(pc.equal(rollup.table["group"], frame["group"].iloc[-1]))
    for stat in STATS:
        extra = np.zeros(len(b.groups))
        extra[b.groups.index((frame["group"].iloc[-1],))] = pc.sum(twice[f"fair/{stat}"]).as_py()
        np.testing.assert_array_equal(b.group_sums[stat], a.group_sums[stat] + extra)
