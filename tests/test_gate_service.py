"""The gate through the real server: same JSON as the CLI, an audit log, expiring overrides."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from mlslo.api import gate_files
from mlslo.client import arrow_bytes
from mlslo.render.documents import gate_json
from mlslo.scan.files import Sources
from mlslo.spec import parse_spec

NOW = datetime(2026, 11, 21, tzinfo=UTC)
SPEC = """
    service: fraud
    slos:
      - {name: uptime, dimension: availability, objective: {target: 0.99}, window: 7d}
      - name: fairness
        dimension: fairness
        sli: {metric: true_positive_rate_difference, attribute: group}
        objective: {target: 0.05}
        window: 7d
    policies:
      production: {hard_stop: [fairness, uptime], min_remaining: {uptime: 0.2}}
      lenient: {soft_stop: [fairness]}
    default_policy: production
"""


def _records() -> pa.Table:
    rows = []
    for version, gap in (("v1", 0), ("v2", 30)):
        for group, hits in (("A", 90), ("B", 90 - gap)):
            rows += [(version, group, 1, int(i < hits)) for i in range(100)]
            rows += [(version, group, 0, int(i < 5)) for i in range(100)]
    base = NOW - timedelta(minutes=30)  # recent: uptime is not absent
    return pa.table(
        {
            "id": [f"p{i}" for i in range(len(rows))],
            "ts": pa.array(
                [base + timedelta(seconds=i) for i in range(len(rows))],
                pa.timestamp("us", tz="UTC"),
            ),
            "model_version": [r[0] for r in rows],
            "group": [r[1] for r in rows],
            "label": [r[2] for r in rows],
            "prediction": [r[3] for r in rows],
            "status": ["ok"] * len(rows),
        }
    )


def _loaded(live_server):
    live = live_server(SPEC, now=NOW)
    with live.client() as http:
        response = http.post(
            "/api/v1/predictions",
            content=arrow_bytes(_records()),
            headers={"Content-Type": "application/vnd.apache.arrow.stream"},
        )
        assert response.status_code == 200
    return live


def test_served_gate_equals_the_cli_gate_and_is_audited(live_server, tmp_path):
    live = _loaded(live_server)
    reader = live.token("read")
    with live.client(reader) as http:
        served = http.get("/api/v1/gate", params={"candidate": "model_version=v2"}).json()
        lenient = http.get("/api/v1/gate", params={"policy": "lenient"}).json()
        unknown = http.get("/api/v1/gate", params={"policy": "nope"})
        history = http.get("/api/v1/gate/history").json()
    import pyarrow.parquet as pq

    pq.write_table(_records(), tmp_path / "log.parquet")
    local = gate_json(*_run(tmp_path, "model_version=v2"))
    served.pop("id")
    assert served == local
    assert served["decision"] == "block"
    assert [r["scope"] for r in served["reasons"]] == ["candidate model_version=v2"]
    assert lenient["decision"] == "warn"
    assert unknown.status_code == 422
    assert "no policy named 'nope'" in unknown.json()["errors"][0]["message"]
    assert [h["decision"] for h in history] == ["warn", "block"]
    assert history[1]["candidate"] == "model_version=v2"
    assert history[0]["caller"] == "token 2 (test read)"
    assert history[0]["reasons"][0]["rule"] == "soft_stop"


def _run(tmp_path, candidate):
    spec = parse_spec(textwrap.dedent(SPEC))
    run = gate_files(
        spec,
        Sources(str(tmp_path / "log.parquet"), dedupe=True),
        NOW,
        candidate=tuple(candidate.split("=")),
    )
    return run.evaluation, run.decision, run.candidate


def test_override_turns_block_into_warning_until_it_expires(live_server, cli):
    live = _loaded(live_server)
    reader = live.token("read")
    blocked = cli("gate", "--url", live.url, "--token", reader, "--candidate", "model_version=v2")
    assert blocked.exit_code == 1, blocked.stderr
    assert blocked.stdout.startswith("BLOCK")
    denied = cli(
        "gate",
        "override",
        "--reason",
        "hotfix",
        "--expires",
        "2h",
        "--url",
        live.url,
        "--token",
        reader,
    )
    assert denied.exit_code == 2
    assert "403" in denied.stderr
    created = cli(
        "gate",
        "override",
        "--reason",
        "incident 42 hotfix",
        "--expires",
        "2h",
        "--url",
        live.url,
        "--token",
        live.admin,
    )
    assert created.exit_code == 0, created.stderr
    assert created.stdout.startswith("override 1 active until 2026-11-21T02:00:00")
    warned = cli(
        "gate",
        "--url",
        live.url,
        "--token",
        reader,
        "--candidate",
        "model_version=v2",
        "--format",
        "json",
    )
    assert warned.exit_code == 3
    document = warned.json()
    assert document["decision"] == "warn"
    assert document["override"]["reason"] == "incident 42 hotfix"
    assert document["reasons"][-1]["rule"] == "override"
    assert (
        cli(
            "gate",
            "--url",
            live.url,
            "--token",
            reader,
            "--candidate",
            "model_version=v2",
            "--warn-ok",
        ).exit_code
        == 0
    )
    live.clock.advance(timedelta(hours=2, seconds=1))
    expired = cli(
        "gate",
        "--url",
        live.url,
        "--token",
        reader,
        "--candidate",
        "model_version=v2",
        "--format",
        "json",
    )
    assert expired.exit_code == 1
    assert expired.json()["override"] is None
    with live.client(reader) as http:
        overrides = http.get("/api/v1/gate/overrides").json()
        history = http.get("/api/v1/gate/history").json()
    assert overrides[0]["expires_at"] == "2026-11-21T02:00:00Z"
    assert [h["decision"] for h in history][:3] == ["block", "warn", "warn"]
    assert history[1]["override_id"] == 1
    with live.client() as http:
        bad = http.post("/api/v1/gate/overrides", json={"reason": "x", "expires": "90d"})
        assert bad.status_code == 422
        assert "within 30 days" in bad.json()["errors"][0]["message"]
        typo = http.post("/api/v1/gate/overrides", json={"reason": "x", "expires": "soon"})
        assert typo.json()["errors"][0]["field"] == "expires"
