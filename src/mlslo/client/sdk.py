"""``Client``: log records from a model service; a background thread delivers them."""

from __future__ import annotations

import atexit
import logging
import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from mlslo.client.delivery import post_batch
from mlslo.client.spool import Segment, Spool, SpoolError, default_folder
from mlslo.client.wire import KINDS, headers, to_table
from mlslo.errors import UsageError

log = logging.getLogger("mlslo.client")
Job = tuple[str, str, pa.Table]
"""A batch cut from memory: its kind, its spool name, its records."""
FIX_TOKEN = "fix the token, then resend with `mlslo client resend` or restart"


class Client:
    """Log records to an mlslo server from a model service.

    Calls return at once; a background thread sends batches of up to ``batch_size`` records
    (or whatever has gathered after ``flush_interval`` seconds). Every batch is written to
    the spool (``spool_dir``) before it is sent and deleted only once the server has
    acknowledged it, so a server that is down or a restart loses nothing already spooled.

    Without ``durable``, records wait in memory until their batch is spooled, at most
    ``flush_interval`` seconds or ``batch_size`` records: a crash (SIGKILL, power loss) loses
    that much. With ``durable=True`` each ``log_*()`` call appends its records to the spool
    and fsyncs them before it returns, so nothing that was logged is lost; it costs a disk
    sync per call.

    A server that refuses the token (401, 403) stops the sending: the batches stay spooled
    and ``last_error`` (and an ERROR log line) says why. They go out with the next client
    over the same spool, with ``resume()``, or with :func:`mlslo.client.resend`.
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
        durable: bool = False,
        flush_at_exit: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        self.durable = durable
        self.spool = Path(spool_dir) if spool_dir is not None else default_folder(self.url)
        self._spool = Spool(self.spool)
        self._spool.recover()
        self._http = httpx.Client(
            base_url=self.url, headers=headers(token), timeout=timeout, transport=transport
        )
        self._buffers: dict[str, list[pa.Table]] = {k: [] for k in KINDS}
        self._buffered = dict.fromkeys(KINDS, 0)
        self._segments: dict[str, Segment] = {}
        self._writing = 0
        self._cond = threading.Condition()
        self._closing = False
        self._first_buffered: float | None = None
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._refused: str | None = None
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        """Batches the server rejected during this client's life (set aside in ``rejected/``)."""
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
            if self.durable:
                self._append(kind, table)
                return
            self._buffers[kind].append(table)
            self._buffered[kind] += table.num_rows
            if self._first_buffered is None:
                self._first_buffered = time.monotonic()
            if self._buffered[kind] >= self.batch_size:
                self._cond.notify_all()

    def _append(self, kind: str, table: pa.Table) -> None:
        """Durable logging: the records are on disk when this returns (lock held)."""
        segment = self._segments.get(kind)
        if segment is not None and not segment.schema.equals(table.schema):
            self._seal(kind)
            segment = None
        if segment is None:
            segment = self._segments[kind] = self._spool.segment(kind, table.schema)
        try:
            segment.append(table)
        except SpoolError:
            self._seal(kind)
            raise
        if segment.rows >= self.batch_size:
            self._seal(kind)
            self._cond.notify_all()

    def _seal(self, kind: str) -> None:
        segment = self._segments.pop(kind, None)
        if segment is None:
            return
        try:
            segment.seal()
        except SpoolError as exc:
            self.last_error = str(exc)
            log.error("mlslo: %s; it is sealed at the next attempt to send", exc)

    # --- state -----------------------------------------------------------------------------

    def spooled(self) -> list[Path]:
        """Batches written to disk and not yet acknowledged, oldest first."""
        return self._spool.batches()

    @property
    def pending(self) -> int:
        """Batches not yet acknowledged (in memory, being written, or spooled)."""
        with self._cond:
            in_memory = sum(1 for k in KINDS if self._buffered[k]) + self._writing
            in_memory += sum(1 for s in self._segments.values() if s.rows)
        return in_memory + len(self.spooled())

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything logged so far; True once the server acknowledged it all. False at
        the timeout, and at once (with all of it spooled) while the server refuses the token.
        A batch the server rejected is not waited for: it is counted in ``rejected``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            for kind in list(self._segments):
                self._seal(kind)
            self._first_buffered = 0.0
            self._next_attempt = 0.0
            self._cond.notify_all()
        while True:
            with self._cond:
                in_memory = any(self._buffered.values()) or self._writing
                if self._refused is not None and not in_memory:
                    return False
            if not self.pending:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            with self._cond:
                self._cond.notify_all()
                self._cond.wait(0.05)

    def resume(self, token: str | None = None) -> None:
        """Send again after the server refused the token: with ``token`` if given, else with
        the same one (its scope was changed on the server)."""
        with self._cond:
            if token is not None:
                self._http.headers.update(headers(token))
            self._refused = None
            self._next_attempt = 0.0
            self._cond.notify_all()

    def close(self, timeout: float | None = 30.0) -> bool:
        """Flush (up to ``timeout``), then stop; what is left stays spooled for the next client
        over the same spool. True only if the server acknowledged everything this client
        logged: False if anything is unsent (the server unreachable, the token refused) or if
        the server rejected any batch during the client's life (see ``rejected/``)."""
        if self._closing:
            return not self.pending and not self.rejected
        delivered = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        with self._cond:
            jobs = self._cut_batches(force=True)
            for kind in list(self._segments):
                self._seal(kind)
        if not self._write_batches(jobs):
            delivered = False
        self._http.close()
        atexit.unregister(self.close)
        return delivered and not self.rejected

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
                jobs = self._cut_batches()
                now = time.monotonic()
                for kind, segment in list(self._segments.items()):
                    if now - segment.opened >= self.flush_interval:
                        self._seal(kind)
                wait = self.flush_interval
                if self._next_attempt:
                    wait = min(wait, max(0.0, self._next_attempt - now))
                sending = self._refused is None and now >= self._next_attempt
            self._write_batches(jobs)
            if sending:
                self._spool.recover()
                self._send_spooled()
            with self._cond:
                if not self._closing:
                    self._cond.wait(timeout=max(wait, 0.01))

    def _cut_batches(self, force: bool = False) -> list[Job]:
        """Take the buffered records that are due out of memory, as named batches, oldest
        first (lock held); :meth:`_write_batches` writes them without holding the lock, so a
        log call never waits for a disk sync."""
        now = time.monotonic()
        due = force or (
            self._first_buffered is not None and now - self._first_buffered >= self.flush_interval
        )
        jobs = []
        for kind in KINDS:
            while self._buffered[kind] and (due or self._buffered[kind] >= self.batch_size):
                try:
                    table = pa.concat_tables(self._buffers[kind], promote_options="permissive")
                except (pa.ArrowTypeError, pa.ArrowInvalid):
                    jobs += self._apart(kind)
                    continue
                batch, rest = table.slice(0, self.batch_size), table.slice(self.batch_size)
                jobs.append((kind, self._spool.name(kind), batch))
                self._buffers[kind] = [rest] if rest.num_rows else []
                self._buffered[kind] = rest.num_rows
        if not any(self._buffered.values()):
            self._first_buffered = None
        self._writing += len(jobs)
        return jobs

    def _apart(self, kind: str) -> list[Job]:
        """Records logged with different types for one field (a number once, text another
        time) cannot form one batch: each call's records become batches of their own, so the
        server judges each and sets aside only those it refuses (lock held)."""
        jobs = [
            (kind, self._spool.name(kind), table.slice(start, self.batch_size))
            for table in self._buffers[kind]
            for start in range(0, table.num_rows, self.batch_size)
        ]
        self._buffers[kind] = []
        self._buffered[kind] = 0
        return jobs

    def _write_batches(self, jobs: list[Job]) -> bool:
        """Spool the batches; one that cannot be written goes back to memory, in order."""
        for position, (_, name, table) in enumerate(jobs):
            try:
                self._spool.write(name, table.combine_chunks())
            except SpoolError as exc:
                with self._cond:
                    for kind, _, back in reversed(jobs[position:]):
                        self._buffers[kind].insert(0, back)
                        self._buffered[kind] += back.num_rows
                    self._writing -= len(jobs) - position
                    if self._first_buffered is None:
                        self._first_buffered = time.monotonic()
                self.last_error = str(exc)
                log.error("mlslo cannot spool records (kept in memory, retrying): %s", exc)
                return False
            with self._cond:
                self._writing -= 1
        return True

    def _send_spooled(self) -> None:
        for path in self.spooled():
            if self._closing or self._refused is not None:
                return
            answer = post_batch(self._http, self._spool, path)
            if answer.outcome == "retry":
                self._retry_later(answer.reason)
                return
            if answer.outcome == "refused":
                self._refuse(answer.reason)
                return
            if answer.outcome == "rejected":
                self.rejected += 1
                self.last_error = answer.reason
                log.error(
                    "mlslo rejected %s: %s (kept in %s)",
                    path.name,
                    answer.reason,
                    self._spool.rejected,
                )
            elif answer.outcome == "delivered":
                self.accepted += answer.totals.accepted
                self.duplicates += answer.totals.duplicates
                self._backoff = 0.0
                self._next_attempt = 0.0
                self.last_error = None

    def _refuse(self, reason: str) -> None:
        """Stop sending; the line is logged before a waiting ``flush()`` can return."""
        error = f"{reason}; {FIX_TOKEN}"
        kept = len(self.spooled())
        log.error("mlslo stopped sending: %s (%d batches kept in %s)", error, kept, self.spool)
        with self._cond:
            self._refused = reason
            self.last_error = error
            self._cond.notify_all()

    def _retry_later(self, reason: str) -> None:
        self.last_error = reason
        self._backoff = min(self.max_backoff, max(0.2, self._backoff * 2))
        self._next_attempt = time.monotonic() + self._backoff * (1 + random.random() / 4)
        log.warning("mlslo server unavailable (%s); retrying in %.1fs", reason, self._backoff)
