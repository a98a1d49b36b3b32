"""The scan: raw records -> rollups, in one engine-portable pass (ibis expressions).

This is the only O(events) step. It reduces prediction records (joined to late labels) to the
sufficient statistics of every SLO per time bucket and slice, computing only what the spec
needs: no histogram without a percentile SLO, no groups without a fairness SLO, no label join
without a labelled SLI. The same expressions run on DuckDB (default) and PySpark.

Values are checked in the same pass: one counter of rows failing a check, and a record with no
valid timestamp shows as the null bucket. Only then do targeted queries name the first failing
check and its first row.

:func:`compile_scan` turns the same expressions into DuckDB SQL that :mod:`mlslo.scan.compiled`
runs and caches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa

from mlslo.errors import DataError, first_line
from mlslo.inputs.checks import LISTED, listed
from mlslo.inputs.fields import check_kind
from mlslo.inputs.files import flatten_attributes
from mlslo.scan.compiled import END, HISTOGRAM_END, START, CompiledScan, Views, edge_offsets
from mlslo.scan.expressions import (
    Bound,
    Expr,
    backend_name,
    bucket_of,
    count_if,
    in_window,
    slo_filter,
    variable_int,
)
from mlslo.scan.histograms import Grid, histogram_queries
from mlslo.scan.plan import Plan, build_plan, classes_of, failing_rows
from mlslo.scan.prepare import (
    Check,
    Emptiness,
    as_timestamp,
    flag,
    join_labels,
    not_numeric,
    prepare,
    slices_of,
    uses_labels,
)
from mlslo.spec import (
    AccuracySLO,
    AvailabilitySLO,
    Spec,
)
from mlslo.stats.rollup import (
    BUCKET,
    CHECKS,
    Rollup,
    all_valid,
    deduplicated,
    histogram_tables,
    outcome_rollup,
    split_histograms,
    stat_column,
    stat_table,
)

ROW = "__row"


@dataclass
class _Grouped:
    """One GROUP BY of the scan: ``prepared`` is the records as read (to name a bad row),
    ``filtered`` those in the window (or without a timestamp)."""

    prepared: Expr
    filtered: Expr
    query: Expr
    plan: Plan
    source: str
    labels: tuple[str, str] | None = None
    """Where joined labels come from: their source and label column."""


@dataclass
class _Queries:
    bucket_seconds: int
    slices: list[str]
    records: _Grouped
    histograms: list[tuple[Expr, list[str]]]
    outcomes: _Grouped | None
    cacheable: bool
    repeated: Expr | None = None


def scan(
    spec: Spec,
    predictions: Expr,
    *,
    start: datetime,
    end: datetime,
    labels: Expr | None = None,
    outcomes: Expr | None = None,
    slice_columns: Sequence[str] = (),
    source: str = "data",
    labels_source: str = "labels",
    outcomes_source: str = "outcomes",
    dedupe: bool = False,
    histogram_edges: Sequence[int] | None = None,
    histogram_slices: Sequence[str] = (),
) -> Rollup:
    """Reduce the records with ``start <= ts < end`` to a :class:`Rollup`.

    ``slice_columns`` adds attributes to slice by beyond those the fairness SLOs need (the
    candidate check slices by ``model_version``). ``dedupe`` counts a repeated prediction id
    once (the service always does, at ingest; on files it costs a hash of every id).
    ``histogram_edges`` sums the histograms between these buckets instead of per bucket.
    ``histogram_slices`` also keeps the percentiles' histograms per value of these columns
    (:attr:`Rollup.sliced_histograms`).
    """
    grid = None
    if histogram_edges:
        last, offsets = edge_offsets(histogram_edges)
        grid = (ibis.literal(last, type=dt.int64), offsets)
    queries = _build(
        spec,
        predictions,
        start=start,
        end=end,
        labels=labels,
        outcomes=outcomes,
        slice_columns=slice_columns,
        source=source,
        labels_source=labels_source,
        outcomes_source=outcomes_source,
        dedupe=dedupe,
        histogram_grid=grid,
        histogram_slices=histogram_slices,
    )
    records = queries.records
    rows = _checked(_execute(records.query, source), records)
    tables: dict[str, pa.Table] = {}
    for query, names in queries.histograms:
        tables.update(histogram_tables(_execute(query, source), names))
    histograms, sliced = split_histograms(tables)
    rollup = Rollup(
        queries.bucket_seconds,
        tuple(queries.slices),
        stat_table(rows, records.plan.names),
        histograms,
        histogram_edges=tuple(histogram_edges) if histogram_edges and histograms else None,
        sliced_histograms=sliced,
    )
    if queries.repeated is not None:
        rollup = deduplicated(rollup, _execute(queries.repeated, source))
    if queries.outcomes is None:
        return rollup
    counted = queries.outcomes
    outcome_rows = _checked(_execute(counted.query, outcomes_source), counted)
    return rollup.merge(
        outcome_rollup(
            stat_table(outcome_rows, counted.plan.names), queries.bucket_seconds, queries.slices
        )
    )


def compile_scan(spec: Spec, con: Expr, views: Views) -> tuple[CompiledScan, bool]:
    """The scan as DuckDB SQL over ``views``, with the window's bounds in DuckDB variables;
    and whether it may be cached (not when a multiclass SLO takes its classes from the
    data)."""
    queries = _over_views(spec, con, views)

    def sql(expr: Expr) -> str:
        return str(con.compile(expr))

    counted = queries.outcomes
    compiled = CompiledScan(
        bucket_seconds=queries.bucket_seconds,
        slices=tuple(queries.slices),
        sql=sql(queries.records.query),
        names=dict(queries.records.plan.names),
        histograms=tuple((sql(q), tuple(n)) for q, n in queries.histograms),
        outcome_sql=None if counted is None else sql(counted.query),
        outcome_names=None if counted is None else dict(counted.plan.names),
        repeated_sql=None if queries.repeated is None else sql(queries.repeated),
        histogram_offsets=views.histogram_offsets if queries.histograms else None,
    )
    return compiled, queries.cacheable


def name_failure(spec: Spec, con: Expr, views: Views) -> DataError:
    """After the compiled scan counted a record failing a value check (its window still set
    on ``con``): the first failing check and its first row, without aggregating again."""
    queries = _over_views(spec, con, views)
    for grouped in (queries.records, queries.outcomes):
        error = _first_failure(grouped) if grouped is not None else None
        if error is not None:
            return error
    return DataError("a record failed a value check", source=queries.records.source)


def _over_views(spec: Spec, con: Expr, views: Views) -> _Queries:
    names = views.locations
    opened = {role: flatten_attributes(con.table(view)) for role, view in views.tables.items()}
    offsets = views.histogram_offsets
    return _build(
        spec,
        opened["predictions"],
        start=START,
        end=END,
        labels=opened.get("labels"),
        outcomes=opened.get("outcomes"),
        slice_columns=views.slice_columns,
        source=names.get("predictions", "data"),
        labels_source=names.get("labels", "labels"),
        outcomes_source=names.get("outcomes", "outcomes"),
        dedupe=views.dedupe,
        histogram_grid=None if offsets is None else (variable_int(HISTOGRAM_END), offsets),
        histogram_slices=views.histogram_slices,
    )


def _build(
    spec: Spec,
    predictions: Expr,
    *,
    start: Bound,
    end: Bound,
    labels: Expr | None,
    outcomes: Expr | None,
    slice_columns: Sequence[str],
    source: str,
    labels_source: str,
    outcomes_source: str,
    dedupe: bool,
    histogram_grid: Grid | None = None,
    histogram_slices: Sequence[str] = (),
) -> _Queries:
    bucket_seconds = int(spec.bucket.total_seconds())
    slices = slices_of(spec, slice_columns)
    empty = Emptiness()
    base, checks = prepare(
        spec,
        predictions,
        source=source,
        outcomes=outcomes is not None,
        slices=slices,
        labels_separate=labels is not None,
        empty=empty,
    )
    table = base
    repeated = None
    if dedupe:
        if "id" not in base.columns:
            raise DataError(
                "is missing; counting each prediction id once needs the id column "
                "(map it with columns: {id: <your column>})",
                source=source,
                column=spec.columns.id,
            )
        table = _first_of_each_id(base)
        seen = base.filter(in_window(base, start, end))
        repeated = seen.aggregate(n=seen.count() - seen.id.nunique())
    joined = None
    if labels is not None and uses_labels(spec):
        table, label_checks = join_labels(spec, table, labels, labels_source, end, empty)
        checks = [*checks, *label_checks]
        joined = (labels_source, spec.label_columns.label)
    window = in_window(table, start, end)
    filtered = table.filter(window | table.ts.isnull())
    classes = classes_of(spec, filtered)
    plan = build_plan(spec, filtered, classes, checks)
    keys = [bucket_of(filtered, bucket_seconds).name(BUCKET), *(filtered[c] for c in slices)]
    query = filtered.group_by(keys).aggregate(**plan.aggregates)
    counted = None
    if outcomes is not None:
        counted = outcome_query(
            spec, outcomes, start, end, bucket_seconds, slices, outcomes_source, empty
        )
    return _Queries(
        bucket_seconds,
        slices,
        _Grouped(base, filtered, query, plan, source, joined),
        histogram_queries(spec, filtered, bucket_seconds, histogram_grid, histogram_slices),
        counted,
        cacheable=not empty.seen
        and not any(
            isinstance(slo, AccuracySLO) and slo.sli.multiclass and slo.sli.classes is None
            for slo in spec.slos
        ),
        repeated=repeated,
    )


def _first_of_each_id(base: Expr) -> Expr:
    """One row per prediction id. DuckDB and Spark keep the first row read; a database
    (PostgreSQL has no ``first`` aggregate) keeps the earliest ``ts``."""
    if backend_name(base) in ("duckdb", "pyspark"):
        return base.distinct(on="id", keep="first")
    order = ibis.window(group_by=base.id, order_by=[base.ts])
    ranked = base.mutate(__mlslo_rank=ibis.row_number().over(order))
    return ranked.filter(ranked.__mlslo_rank == 0).drop("__mlslo_rank")


# --- execution and validation -----------------------------------------------------------------


def _execute(expr: Expr, source: str) -> pa.Table:
    """Run a query. On DuckDB the compiled SQL goes straight to the connection and comes back
    as Arrow (ibis's own path converts through pandas)."""
    try:
        try:
            backend = expr._find_backend()
        except Exception:
            backend = None
        if backend is not None and backend.name == "duckdb":
            table: pa.Table = backend.con.sql(str(backend.compile(expr))).to_arrow_table()
            return table
        result: pa.Table = expr.to_pyarrow()
        return result
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"the scan failed: {first_line(exc)}", source=source) from None


def _checked(rows: pa.Table, grouped: _Grouped) -> pa.Table:
    """The grouped rows, once every record has a timestamp and passes the value checks."""
    if not all_valid(rows):
        raise _first_failure(grouped) or DataError(
            "a record failed a value check", source=grouped.source
        )
    return rows


def _first_failure(grouped: _Grouped) -> DataError | None:
    """Name the first failing check (in plan order) and its first row: counts per check in
    the window, then a targeted query for the row. None when no record fails."""
    checks = grouped.plan.checks
    table = grouped.filtered
    counts = table.aggregate(
        **{f"x{i}": table.count(where=check.predicate(table)) for i, check in enumerate(checks)}
    )
    found = _execute(counts, grouped.source).to_pylist()[0]
    for index, check in enumerate(checks):
        if not found[f"x{index}"]:
            continue
        if check.origin is not None:
            origin = check.origin
            return _locate(origin.table, origin.check, origin.source)
        classes = _listed(check, table, grouped.source)
        if check.field == "label" and grouped.labels is not None:
            source, column = grouped.labels
            value = _first_value(table, check, grouped.source)
            message = check.message.format(value=value, classes=classes)
            return DataError(message, source=source, column=column)
        return _locate(grouped.prepared, check, grouped.source, classes)
    return None


def _locate(table: Expr, check: Check, source: str, classes: str = "") -> DataError:
    """Name the first row that fails ``check`` (a second, targeted query on the records as
    read, before any join, so row numbers are the file's)."""
    row = None
    value = None
    try:
        numbered = table.mutate(**{ROW: ibis.row_number()})
        picked = numbered.filter(check.predicate(numbered)).order_by(ROW).limit(1)
        found = picked.to_pyarrow().to_pylist()
        if found:
            row = int(found[0][ROW]) + 1
            value = found[0].get(check.shown) if check.shown else None
    except Exception:
        row = None
    message = check.message.format(value=value, classes=classes)
    return DataError(message, source=source, column=check.column, row=row)


def _first_value(table: Expr, check: Check, source: str) -> object:
    """The shown value of one row failing ``check`` (for a check on joined rows)."""
    if check.shown is None:
        return None
    rows = table.filter(check.predicate(table)).select(v=table[check.shown]).limit(1)
    found = _execute(rows, source).to_pylist()
    return found[0]["v"] if found else None


def _listed(check: Check, table: Expr, source: str) -> str:
    """The values a check's message lists (``'a', 'b', ...``, at most ``LISTED``)."""
    if check.listing is None:
        return ""
    values = _execute(check.listing(table).order_by("v").limit(LISTED + 1), source)
    return listed(values["v"].to_pylist())


# --- histograms and outcome counts ------------------------------------------------------------


def outcome_query(
    spec: Spec,
    outcomes: Expr,
    start: Bound,
    end: Bound,
    bucket_seconds: int,
    slices: Sequence[str],
    source: str,
    empty: Emptiness | None = None,
) -> _Grouped:
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
    failing = failing_rows(filtered, checks)
    if failing is not None:
        aggregates[CHECKS] = count_if(failing)
    grouped = filtered.group_by(bucket_of(filtered, bucket_seconds).name(BUCKET)).aggregate(
        **aggregates
    )
    return _Grouped(table, filtered, grouped, Plan(aggregates, names, checks), source)


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
