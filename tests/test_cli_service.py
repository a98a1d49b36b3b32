"""The service's command-line tools: tokens and bulk ingestion, against real files/servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow as pa

from mlslo.server.store import Store
from mlslo.spec import parse_spec

NOW = datetime(2026, 11, 21, tzinfo=UTC)
SPEC = """
    service: cli
    slos:
      - {name: uptime, dimension: availability, objective: {target: 0.99}, window: 7d}
"""


def test_tokens_through_the_database(cli, tmp_path):
    db = tmp_path / "t.duckdb"
    Store.open(db, parse_spec(SPEC.replace("\n    ", "\n"))).close()
    created = cli("token", "create", "--scope", "ingest", "--db", db, "--name", "model-a")
    assert created.exit_code == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("mlslo_") and len(secret) > 40
    assert "not shown again" in created.stderr
    listed = cli("token", "list", "--db", db)
    assert listed.stdout.split("\t")[:3] == ["1", "ingest", "active"]
    assert secret not in listed.stdout
    assert cli("token", "revoke", "1", "--db", db).exit_code == 0
    assert "revoked" in cli("token", "list", "--db", db).stdout
    store = Store.open_admin(db)
    try:
        assert store.tokens.verify(secret).revoked_at is not None
    finally:
        store.close()
    bad = cli("token", "create", "--scope", "superuser", "--db", db)
    assert bad.exit_code == 2
    assert "scope must be one of ingest, read, admin" in bad.stderr
    missing = cli("token", "list", "--db", tmp_path / "none.duckdb")
    assert missing.exit_code == 2
    assert "no such database" in missing.stderr
    neither = cli("token", "list")
    assert neither.exit_code == 2 and "--db" in neither.stderr


def test_tokens_and_ingest_through_a_running_server(cli, live_server, write_records):
    live = live_server(SPEC, now=NOW)
    created = cli("token", "create", "--scope", "ingest", "--url", live.url, "--token", live.admin)
    assert created.exit_code == 0, created.stderr
    sender = created.stdout.strip()
    rows = {
        "id": [f"p{i}" for i in range(2500)],
        "ts": [NOW - timedelta(hours=2) + timedelta(seconds=i) for i in range(2500)],
        "status": ["ok" if i % 100 else "error" for i in range(2500)],
    }
    path = write_records(rows)
    sent = cli("ingest", path, "--url", live.url, "--token", sender, "--batch-size", "1000")
    assert sent.exit_code == 0, sent.stderr
    assert sent.stdout.strip().endswith("2,500 accepted, 0 duplicates")
    again = cli("ingest", path, "--url", live.url, "--token", sender)
    assert again.stdout.strip().endswith("0 accepted, 2,500 duplicates")
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.admin}"}) as http:
        uptime = http.get("/api/v1/slos").json()["slos"][0]
    assert uptime["sli"]["valid"] == 2500
    assert uptime["sli"]["good"] == 2475
    denied = cli("ingest", path, "--url", live.url, "--token", "mlslo_wrong")
    assert denied.exit_code == 2
    assert "401" in denied.stderr and "unknown or revoked token" in denied.stderr
    bad = write_records(pa.table({"id": ["a"], "ts": [NOW], "status": ["maybe"]}), "csv")
    rejected = cli("ingest", bad, "--url", live.url, "--token", sender)
    assert rejected.exit_code == 2
    assert "records 1-1 were rejected (422)" in rejected.stderr
    assert "row 1, field 'status'" in rejected.stderr
    mixed = Path(bad).with_name("mixed.ndjson")
    mixed.write_text(
        '{"id": "m1", "ts": "2026-11-20T10:00:00Z", "latency_ms": 12}\n'
        '{"id": "m2", "ts": "2026-11-20T10:00:00Z", "latency_ms": "slow"}\n'
    )
    unreadable = cli("ingest", str(mixed), "--url", live.url, "--token", sender)
    assert unreadable.exit_code == 2
    assert unreadable.stderr.strip().splitlines() == [
        f"error: {mixed}: records 1-2 were rejected (422): row 2, field 'latency_ms': 'slow' "
        "is not a number; send a number such as 12.5; nothing of this batch was written "
        "(0 records before it were)"
    ]
    unreachable = cli("ingest", path, "--url", "http://127.0.0.1:9", "--token", sender)
    assert unreachable.exit_code == 2
    assert "cannot reach http://127.0.0.1:9" in unreachable.stderr
