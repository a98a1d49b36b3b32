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
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.json as pajson
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


class BatchError(MlsloError):
    """A batch was rejected as a whole; ``errors`` locate each problem (1-based rows)."""

    def __init__(self, errors: Sequence[FieldError], status: int = 422) -> None:
        self.errors = list(errors)
        self.status = status
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
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


def parse_body(body: bytes, fmt: str) -> pa.Table:
    """Parse a request body in ``fmt`` into a table (nested ``attributes`` are kept)."""
    if not body.strip():
        raise BatchError(
            [FieldError(None, None, "the body is empty; send at least one record")], status=400
        )
    try:
        table = _parse(body, fmt)
    except BatchError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError) as exc:
        raise BatchError([FieldError(*_locate_arrow_error(str(exc)))], status=400) from None
    if table.num_rows == 0:
        raise BatchError(
            [FieldError(None, None, "the body is empty; send at least one record")], status=400
        )
    return table


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


def _json_array(body: bytes) -> pa.Table:
    try:
        rows = json.loads(body, parse_constant=_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BatchError([FieldError(None, None, f"not valid JSON: {exc}")], status=400) from None
    return table_from_records(_json_records(rows, what="a JSON body"))


def _ndjson(body: bytes) -> pa.Table:
    try:
        return pajson.read_json(io.BytesIO(body))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    rows = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line, parse_constant=_constant))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise BatchError(
                [FieldError(number, None, f"not valid JSON: {reason}")], status=400
            ) from None
    return table_from_records(_json_records(rows, what="each NDJSON line"))


def _constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def table_from_records(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Records (dicts, possibly with nested ``attributes``) to a table, column by column, so a
    field holding mixed types is reported with its first odd row."""
    flat = [_flatten(row) for row in rows]
    names: dict[str, None] = {}
    for row in flat:
        names.update(dict.fromkeys(row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in flat]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            raise BatchError([_odd_row(name, values)], status=422) from None
    return pa.table(columns) if columns else pa.table({})


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    attributes = row.get("attributes")
    if isinstance(attributes, dict):
        out = {k: v for k, v in row.items() if k != "attributes"}
        for key, value in attributes.items():
            out.setdefault(key, value)
        return out
    return row


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _odd_row(name: str, values: Sequence[Any]) -> FieldError:
    first = next((v for v in values if v is not None), None)
    expected = _kind(first)
    for index, value in enumerate(values):
        if value is not None and _kind(value) != expected:
            return FieldError(
                index + 1,
                name,
                f"is a {_kind(value)} here but a {expected} in "
                "earlier rows; send one type per field",
            )
        if isinstance(value, dict | list):
            return FieldError(index + 1, name, "must be a single value, not an object or list")
    return FieldError(None, name, "holds values that cannot form one column")
