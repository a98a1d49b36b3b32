"""The percentile SLOs' histograms in the scan: per measured quantity (latency, lag), counts per
time span x log-bucketed bin (:mod:`mlslo.stats.histogram`)."""

from __future__ import annotations

from collections.abc import Sequence

import ibis

from mlslo.scan.calibration import calibration_queries
from mlslo.scan.expressions import (
    Expr,
    bucket_of,
    count_known,
    lag_micros,
    slo_filter,
    span_start,
)
from mlslo.spec import AnySLO, Spec, is_percentile
from mlslo.stats import histogram
from mlslo.stats.rollup import BUCKET

Grid = tuple[Expr, tuple[int, ...]]
"""Where the histograms' edges are: the last one (an expression) and the distances of all of
them before it."""


def histogram_queries(
    spec: Spec,
    table: Expr,
    bucket_seconds: int,
    grid: Grid | None = None,
    by: Sequence[str] = (),
) -> list[tuple[Expr, list[str]]]:
    """Per measured quantity (latency, lag), one GROUP BY bucket x bin with a count column per
    percentile SLO (``h0``, ``h1``, ...). With a ``grid`` of edges, a row's bucket is the
    edge that starts its span: a few spans instead of every minute keep the GROUP BY small
    (and fast) while every window that starts and ends on an edge reads the same counts.
    ``by`` also groups the percentiles' counts by these slice columns (attribution asks
    for them: a percentile's slices cannot be read from the unsliced histogram)."""
    wanted: dict[str, list[AnySLO]] = {}
    for slo in spec.slos:
        if is_percentile(slo):
            wanted.setdefault(slo.dimension, []).append(slo)
    out = []
    windowed = table.filter(table.ts.notnull())
    for dimension, slos in wanted.items():
        if dimension == "latency":
            measured = windowed.latency_ms
        else:
            measured = lag_micros(windowed).cast("float64") / 1_000_000
        # once per row, so the spans' comparisons and the bin read plain columns
        rows = windowed.mutate(__value=measured, __bucket=bucket_of(windowed, bucket_seconds))
        value = rows["__value"]
        safe = ibis.greatest(value, ibis.literal(1e-300))
        bin_ = ibis.ifelse(
            value > 0, (safe.ln() / histogram.LOG_GAMMA).floor(), histogram.ZERO_BIN
        ).cast("int64")
        counts = {
            f"h{i}": count_known(rows, value, slo_filter(rows, slo)) for i, slo in enumerate(slos)
        }
        bucket = rows["__bucket"]
        if grid is not None:
            bucket = span_start(bucket, grid[0], grid[1])
        keys = [bucket.name(BUCKET), *(rows[c] for c in by), bin_.name("bin")]
        grouped = rows.group_by(keys).aggregate(**counts)
        out.append((grouped, [slo.name for slo in slos]))
    return [*out, *calibration_queries(spec, table, bucket_seconds, grid)]
