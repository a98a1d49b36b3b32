"""Record columns read into the store's types, each check reporting every row it refuses:
ids, times (of any unit, or ISO-8601 text) inside the accepted range, numbers (also as text),
statuses, and class values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from mlslo.inputs.bodies import MAX_ERRORS, BatchError, FieldError
from mlslo.inputs.fields import Need, not_a_number
from mlslo.inputs.files import floor_to_micros
from mlslo.moments import format_duration
from mlslo.spec import AccuracySLO

Message = str | Callable[[int], str]
"""A problem's message, or a function of the 0-based row that quotes the row's value."""


class Problems:
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


def ids(column: pa.ChunkedArray, errors: Problems) -> pa.Array:
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


def absent(column: pa.ChunkedArray) -> pa.Array:
    """Rows with no value: null, or blank text."""
    column = column.combine_chunks()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.fill_null(
            pc.or_(pc.is_null(column), pc.equal(pc.utf8_trim_whitespace(column), "")), True
        )
    return pc.is_null(column)


def timestamps(
    column: pa.ChunkedArray, field: str, errors: Problems, *, required: bool
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
        values = parse_times(column, field, errors)
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
        errors.rows(absent(column), field, "is empty; every record needs a time")
    return values


def parse_times(column: pa.ChunkedArray, field: str, errors: Problems) -> pa.Array:
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
        moment = iso_time(text) if text is not None and text.strip() else None
        parsed.append(moment)
        bad.append(moment is None and text is not None and bool(text.strip()))
    errors.rows(
        pa.array(bad, pa.bool_()),
        field,
        lambda i: f"'{texts[i]}' is not an ISO-8601 time; write e.g. 2026-01-31T12:00:00Z",
    )
    return pa.array(parsed, pa.timestamp("us"))


def iso_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def in_range(
    values: pa.Array,
    field: str,
    now: datetime,
    skew: timedelta,
    max_age: timedelta | None,
    errors: Problems,
) -> None:
    """Refuse times after ``now + skew`` (a sender's clock ahead) and, given ``max_age``,
    before ``now - max_age``: such a record would leave the store at once, and only makes
    rebuilding the rollups walk the days in between."""
    now = now.astimezone(UTC).replace(tzinfo=None)
    errors.rows(
        pc.greater(values, pa.scalar(now + skew, pa.timestamp("us"))),
        field,
        f"is more than {format_duration(skew)} in the future; check the sender's "
        "clock and time zone (times are UTC)",
    )
    if max_age is None:
        return
    oldest = now - max_age
    errors.rows(
        pc.less(values, pa.scalar(oldest, pa.timestamp("us"))),
        field,
        lambda i: (
            f"{_iso(values[i].as_py())} is more than {format_duration(max_age)} ago, older "
            f"than this service keeps records (from {_iso(oldest)}); check the time, or keep "
            "records longer"
        ),
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds") + "Z"


def text(table: pa.Table, field: str, errors: Problems) -> pa.Array:
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


STATUSES = pa.array(["ok", "error"])


def status(table: pa.Table, errors: Problems) -> pa.Array:
    if "status" not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    column = table["status"]
    if pa.types.is_boolean(column.type):
        return pc.if_else(column, "ok", "error").combine_chunks()
    values = text(table, "status", errors)
    errors.rows(
        pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, STATUSES))),
        "status",
        lambda i: f"'{values[i].as_py()}' is not a status; use 'ok' or 'error'",
    )
    return values


def number(
    table: pa.Table,
    field: str,
    errors: Problems,
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
        values = parse_numbers(column, field, errors, message)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        # past 2**53 a float is the nearest one: the range checks below judge the magnitude
        values = column.cast(pa.float64(), safe=False)
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


def parse_numbers(
    column: pa.Array, field: str, errors: Problems, message: Message | None
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


def value(
    table: pa.Table, field: str, errors: Problems, regression: AccuracySLO | None = None
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
            numbers = number(
                table, field, errors, message=lambda i: template.format(value=texts[i])
            )
            return as_text(pc.if_else(pc.is_finite(numbers), numbers, None))
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
        return as_text(column)
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


def as_text(values: pa.Array) -> pa.Array:
    """Finite floats as text, whole ones without '.0'."""
    values = values.cast(pa.float64())
    whole = pc.and_(pc.equal(pc.floor(values), values), pc.less(pc.abs(values), 1e15))
    as_int = pc.cast(pc.if_else(whole, values, 0.0), pa.int64()).cast(pa.string())
    return pc.if_else(whole, as_int, pc.cast(values, pa.string()))
