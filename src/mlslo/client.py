"""The Python SDK: log predictions, labels and outcome counts to an mlslo server.

``Client`` batches records in the background and sends them as Arrow. Every batch is first
written to an on-disk spool and deleted only once the server has acknowledged it, so nothing
is lost while the server is down or the process restarts; spooled batches are sent in order
with retries and backoff, each under an idempotency key, so a batch whose acknowledgement
was lost is not counted twice.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import random
import threading
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

log = logging.getLogger("mlslo.client")
ARROW_STREAM = "application/vnd.apache.arrow.stream"
KINDS = ("predictions", "labels", "outcomes")


class DeliveryError(MlsloError):
    """The server rejected a batch (4xx): it was set aside, not retried."""


@dataclass(frozen=True)
class Totals:
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
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _server_message(response: httpx.Response, first_row: int = 1, shown: int = 3) -> str:
    """The server's errors in one line: the first ``shown``, then "... and N more" of the
    total. Rows are counted from ``first_row`` (a batch's first record in its file)."""
    try:
        document = response.json()
        errors = document.get("errors", [])
        total = int(document.get("total") or len(errors))
    except (ValueError, AttributeError, TypeError):
        return response.text[:300] or response.reason_phrase
    parts = [
        FieldError(
            None if e.get("row") is None else e["row"] + first_row - 1,
            e.get("field"),
            e.get("message"),
        ).describe()
        for e in errors[:shown]
    ]
    more = total - len(parts)
    text = "; ".join(parts) or response.reason_phrase
    return f"{text} … and {more:,} more" if parts and more > 0 else text


def api_request(url: str, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    """One call to the API, with errors as one readable line."""
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, headers=_headers(token), timeout=30.0, **kwargs
        )
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach {url}: {exc}") from None
    if response.status_code >= 400:
        raise UsageError(f"{url}{path}: {response.status_code} {_server_message(response)}")
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
    with httpx.Client(base_url=url.rstrip("/"), headers=_headers(token), timeout=120.0) as http:
        for batch in batches:
            key = f"{hashlib.sha256(path.encode()).hexdigest()[:12]}-{done}-{uuid.uuid4().hex}"
            response = _send_with_retries(http, kind, arrow_bytes(batch), key)
            if response.status_code >= 400:
                raise UsageError(
                    f"{path}: records {done + 1}-{done + batch.num_rows} were "
                    f"rejected ({response.status_code}): "
                    f"{_server_message(response, first_row=done + 1)}; nothing of this "
                    f"batch was written ({totals.accepted:,} records before it were)"
                )
            body = response.json()
            totals = totals + Totals(body["accepted"], body["duplicates"])
            done += batch.num_rows
            if progress is not None:
                progress(done, total or done)
    return totals


def _retryable(status: int) -> bool:
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
            if not _retryable(response.status_code) or attempt == attempts - 1:
                return response
        except httpx.TransportError as exc:
            if attempt == attempts - 1:
                raise UsageError(f"cannot reach {http.base_url}: {exc}") from None
        time.sleep(delay * (1 + random.random() / 2))
        delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")


class Client:
    """Log records to an mlslo server from a model service.

    Calls return at once; a background thread sends batches of up to ``batch_size`` records
    (or whatever has gathered after ``flush_interval`` seconds). ``flush()`` waits until
    everything logged so far is acknowledged; it also runs at interpreter exit.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        spool_dir: str | Path | None = None,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        timeout: float = 10.0,
        max_backoff: float = 30.0,
        flush_at_exit: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        default = (
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
            / "mlslo"
            / "spool"
            / digest
        )
        self.spool = Path(spool_dir) if spool_dir is not None else default
        self.spool.mkdir(parents=True, exist_ok=True)
        (self.spool / "rejected").mkdir(exist_ok=True)
        self._http = httpx.Client(
            base_url=self.url, headers=_headers(token), timeout=timeout, transport=transport
        )
        self._buffers: dict[str, list[pa.Table]] = {k: [] for k in KINDS}
        self._buffered = dict.fromkeys(KINDS, 0)
        self._cond = threading.Condition()
        self._closing = False
        self._first_buffered: float | None = None
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._seq = 0
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._loop, name="mlslo-client", daemon=True)
        self._thread.start()
        if flush_at_exit:
            atexit.register(self.close, 10.0)

    # --- logging -------------------------------------------------------------------------

    def log_predictions(self, records: Any) -> None:
        """Prediction records: dicts, a list of dicts, a DataFrame or an Arrow table."""
        self._log("predictions", records)

    def log_labels(self, records: Any) -> None:
        """Label records (id, ts, label)."""
        self._log("labels", records)

    def log_outcomes(self, records: Any) -> None:
        """Outcome counts (ts, total, ok)."""
        self._log("outcomes", records)

    def _log(self, kind: str, records: Any) -> None:
        table = to_table(records)
        if table.num_rows == 0:
            return
        with self._cond:
            if self._closing:
                raise UsageError("this mlslo Client is closed")
            self._buffers[kind].append(table)
            self._buffered[kind] += table.num_rows
            if self._first_buffered is None:
                self._first_buffered = time.monotonic()
            if self._buffered[kind] >= self.batch_size:
                self._cond.notify_all()

    # --- state -----------------------------------------------------------------------------

    def spooled(self) -> list[Path]:
        """Batches written to disk and not yet acknowledged, oldest first."""
        return sorted(self.spool.glob("*.arrow"))

    @property
    def pending(self) -> int:
        """Batches not yet acknowledged (in memory or spooled)."""
        with self._cond:
            in_memory = sum(1 for k in KINDS if self._buffered[k])
        return in_memory + len(self.spooled())

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything logged so far; True once the server acknowledged it all."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._first_buffered = 0.0
            self._next_attempt = 0.0
            self._cond.notify_all()
        while self.pending:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            with self._cond:
                self._cond.notify_all()
                self._cond.wait(0.05)
        return True

    def close(self, timeout: float | None = 30.0) -> bool:
        """Flush (up to ``timeout``), then stop; what is left stays spooled for next time."""
        if self._closing:
            return not self.pending
        delivered = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._http.close()
        atexit.unregister(self.close)
        return delivered

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the background thread -------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._closing:
                    return
                self._spool_due()
                wait = self.flush_interval
                if self._next_attempt:
                    wait = min(wait, max(0.0, self._next_attempt - time.monotonic()))
            if time.monotonic() >= self._next_attempt:
                self._send_spooled()
            with self._cond:
                if not self._closing:
                    self._cond.wait(timeout=max(wait, 0.01))

    def _spool_due(self) -> None:
        """Write buffered records to disk once a batch is full or old enough."""
        now = time.monotonic()
        due = self._first_buffered is not None and now - self._first_buffered >= self.flush_interval
        for kind in KINDS:
            while self._buffered[kind] and (due or self._buffered[kind] >= self.batch_size):
                try:
                    table = pa.concat_tables(self._buffers[kind], promote_options="permissive")
                except (pa.ArrowTypeError, pa.ArrowInvalid):
                    self._spool_apart(kind)
                    continue
                batch, rest = table.slice(0, self.batch_size), table.slice(self.batch_size)
                self._write_spool(kind, batch)
                self._buffers[kind] = [rest] if rest.num_rows else []
                self._buffered[kind] = rest.num_rows
        if not any(self._buffered.values()):
            self._first_buffered = None

    def _spool_apart(self, kind: str) -> None:
        """Records logged with different types for one field (a number once, text another
        time) cannot form one batch: each call's records become batches of their own, so the
        server judges each and sets aside only those it refuses."""
        for table in self._buffers[kind]:
            for start in range(0, table.num_rows, self.batch_size):
                self._write_spool(kind, table.slice(start, self.batch_size))
        self._buffers[kind] = []
        self._buffered[kind] = 0

    def _write_spool(self, kind: str, table: pa.Table) -> None:
        self._seq += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}-{kind}-{uuid.uuid4().hex}"
        temporary = self.spool / f".{name}.tmp"
        with open(temporary, "wb") as out:
            out.write(arrow_bytes(table))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.spool / f"{name}.arrow")

    def _send_spooled(self) -> None:
        for path in self.spooled():
            kind = path.stem.split("-")[3]
            key = path.stem.split("-")[4]
            try:
                body = path.read_bytes()
            except FileNotFoundError:
                continue
            try:
                response = self._http.post(
                    f"/api/v1/{kind}",
                    content=body,
                    headers={"Content-Type": ARROW_STREAM, "Idempotency-Key": key},
                )
            except httpx.TransportError as exc:
                self._retry_later(f"cannot reach {self.url}: {exc}")
                return
            if _retryable(response.status_code):
                self._retry_later(f"{response.status_code} {_server_message(response)}")
                return
            if response.status_code >= 400:
                self.rejected += 1
                self.last_error = f"{response.status_code} {_server_message(response)}"
                log.error(
                    "mlslo rejected %s batch %s: %s (kept in %s)",
                    kind,
                    path.name,
                    self.last_error,
                    self.spool / "rejected",
                )
                (self.spool / "rejected" / f"{path.stem}.error").write_text(self.last_error)
                os.replace(path, self.spool / "rejected" / path.name)
                continue
            body_json = response.json()
            self.accepted += int(body_json.get("accepted", 0))
            self.duplicates += int(body_json.get("duplicates", 0))
            path.unlink(missing_ok=True)
            self._backoff = 0.0
            self._next_attempt = 0.0
            self.last_error = None

    def _retry_later(self, reason: str) -> None:
        self.last_error = reason
        self._backoff = min(self.max_backoff, max(0.2, self._backoff * 2))
        self._next_attempt = time.monotonic() + self._backoff * (1 + random.random() / 4)
        log.warning("mlslo server unavailable (%s); retrying in %.1fs", reason, self._backoff)
