"""The store across restarts: what it keeps on disk is all it needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from conftest import Clock
from mlslo.spec import parse_spec
from mlslo.store import Store

NOW = datetime(2026, 11, 21, tzinfo=UTC)
SPEC = parse_spec("""
service: held
slos:
  - {name: acc, dimension: accuracy, sli: {metric: accuracy}, objective: {target: 0.8},
     window: 7d}
""")


def _accuracy(store: Store) -> tuple[float | None, int]:
    sli = store.evaluate(NOW).slos[0].measurement
    return sli.value, sli.n


def test_labels_held_before_a_restart_meet_their_predictions_after_it(tmp_path):
    ts = pa.array([NOW - timedelta(hours=h) for h in range(1, 11)], pa.timestamp("us", tz="UTC"))
    ids = [f"p{i}" for i in range(10)]
    labels = pa.table({"id": ids, "ts": ts, "label": ["1"] * 10})
    predictions = pa.table({"id": ids, "ts": ts, "prediction": ["1"] * 8 + ["0"] * 2})
    clock = Clock(NOW)
    store = Store.open(tmp_path / "held.duckdb", SPEC, clock=clock)
    try:
        assert store.ingest("labels", labels).accepted == 10
        assert store.counts()["held_labels"] == 10
        assert _accuracy(store) == (None, 0)
    finally:
        store.close()
    reopened = Store.open(tmp_path / "held.duckdb", SPEC, clock=clock)
    try:
        assert reopened.ingest("predictions", predictions).accepted == 10
        assert reopened.counts()["held_labels"] == 0
        assert _accuracy(reopened) == (0.8, 10)
        candidate = reopened.rollup()
        assert candidate.table.num_rows > 0
    finally:
        reopened.close()
