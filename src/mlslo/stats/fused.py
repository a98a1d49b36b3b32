"""A percentile SLO's histogram read off the counts' GROUP BY: the counts come grouped by one
more key, the SLO's histogram bin, and are summed back over it here, while the rows per
(span, bin) are the histogram. One read of the records instead of two."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from mlslo.stats.rollup import BUCKET

FUSED_BIN = "__bin"
FUSED_ROWS = "__rows"


def unfuse(
    rows: pa.Table, aggregates: Iterable[str], maxima: Iterable[str]
) -> tuple[pa.Table, pa.Table]:
    """The counts per key without the bin (``maxima`` are the maximum of their column, every
    other aggregate its sum) and the histogram (bucket, bin, count) of the rows whose bin is
    not NULL."""
    largest = set(maxima)
    summed = [c for c in dict.fromkeys(aggregates) if c in rows.column_names]
    keys = [c for c in rows.column_names if c not in (*summed, FUSED_BIN, FUSED_ROWS)]
    grouped = rows.group_by(keys, use_threads=False).aggregate(
        [(c, "max" if c in largest else "sum") for c in summed]
    )
    counts = pa.table(
        {
            **{c: grouped[c] for c in keys},
            **{c: grouped[f"{c}_max" if c in largest else f"{c}_sum"] for c in summed},
        }
    )
    binned = rows.filter(pc.is_valid(rows[FUSED_BIN]))
    per_bin = binned.group_by([BUCKET, FUSED_BIN], use_threads=False).aggregate(
        [(FUSED_ROWS, "sum")]
    )
    histogram = pa.table(
        {
            BUCKET: per_bin[BUCKET].cast(pa.int64()),
            "bin": per_bin[FUSED_BIN].cast(pa.int64()),
            "count": per_bin[f"{FUSED_ROWS}_sum"].cast(pa.float64()),
        }
    )
    return counts, histogram
