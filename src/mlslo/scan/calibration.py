"""The score bins a calibrated CBPE estimate reads (see :mod:`mlslo.stats.calibration`): one
GROUP BY bucket x model version x score bin with a column per statistic, laid out as histogram
rows ``(bucket, version, kind * BINS + bin, h0)`` so they merge, store and window as any
histogram does (records without a ``model_version`` column are one version, null)."""

from __future__ import annotations

import ibis

from mlslo.scan.expressions import (
    Expr,
    both,
    bucket_of,
    count,
    is_positive,
    slo_filter,
    span_start,
    sum_where,
)
from mlslo.spec import AccuracySLO, Spec, calibrates
from mlslo.stats import calibration as cal
from mlslo.stats.rollup import BUCKET, VERSION


def calibration_queries(
    spec: Spec, table: Expr, bucket_seconds: int, grid: tuple[Expr, tuple[int, ...]] | None = None
) -> list[tuple[Expr, list[str]]]:
    """One query per calibrated CBPE SLO, its rows in the shape of a histogram's (summed
    between the histograms' edges when a ``grid`` of them is given)."""
    out = []
    for slo in spec.slos:
        if isinstance(slo, AccuracySLO) and calibrates(slo):
            out.append((_score_bins(slo, table, bucket_seconds, grid), [slo.name]))
    return out


def _score_bins(
    slo: AccuracySLO, t: Expr, bucket_seconds: int, grid: tuple[Expr, tuple[int, ...]] | None
) -> Expr:
    scored = t.filter(both(t.ts.notnull(), t.score.notnull(), t.prediction.notnull()))
    where = slo_filter(scored, slo)
    score = scored.score.cast("float64")
    bin_ = ibis.least((score * cal.BINS).floor(), cal.BINS - 1).cast("int64")
    labelled = scored.label.notnull()
    pending = scored.label.isnull()
    positive = is_positive(scored.prediction, slo.sli.positive_label)
    statistics = {
        cal.LABELLED: count(scored, where, labelled),
        cal.POSITIVES: count(scored, where, is_positive(scored.label, slo.sli.positive_label)),
        cal.LABELLED_SCORE: sum_where(score, where, labelled),
        cal.PENDING_POS: count(scored, where, pending, positive),
        cal.PENDING_NEG: count(scored, where, pending, ~positive),
        cal.PENDING_POS_SCORE: sum_where(score, where, pending, positive),
        cal.PENDING_NEG_SCORE: sum_where(score, where, pending, ~positive),
    }
    bucket = bucket_of(scored, bucket_seconds)
    if grid is not None:
        bucket = span_start(bucket, grid[0], grid[1])
    version = (
        scored.model_version.cast("string")
        if "model_version" in scored.columns
        else ibis.null("string")
    )
    keys = [bucket.name(BUCKET), version.name(VERSION), bin_.name("score_bin")]
    grouped = scored.group_by(keys).aggregate(
        **{f"k{kind}": expr.cast("float64") for kind, expr in statistics.items()}
    )
    parts = [
        grouped.select(
            grouped[BUCKET],
            grouped[VERSION],
            (grouped.score_bin + kind * cal.BINS).cast("int64").name("bin"),
            grouped[f"k{kind}"].fill_null(0.0).name("h0"),
        )
        for kind in statistics
    ]
    return ibis.union(*parts)
