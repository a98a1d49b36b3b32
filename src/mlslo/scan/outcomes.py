"""Outcome counts (availability totals counted elsewhere, e.g. by a load balancer) in the scan:
per bucket (or span between edges), under each availability SLO's filter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt

from mlslo.errors import DataError
from mlslo.inputs.fields import check_kind
from mlslo.scan.expressions import (
    Bound,
    Expr,
    both,
    bucket_of,
    count_if,
    in_window,
    slo_filter,
    span_start,
)
from mlslo.scan.histograms import Grid
from mlslo.scan.plan import Plan, failing_rows, last_where
from mlslo.scan.prepare import Check, Emptiness, as_timestamp, flag, not_numeric
from mlslo.spec import AvailabilitySLO, Spec
from mlslo.stats.rollup import BUCKET, CHECKS, LAST, stat_column


@dataclass
class Grouped:
    """One GROUP BY of the scan: ``prepared`` is the records as read (to name a bad row),
    ``filtered`` those in the window (or without a timestamp)."""

    prepared: Expr
    filtered: Expr
    query: Expr
    plan: Plan
    source: str
    labels: tuple[str, str] | None = None
    """Where joined labels come from: their source and label column."""


def outcome_query(
    spec: Spec,
    outcomes: Expr,
    start: Bound,
    end: Bound,
    bucket_seconds: int,
    slices: Sequence[str],
    source: str,
    empty: Emptiness | None = None,
    grid: Grid | None = None,
) -> Grouped:
    cols = spec.outcome_columns
    empty = empty or Emptiness()
    schema = outcomes.schema()
    counts: dict[str, Expr] = {}
    checks: list[Check] = []
    for field, column in (("ts", cols.ts), ("total", cols.total), ("ok", cols.ok)):
        if column not in schema and empty(outcomes):
            outcomes = outcomes.mutate(**{column: ibis.null(dt.string)})
        elif column not in schema:
            raise DataError(
                f"is missing; outcome counts need ts, total and ok (map them with "
                f"outcome_columns: {{{field}: <your column>}})",
                source=source,
                column=column,
            )
        dtype = outcomes.schema()[column]
        if field == "ts":
            continue
        if dtype.is_string():
            counts[f"__raw_{field}"] = outcomes[column]
            counts[field] = outcomes[column].try_cast("float64").cast("int64")
            message = "'{value}' is not a number; outcome counts must be numbers"
            checks.append(Check(column, not_numeric(field), message, f"__raw_{field}"))
        elif check_kind(dtype, "number") or empty(outcomes):
            counts[field] = outcomes[column].cast("int64")
        else:
            raise DataError(
                f"holds {dtype}; outcome counts must be numbers", source=source, column=column
            )
    schema = outcomes.schema()
    ts, bad_ts, message = as_timestamp(outcomes, cols.ts, required_value=True)
    assert bad_ts is not None
    extra = {
        c: outcomes[c]
        for slo in spec.slos
        if isinstance(slo, AvailabilitySLO)
        for c in slo.filter
        if c in schema
    }
    table = outcomes.select(ts=ts, __bad_ts=bad_ts, **counts, **extra)
    filtered = table.filter(in_window(table, start, end) | table.ts.isnull())
    checks = [
        Check(cols.ts, flag("__bad_ts"), message, in_bucket=True),
        *checks,
        Check(
            cols.ok,
            lambda t: (t.ok < 0) | (t.ok > t.total) | t.ok.isnull() | t.total.isnull(),
            "ok must be between 0 and total (found ok={value})",
            "ok",
        ),
    ]
    for slo in spec.slos:
        missing = [c for c in slo.filter if c not in schema]
        if isinstance(slo, AvailabilitySLO) and missing:
            raise DataError(
                f"is missing; SLO '{slo.name}' filters on it, so outcome counts need it too",
                source=source,
                column=missing[0],
            )
    aggregates, names = outcome_statistics(spec, filtered)
    bucket = bucket_of(filtered, bucket_seconds)
    if grid is not None:
        for slo in spec.slos:
            if isinstance(slo, AvailabilitySLO):
                alias = f"c{len(aggregates)}"
                events = both(slo_filter(filtered, slo), filtered.total > 0)
                aggregates[alias] = last_where(bucket, events)
                names[stat_column(slo.name, LAST + "total")] = alias
        bucket = span_start(bucket, *grid)
    failing = failing_rows(filtered, checks)
    if failing is not None:
        aggregates[CHECKS] = count_if(failing)
    grouped = filtered.group_by(bucket.name(BUCKET)).aggregate(**aggregates)
    return Grouped(table, filtered, grouped, Plan(aggregates, names, checks), source)


def outcome_statistics(spec: Spec, table: Expr) -> tuple[dict[str, Expr], dict[str, str]]:
    """Outcome counts add to every availability SLO's total and ok, under its filter."""
    aggregates: dict[str, Expr] = {}
    names: dict[str, str] = {}
    for slo in spec.slos:
        if not isinstance(slo, AvailabilitySLO):
            continue
        where = slo_filter(table, slo)
        for stat in ("total", "ok"):
            alias = f"c{len(aggregates)}"
            aggregates[alias] = table[stat].sum(where=where).cast("float64")
            names[stat_column(slo.name, stat)] = alias
    return aggregates, names
