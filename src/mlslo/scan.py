"""The scan: raw records -> rollups, in one engine-portable pass (ibis expressions).

This is the only O(events) step. It reduces prediction records (joined to late labels) to the
sufficient statistics of every SLO per time bucket and slice, computing only what the spec
needs: no histogram without a percentile SLO, no groups without a fairness SLO, no label join
without a labelled SLI. The same expressions run on DuckDB (default) and PySpark.

Values are checked in the same pass: one counter of rows failing a check, and a record with no
valid timestamp shows as the null bucket. Only then do targeted queries name the first failing
check and its first row.

:func:`compile_scan` turns the same expressions into DuckDB SQL that :mod:`mlslo.compiled`
runs and caches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa

from mlslo import histogram
from mlslo.compiled import BATCH_TABLE, END, START, BatchScan, CompiledScan, bound_variable
from mlslo.errors import DataError, first_line
from mlslo.records import (
    Need,
    check_kind,
    column_for,
    missing_column,
    needs,
    wrong_kind,
)
from mlslo.rollup import (
    BUCKET,
    CHECKS,
    Rollup,
    all_valid,
    histogram_tables,
    outcome_rollup,
    stat_column,
    stat_table,
)
from mlslo.sources import flatten_attributes
from mlslo.spec import (
    AccuracySLO,
    AnySLO,
    AvailabilitySLO,
    FairnessSLO,
    FreshnessSLO,
    LatencySLO,
    Scalar,
    Spec,
    needs_histogram,
)

Expr = Any  # ibis expressions are dynamically typed
ROW = "__row"


@dataclass(frozen=True)
class Check:
    """Marks invalid rows (``predicate`` builds the test over a prepared table), and what to
    tell the user about them. ``shown`` is the prepared column whose value the message quotes.
    ``in_bucket``: a failing row has no timestamp, so it shows as the null bucket and needs
    no count of its own."""

    column: str
    predicate: Callable[[Expr], Expr]
    message: str
    shown: str | None = None
    in_bucket: bool = False


@dataclass
class _Plan:
    """``aggregates`` by alias; ``names`` maps each statistic column to the alias that
    computes it (identical statistics of different SLOs share one aggregate). The ``x``
    aggregate counts rows failing any of ``checks``."""

    aggregates: dict[str, Expr]
    names: dict[str, str]
    checks: list[Check]


@dataclass
class _Grouped:
    """One GROUP BY of the scan: ``prepared`` is the records as read (to name a bad row),
    ``filtered`` those in the window (or without a timestamp)."""

    prepared: Expr
    filtered: Expr
    query: Expr
    plan: _Plan
    source: str


@dataclass
class _Queries:
    bucket_seconds: int
    slices: list[str]
    records: _Grouped
    histograms: list[tuple[Expr, list[str]]]
    outcomes: _Grouped | None
    cacheable: bool


# A window bound: a moment (compiled to a literal), or the name of the DuckDB variable that
# holds it (so the compiled SQL serves every window).
Bound = datetime | str


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
) -> Rollup:
    """Reduce the records with ``start <= ts < end`` to a :class:`Rollup`.

    ``slice_columns`` adds attributes to slice by beyond those the fairness SLOs need (the
    candidate check slices by ``model_version``). ``dedupe`` counts a repeated prediction id
    once (the service always does, at ingest; on files it costs a hash of every id).
    """
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
    )
    records = queries.records
    rows = _checked(_execute(records.query, source), records)
    histograms: dict[str, pa.Table] = {}
    for query, names in queries.histograms:
        histograms.update(histogram_tables(_execute(query, source), names))
    rollup = Rollup(
        queries.bucket_seconds,
        tuple(queries.slices),
        stat_table(rows, records.plan.names),
        histograms,
    )
    if queries.outcomes is None:
        return rollup
    counted = queries.outcomes
    outcome_rows = _checked(_execute(counted.query, outcomes_source), counted)
    return rollup.merge(
        outcome_rollup(
            stat_table(outcome_rows, counted.plan.names), queries.bucket_seconds, queries.slices
        )
    )


def compile_scan(
    spec: Spec,
    con: Expr,
    tables: Mapping[str, str],
    *,
    slice_columns: Sequence[str] = (),
    sources: Mapping[str, str] | None = None,
    dedupe: bool = False,
) -> tuple[CompiledScan, bool]:
    """The scan as DuckDB SQL over the views named in ``tables`` (roles ``predictions``,
    ``labels``, ``outcomes``), with the window's bounds in DuckDB variables; and whether it
    may be cached (not when a multiclass SLO takes its classes from the data)."""
    queries = _over_views(spec, con, tables, slice_columns, sources, dedupe)

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
    )
    return compiled, queries.cacheable


def name_failure(
    spec: Spec,
    con: Expr,
    tables: Mapping[str, str],
    *,
    slice_columns: Sequence[str] = (),
    sources: Mapping[str, str] | None = None,
    dedupe: bool = False,
) -> DataError:
    """After the compiled scan counted a record failing a value check (its window still set
    on ``con``): the first failing check and its first row, without aggregating again."""
    queries = _over_views(spec, con, tables, slice_columns, sources, dedupe)
    for grouped in (queries.records, queries.outcomes):
        error = _first_failure(grouped) if grouped is not None else None
        if error is not None:
            return error
    return DataError("a record failed a value check", source=queries.records.source)


def _over_views(
    spec: Spec,
    con: Expr,
    tables: Mapping[str, str],
    slice_columns: Sequence[str],
    sources: Mapping[str, str] | None,
    dedupe: bool,
) -> _Queries:
    names = dict(sources or {})
    opened = {role: flatten_attributes(con.table(view)) for role, view in tables.items()}
    return _build(
        spec,
        opened["predictions"],
        start=START,
        end=END,
        labels=opened.get("labels"),
        outcomes=opened.get("outcomes"),
        slice_columns=slice_columns,
        source=names.get("predictions", "data"),
        labels_source=names.get("labels", "labels"),
        outcomes_source=names.get("outcomes", "outcomes"),
        dedupe=dedupe,
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
) -> _Queries:
    bucket_seconds = int(spec.bucket.total_seconds())
    slices = _slice_columns(spec, slice_columns)
    base, checks = _prepare(
        spec,
        predictions,
        source=source,
        outcomes=outcomes is not None,
        slices=slices,
        labels_separate=labels is not None,
    )
    table = base
    if dedupe:
        if "id" not in base.columns:
            raise DataError(
                "is missing; --dedupe counts each prediction id once, so it needs "
                "the id column (map it with columns: {id: <your column>})",
                source=source,
                column=spec.columns.id,
            )
        table = base.distinct(on="id", keep="first")
    if labels is not None and _uses_labels(spec):
        table = _join_labels(spec, table, labels, labels_source, end)
    window = _in_window(table, start, end)
    filtered = table.filter(window | table.ts.isnull())
    classes = _classes(spec, filtered)
    plan = _plan(spec, filtered, classes, checks)
    keys = [_bucket(filtered, bucket_seconds).name(BUCKET), *(filtered[c] for c in slices)]
    query = filtered.group_by(keys).aggregate(**plan.aggregates)
    counted = None
    if outcomes is not None:
        counted = _outcome_query(
            spec, outcomes, start, end, bucket_seconds, slices, outcomes_source
        )
    return _Queries(
        bucket_seconds,
        slices,
        _Grouped(base, filtered, query, plan, source),
        _histogram_queries(spec, filtered, bucket_seconds),
        counted,
        cacheable=not any(
            isinstance(slo, AccuracySLO) and slo.sli.multiclass and slo.sli.classes is None
            for slo in spec.slos
        ),
    )


# --- preparation ------------------------------------------------------------------------------


def _slice_columns(spec: Spec, extra: Sequence[str]) -> list[str]:
    out: list[str] = []
    for slo in spec.slos:
        if isinstance(slo, FairnessSLO):
            out.extend(a for a in slo.sli.attributes if a not in out)
    out.extend(c for c in extra if c not in out)
    return out


def _prepare(
    spec: Spec,
    raw: Expr,
    *,
    source: str,
    outcomes: bool,
    slices: Sequence[str],
    labels_separate: bool,
) -> tuple[Expr, list[Check]]:
    """Rename the user's columns to ours and parse timestamps; collect value checks."""
    required = needs(spec, labels_separate=labels_separate, outcomes=outcomes)
    required += [Need(c, "value", None, "the rollup is sliced by it") for c in slices]
    schema = raw.schema()
    seen: dict[str, Need] = {}
    for need in required:
        if need.field in seen:
            continue
        seen[need.field] = need
        column = column_for(spec, need.field)
        if column not in schema:
            raise missing_column(source, spec, need, schema.names)
        if not check_kind(schema[column], need.kind):
            raise wrong_kind(source, spec, need, schema[column])
    optional = [
        f
        for f in ("label", "score", "prediction", "id", "status")
        if f not in seen and column_for(spec, f) in schema
    ]
    checks: list[Check] = []
    projection: dict[str, Expr] = {}
    for field in [*seen, *optional]:
        column = column_for(spec, field)
        value = raw[column]
        if field in ("ts", "event_ts"):
            value, invalid, message = _timestamp(raw, column, required_value=field == "ts")
            if invalid is not None:
                flag = f"__bad_{field}"
                projection[flag] = invalid
                shown = None
                if raw[column].type().is_string():
                    shown = f"__raw_{field}"
                    projection[shown] = raw[column]
                checks.append(Check(column, _flag(flag), message, shown, field == "ts"))
        elif field in ("latency_ms", "score"):
            value = value.cast("float64")
        projection[field] = value
    return raw.select(**projection), checks


def _uses_labels(spec: Spec) -> bool:
    return any(
        isinstance(slo, AccuracySLO) or (isinstance(slo, FairnessSLO) and slo.sli.needs_labels)
        for slo in spec.slos
    )


def _flag(name: str) -> Callable[[Expr], Expr]:
    return lambda t: t[name]


def _timestamp(raw: Expr, column: str, *, required_value: bool) -> tuple[Expr, Expr | None, str]:
    """The column as a timestamp, and which rows are invalid (None when none can be)."""
    value = raw[column]
    dtype = value.type()
    invalid: Expr | None = None
    message = ""
    if dtype.is_string():
        parsed = value.try_cast(dt.Timestamp(timezone="UTC"))
        invalid = value.notnull() & parsed.isnull()
        message = "'{value}' is not a timestamp; write ISO-8601 such as 2026-01-31T12:00:00Z"
    elif dtype.is_date():
        parsed = value.cast(dt.Timestamp())
    else:
        parsed = value
    if required_value:
        invalid = value.isnull() if invalid is None else invalid | value.isnull()
        message = message or "is empty; every record needs a timestamp"
        if dtype.is_string():
            message = (
                "'{value}' is not a timestamp (or is empty); write ISO-8601 such as "
                "2026-01-31T12:00:00Z"
            )
    return parsed, invalid, message


def _join_labels(spec: Spec, table: Expr, labels: Expr, source: str, end: Bound) -> Expr:
    cols = spec.label_columns
    schema = labels.schema()
    for field, column in (("id", cols.id), ("label", cols.label)):
        if column not in schema:
            raise DataError(
                f"is missing; a labels table needs the prediction id and the "
                f"label (map them with label_columns: {{{field}: <your column>}})",
                source=source,
                column=column,
            )
    prepared: dict[str, Expr] = {"id": labels[cols.id], "label": labels[cols.label]}
    if cols.ts in schema:
        label_ts, _, _ = _timestamp(labels, cols.ts, required_value=False)
        prepared["label_ts"] = label_ts
    lab = labels.select(**prepared)
    if "label_ts" in prepared:
        lab = lab.filter(lab.label_ts.isnull() | (lab.label_ts < _literal_ts(end, lab.label_ts)))
        latest = lab.group_by("id").aggregate(joined_label=lab.label.argmax(lab.label_ts))
    else:
        latest = lab.group_by("id").aggregate(joined_label=lab.label.max())
    target = table.prediction.type() if "prediction" in table.columns else None
    joined_label = latest.joined_label
    if target is not None and joined_label.type() != target:
        joined_label = (
            joined_label.try_cast(target)
            if not (target.is_numeric() and joined_label.type().is_numeric())
            else joined_label
        )
    latest = latest.select(id=latest.id.cast(table.id.type()), joined_label=joined_label)
    joined = table.left_join(latest, table.id == latest.id)
    own = joined.label if "label" in table.columns else None
    label = joined.joined_label if own is None else joined.joined_label.coalesce(own)
    keep = [c for c in table.columns if c != "label"]
    return joined.select(*keep, label=label)


def _literal_ts(moment: Bound, column: Expr) -> Expr:
    """A window bound of the column's kind: comparing like with like lets the engine skip
    whole row groups outside the window instead of converting every value."""
    zoned = column.type().timezone is not None
    if isinstance(moment, str):
        return _variable_ts(bound_variable(moment, zoned=zoned), zoned=zoned)
    if zoned:
        return ibis.literal(moment.astimezone(UTC), type=dt.Timestamp(timezone="UTC"))
    naive = moment.astimezone(UTC).replace(tzinfo=None)
    return ibis.literal(naive, type=dt.Timestamp())


_variable_udfs: dict[bool, Any] = {}


def _variable_ts(name: str, *, zoned: bool) -> Expr:
    """DuckDB's ``getvariable(name)``, a constant the planner folds into the scan's filter."""
    if zoned not in _variable_udfs:
        kind = dt.Timestamp(timezone="UTC") if zoned else dt.Timestamp()

        def getvariable(variable: str) -> Any:
            """Compiled to DuckDB's function; never called in Python."""

        _variable_udfs[zoned] = ibis.udf.scalar.builtin(
            getvariable, name="getvariable", signature=((dt.string,), kind)
        )
    return _variable_udfs[zoned](name)


def _in_window(table: Expr, start: Bound, end: Bound) -> Expr:
    return (table.ts >= _literal_ts(start, table.ts)) & (table.ts < _literal_ts(end, table.ts))


_EPOCH_FUNCTIONS = {"pyspark": "unix_micros"}
_epoch_udfs: dict[tuple[str, Any], Any] = {}


def _epoch_us(value: Expr) -> Expr:
    """Microseconds since the epoch, with the engine's own function (DuckDB ``epoch_us``,
    Spark ``unix_micros``): exact, and far cheaper than a difference of intervals."""
    try:
        backend = value._find_backend().name
    except Exception:
        backend = "duckdb"
    name = _EPOCH_FUNCTIONS.get(backend, "epoch_us")
    kind = value.type()
    key = (name, kind)
    if key not in _epoch_udfs:

        def epoch(x: Any) -> Any:
            """Compiled to the engine's function; never called in Python."""

        _epoch_udfs[key] = ibis.udf.scalar.builtin(epoch, name=name, signature=((kind,), dt.int64))
    return _epoch_udfs[key](value)


def _bucket(table: Expr, seconds: int) -> Expr:
    return (_epoch_us(table.ts) // (seconds * 1_000_000)).cast("int64")


def _literal(dtype: Any, value: Scalar) -> Expr:
    """``value`` as a literal of the column's type (YAML's 1 matches a text column's '1')."""
    try:
        if dtype.is_string():
            return ibis.literal(str(value).lower() if isinstance(value, bool) else str(value))
        if dtype.is_boolean():
            if isinstance(value, str):
                return ibis.literal(value.strip().lower() in ("1", "true", "yes"))
            return ibis.literal(bool(value))
        if dtype.is_integer():
            return ibis.literal(int(value), type=dtype)
        if dtype.is_floating() or dtype.is_decimal():
            return ibis.literal(float(value), type=dt.float64)
    except (TypeError, ValueError):
        pass
    return ibis.literal(value)


def _filter(table: Expr, slo: AnySLO) -> Expr | None:
    """The SLO's ``filter:`` as a condition (None when it has none)."""
    condition = None
    for column, wanted in slo.filter.items():
        col = table[column]
        values = wanted if isinstance(wanted, list) else [wanted]
        literals = [_literal(col.type(), v) for v in values]
        match = col.isin(literals) if len(literals) > 1 else col == literals[0]
        condition = match if condition is None else condition & match
    return condition


def _both(*conditions: Expr | None) -> Expr | None:
    out = None
    for condition in conditions:
        if condition is not None:
            out = condition if out is None else out & condition
    return out


def _count(t: Expr, *conditions: Expr | None) -> Expr:
    """Rows meeting every condition. A comparison with a null is not true, so
    ``prediction == 1`` needs no separate null test."""
    condition = _both(*conditions)
    return t.count() if condition is None else _count_if(condition)


def _count_if_signature(condition: bool) -> int:  # type: ignore[empty-body]
    """Compiled to the engine's ``count_if``; never called in Python."""


_count_if_udf: Any = ibis.udf.agg.builtin(_count_if_signature, name="count_if")


def _count_if(condition: Expr) -> Expr:
    """Rows where ``condition`` is true: the engine's ``count_if`` (DuckDB and Spark), which
    DuckDB runs markedly faster than ``count(*) FILTER (WHERE ...)``. DuckDB's is a sum, so
    a group where the condition is never known gives null: that is 0."""
    return _count_if_udf(condition).fill_null(0)


def _count_known(t: Expr, value: Expr, where: Expr | None) -> Expr:
    """Rows where ``value`` is known (``count(value)`` when there is no filter)."""
    return value.count() if where is None else _count_if(where & value.notnull())


def _sum(value: Expr, *conditions: Expr | None) -> Expr:
    condition = _both(*conditions)
    return value.sum() if condition is None else value.sum(where=condition)


# --- the plan: aggregates per SLO -------------------------------------------------------------


def _classes(spec: Spec, table: Expr) -> dict[str, list[Any]]:
    """The classes of multiclass SLOs (from the spec, or the values seen in the window)."""
    out: dict[str, list[Any]] = {}
    for slo in spec.slos:
        if isinstance(slo, AccuracySLO) and slo.sli.multiclass:
            if slo.sli.classes is not None:
                out[slo.name] = list(slo.sli.classes)
                continue
            seen = table.filter(table.ts.notnull())
            values = (
                seen.select(v=seen.prediction)
                .union(seen.filter(seen.label.notnull()).select(v=seen.label))
                .distinct()
            )
            found = values.to_pyarrow()["v"].to_pylist()
            out[slo.name] = sorted((v for v in found if v is not None), key=str)
    return out


def _plan(
    spec: Spec,
    table: Expr,
    classes: Mapping[str, list[Any]],
    checks: list[Check],
    *,
    with_checks: bool = True,
) -> _Plan:
    """The aggregates of every SLO's statistics, and (``with_checks``) a count ``x<i>`` of the
    rows failing each value check."""
    aggregates: dict[str, Expr] = {}
    names: dict[str, str] = {}
    seen: dict[Any, str] = {}

    def add(slo: AnySLO, stat: str, expr: Expr) -> None:
        key = expr.op()
        alias = seen.get(key)
        if alias is None:
            alias = f"c{len(aggregates)}"
            aggregates[alias] = expr.cast("float64")
            seen[key] = alias
        names[stat_column(slo.name, stat)] = alias

    plan_checks = list(checks)
    for slo in spec.slos:
        where = _filter(table, slo)
        for stat, expr in _statistics(slo, table, where, classes.get(slo.name)):
            add(slo, stat, expr)
        if with_checks:
            plan_checks.extend(_value_checks(slo, table))
    if not with_checks:
        return _Plan(aggregates, names, [])
    unique_checks: dict[str, Check] = {}
    for check in plan_checks:
        unique_checks.setdefault(f"{check.column}:{check.message}", check)
    final_checks = list(unique_checks.values())
    counted = _failing(table, final_checks)
    if counted is not None:
        aggregates[CHECKS] = _count_if(counted)
    return _Plan(aggregates, names, final_checks)


def _failing(table: Expr, checks: Sequence[Check]) -> Expr | None:
    """Rows failing any check that the null bucket does not already show."""
    failing = None
    for check in checks:
        if not check.in_bucket:
            condition = check.predicate(table)
            failing = condition if failing is None else failing | condition
    return failing


def _statistics(
    slo: AnySLO, t: Expr, where: Expr | None, classes: Sequence[Any] | None
) -> list[tuple[str, Expr]]:
    if isinstance(slo, AvailabilitySLO):
        if "status" not in t.columns:
            return []
        ok = t.status if t.status.type().is_boolean() else t.status == "ok"
        return [("total", _count_known(t, t.status, where)), ("ok", _count(t, where, ok))]
    if isinstance(slo, LatencySLO):
        total = ("total", _count_known(t, t.latency_ms, where))
        if slo.sli.latency_threshold is None:
            return [total]
        limit = slo.sli.latency_threshold.total_seconds() * 1000
        return [total, ("good", _count(t, where, t.latency_ms <= limit))]
    if isinstance(slo, FreshnessSLO):
        lag = _lag_micros(t)
        total = ("total", _count_known(t, lag, where))
        if slo.sli.lag_threshold is None:
            return [total]
        limit = round(slo.sli.lag_threshold.total_seconds() * 1_000_000)
        return [total, ("good", _count(t, where, lag <= limit))]
    if isinstance(slo, AccuracySLO):
        return _accuracy(slo, t, where, classes)
    if isinstance(slo, FairnessSLO):
        return _fairness(slo, t, where)
    raise TypeError(type(slo).__name__)


def _lag_micros(t: Expr) -> Expr:
    return _epoch_us(t.ts) - _epoch_us(t.event_ts)


def _confusion(t: Expr, where: Expr | None, positive: Expr, actual: Expr) -> list[tuple[str, Expr]]:
    return [
        ("tp", _count(t, where, positive, actual)),
        ("fp", _count(t, where, positive, ~actual)),
        ("fn", _count(t, where, ~positive, actual)),
        ("tn", _count(t, where, ~positive, ~actual)),
    ]


def _accuracy(
    slo: AccuracySLO, t: Expr, where: Expr | None, classes: Sequence[Any] | None
) -> list[tuple[str, Expr]]:
    sli = slo.sli
    labelled = t.label.notnull()
    out = [("predictions", _count_known(t, t.prediction, where))]
    if sli.regression or sli.multiclass:
        out.append(("labelled", _count(t, where, t.prediction.notnull(), labelled)))
    if sli.regression:
        actual = t.label.cast("float64")
        error = t.prediction.cast("float64") - actual
        nonzero = _both(where, actual != 0, t.prediction.notnull())
        ape = error.abs() / actual.abs()
        return [
            *out,
            ("sae", _sum(error.abs(), where)),
            ("sse", _sum(error * error, where)),
            ("sse2", _sum(error * error * error * error, where)),
            ("n_ape", _count(t, nonzero)),
            ("sape", _sum(ape, nonzero)),
            ("sape2", _sum(ape * ape, nonzero)),
        ]
    if sli.multiclass:
        assert classes is not None
        out.append(("correct", _count(t, where, t.prediction == t.label)))
        for index, value in enumerate(classes):
            lp = t.prediction == _literal(t.prediction.type(), value)
            ll = t.label == _literal(t.label.type(), value)
            out += [
                (f"tp.{index}", _count(t, where, lp, ll)),
                (f"pred.{index}", _count(t, where, lp, labelled)),
                (f"true.{index}", _count(t, where, t.prediction.notnull(), ll)),
            ]
        return out
    positive = t.prediction == _literal(t.prediction.type(), sli.positive_label)
    actual = t.label == _literal(t.label.type(), sli.positive_label)
    out += _confusion(t, where, positive, actual)
    if sli.estimate == "cbpe":
        pending = _both(where, t.prediction.notnull(), t.label.isnull(), t.score.notnull())
        out += [
            ("unlabelled", _count(t, pending)),
            ("etp", _sum(t.score, pending, positive)),
            ("efp", _sum(1 - t.score, pending, positive)),
            ("efn", _sum(t.score, pending, ~positive)),
            ("etn", _sum(1 - t.score, pending, ~positive)),
        ]
    return out


def _fairness(slo: FairnessSLO, t: Expr, where: Expr | None) -> list[tuple[str, Expr]]:
    sli = slo.sli
    positive = t.prediction == _literal(t.prediction.type(), sli.positive_label)
    out = [("predictions", _count_known(t, t.prediction, where))]
    if not sli.needs_labels:
        out.append(("selected", _count(t, where, positive)))
    if "label" not in t.columns:
        return out
    actual = t.label == _literal(t.label.type(), sli.positive_label)
    return [*out, *_confusion(t, where, positive, actual)]


def _value_checks(slo: AnySLO, t: Expr) -> list[Check]:
    out = []
    if isinstance(slo, AvailabilitySLO) and "status" in t.columns and t.status.type().is_string():
        out.append(
            Check(
                "status",
                lambda x: x.status.isnull() | ~x.status.isin(["ok", "error"]),
                "'{value}' is not a status; use 'ok' or 'error'",
                "status",
            )
        )
    if isinstance(slo, LatencySLO):
        out.append(
            Check(
                "latency_ms",
                lambda x: x.latency_ms.isnan() | (x.latency_ms < 0),
                "{value} is not a latency; use milliseconds >= 0 (or leave it empty when unknown)",
                "latency_ms",
            )
        )
    if isinstance(slo, AccuracySLO) and slo.sli.estimate == "cbpe":
        out.append(
            Check(
                "score",
                lambda x: x.score.isnan() | (x.score < 0) | (x.score > 1),
                "{value} is not a probability; scores must lie in [0, 1]",
                "score",
            )
        )
    if isinstance(slo, AccuracySLO) and slo.sli.regression:
        for field in ("prediction", "label"):
            out.append(Check(field, _not_finite(field), "{value} is not a finite number", field))
    return out


def _not_finite(field: str) -> Callable[[Expr], Expr]:
    def predicate(t: Expr) -> Expr:
        value = t[field].cast("float64")
        return value.isnan() | value.isinf()

    return predicate


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
        if found[f"x{index}"]:
            return _locate(grouped.prepared, check, grouped.source)
    return None


def _locate(table: Expr, check: Check, source: str) -> DataError:
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
    return DataError(check.message.format(value=value), source=source, column=check.column, row=row)


# --- histograms and outcome counts ------------------------------------------------------------


def _histogram_queries(
    spec: Spec, table: Expr, bucket_seconds: int
) -> list[tuple[Expr, list[str]]]:
    """Per measured quantity (latency, lag), one GROUP BY bucket x bin with a count column per
    percentile SLO (``h0``, ``h1``, ...)."""
    wanted: dict[str, list[AnySLO]] = {}
    for slo in spec.slos:
        if needs_histogram(slo):
            wanted.setdefault(slo.dimension, []).append(slo)
    out = []
    windowed = table.filter(table.ts.notnull())
    for dimension, slos in wanted.items():
        if dimension == "latency":
            value = windowed.latency_ms
        else:
            value = _lag_micros(windowed).cast("float64") / 1_000_000
        safe = ibis.greatest(value, ibis.literal(1e-300))
        bin_ = ibis.ifelse(
            value > 0, (safe.ln() / histogram.LOG_GAMMA).floor(), histogram.ZERO_BIN
        ).cast("int64")
        counts = {
            f"h{i}": _count_known(windowed, value, _filter(windowed, slo))
            for i, slo in enumerate(slos)
        }
        grouped = windowed.group_by(
            [_bucket(windowed, bucket_seconds).name(BUCKET), bin_.name("bin")]
        ).aggregate(**counts)
        out.append((grouped, [slo.name for slo in slos]))
    return out


def _outcome_query(
    spec: Spec,
    outcomes: Expr,
    start: Bound,
    end: Bound,
    bucket_seconds: int,
    slices: Sequence[str],
    source: str,
) -> _Grouped:
    cols = spec.outcome_columns
    schema = outcomes.schema()
    for field, column in (("ts", cols.ts), ("total", cols.total), ("ok", cols.ok)):
        if column not in schema:
            raise DataError(
                f"is missing; outcome counts need ts, total and ok (map them with "
                f"outcome_columns: {{{field}: <your column>}})",
                source=source,
                column=column,
            )
        if field != "ts" and not check_kind(schema[column], "number"):
            raise DataError(
                f"holds {schema[column]}; outcome counts must be numbers",
                source=source,
                column=column,
            )
    ts, bad_ts, message = _timestamp(outcomes, cols.ts, required_value=True)
    assert bad_ts is not None
    extra = {
        c: outcomes[c]
        for slo in spec.slos
        if isinstance(slo, AvailabilitySLO)
        for c in slo.filter
        if c in schema
    }
    table = outcomes.select(
        ts=ts,
        total=outcomes[cols.total].cast("int64"),
        ok=outcomes[cols.ok].cast("int64"),
        __bad_ts=bad_ts,
        **extra,
    )
    filtered = table.filter(_in_window(table, start, end) | table.ts.isnull())
    checks = [
        Check(cols.ts, _flag("__bad_ts"), message, in_bucket=True),
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
    aggregates, names = _outcome_aggregates(spec, filtered)
    failing = _failing(filtered, checks)
    if failing is not None:
        aggregates[CHECKS] = _count_if(failing)
    grouped = filtered.group_by(_bucket(filtered, bucket_seconds).name(BUCKET)).aggregate(
        **aggregates
    )
    return _Grouped(table, filtered, grouped, _Plan(aggregates, names, checks), source)


def _outcome_aggregates(spec: Spec, table: Expr) -> tuple[dict[str, Expr], dict[str, str]]:
    """Outcome counts add to every availability SLO's total and ok, under its filter."""
    aggregates: dict[str, Expr] = {}
    names: dict[str, str] = {}
    for slo in spec.slos:
        if not isinstance(slo, AvailabilitySLO):
            continue
        where = _filter(table, slo)
        for stat in ("total", "ok"):
            alias = f"c{len(aggregates)}"
            aggregates[alias] = table[stat].sum(where=where).cast("float64")
            names[stat_column(slo.name, stat)] = alias
    return aggregates, names


# --- the scan compiled once, for the store's incremental rollups ------------------------------


def compile_batch_scan(
    spec: Spec,
    schema: Mapping[str, Any],
    slices: Sequence[str],
    outcome_schema: Mapping[str, Any],
) -> BatchScan:
    """Compile the spec's scan for batches with the given (canonical) ibis schemas of
    predictions and of outcome counts."""
    classes: dict[str, list[Any]] = {}
    for slo in spec.slos:
        if isinstance(slo, AccuracySLO) and slo.sli.multiclass:
            if slo.sli.classes is None:
                raise DataError(
                    f"SLO '{slo.name}' is multiclass; list its classes (sli.classes) so the "
                    "service keeps one statistic per class from the first record on",
                    source="spec",
                )
            classes[slo.name] = list(slo.sli.classes)
    raw = ibis.table(ibis.schema(dict(schema)), name=BATCH_TABLE)
    table = raw.filter(raw.ts.notnull())
    bucket_seconds = int(spec.bucket.total_seconds())
    all_slices = _slice_columns(spec, slices)
    plan = _plan(spec, table, classes, [], with_checks=False)
    keys = [_bucket(table, bucket_seconds).name(BUCKET), *(table[c] for c in all_slices)]
    query = table.group_by(keys).aggregate(**plan.aggregates)
    histogram_sql = tuple(
        (ibis.to_sql(q, dialect="duckdb"), tuple(names))
        for q, names in _histogram_queries(spec, table, bucket_seconds)
    )
    outcomes = ibis.table(ibis.schema(dict(outcome_schema)), name=BATCH_TABLE)
    outcomes = outcomes.filter(outcomes.ts.notnull())
    outcome_aggregates, outcome_names = _outcome_aggregates(spec, outcomes)
    outcome_keys = [
        _bucket(outcomes, bucket_seconds).name(BUCKET),
        *(outcomes[c] for c in all_slices),
    ]
    outcome_query = outcomes.group_by(outcome_keys).aggregate(**outcome_aggregates)
    return BatchScan(
        bucket_seconds,
        tuple(all_slices),
        ibis.to_sql(query, dialect="duckdb"),
        dict(plan.names),
        histogram_sql,
        ibis.to_sql(outcome_query, dialect="duckdb") if outcome_aggregates else None,
        outcome_names,
    )
