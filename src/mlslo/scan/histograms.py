"""The percentile SLOs' histograms in the scan: per measured quantity (latency, lag), counts per
time span x log-bucketed bin (:mod:`mlslo.stats.histogram`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

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
    binned: Collection[str] = (),
) -> list[tuple[Expr, list[str]]]:
    """Per measured quantity (latency, lag), one GROUP BY bucket x bin with a count column per
    percentile SLO (``h0``, ``h1``, ...). With a ``grid`` of edges, a row's bucket is the
    edge that starts its span: a few spans instead of every minute keep the GROUP BY small
    (and fast) while every window that starts and ends on an edge reads the same counts.
    ``by`` also groups the percentiles' counts by these slice columns (attribution asks
    for them: a percentile's slices cannot be read from the unsliced histogram). The SLOs
    named in ``binned`` are left out: the counts' GROUP BY reads theirs."""
    wanted: dict[str, list[AnySLO]] = {}
    for slo in spec.slos:
        if is_percentile(slo) and slo.name not in binned:
            wanted.setdefault(slo.dimension, []).append(slo)
    out = []
    windowed = table.filter(table.ts.notnull())
    for dimension, slos in wanted.items():
        # once per row, so the spans' comparisons and the bin read plain columns
        rows = windowed.mutate(
            __value=_measured(windowed, dimension), __bucket=bucket_of(windowed, bucket_seconds)
        )
        value = rows["__value"]
        bin_ = _bin(value)
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


def _measured(table: Expr, dimension: str) -> Expr:
    if dimension == "latency":
        return table.latency_ms
    return lag_micros(table).cast("float64") / 1_000_000


def _bin(value: Expr) -> Expr:
    safe = ibis.greatest(value, ibis.literal(1e-300))
    return ibis.ifelse(
        value > 0, (safe.ln() / histogram.LOG_GAMMA).floor(), histogram.ZERO_BIN
    ).cast("int64")


def fusable(spec: Spec, by: Sequence[str] = ()) -> list[AnySLO]:
    """The percentile SLOs whose histograms can ride on the counts' GROUP BY: all of them,
    unless their histograms are also sliced (those keep their own query)."""
    return [] if by else [slo for slo in spec.slos if is_percentile(slo)]


def fused_bin(table: Expr, slo: AnySLO) -> Expr:
    """The histogram bin of a row for ``slo``, NULL where the SLO does not count it (no
    timestamp, no value, outside its filter): the rows per (span, bin), a grouping set of
    the counts' GROUP BY (:mod:`mlslo.scan.coded`), are the histogram."""
    value = _measured(table, slo.dimension)
    counted = table.ts.notnull() & value.notnull()
    condition = slo_filter(table, slo)
    if condition is not None:
        counted = counted & condition.fill_null(False)
    return ibis.ifelse(counted, _bin(value), ibis.null("int64"))
