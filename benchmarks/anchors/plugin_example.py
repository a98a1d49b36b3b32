"""Template for benchmarking another tool side by side with the anchors.

    .venv-anchors/bin/python anchors.py --n 1000000 --plugin plugin_example.py \
        --approaches example_pyarrow_f1 polars_onepass --results-dir results-example

An approach is one function `path -> {window: {metric: value}}` registered with
@approach; the harness times it in a fresh subprocess, cross-checks every metric it
returns against the anchors, and reports its ratio to duckdb_onepass. A tool that
produces sufficient statistics per (day, group, lag bucket) can hand them to
anchors.metrics_from_sufficient_stats to get the full result dict.

This example computes F1 only, with plain pyarrow + numpy.
"""

from anchors import WHOLE, approach


@approach(
    "example_pyarrow_f1",
    imports=("numpy", "pyarrow.compute", "pyarrow.parquet"),
    what="example: pyarrow read of 4 columns, F1 per day and for all rows with numpy masks",
)
def example_pyarrow_f1(path: str) -> dict:
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["ts", "status", "y_true", "y_pred"])
    day = pc.strftime(pc.floor_temporal(t["ts"], unit="day"), format="%Y-%m-%d").to_numpy(
        zero_copy_only=False
    )
    yt = t["y_true"].to_numpy(zero_copy_only=False)  # float, NaN where the label is missing
    yp = t["y_pred"].to_numpy(zero_copy_only=False)  # float, NaN where status == "error"
    labelled = (t["status"].to_numpy(zero_copy_only=False) == "ok") & ~np.isnan(yt)

    def f1(mask) -> float:
        m = mask & labelled
        tp = np.count_nonzero(m & (yt == 1) & (yp == 1))
        fp = np.count_nonzero(m & (yt == 0) & (yp == 1))
        fn = np.count_nonzero(m & (yt == 1) & (yp == 0))
        return 2 * tp / (2 * tp + fp + fn)

    out = {str(d): {"f1": f1(day == d)} for d in np.unique(day)}
    out[WHOLE] = {"f1": f1(np.ones(len(day), dtype=bool))}
    return out
