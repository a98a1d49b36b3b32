"""Batches for the store: records validated column-wise and brought to the store's canonical
types. Every failing row of every check is reported (the first :data:`MAX_ERRORS` in row
order, and how many in all); a batch with any problem is refused as a whole."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from mlslo.inputs.bodies import MAX_ERRORS, BatchError, FieldError
from mlslo.inputs.checks import batch_problems
from mlslo.inputs.fields import PREDICTION_FIELDS, Need, not_a_number
from mlslo.inputs.files import floor_to_micros
from mlslo.moments import format_duration
from mlslo.spec import (
    AccuracySLO,
    FairnessSLO,
    Spec,
)

# --- batches for the store: column-wise validation and normalisation ------------------------

CANONICAL_TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "ts": pa.timestamp("us"),
    "model": pa.string(),
    "model_version": pa.string(),
    "status": pa.string(),
    "latency_ms": pa.float64(),
    "event_ts": pa.timestamp("us"),
    "prediction": pa.string(),
    "score": pa.float64(),
    "label": pa.string(),
}
LABEL_TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "ts": pa.timestamp("us"),
    "label": pa.string(),
}
OUTCOME_TYPES: dict[str, pa.DataType] = {
    "ts": pa.timestamp("us"),
    "total": pa.int64(),
    "ok": pa.int64(),
    "model": pa.string(),
    "model_version": pa.string(),
}
Message = str | Callable[[int], str]
"""A problem's message, or a function of the 0-based row that quotes the row's value."""


class _Errors:
    """The problems of one batch: every failing row is counted; of each check the first
    MAX_ERRORS rows are kept, which is enough for the first MAX_ERRORS in row order."""

    def __init__(self) -> None:
        self.items: list[FieldError] = []
        self.total = 0

    def add(self, row: int | None, field: str | None, message: str) -> None:
        self.total += 1
        self.items.append(FieldError(row, field, message))

    def rows(self, mask: pa.Array | pa.ChunkedArray, field: str, message: Message) -> bool:
        """Record every row where ``mask`` is true; return whether there was one."""
        if isinstance(mask, pa.ChunkedArray):
            mask = mask.combine_chunks()
        failing = pc.indices_nonzero(pc.fill_null(mask, False))
        if not len(failing):
            return False
        self.total += len(failing)
        for index in failing.slice(0, MAX_ERRORS).to_pylist():
            text = message(index) if callable(message) else message
            self.items.append(FieldError(index + 1, field, text))
        return True

    def raise_if_any(self) -> None:
        if self.total:
            ordered = sorted(self.items, key=lambda e: -1 if e.row is None else e.row)
            raise BatchError(ordered[:MAX_ERRORS], total=self.total)


def attribute_columns(spec: Spec) -> list[str]:
    """Attribute columns a batch may carry: those the spec slices or filters by."""
    out: list[str] = [a for a in spec.attributes if a not in PREDICTION_FIELDS]
    for slo in spec.slos:
        names = list(slo.filter)
        if isinstance(slo, FairnessSLO):
            names += list(slo.sli.attributes)
        out += [n for n in names if n not in PREDICTION_FIELDS and n not in out]
    return out


def regression_slo(spec: Spec) -> AccuracySLO | None:
    """The first regression SLO: with one, predictions and labels must be numbers."""
    for slo in spec.slos:
        if isinstance(slo, AccuracySLO) and slo.sli.regression:
            return slo
    return None


def normalize_predictions(
    table: pa.Table, spec: Spec, *, now: datetime, max_skew: timedelta
) -> pa.Table:
    """Validate a batch of prediction records and return it in the store's canonical types.

    Columns are checked as wholes; every row that fails a check is reported.
    """
    errors = _Errors()
    attributes = attribute_columns(spec)
    table = _rename(table, spec.columns.model_dump(), attributes, errors)
    out: dict[str, pa.Array] = {}
    n = table.num_rows
    _require(table, ("id", "ts"), "prediction", errors)
    out["id"] = _ids(table["id"], errors)
    out["ts"] = _timestamps(table["ts"], "ts", errors, required=True)
    _not_future(out["ts"], "ts", now, max_skew, errors)
    for field in ("model", "model_version"):
        out[field] = _text(table, field, errors)
    out["status"] = _status(table, errors)
    out["latency_ms"] = _number(table, "latency_ms", errors, low=0.0)
    out["event_ts"] = (
        _timestamps(table["event_ts"], "event_ts", errors, required=False)
        if "event_ts" in table.column_names
        else pa.nulls(n, pa.timestamp("us"))
    )
    regression = regression_slo(spec)
    out["prediction"] = _value(table, "prediction", errors, regression)
    out["score"] = _number(table, "score", errors, low=0.0, high=1.0)
    out["label"] = _value(table, "label", errors, regression)
    for attribute in attributes:
        out[attribute] = _text(table, attribute, errors)
    errors.raise_if_any()
    _refuse(batch_problems(pa.table(out), spec), errors)
    return pa.table(out)


def normalize_labels(
    table: pa.Table, spec: Spec, *, now: datetime, max_skew: timedelta
) -> pa.Table:
    """Validate a batch of label records (id, ts, label)."""
    errors = _Errors()
    table = _rename(table, spec.label_columns.model_dump(), [], errors)
    _require(table, ("id", "ts", "label"), "label", errors)
    errors.rows(_absent(table["label"]), "label", "is empty; a label record needs the label")
    labels = _value(table, "label", errors, regression_slo(spec))
    out = {
        "id": _ids(table["id"], errors),
        "ts": _timestamps(table["ts"], "ts", errors, required=True),
        "label": labels,
    }
    _not_future(out["ts"], "ts", now, max_skew, errors)
    errors.raise_if_any()
    _refuse(batch_problems(pa.table(out), spec), errors)
    return pa.table(out)


def _refuse(problems: Sequence[FieldError], errors: _Errors) -> None:
    """Refuse the batch for values its SLOs' classes or groups cannot take."""
    for problem in problems:
        errors.add(problem.row, problem.field, problem.message)
    errors.raise_if_any()


def normalize_outcomes(
    table: pa.Table, spec: Spec, *, now: datetime, max_skew: timedelta
) -> pa.Table:
    """Validate a batch of outcome counts (ts, total, ok)."""
    errors = _Errors()
    attributes = attribute_columns(spec)
    mapping = {
        **spec.outcome_columns.model_dump(),
        "model": "model",
        "model_version": "model_version",
    }
    table = _rename(table, mapping, attributes, errors)
    _require(table, ("ts", "total", "ok"), "outcome", errors)
    out: dict[str, pa.Array] = {"ts": _timestamps(table["ts"], "ts", errors, required=True)}
    _not_future(out["ts"], "ts", now, max_skew, errors)
    counts: dict[str, pa.Array] = {}
    for field in ("total", "ok"):
        values = _number(table, field, errors, low=0.0)
        errors.rows(_absent(table[field]), field, "is required")
        finite = pc.fill_null(pc.is_finite(values), False)
        whole = pc.equal(pc.floor(values), values)
        errors.rows(pc.and_(finite, pc.invert(whole)), field, "must be a whole number of requests")
        counts[field] = pc.if_else(finite, values, None)
        out[field] = pc.cast(pc.fill_null(pc.floor(counts[field]), 0.0), pa.int64())
    errors.rows(pc.greater(counts["ok"], counts["total"]), "ok", "is greater than total")
    for field in ("model", "model_version", *attributes):
        out[field] = _text(table, field, errors)
    errors.raise_if_any()
    return pa.table(out)


class Normalizer(Protocol):
    def __call__(
        self, table: pa.Table, spec: Spec, *, now: datetime, max_skew: timedelta
    ) -> pa.Table: ...


NORMALIZERS: dict[str, Normalizer] = {
    "predictions": normalize_predictions,
    "labels": normalize_labels,
    "outcomes": normalize_outcomes,
}
"""The normalizer of each kind of batch."""


def _require(table: pa.Table, fields: Sequence[str], kind: str, errors: _Errors) -> None:
    """Refuse the batch, naming every field it lacks."""
    for field in fields:
        if field not in table.column_names:
            errors.add(None, field, f"is required in every {kind} record")
    errors.raise_if_any()


def _rename(
    table: pa.Table, mapping: dict[str, str], attributes: Sequence[str], errors: _Errors
) -> pa.Table:
    """User column names to ours; any column we do not know is an error (it would be lost)."""
    reverse = {user: ours for ours, user in mapping.items()}
    names = []
    for name in table.column_names:
        ours = reverse.get(name, name)
        if ours not in mapping and ours not in attributes:
            known = sorted(set(mapping) | set(attributes))
            errors.add(
                None,
                name,
                f"is not a known field ({', '.join(known)}); declare extra "
                "attributes under attributes: in the spec",
            )
        names.append(ours)
    return table.rename_columns(names)


def _ids(column: pa.ChunkedArray, errors: _Errors) -> pa.Array:
    if not (
        pa.types.is_string(column.type)
        or pa.types.is_large_string(column.type)
        or pa.types.is_integer(column.type)
    ):
        errors.add(None, "id", f"must be text or an integer, found {column.type}")
        return pa.nulls(len(column), pa.string())
    ids = pc.cast(column, pa.string()).combine_chunks()
    errors.rows(
        pc.or_(pc.is_null(ids), pc.equal(ids, "")), "id", "is empty; every record needs an id"
    )
    return ids


def _absent(column: pa.ChunkedArray) -> pa.Array:
    """Rows with no value: null, or blank text."""
    column = column.combine_chunks()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.fill_null(
            pc.or_(pc.is_null(column), pc.equal(pc.utf8_trim_whitespace(column), "")), True
        )
    return pc.is_null(column)


def _timestamps(
    column: pa.ChunkedArray, field: str, errors: _Errors, *, required: bool
) -> pa.Array:
    """Times as UTC without a zone, in microseconds, from a timestamp of any unit (with or
    without a zone: without one it is UTC), a date, or ISO-8601 text."""
    kind = column.type
    n = len(column)
    if pa.types.is_timestamp(kind):
        try:
            values = floor_to_micros(column).cast(pa.timestamp("us"))
        except pa.ArrowInvalid:
            errors.add(None, field, "holds times beyond the year 294000; send real times")
            return pa.nulls(n, pa.timestamp("us"))
    elif pa.types.is_date(kind):
        values = column.cast(pa.timestamp("us"))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = _parse_times(column, field, errors)
    elif pa.types.is_null(kind):
        values = pa.nulls(n, pa.timestamp("us"))
    else:
        errors.add(
            None,
            field,
            f"must be an ISO-8601 time such as 2026-01-31T12:00:00Z, found {kind} values",
        )
        return pa.nulls(n, pa.timestamp("us"))
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if required:
        errors.rows(_absent(column), field, "is empty; every record needs a time")
    return values


def _parse_times(column: pa.ChunkedArray, field: str, errors: _Errors) -> pa.Array:
    """ISO-8601 text with 0 to 9 fractional digits, and ``Z``, an offset or no zone (UTC);
    each value that is not a time is reported with its row."""
    for target in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
        try:
            return floor_to_micros(column.cast(target)).cast(pa.timestamp("us"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    texts = column.to_pylist()
    parsed: list[datetime | None] = []
    bad: list[bool] = []
    for text in texts:
        moment = _iso_time(text) if text is not None and text.strip() else None
        parsed.append(moment)
        bad.append(moment is None and text is not None and bool(text.strip()))
    errors.rows(
        pa.array(bad, pa.bool_()),
        field,
        lambda i: f"'{texts[i]}' is not an ISO-8601 time; write e.g. 2026-01-31T12:00:00Z",
    )
    return pa.array(parsed, pa.timestamp("us"))


def _iso_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _not_future(
    values: pa.Array, field: str, now: datetime, skew: timedelta, errors: _Errors
) -> None:
    limit = (now.astimezone(UTC) + skew).replace(tzinfo=None)
    errors.rows(
        pc.greater(values, pa.scalar(limit, pa.timestamp("us"))),
        field,
        f"is more than {format_duration(skew)} in the future; check the sender's "
        "clock and time zone (times are UTC)",
    )


def _text(table: pa.Table, field: str, errors: _Errors) -> pa.Array:
    if field not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    column = table[field]
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        return column.cast(pa.string()).combine_chunks()
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return column.cast(pa.string()).combine_chunks()
    errors.add(None, field, f"must be text, found {kind} values")
    return pa.nulls(table.num_rows, pa.string())


_STATUSES = pa.array(["ok", "error"])


def _status(table: pa.Table, errors: _Errors) -> pa.Array:
    if "status" not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    column = table["status"]
    if pa.types.is_boolean(column.type):
        return pc.if_else(column, "ok", "error").combine_chunks()
    values = _text(table, "status", errors)
    errors.rows(
        pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, _STATUSES))),
        "status",
        lambda i: f"'{values[i].as_py()}' is not a status; use 'ok' or 'error'",
    )
    return values


def _number(
    table: pa.Table,
    field: str,
    errors: _Errors,
    *,
    low: float | None = None,
    high: float | None = None,
    message: Message | None = None,
) -> pa.Array:
    """A numeric field as float64: numbers, or text that reads as one (each value that does
    not is reported with its row); NaN, infinities and values out of range are reported."""
    if field not in table.column_names:
        return pa.nulls(table.num_rows, pa.float64())
    column = table[field].combine_chunks()
    kind = column.type
    if pa.types.is_null(kind):
        return pa.nulls(table.num_rows, pa.float64())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = _parse_numbers(column, field, errors, message)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = column.cast(pa.float64())
    else:
        errors.add(None, field, f"must be a number, found {kind} values")
        return pa.nulls(table.num_rows, pa.float64())
    errors.rows(pc.is_nan(values), field, "is NaN; send a finite number (or null)")
    errors.rows(pc.is_inf(values), field, "is infinite; send a finite number")
    finite = pc.is_finite(values)
    if low is not None:
        errors.rows(pc.and_(finite, pc.less(values, low)), field, f"must be >= {low:g}")
    if high is not None:
        errors.rows(pc.and_(finite, pc.greater(values, high)), field, f"must be <= {high:g}")
    return values


def _parse_numbers(
    column: pa.Array, field: str, errors: _Errors, message: Message | None
) -> pa.Array:
    """Text as numbers; blank text is no value."""
    try:
        return column.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    texts = column.to_pylist()
    numbers: list[float | None] = []
    bad: list[bool] = []
    for text in texts:
        value = None
        if text is not None and text.strip():
            try:
                value = float(text)
            except ValueError:
                value = None
        numbers.append(value)
        bad.append(value is None and text is not None and bool(text.strip()))
    errors.rows(
        pa.array(bad, pa.bool_()),
        field,
        message or (lambda i: f"'{texts[i]}' is not a number; send a number such as 12.5"),
    )
    return pa.array(numbers, pa.float64())


def _value(
    table: pa.Table, field: str, errors: _Errors, regression: AccuracySLO | None = None
) -> pa.Array:
    """Predictions and labels as text; integral floats lose their '.0' so 1.0 matches 1.
    With a regression SLO they must be numbers (text that reads as one is kept as its
    number)."""
    if field not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    column = table[field].combine_chunks()
    kind = column.type
    if regression is not None and not pa.types.is_null(kind):
        need = Need(field, "number", regression.name, "quality compares predictions with labels")
        template = not_a_number(need)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            texts = column.to_pylist()
            numbers = _number(
                table, field, errors, message=lambda i: template.format(value=texts[i])
            )
            return _as_text(pc.if_else(pc.is_finite(numbers), numbers, None))
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            errors.add(
                None, field, f"must be a number for SLO '{regression.name}', found {kind} values"
            )
            return pa.nulls(table.num_rows, pa.string())
    if pa.types.is_floating(kind):
        if errors.rows(
            pc.or_(pc.is_nan(column), pc.is_inf(column)), field, "is not a finite number"
        ):
            return pa.nulls(table.num_rows, pa.string())
        return _as_text(column)
    if pa.types.is_boolean(kind):
        return pc.if_else(column, "true", "false")
    if (
        pa.types.is_integer(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_null(kind)
    ):
        return column.cast(pa.string())
    errors.add(None, field, f"must be a class label or a number, found {kind} values")
    return pa.nulls(table.num_rows, pa.string())


def _as_text(values: pa.Array) -> pa.Array:
    """Finite floats as text, whole ones without '.0'."""
    values = values.cast(pa.float64())
    whole = pc.and_(pc.equal(pc.floor(values), values), pc.less(pc.abs(values), 1e15))
    as_int = pc.cast(pc.if_else(whole, values, 0.0), pa.int64()).cast(pa.string())
    return pc.if_else(whole, as_int, pc.cast(values, pa.string()))
