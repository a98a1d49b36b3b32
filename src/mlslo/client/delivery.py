"""Sending spooled batches: one POST per batch under its idempotency key, and what the answer
means for the file — acknowledged (deleted), credentials refused (kept, sending stops),
records rejected (set aside with the server's errors), or try again later (kept)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc

from mlslo.client.spool import Spool, default_folder, key_of, kind_of
from mlslo.client.wire import (
    ARROW_STREAM,
    Totals,
    arrow_bytes,
    envelope,
    headers,
    refusal,
    retryable,
)
from mlslo.client.wire import server_message as message
from mlslo.errors import UsageError

REFUSED = (401, 403)
Outcome = Literal["delivered", "gone", "retry", "refused", "rejected"]


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    totals: Totals = field(default_factory=Totals)
    reason: str = ""


def post_batch(http: httpx.Client, spool: Spool, path: Path) -> Answer:
    """Send one spooled batch and do with its file what the answer says."""
    try:
        body = compact(path.read_bytes())
    except FileNotFoundError:
        return Answer("gone")
    try:
        response = http.post(
            f"/api/v1/{kind_of(path)}",
            content=body,
            headers={"Content-Type": ARROW_STREAM, "Idempotency-Key": key_of(path)},
        )
    except httpx.TransportError as exc:
        return Answer("retry", reason=f"cannot reach {http.base_url}: {exc}")
    status = response.status_code
    if retryable(status):
        return Answer("retry", reason=f"{status} {message(response)}")
    if status in REFUSED:
        return Answer("refused", reason=refusal(response))
    if status >= 400:
        reason = f"{status} {message(response)}"
        try:
            spool.set_aside(path, status, envelope(response))
        except FileNotFoundError:
            return Answer("gone")
        return Answer("rejected", reason=reason)
    answer = response.json()
    path.unlink(missing_ok=True)
    return Answer("delivered", Totals(int(answer["accepted"]), int(answer["duplicates"])))


def compact(body: bytes) -> bytes:
    """A stream of many small record batches (a durable segment holds one per call) as one
    batch: the server reads it several times faster. A stream that does not read is sent as
    it is, for the server to reject with its reasons."""
    try:
        table = ipc.open_stream(body).read_all()
    except (pa.ArrowInvalid, OSError):
        return body
    if not table.num_columns or table.column(0).num_chunks <= 1:
        return body
    return arrow_bytes(table.combine_chunks())


@dataclass(frozen=True)
class Resent:
    """What :func:`resend` did with a spool."""

    spool: Path
    batches: int
    """Batches the server acknowledged (and that were deleted)."""
    totals: Totals
    rejected: list[tuple[Path, str]]
    """Each batch the server rejected, where it now is (in ``rejected/``) and why."""
    restored: int
    """Set-aside batches put back in line first (``rejected=True``)."""
    writing: int
    """Segments a running durable client is still writing (it sends them itself)."""


def resend(
    url: str,
    token: str | None = None,
    spool_dir: str | Path | None = None,
    *,
    rejected: bool = False,
    attempts: int = 4,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> Resent:
    """Send every batch of a spool now, oldest first: the way to deliver what a client kept
    back after the server refused its token, once the token is fixed. With ``rejected``,
    batches set aside earlier are sent again too (after the spec changed to accept them).

    Each batch keeps its idempotency key, so one already counted is not counted twice, and
    running it beside a client over the same spool is safe. A refused token or an unreachable
    server stops it (:class:`UsageError` naming ``token`` or ``url``); the batches not sent
    stay spooled. A rejected batch is set aside and the rest are still sent.
    """
    folder = Path(spool_dir) if spool_dir is not None else default_folder(url)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such spool folder", parameter="spool")
    spool = Spool(folder)
    spool.recover()
    restored = spool.restore_rejected() if rejected else 0
    sent, totals = 0, Totals()
    set_aside: list[tuple[Path, str]] = []
    with httpx.Client(
        base_url=url.rstrip("/"), headers=headers(token), timeout=timeout, transport=transport
    ) as http:
        for path in spool.batches():
            answer = _with_retries(http, spool, path, attempts)
            if answer.outcome in ("retry", "refused"):
                left = len(spool.batches())
                raise UsageError(
                    f"{answer.reason}; {sent} batches sent, {left} stay in {folder}",
                    parameter="url" if answer.outcome == "retry" else "token",
                )
            if answer.outcome == "rejected":
                set_aside.append((spool.rejected / path.name, answer.reason))
            elif answer.outcome == "delivered":
                sent += 1
                totals = totals + answer.totals
    return Resent(folder, sent, totals, set_aside, restored, len(spool.writing()))


def _with_retries(http: httpx.Client, spool: Spool, path: Path, attempts: int) -> Answer:
    delay = 0.5
    for attempt in range(attempts):
        answer = post_batch(http, spool, path)
        if answer.outcome != "retry" or attempt == attempts - 1:
            return answer
        time.sleep(delay * (1 + random.random() / 2))
        delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")
