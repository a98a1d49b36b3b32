"""Retention and compaction keep the store bounded without changing any budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from conftest import Clock, evaluate_store
from mlslo.render.documents import evaluation_json
from mlslo.server.store import Store
from mlslo.spec import parse_spec

NOW = datetime(2026, 11, 21, tzinfo=UTC)
SPEC = parse_spec("""
service: keep
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.99}, window: 7d}
  - {name: acc, dimension: accuracy, sli: {metric: accuracy}, objective: {target: 0.8},
     window: 7d}
""")


def _batch(start: datetime, hours: int, prefix: str) -> pa.Table:
    ts = [start + timedelta(minutes=10 * i) for i in range(hours * 6)]
    return pa.table(
        {
            "id": [f"{prefix}{i}" for i in range(len(ts))],
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "status": ["ok" if i % 7 else "error" for i in range(len(ts))],
            "prediction": [i % 2 for i in range(len(ts))],
            "label": [(i // 2) % 2 for i in range(len(ts))],
        }
    )


def test_prune_drops_what_no_window_reads_and_compaction_changes_nothing(tmp_path):
    clock = Clock(NOW - timedelta(days=20))
    store = Store.open(tmp_path / "keep.duckdb", SPEC, clock=clock, retention=timedelta(days=10))
    try:
        for day in range(20):
            clock.now = NOW - timedelta(days=20 - day)
            store.writer.records(
                "predictions", _batch(clock.now - timedelta(days=1), 24, f"d{day}-")
            )
        clock.now = NOW
        before = evaluation_json(evaluate_store(store, NOW))
        counts = store.counts()
        assert counts["predictions"] == 20 * 144
        with store.db.locked() as con:
            rows_before = con.execute("SELECT count(*) FROM rollup_rows").fetchone()[0]
        deleted = store.retention.prune()
        assert deleted["predictions"] == 11 * 144
        assert store.counts()["predictions"] == 9 * 144
        assert deleted["rollup_rows"] > 0
        store.retention.compact()
        with store.db.locked() as con:
            rows_after = con.execute("SELECT count(*) FROM rollup_rows").fetchone()[0]
            oldest = con.execute("SELECT min(bucket) FROM rollup_rows").fetchone()[0]
        assert rows_after < rows_before
        assert oldest * 60 >= (NOW - timedelta(days=7, hours=1)).timestamp() - 3 * 86400 - 120
        assert evaluation_json(evaluate_store(store, NOW)) == before
    finally:
        store.close()
    reopened = Store.open(tmp_path / "keep.duckdb", SPEC, clock=clock)
    try:
        assert evaluation_json(evaluate_store(reopened, NOW)) == before
    finally:
        reopened.close()


def test_gate_decisions_and_alert_events_go_with_the_raw_records(tmp_path):
    clock = Clock(NOW - timedelta(days=12))
    store = Store.open(tmp_path / "audit.duckdb", SPEC, clock=clock, retention=timedelta(days=10))
    try:
        for age in (12, 11, 9, 1):
            at = NOW - timedelta(days=age)
            store.audit.record(at, "default", None, "allow", f"ci-{age}", None, {"age": age})
            store.alert_states.save({}, [(at, f"uptime/page/{age}", {"age": age})])
        clock.now = NOW
        deleted = store.retention.prune()
        assert (deleted["gate_decisions"], deleted["alert_events"]) == (2, 2)
        assert sorted(d["caller"] for d in store.audit.recent()) == ["ci-1", "ci-9"]
        assert sorted(e["age"] for e in store.alert_states.events()) == [1, 9]
    finally:
        store.close()


def test_a_rebuild_walks_only_the_days_that_hold_records(tmp_path):
    """Days without records cost a rebuild nothing: two days of records 25 days apart take
    two steps, not 26."""
    clock = Clock(NOW)
    path = tmp_path / "sparse.duckdb"
    store = Store.open(path, SPEC, clock=clock, retention=timedelta(days=30))
    try:
        store.writer.records("predictions", _batch(NOW - timedelta(days=26), 2, "old-"))
        store.writer.records("predictions", _batch(NOW - timedelta(days=1), 2, "new-"))
        before = evaluation_json(evaluate_store(store, NOW))
    finally:
        store.close()
    wider = parse_spec(
        "service: keep\nslos:\n"
        "  - {name: uptime, dimension: availability, objective: {target: 0.99}, window: 7d}\n"
        "  - {name: month, dimension: availability, objective: {target: 0.99}, window: 30d}\n"
    )
    steps: list[tuple[int, int]] = []
    reopened = Store.open(
        path,
        wider,
        clock=clock,
        retention=timedelta(days=30),
        progress=lambda done, total: steps.append((done, total)),
    )
    try:
        assert steps == [(1, 2), (2, 2)]
        slos = {s["name"]: s for s in evaluation_json(evaluate_store(reopened, NOW))["slos"]}
        assert slos["month"]["sli"]["n"] == 2 * 2 * 6
        assert slos["uptime"]["sli"]["n"] == before["slos"][0]["sli"]["n"] == 2 * 6
    finally:
        reopened.close()
