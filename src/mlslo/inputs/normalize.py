"""Batches for the store: records validated column-wise and brought to the store's canonical
types. Every problem found is reported with its field and first row; a batch with any problem
is refused as a whole."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from mlslo.inputs.bodies import BatchError, FieldError
from mlslo.inputs.checks import batch_problems
from mlslo.inputs.fields import PREDICTION_FIELDS
from mlslo.moments import format_duration
from mlslo.spec import (
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
MAX_ERRORS = 20


class _Errors:
    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, row: int | None, field: str | None, message: str) -> None:
        if len(self.items) < MAX_ERRORS:
            self.items.append(FieldError(row, field, message))

    def first_row(self, mask: pa.Array | pa.ChunkedArray, field: str, message: str) -> bool:
        """Record the first row where ``mask`` is true; return whether there was one."""
        if not pc.any(mask).as_py():
            return False
        index = pc.index(pc.fill_null(mask, False), True).as_py()
        if index is None or index < 0:
            return False
        self.add(index + 1, field, message)
        return True

    def raise_if_any(self) -> None:
        if self.items:
            raise BatchError(self.items)


def attribute_columns(spec: Spec) -> list[str]:
    """Attribute columns a batch may carry: those the spec slices or filters by."""
    out: list[str] = [a for a in spec.attributes if a not in PREDICTION_FIELDS]
    for slo in spec.slos:
        names = list(slo.filter)
        if isinstance(slo, FairnessSLO):
            names += list(slo.sli.attributes)
        out += [n for n in names if n not in PREDICTION_FIELDS and n not in out]
    return out


def normalize_predictions(
    table: pa.Table, spec: Spec, *, now: datetime, max_skew: timedelta
) -> pa.Table:
    """Validate a batch of prediction records and return it in the store's canonical types.

    Columns are checked as wholes; every problem found is reported with its first row.
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
    out["prediction"] = _value(table, "prediction", errors)
    out["score"] = _number(table, "score", errors, low=0.0, high=1.0)
    out["label"] = _value(table, "label", errors)
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
    labels = _value(table, "label", errors)
    errors.first_row(pc.is_null(labels), "label", "is empty; a label record needs the label")
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
    for field in ("total", "ok"):
        values = _number(table, field, errors, low=0.0)
        errors.first_row(pc.is_null(values), field, "is required")
        whole = pc.equal(pc.floor(pc.fill_null(values, 0.0)), pc.fill_null(values, 0.0))
        errors.first_row(pc.invert(whole), field, "must be a whole number of requests")
        out[field] = pc.cast(pc.fill_null(values, 0.0), pa.int64())
    errors.first_row(pc.greater(out["ok"], out["total"]), "ok", "is greater than total")
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
    ids = pc.cast(column, pa.string())
    errors.first_row(pc.is_null(ids), "id", "is empty; every record needs an id")
    errors.first_row(pc.equal(ids, ""), "id", "is empty; every record needs an id")
    return ids.combine_chunks()


def _timestamps(
    column: pa.ChunkedArray, field: str, errors: _Errors, *, required: bool
) -> pa.Array:
    kind = column.type
    n = len(column)
    if pa.types.is_timestamp(kind):
        values = (
            column.cast(pa.timestamp("us", tz="UTC"))
            if kind.tz
            else column.cast(pa.timestamp("us"))
        )
        values = values.cast(pa.timestamp("us"))
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
        errors.first_row(pc.is_null(values), field, "is empty; every record needs a time")
    return values


def _parse_times(column: pa.ChunkedArray, field: str, errors: _Errors) -> pa.Array:
    for target in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            return column.cast(target).cast(pa.timestamp("us"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    parsed: list[datetime | None] = []
    for index, text in enumerate(column.to_pylist()):
        if text is None:
            parsed.append(None)
            continue
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            errors.add(
                index + 1,
                field,
                f"'{text}' is not an ISO-8601 time; write e.g. 2026-01-31T12:00:00Z",
            )
            return pa.nulls(len(column), pa.timestamp("us"))
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        parsed.append(moment)
    return pa.array(parsed, pa.timestamp("us"))


def _not_future(
    values: pa.Array, field: str, now: datetime, skew: timedelta, errors: _Errors
) -> None:
    limit = (now.astimezone(UTC) + skew).replace(tzinfo=None)
    errors.first_row(
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
    bad = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, _STATUSES)))
    if not pc.any(bad).as_py():
        return values
    index = pc.index(pc.fill_null(bad, False), True).as_py()
    if index is not None and index >= 0:
        errors.add(
            index + 1, "status", f"'{values[index].as_py()}' is not a status; use 'ok' or 'error'"
        )
    return values


def _number(
    table: pa.Table,
    field: str,
    errors: _Errors,
    *,
    low: float | None = None,
    high: float | None = None,
) -> pa.Array:
    if field not in table.column_names:
        return pa.nulls(table.num_rows, pa.float64())
    column = table[field]
    if pa.types.is_null(column.type):
        return pa.nulls(table.num_rows, pa.float64())
    if not (
        pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
        or pa.types.is_decimal(column.type)
    ):
        errors.add(None, field, f"must be a number, found {column.type} values")
        return pa.nulls(table.num_rows, pa.float64())
    values = column.cast(pa.float64()).combine_chunks()
    if errors.first_row(pc.is_nan(values), field, "is NaN; send a finite number (or null)"):
        return values
    if errors.first_row(pc.is_inf(values), field, "is infinite; send a finite number"):
        return values
    if low is not None:
        errors.first_row(pc.less(values, low), field, f"must be >= {low:g}")
    if high is not None:
        errors.first_row(pc.greater(values, high), field, f"must be <= {high:g}")
    return values


def _value(table: pa.Table, field: str, errors: _Errors) -> pa.Array:
    """Predictions and labels as text; integral floats lose their '.0' so 1.0 matches 1."""
    if field not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    column = table[field].combine_chunks()
    kind = column.type
    if pa.types.is_floating(kind):
        if errors.first_row(
            pc.or_(pc.is_nan(column), pc.is_inf(column)), field, "is not a finite number"
        ):
            return pa.nulls(table.num_rows, pa.string())
        whole = pc.equal(pc.floor(column), column)
        as_int = pc.cast(pc.if_else(whole, column, 0.0), pa.int64()).cast(pa.string())
        return pc.if_else(whole, as_int, pc.cast(column, pa.string()))
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
