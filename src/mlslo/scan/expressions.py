"""Engine-portable expression helpers for the scan: time buckets, window bounds, literals
of a column's type, and conditional counts and sums that compile to each engine's fastest
form (DuckDB and Spark)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import ibis
import ibis.expr.datatypes as dt

from mlslo.scan.compiled import bound_variable
from mlslo.spec import (
    AnySLO,
    Scalar,
)

Expr = Any  # ibis expressions are dynamically typed


# A window bound: a moment (compiled to a literal), or the name of the DuckDB variable that
# holds it (so the compiled SQL serves every window).
Bound = datetime | str


def literal_ts(moment: Bound, column: Expr) -> Expr:
    """A window bound of the column's kind: comparing like with like lets the engine skip
    whole row groups outside the window instead of converting every value."""
    zoned = column.type().timezone is not None
    if isinstance(moment, str):
        return variable_ts(bound_variable(moment, zoned=zoned), zoned=zoned)
    if zoned:
        return ibis.literal(moment.astimezone(UTC), type=dt.Timestamp(timezone="UTC"))
    naive = moment.astimezone(UTC).replace(tzinfo=None)
    return ibis.literal(naive, type=dt.Timestamp())


_variable_udfs: dict[bool, Any] = {}


def variable_ts(name: str, *, zoned: bool) -> Expr:
    """DuckDB's ``getvariable(name)``, a constant the planner folds into the scan's filter."""
    if zoned not in _variable_udfs:
        kind = dt.Timestamp(timezone="UTC") if zoned else dt.Timestamp()

        def getvariable(variable: str) -> Any:
            """Compiled to DuckDB's function; never called in Python."""

        _variable_udfs[zoned] = ibis.udf.scalar.builtin(
            getvariable, name="getvariable", signature=((dt.string,), kind)
        )
    return _variable_udfs[zoned](name)


_int_variable_udf: list[Any] = []


def variable_int(name: str) -> Expr:
    """DuckDB's ``getvariable(name)`` for an integer (folded into a constant, like the
    window's bounds)."""
    if not _int_variable_udf:

        def getvariable(variable: str) -> Any:
            """Compiled to DuckDB's function; never called in Python."""

        _int_variable_udf.append(
            ibis.udf.scalar.builtin(
                getvariable, name="getvariable", signature=((dt.string,), dt.int64)
            )
        )
    return _int_variable_udf[0](name)


def span_start(bucket: Expr, end: Expr, offsets: Sequence[int]) -> Expr:
    """The edge that starts the span holding ``bucket``, where the edges are ``end - offset``
    for the ascending ``offsets`` (the first 0); a bucket outside the edges stays itself.
    Integer comparisons in a balanced tree: a few per row, whatever the number of edges."""
    if len(offsets) < 2:
        return bucket
    age = end - bucket

    def pick(lo: int, hi: int) -> Expr:
        if hi - lo == 1:
            return (end - offsets[lo]).cast("int64")
        mid = (lo + hi) // 2
        return ibis.ifelse(age <= offsets[mid - 1], pick(lo, mid), pick(mid, hi))

    inside = (age >= 1) & (age <= offsets[-1])
    return ibis.ifelse(inside, pick(1, len(offsets)), bucket)


def in_window(table: Expr, start: Bound, end: Bound) -> Expr:
    return (table.ts >= literal_ts(start, table.ts)) & (table.ts < literal_ts(end, table.ts))


_EPOCH_FUNCTIONS = {"duckdb": "epoch_us", "pyspark": "unix_micros"}
_epoch_udfs: dict[tuple[str, Any], Any] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def backend_name(value: Expr) -> str:
    """The engine an expression runs on (DuckDB for an unbound one)."""
    try:
        return str(value._find_backend().name)
    except Exception:
        return "duckdb"


def epoch_us(value: Expr) -> Expr:
    """Microseconds since the epoch, with the engine's own function (DuckDB ``epoch_us``,
    Spark ``unix_micros``): exact, and far cheaper than a difference of intervals. Other
    engines (PostgreSQL, Trino, BigQuery, ...) take the difference from the epoch in
    microseconds, as ibis writes it for each."""
    name = _EPOCH_FUNCTIONS.get(backend_name(value))
    kind = value.type()
    if name is None:
        epoch = ibis.literal(
            _EPOCH if kind.timezone is not None else _EPOCH.replace(tzinfo=None), type=kind
        )
        return value.delta(epoch, unit="microsecond").cast("int64")
    key = (name, kind)
    if key not in _epoch_udfs:

        def epoch(x: Any) -> Any:
            """Compiled to the engine's function; never called in Python."""

        _epoch_udfs[key] = ibis.udf.scalar.builtin(epoch, name=name, signature=((kind,), dt.int64))
    return _epoch_udfs[key](value)


def bucket_of(table: Expr, seconds: int) -> Expr:
    return (epoch_us(table.ts) // (seconds * 1_000_000)).cast("int64")


def literal(dtype: Any, value: Scalar) -> Expr:
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


_BINARY_TEXT = ["0", "1", "true", "false"]


def is_positive(column: Expr, label: Scalar | None) -> Expr:
    """Rows whose class is ``label``; without one, 1 (true, 1, '1' or 'true'), as
    scikit-learn's default ``pos_label=1``, which holds only for 0/1 classes."""
    if label is not None:
        return column == literal(column.type(), label)
    dtype = column.type()
    if dtype.is_boolean():
        return column
    if dtype.is_string():
        return column.lower().isin(["1", "true"])
    return column == 1


def not_binary(column: Expr) -> Expr | None:
    """Rows whose class is neither 0 nor 1 (false/true, '0'/'1'); None for a boolean
    column, which cannot hold another class."""
    dtype = column.type()
    if dtype.is_boolean():
        return None
    if dtype.is_string():
        return column.notnull() & ~column.lower().isin(_BINARY_TEXT)
    if dtype.is_numeric():
        return column.notnull() & ~column.isin([0, 1])
    return column.notnull()


def like_prediction(label: Expr, prediction_type: Any) -> Expr:
    """``label`` cast to the prediction's type, so the two compare ('1' labels against
    integer predictions); numbers of different widths compare as they are."""
    kind = label.type()
    if kind == prediction_type or (kind.is_numeric() and prediction_type.is_numeric()):
        return label
    return label.try_cast(prediction_type)


def slo_filter(table: Expr, slo: AnySLO) -> Expr | None:
    """The SLO's ``filter:`` as a condition (None when it has none)."""
    condition = None
    for column, wanted in slo.filter.items():
        col = table[column]
        values = wanted if isinstance(wanted, list) else [wanted]
        literals = [literal(col.type(), v) for v in values]
        match = col.isin(literals) if len(literals) > 1 else col == literals[0]
        condition = match if condition is None else condition & match
    return condition


def both(*conditions: Expr | None) -> Expr | None:
    out = None
    for condition in conditions:
        if condition is not None:
            out = condition if out is None else out & condition
    return out


def count(t: Expr, *conditions: Expr | None) -> Expr:
    """Rows meeting every condition. A comparison with a null is not true, so
    ``prediction == 1`` needs no separate null test."""
    condition = both(*conditions)
    return t.count() if condition is None else count_if(condition)


def _count_if_signature(condition: bool) -> int:  # type: ignore[empty-body]
    """Compiled to the engine's ``count_if``; never called in Python."""


_count_if_udf: Any = ibis.udf.agg.builtin(_count_if_signature, name="count_if")


def count_if(condition: Expr) -> Expr:
    """Rows where ``condition`` is true: the engine's ``count_if`` (DuckDB and Spark), which
    DuckDB runs markedly faster than ``count(*) FILTER (WHERE ...)``. DuckDB's is a sum, so
    a group where the condition is never known gives null: that is 0. Engines without it
    (PostgreSQL, Trino, ...) sum the condition as 0/1."""
    if backend_name(condition) not in _EPOCH_FUNCTIONS:
        return condition.ifelse(1, 0).sum().fill_null(0)
    return _count_if_udf(condition).fill_null(0)


def count_known(t: Expr, value: Expr, where: Expr | None) -> Expr:
    """Rows where ``value`` is known (``count(value)`` when there is no filter)."""
    return value.count() if where is None else count_if(where & value.notnull())


def sum_where(value: Expr, *conditions: Expr | None) -> Expr:
    condition = both(*conditions)
    return value.sum() if condition is None else value.sum(where=condition)


def lag_micros(t: Expr) -> Expr:
    """The lag ``ts - event_ts`` in microseconds (negative when ``event_ts`` is later)."""
    return epoch_us(t.ts) - epoch_us(t.event_ts)


def skewed(lag: Expr, tolerance_micros: int) -> Expr:
    """A lag more negative than the tolerance: ``event_ts > ts + tolerance``, clocks that
    disagree by more than the spec allows."""
    return lag < -tolerance_micros
