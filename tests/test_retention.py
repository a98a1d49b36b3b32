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
