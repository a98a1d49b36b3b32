"""The percentile SLOs' histograms read in the counts' GROUP BY (:mod:`mlslo.scan.coded`): the
rows marked ``__binned`` are (span, bin, rows) of one SLO's histogram each, the others the
counts per key. One read of the records instead of two."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from mlslo.stats.rollup import BUCKET

BINNED = "__binned"
ROWS = "__rows"


def bin_column(index: int) -> str:
    """The column holding the histogram bin of the ``index``-th binned percentile SLO."""
    return f"__bin{index}"


def split_binned(rows: pa.Table, names: Sequence[str]) -> tuple[pa.Table, dict[str, pa.Table]]:
    """The counts per key, and per SLO of ``names`` its histogram (bucket, bin, count)."""
    bins = [bin_column(i) for i in range(len(names))]
    binned = rows[BINNED]  # never null (pa.scalar of a Python value would import pandas)
    counts = rows.filter(pc.invert(binned)).drop_columns([BINNED, ROWS, *bins])
    histograms = {}
    for name, column in zip(names, bins, strict=True):
        mine = rows.filter(pc.and_(binned, pc.is_valid(rows[column])))
        histograms[name] = pa.table(
            {
                BUCKET: mine[BUCKET].cast(pa.int64()),
                "bin": mine[column].cast(pa.int64()),
                "count": mine[ROWS].cast(pa.float64()),
            }
        )
    return counts, histograms
