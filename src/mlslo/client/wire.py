"""What goes over the wire: records as Arrow, one call to the API, a file in batches, and
what an error answer says."""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc

from mlslo.errors import DataError, MlsloError, UsageError
from mlslo.inputs.bodies import FieldError, table_from_records

ARROW_STREAM = "application/vnd.apache.arrow.stream"
KINDS = ("predictions", "labels", "outcomes")


class DeliveryError(MlsloError):
    """The server rejected a batch (4xx): it was set aside, not retried."""


@dataclass(frozen=True)
class Totals:
    """What the server answered for some batches: records written, and records it already had."""

    accepted: int = 0
    duplicates: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(self.accepted + other.accepted, self.duplicates + other.duplicates)


def to_table(records: Any) -> pa.Table:
    """dicts, a list of dicts, a pandas DataFrame, or Arrow -> an Arrow table."""
    if isinstance(records, pa.Table):
        return records
    if isinstance(records, pa.RecordBatch):
        return pa.Table.from_batches([records])
    if isinstance(records, Mapping):
        return table_from_records([dict(records)])
    if hasattr(records, "to_dict") and hasattr(records, "columns"):
        return pa.Table.from_pandas(records, preserve_index=False)
    if isinstance(records, Iterable) and not isinstance(records, str | bytes):
        rows = [dict(r) for r in records]
        return table_from_records(rows)
    raise TypeError(
        f"cannot log {type(records).__name__}: pass a dict, a list of dicts, a "
        "pandas DataFrame or a pyarrow Table"
    )


def arrow_bytes(table: pa.Table) -> bytes:
    """A table as one Arrow IPC stream, the body the SDK sends."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def envelope(response: httpx.Response) -> dict[str, Any]:
    """The server's error envelope ``{"errors": [{"row", "field", "message"}]}``; a body
    that is not one (a proxy's page) becomes one error with its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return body
    text = response.text[:300] or response.reason_phrase
    return {"errors": [{"row": None, "field": None, "message": text}]}


def server_message(response: httpx.Response, first_row: int = 1, shown: int = 3) -> str:
    """The server's errors in one line: the first ``shown``, then "... and N more" of the
    total. Rows are counted from ``first_row`` (a batch's first record in its file)."""
    document = envelope(response)
    errors = [e for e in document["errors"] if isinstance(e, dict)]
    try:
        total = int(document.get("total") or len(errors))
    except (TypeError, ValueError):
        total = len(errors)
    parts = [
        FieldError(
            e["row"] + first_row - 1 if isinstance(e.get("row"), int) else None,
            e.get("field"),
            str(e.get("message")),
        ).describe()
        for e in errors[:shown]
    ]
    more = total - len(parts)
    text = "; ".join(parts) or response.reason_phrase
    return f"{text} … and {more:,} more" if parts and more > 0 else text


def refusal(response: httpx.Response) -> str:
    """Why the server refused the credentials (401, 403), in its own words."""
    errors = envelope(response)["errors"]
    said = "; ".join(str(e.get("message")) for e in errors[:3] if isinstance(e, dict))
    said = said or response.reason_phrase
    return f"the server refused the token ({response.status_code}): {said}"


def api_request(url: str, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    """One call to the API, with errors as one readable line."""
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, headers=headers(token), timeout=30.0, **kwargs
        )
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach {url}: {exc}") from None
    if response.status_code >= 400:
        raise UsageError(f"{url}{path}: {response.status_code} {server_message(response)}")
    return response.json()


def _batches(path: str, batch_size: int) -> tuple[Iterator[pa.Table], int | None]:
    import pyarrow.parquet as pq

    from mlslo.inputs.bodies import BatchError, parse_body
    from mlslo.inputs.files import format_of

    kind = format_of(path)
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such file")
    if kind is None:
        raise UsageError(f"{path}: unknown file type; use .parquet, .csv, .ndjson or .arrow")
    if kind == "parquet":
        handle = pq.ParquetFile(path)
        total = handle.metadata.num_rows
        return (pa.Table.from_batches([b]) for b in handle.iter_batches(batch_size)), total
    with pa.input_stream(path, compression="detect") as stream:
        data = stream.read()
    if kind == "json":
        kind = "json" if data.lstrip()[:1] == b"[" else "ndjson"
    try:
        table = parse_body(data, kind)
    except BatchError as exc:
        first = exc.errors[0]
        more = f" … and {exc.total - 1:,} more" if exc.total > 1 else ""
        raise DataError(
            first.message + more, source=path, column=first.field, row=first.row
        ) from None
    return (
        table.slice(i, batch_size) for i in range(0, table.num_rows, batch_size)
    ), table.num_rows


def upload_file(
    path: str,
    *,
    url: str,
    token: str | None,
    kind: str,
    batch_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> Totals:
    """Send a file through the API in Arrow batches; stops at the first rejected batch."""
    batches, total = _batches(path, batch_size)
    totals = Totals()
    done = 0
    with httpx.Client(base_url=url.rstrip("/"), headers=headers(token), timeout=120.0) as http:
        for batch in batches:
            key = f"{hashlib.sha256(path.encode()).hexdigest()[:12]}-{done}-{uuid.uuid4().hex}"
            response = _send_with_retries(http, kind, arrow_bytes(batch), key)
            if response.status_code >= 400:
                raise UsageError(
                    f"{path}: records {done + 1}-{done + batch.num_rows} were "
                    f"rejected ({response.status_code}): "
                    f"{server_message(response, first_row=done + 1)}; nothing of this "
                    f"batch was written ({totals.accepted:,} records before it were)"
                )
            body = response.json()
            totals = totals + Totals(body["accepted"], body["duplicates"])
            done += batch.num_rows
            if progress is not None:
                progress(done, total or done)
    return totals


def retryable(status: int) -> bool:
    """An answer worth trying again later: the server is failing or busy."""
    return status >= 500 or status in (408, 429)


def _send_with_retries(
    http: httpx.Client, kind: str, body: bytes, key: str, attempts: int = 4
) -> httpx.Response:
    delay = 0.5
    for attempt in range(attempts):
        try:
            response = http.post(
                f"/api/v1/{kind}",
                content=body,
                headers={"Content-Type": ARROW_STREAM, "Idempotency-Key": key},
            )
            if not retryable(response.status_code) or attempt == attempts - 1:
                return response
        except httpx.TransportError as exc:
            if attempt == attempts - 1:
                raise UsageError(f"cannot reach {http.base_url}: {exc}") from None
        time.sleep(delay * (1 + random.random() / 2))
        delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")
