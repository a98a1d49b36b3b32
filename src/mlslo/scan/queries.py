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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa

from mlslo.errors import DataError, first_line
from mlslo.inputs.checks import LISTED, listed
from mlslo.inputs.files import flatten_attributes
from mlslo.scan.coded import Coded, coded_projection, coded_sql, split_slices
from mlslo.scan.compiled import (
    COUNT_END,
    END,
    HISTOGRAM_END,
    START,
    CompiledScan,
    Views,
    edge_offsets,
)
from mlslo.scan.expressions import (
    Bound,
    Expr,
    backend_name,
    bucket_of,
    in_window,
    span_start,
    variable_int,
)
from mlslo.scan.histograms import Grid, fusable, fused_bin, histogram_queries
from mlslo.scan.outcomes import Grouped, outcome_query
from mlslo.scan.plan import build_plan, classes_of, last_events
from mlslo.scan.prepare import (
    Check,
    Emptiness,
    join_labels,
    prepare,
    slices_of,
    uses_labels,
)
from mlslo.spec import (
    AccuracySLO,
    FairnessSLO,
    Spec,
)
from mlslo.stats.rollup import (
    BUCKET,
    LAST,
    SEP,
    Rollup,
    all_valid,
    deduplicated,
    histogram_tables,
    outcome_rollup,
    split_histograms,
    stat_table,
)

ROW = "__row"
MINUTE = "__minute"


@dataclass
class _Queries:
    bucket_seconds: int
    slices: list[str]
    records: Grouped
    histograms: list[tuple[Expr, list[str]]]
    outcomes: Grouped | None
    cacheable: bool
    repeated: Expr | None = None
    coded: Coded | None = None


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
    count_edges: Sequence[int] | None = None,
    histogram_slices: Sequence[str] = (),
) -> Rollup:
    """Reduce the records with ``start <= ts < end`` to a :class:`Rollup`.

    ``slice_columns`` adds attributes to slice by beyond those the fairness SLOs need (the
    candidate check slices by ``model_version``). ``dedupe`` counts a repeated prediction id
    once (the service always does, at ingest; on files it costs a hash of every id).
    ``histogram_edges`` sums the histograms between these buckets instead of per bucket,
    ``count_edges`` the other statistics. ``histogram_slices`` also keeps the percentiles'
    histograms per value of these columns (:attr:`Rollup.sliced_histograms`).
    """
    grid = _grid(histogram_edges)
    counts_grid = _grid(count_edges)
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
        count_grid=counts_grid,
        histogram_slices=histogram_slices,
    )
    records = queries.records
    edges = tuple(count_edges) if counts_grid is not None and count_edges else None
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
        count_edges=edges,
    )
    if queries.repeated is not None:
        rollup = deduplicated(rollup, _execute(queries.repeated, source))
    if queries.outcomes is None:
        return rollup
    counted = queries.outcomes
    outcome_rows = _checked(_execute(counted.query, outcomes_source), counted)
    return rollup.merge(
        outcome_rollup(
            stat_table(outcome_rows, counted.plan.names),
            queries.bucket_seconds,
            queries.slices,
            edges,
        )
    )


def _grid(edges: Sequence[int] | None) -> Grid | None:
    if not edges:
        return None
    last, offsets = edge_offsets(edges)
    return ibis.literal(last, type=dt.int64), offsets


def compile_scan(spec: Spec, con: Expr, views: Views) -> tuple[CompiledScan, bool]:
    """The scan as DuckDB SQL over ``views``, with the window's bounds in DuckDB variables;
    and whether it may be cached (not when a multiclass SLO takes its classes from the
    data)."""
    queries = _over_views(spec, con, views)

    def sql(expr: Expr) -> str:
        return str(con.compile(expr))

    counted = queries.outcomes
    coded = queries.coded
    binned = coded.binned if coded is not None else ()
    compiled = CompiledScan(
        bucket_seconds=queries.bucket_seconds,
        slices=tuple(queries.slices),
        sql=sql(queries.records.query)
        if coded is None
        else coded_sql(sql(coded.projection), coded),
        names=dict(queries.records.plan.names if coded is None else coded.names),
        histograms=tuple((sql(q), tuple(n)) for q, n in queries.histograms),
        outcome_sql=None if counted is None else sql(counted.query),
        outcome_names=None if counted is None else dict(counted.plan.names),
        repeated_sql=None if queries.repeated is None else sql(queries.repeated),
        histogram_offsets=views.histogram_offsets if queries.histograms or binned else None,
        count_offsets=views.count_offsets,
        binned=binned,
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
    counted = views.count_offsets
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
        count_grid=None if counted is None else (variable_int(COUNT_END), counted),
        histogram_slices=views.histogram_slices,
        fuse=views.fuse,
        coded=True,
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
    count_grid: Grid | None = None,
    histogram_slices: Sequence[str] = (),
    fuse: bool = False,
    coded: bool = False,
) -> _Queries:
    """The scan's queries. ``coded`` (the compiled DuckDB scan) also builds the one coded
    GROUP BY (:mod:`mlslo.scan.coded`), which reads the percentiles' histograms too when
    ``fuse`` says their spans are the counts' (or neither has edges)."""
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
    if count_grid is not None:  # once per row, so the spans' comparisons read a column
        filtered = filtered.mutate(**{MINUTE: bucket_of(filtered, bucket_seconds)})
    classes = classes_of(spec, filtered)
    plan = build_plan(spec, filtered, classes, checks)
    bucket = bucket_of(filtered, bucket_seconds)
    if count_grid is not None:
        bucket = span_start(filtered[MINUTE], *count_grid)
        for stat, tally in last_events(spec, filtered, filtered[MINUTE]).items():
            plan.add(filtered, stat, tally)
    keys = [bucket.name(BUCKET), *(filtered[c] for c in slices)]
    query = filtered.group_by(keys).aggregate(**plan.aggregates)
    shaped = None
    if coded:
        same_spans = fuse or (histogram_grid is None and count_grid is None)
        binned = fusable(spec, histogram_slices) if same_spans else []
        bins = [(slo.name, fused_bin(filtered, slo)) for slo in binned]
        only_fairness = not (slice_columns or spec.attribution or histogram_slices)
        sliced = _sliced(spec, filtered, slices, plan.names, source) if only_fairness else []
        shaped = coded_projection(filtered, plan, keys, bins, sliced)
    counted = None
    if outcomes is not None:
        counted = outcome_query(
            spec, outcomes, start, end, bucket_seconds, slices, outcomes_source, empty, count_grid
        )
    return _Queries(
        bucket_seconds,
        slices,
        Grouped(base, filtered, query, plan, source, joined),
        histogram_queries(
            spec,
            filtered,
            bucket_seconds,
            histogram_grid,
            histogram_slices,
            binned=shaped.binned if shaped is not None else (),
        ),
        counted,
        cacheable=not empty.seen
        and not any(
            isinstance(slo, AccuracySLO) and slo.sli.multiclass and slo.sli.classes is None
            for slo in spec.slos
        ),
        repeated=repeated,
        coded=shaped,
    )


SAMPLE = 100_000
"""Records read to count the slice values (the coded scan's choice, :func:`split_slices`)."""


def _sliced(
    spec: Spec, table: Expr, slices: Sequence[str], names: Iterable[str], source: str
) -> list[str]:
    """The fairness SLOs' statistics, when the first records show many groups (slices that
    only the fairness SLOs ask for); else none."""
    if not slices:
        return []
    sample = table.select(*slices).limit(SAMPLE).distinct().count()
    if not split_slices(int(_execute(sample.as_table(), source).column(0)[0].as_py())):
        return []
    fair = tuple(slo.name + SEP for slo in spec.slos if isinstance(slo, FairnessSLO))
    return [n for n in names if n.startswith(fair) and not n.split(SEP, 1)[1].startswith(LAST)]


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


def _checked(rows: pa.Table, grouped: Grouped) -> pa.Table:
    """The grouped rows, once every record has a timestamp and passes the value checks."""
    if not all_valid(rows):
        raise _first_failure(grouped) or DataError(
            "a record failed a value check", source=grouped.source
        )
    return rows


def _first_failure(grouped: Grouped) -> DataError | None:
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
