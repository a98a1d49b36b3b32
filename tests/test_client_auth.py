"""The SDK when the server says no: a refused token keeps every batch spooled and stops the
sending (flush and close say so); a rejected batch is set aside with the server's errors;
what was kept goes out with a new client, ``resume()``, or ``mlslo client resend``."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from mlslo.client import Client, resend
from mlslo.client.spool import key_of
from mlslo.errors import UsageError

NOW = datetime(2026, 11, 21, tzinfo=UTC)
SPEC = """
service: auth
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.99}, window: 7d}
"""
REFUSED_401 = (
    "the server refused the token (401): unknown or revoked token; fix the token, then "
    "resend with `mlslo client resend` or restart"
)


def _records(start: int, n: int, **extra: object) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "ts": NOW - timedelta(minutes=30) + timedelta(seconds=i),
            "status": "ok",
            **extra,
        }
        for i in range(start, start + n)
    ]


class Recording(httpx.BaseTransport):
    """A real HTTP transport that notes the status and idempotency key of every request."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.seen: list[tuple[int, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        self.seen.append((response.status_code, request.headers.get("idempotency-key", "")))
        return response


def _client(url: str, token: str | None, spool: Path, **options: object) -> Client:
    settings: dict = {"batch_size": 50, "flush_interval": 0.05, "flush_at_exit": False}
    settings.update(options)
    return Client(url, token, spool_dir=spool, **settings)


def _stored(live) -> int:
    return live.service.store.counts()["predictions"]


def test_a_refused_token_keeps_every_batch_and_stops_sending(live_server, tmp_path, caplog):
    live = live_server(SPEC, now=NOW)
    spool = tmp_path / "spool"
    wire = Recording()
    client = _client(live.url, "mlslo_not_a_token", spool, transport=wire)
    client.log_predictions(_records(0, 120))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="mlslo.client"):
        assert client.flush(timeout=60) is False
    assert time.monotonic() - started < 30, "flush returns at the refusal, not at its timeout"
    assert client.last_error == REFUSED_401
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and REFUSED_401 in errors[0].getMessage()
    assert len(client.spooled()) == 3
    assert list((spool / "rejected").iterdir()) == []
    client.log_predictions(_records(120, 30))
    time.sleep(0.5)
    assert wire.seen == [(401, key_of(client.spooled()[0]))], "one refusal, then no sending"
    assert client.close(timeout=1) is False
    assert client.rejected == 0
    assert _stored(live) == 0

    order = [key_of(p) for p in sorted(spool.glob("*.arrow"))]
    assert len(order) == 4
    wire = Recording()
    second = _client(live.url, live.token("ingest"), spool, transport=wire)
    assert second.flush(timeout=30)
    assert second.close()
    assert wire.seen == [(200, key) for key in order], "the spool goes out in order"
    assert _stored(live) == 150
    assert second.accepted == 150


def test_a_token_without_the_scope_is_refused_until_resume(live_server, tmp_path):
    live = live_server(SPEC, now=NOW)
    spool = tmp_path / "spool"
    client = _client(live.url, live.token("read"), spool)
    client.log_predictions(_records(0, 60))
    assert client.flush(timeout=30) is False
    assert client.last_error is not None
    assert client.last_error.startswith(
        "the server refused the token (403): this token has scope 'read'; this request needs "
        "'ingest'; fix the token"
    )
    assert client.pending == 2
    client.resume(live.token("ingest"))
    assert client.flush(timeout=30)
    assert client.close()
    assert _stored(live) == 60


def test_a_token_revoked_while_logging_then_mlslo_client_resend(live_server, tmp_path, cli):
    live = live_server(SPEC, now=NOW)
    spool = tmp_path / "spool"
    tokens = live.service.store.tokens
    token, secret = tokens.create("ingest", "model")
    client = _client(live.url, secret, spool)
    client.log_predictions(_records(0, 50))
    assert client.flush(timeout=30)
    tokens.revoke(token.id)
    client.log_predictions(_records(50, 100))
    assert client.flush(timeout=30) is False
    assert client.last_error == REFUSED_401
    assert client.close(timeout=1) is False
    assert _stored(live) == 50

    refused = cli("client", "resend", "--url", live.url, "--token", secret, "--spool", spool)
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        "error: --token: the server refused the token (401): unknown or revoked token; "
        f"0 batches sent, 2 stay in {spool}"
    )
    good = live.token("ingest")
    run = cli("client", "resend", "--url", live.url, "--token", good, "--spool", spool)
    assert run.exit_code == 0, run.stderr
    assert run.stdout.strip() == (
        f"{spool}: 2 batches sent, 100 records accepted, 0 duplicates, 0 rejected"
    )
    assert _stored(live) == 150
    again = cli("client", "resend", "--url", live.url, "--token", good, "--spool", spool)
    assert again.stdout.strip() == (
        f"{spool}: 0 batches sent, 0 records accepted, 0 duplicates, 0 rejected"
    )


def test_a_rejected_batch_is_set_aside_with_the_servers_errors(live_server, tmp_path):
    live = live_server(SPEC, now=NOW)
    spool = tmp_path / "spool"
    client = _client(live.url, live.token("ingest"), spool)
    client.log_predictions({"id": "x", "ts": NOW, "status": "maybe"})
    client.log_labels({"id": "x", "ts": NOW, "label": 1})
    assert client.flush(timeout=30), "a rejected batch is not waited for"
    assert client.rejected == 1
    assert client.close() is False, "close says something was rejected"
    (batch,) = (spool / "rejected").glob("*.arrow")
    answer = json.loads(batch.with_suffix(".json").read_text())
    assert answer == {
        "status": 422,
        "errors": [
            {"row": 1, "field": "status", "message": "'maybe' is not a status; use 'ok' or 'error'"}
        ],
        "total": 1,
    }
    assert live.service.store.counts()["held_labels"] == 1, "the next batch still went out"


def test_resend_rejected_after_the_spec_accepts_the_records(live_server, tmp_path, cli):
    live = live_server(SPEC, now=NOW)
    spool = tmp_path / "spool"
    token = live.token("ingest")
    client = _client(live.url, token, spool)
    client.log_predictions(_records(0, 40, region="eu"))
    assert client.flush(timeout=30)
    assert client.close() is False
    assert client.rejected == 1
    (aside,) = (spool / "rejected").glob("*.arrow")

    run = cli("client", "resend", "--url", live.url, "--token", token, "--spool", spool)
    assert run.exit_code == 0 and "0 batches sent" in run.stdout
    again = cli(
        "client", "resend", "--url", live.url, "--token", token, "--spool", spool, "--rejected"
    )
    assert again.exit_code == 2
    assert again.stdout.strip() == (
        f"{spool}: 1 set-aside batch put back, 0 batches sent, 0 records accepted, "
        "0 duplicates, 1 rejected"
    )
    assert again.stderr.startswith(f"error: {aside}: the server rejected it: 422 ")
    assert "region" in again.stderr and again.stderr.count("\n") == 1
    assert aside.exists() and aside.with_suffix(".json").exists()

    spec = tmp_path / "spec0.yaml"
    spec.write_text(spec.read_text() + "attributes: [region]\n")
    live.service.reload()
    done = resend(live.url, token, spool, rejected=True)
    assert (done.restored, done.batches, done.totals.accepted, done.rejected) == (1, 1, 40, [])
    assert list((spool / "rejected").iterdir()) == []
    assert _stored(live) == 40


def test_resend_says_what_is_wrong_in_one_line(tmp_path, cli):
    url = f"http://127.0.0.1:{free_port()}"
    missing = tmp_path / "nowhere"
    run = cli("client", "resend", "--url", url, "--spool", missing)
    assert run.exit_code == 2
    assert run.stderr.strip() == f"error: --spool: {missing}: no such spool folder"

    spool = tmp_path / "spool"
    client = _client(url, None, spool, max_backoff=0.1)
    client.log_predictions(_records(0, 10))
    assert client.close(timeout=0.5) is False
    assert len(client.spooled()) == 1
    with pytest.raises(UsageError) as raised:
        resend(url, None, spool, attempts=1)
    assert raised.value.parameter == "url"
    assert f"cannot reach {url}" in str(raised.value)
    assert str(raised.value).endswith(f"0 batches sent, 1 stay in {spool}")
    assert len(client.spooled()) == 1
