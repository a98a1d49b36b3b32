"""Request bodies to Arrow tables: JSON arrays, NDJSON, CSV, Parquet and Arrow IPC.

Parsing is column-wise and done by pyarrow where it can be; a body that cannot be parsed
gives a :class:`BatchError` naming the row and field when they can be known.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from mlslo.errors import MlsloError, first_line

CONTENT_TYPES = {
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/jsonlines": "ndjson",
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/vnd.apache.arrow.stream": "arrow",
    "application/vnd.apache.arrow.file": "arrow",
}


@dataclass(frozen=True)
class FieldError:
    row: int | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}

    def describe(self) -> str:
        """``row 17, field 'ts': message`` (the parts that are known)."""
        where = ", ".join(
            p
            for p in (
                f"row {self.row}" if self.row is not None else "",
                f"field '{self.field}'" if self.field else "",
            )
            if p
        )
        return f"{where + ': ' if where else ''}{self.message}"


MAX_ERRORS = 100
"""At most this many problems are listed for a batch; ``BatchError.total`` counts them all."""


class BatchError(MlsloError):
    """A batch was rejected as a whole; ``errors`` locate the problems (1-based rows, in row
    order, at most :data:`MAX_ERRORS`) and ``total`` counts every one found."""

    def __init__(
        self, errors: Sequence[FieldError], status: int = 422, total: int | None = None
    ) -> None:
        self.errors = list(errors)
        self.status = status
        self.total = max(total if total is not None else 0, len(self.errors))
        more = f" (and {self.total - 1} more)" if self.total > 1 else ""
        super().__init__(f"{self.errors[0].describe()}{more}")


def body_format(content_type: str | None) -> str:
    """The body format named by a Content-Type header (parameters such as charset ignored)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in CONTENT_TYPES:
        accepted = ", ".join(sorted(CONTENT_TYPES))
        raise BatchError(
            [
                FieldError(
                    None,
                    None,
                    f"unsupported Content-Type '{media or 'none'}'; send one of: {accepted}",
                )
            ],
            status=415,
        )
    return CONTENT_TYPES[media]


NOT_UTF8 = "not UTF-8 text; send the body (and its field names) encoded as UTF-8"


def parse_body(body: bytes, fmt: str) -> pa.Table:
    """Parse a request body in ``fmt`` into a table (nested ``attributes`` are kept)."""
    if not body.strip():
        raise BatchError(
            [FieldError(None, None, "the body is empty; send at least one record")], status=400
        )
    try:
        table = _parse(body, fmt)
        table.column_names  # noqa: B018 - a name that is not UTF-8 fails here
    except BatchError:
        raise
    except UnicodeDecodeError:
        raise BatchError(
            [FieldError(None, None, f"a field name is {NOT_UTF8}")], status=400
        ) from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError) as exc:
        raise BatchError([FieldError(*_locate_arrow_error(str(exc)))], status=400) from None
    if table.num_rows == 0:
        raise BatchError(
            [FieldError(None, None, "the body is empty; send at least one record")], status=400
        )
    return _plain(_unique_names(table))


def _unique_names(table: pa.Table) -> pa.Table:
    """Refuse a field named twice (a CSV header, Parquet or Arrow columns): which of the two
    holds the value is anyone's guess."""
    names = table.column_names
    twice = [name for index, name in enumerate(names) if name in names[:index]]
    if twice:
        raise BatchError(
            [
                FieldError(None, name, "appears more than once; send each field once")
                for name in dict.fromkeys(twice)
            ],
            status=422,
        )
    return table


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary-encoded columns (pandas categoricals) as their values."""
    if not any(pa.types.is_dictionary(field.type) for field in table.schema):
        return table
    columns = [
        column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
        for column in table.columns
    ]
    return pa.table(columns, names=table.column_names)


def _parse(body: bytes, fmt: str) -> pa.Table:
    if fmt == "json":
        return _json_array(body)
    if fmt == "ndjson":
        return _ndjson(body)
    if fmt == "csv":
        return pacsv.read_csv(io.BytesIO(body))
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(body))
    return _arrow(body)


def _arrow(body: bytes) -> pa.Table:
    try:
        return ipc.open_stream(pa.BufferReader(body)).read_all()
    except pa.ArrowInvalid:
        return ipc.open_file(pa.BufferReader(body)).read_all()


_ROW = re.compile(r"Column\((/[^)]*)\) changed from (\w+) to (\w+) in row (\d+)")


def _locate_arrow_error(message: str) -> tuple[int | None, str | None, str]:
    match = _ROW.search(message)
    if match:
        field = match.group(1).strip("/").replace("/", ".")
        return (
            int(match.group(4)) + 1,
            field,
            f"is a {match.group(3)} here but a {match.group(2)} in earlier rows; send one "
            "type per field",
        )
    return None, None, f"cannot parse the body: {first_line(message, 'unreadable body')}"


def _json_records(rows: Any, *, what: str) -> list[dict[str, Any]]:
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list):
        raise BatchError(
            [FieldError(None, None, f"{what} must be an array of objects")], status=400
        )
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise BatchError(
                [FieldError(index + 1, None, "each record must be a JSON object")], status=400
            )
    return rows


TOO_DEEP = "is nested too deeply; a record is an object of single values (and attributes)"


def _json_array(body: bytes) -> pa.Table:
    try:
        rows = json.loads(body, parse_constant=_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BatchError([FieldError(None, None, f"not valid JSON: {exc}")], status=400) from None
    except RecursionError:
        raise BatchError([FieldError(None, None, f"the body {TOO_DEEP}")], status=400) from None
    return table_from_records(_json_records(rows, what="a JSON body"))


def _ndjson(body: bytes) -> pa.Table:
    """One JSON object per line, parsed line by line in Python: a body from the network is
    never handed to a native JSON reader, which no input must be able to crash."""
    rows = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_constant)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise BatchError(
                [FieldError(number, None, f"not valid JSON: {reason}")], status=400
            ) from None
        except RecursionError:
            raise BatchError(
                [FieldError(number, None, f"the line {TOO_DEEP}")], status=400
            ) from None
        if not isinstance(row, dict):
            raise BatchError(
                [FieldError(number, None, "each NDJSON line must be a JSON object")], status=400
            )
        rows.append(row)
    return table_from_records(rows)


def _constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def table_from_records(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Records (dicts, possibly with nested ``attributes``) to a table, column by column.

    A field whose values are of several types (3 here, "fast" there) becomes text, so that
    the field's own check judges each value and names every row it refuses; objects and lists
    where a single value belongs are refused row by row."""
    flat = [_flatten(row) for row in rows]
    names: dict[str, None] = {}
    for row in flat:
        names.update(dict.fromkeys(row))
    columns = {}
    problems: list[FieldError] = []
    total = 0
    for name in names:
        values = [row.get(name) for row in flat]
        nested = [i for i, v in enumerate(values) if isinstance(v, dict | list)]
        if nested:
            total += len(nested)
            problems += [
                FieldError(i + 1, name, "must be a single value, not an object or list")
                for i in nested[:MAX_ERRORS]
            ]
            continue
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns[name] = pa.array([_as_text(v) for v in values], pa.string())
    if problems:
        ordered = sorted(problems, key=lambda e: e.row or 0)
        raise BatchError(ordered[:MAX_ERRORS], status=422, total=total)
    return pa.table(columns) if columns else pa.table({})


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    attributes = row.get("attributes")
    if isinstance(attributes, dict):
        out = {k: v for k, v in row.items() if k != "attributes"}
        for key, value in attributes.items():
            out.setdefault(key, value)
        return out
    return row


def _as_text(value: Any) -> str | None:
    """A JSON value as the text it was written as (a whole float without its '.0')."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
