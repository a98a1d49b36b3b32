"""The store across restarts: what it keeps on disk is all it needs."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import Clock, evaluate_store
from mlslo.api import evaluate_files
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources
from mlslo.server.store import Store, rollup_fingerprint
from mlslo.server.store.rollups import store_scan
from mlslo.spec import parse_spec

NOW = datetime(2026, 11, 21, tzinfo=UTC)
SPEC = parse_spec("""
service: held
slos:
  - {name: acc, dimension: accuracy, sli: {metric: accuracy}, objective: {target: 0.8},
     window: 7d}
""")


def _accuracy(store: Store) -> tuple[float | None, int]:
    sli = evaluate_store(store, NOW).slos[0].measurement
    return sli.value, sli.n


def test_labels_held_before_a_restart_meet_their_predictions_after_it(tmp_path):
    ts = pa.array([NOW - timedelta(hours=h) for h in range(1, 11)], pa.timestamp("us", tz="UTC"))
    ids = [f"p{i}" for i in range(10)]
    labels = pa.table({"id": ids, "ts": ts, "label": ["1"] * 10})
    predictions = pa.table({"id": ids, "ts": ts, "prediction": ["1"] * 8 + ["0"] * 2})
    clock = Clock(NOW)
    store = Store.open(tmp_path / "held.duckdb", SPEC, clock=clock)
    try:
        assert store.writer.records("labels", labels).accepted == 10
        assert store.counts()["held_labels"] == 10
        assert _accuracy(store) == (None, 0)
    finally:
        store.close()
    reopened = Store.open(tmp_path / "held.duckdb", SPEC, clock=clock)
    try:
        assert reopened.writer.records("predictions", predictions).accepted == 10
        assert reopened.counts()["held_labels"] == 0
        assert _accuracy(reopened) == (0.8, 10)
        candidate = reopened.rollups.at(NOW, whole=True).rollups
        assert candidate.table.num_rows > 0
    finally:
        reopened.close()


def test_outcome_counts_follow_the_slo_filter_as_a_file_scan_does(tmp_path):
    spec = parse_spec("""
service: outcomes
slos:
  - {name: canary, dimension: availability, objective: {target: 0.9}, window: 7d,
     filter: {canary: true}}
  - {name: all, dimension: availability, objective: {target: 0.9}, window: 7d}
""")
    ts = pa.array([NOW - timedelta(hours=h) for h in (1, 2, 3, 4)], pa.timestamp("us", tz="UTC"))
    predictions = pa.table(
        {
            "id": ["a", "b", "c", "d"],
            "ts": ts,
            "status": ["ok", "error", "ok", "ok"],
            "canary": [True, True, False, False],
        }
    )
    outcomes = pa.table(
        {"ts": ts.slice(0, 2), "total": [100, 50], "ok": [90, 50], "canary": [True, False]}
    )
    pq.write_table(predictions, tmp_path / "p.parquet")
    pq.write_table(outcomes, tmp_path / "o.parquet")
    sources = Sources(
        str(tmp_path / "p.parquet"), outcomes=str(tmp_path / "o.parquet"), dedupe=True
    )
    from_files = evaluation_json(evaluate_files(spec, sources, NOW))
    store = Store.open(tmp_path / "outcomes.duckdb", spec, clock=Clock(NOW))
    try:
        store.writer.records("predictions", predictions)
        store.writer.records("outcomes", outcomes)
        live = evaluation_json(evaluate_store(store, NOW))
        store.configure(spec.model_copy(update={"bucket": timedelta(minutes=5)}))
        rebuilt = evaluation_json(evaluate_store(store, NOW))
    finally:
        store.close()
    counts = {s["name"]: (s["sli"]["good"], s["sli"]["valid"]) for s in live["slos"]}
    assert counts == {"canary": (91, 102), "all": (143, 154)}
    assert live == from_files
    assert {s["name"]: (s["sli"]["good"], s["sli"]["valid"]) for s in rebuilt["slos"]} == counts


def test_the_rollup_fingerprint_covers_the_statistics_kept():
    """A store written by a version of mlslo that kept other statistics for the same spec
    (say, the confusion counts that accuracy was once computed from) is rebuilt on open
    instead of read with the wrong columns."""
    scan = store_scan(SPEC)
    assert "acc/tp" not in scan.names
    older = dataclasses.replace(scan, names={**scan.names, "acc/tp": "c99"})
    assert rollup_fingerprint(SPEC, scan) == rollup_fingerprint(SPEC, scan)
    assert rollup_fingerprint(SPEC, older) != rollup_fingerprint(SPEC, scan)


def test_a_repeated_id_is_refused_anywhere_in_the_retention(tmp_path):
    """The same prediction id three days (or four weeks) later is a repeat, also after a
    restart; a new id is not; the refused copies are counted in the evaluation."""
    clock = Clock(NOW)
    path = tmp_path / "ids.duckdb"

    def batch(ids: list[str], ago: timedelta) -> pa.Table:
        ts = pa.array([NOW - ago] * len(ids), pa.timestamp("us", tz="UTC"))
        return pa.table({"id": ids, "ts": ts, "prediction": ["1"] * len(ids)})

    store = Store.open(path, SPEC, clock=clock)
    try:
        assert (
            store.writer.records("predictions", batch(["a", "b"], timedelta(days=28))).accepted == 2
        )
        again = store.writer.records("predictions", batch(["a", "c"], timedelta(days=1)))
        assert (again.accepted, again.duplicates) == (1, 1)
    finally:
        store.close()
    reopened = Store.open(path, SPEC, clock=clock)
    try:
        later = reopened.writer.records("predictions", batch(["b", "c", "d"], timedelta(hours=1)))
        assert (later.accepted, later.duplicates) == (1, 2)
        assert reopened.counts()["predictions"] == 4
        assert evaluate_store(reopened, NOW).repeated_ids == 3
    finally:
        reopened.close()
