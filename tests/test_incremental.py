"""Incremental scans: any sequence of runs, with records arriving up to the lateness allowance
after their time, labels arriving late, and records exactly at a watermark, leaves in the state
exactly the rollups of one full scan to the last watermark; evaluating from the state gives
the same document as evaluating the records."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mlslo.api import evaluate_files, evaluate_state, scan_to_state
from mlslo.measure.windows import scan_range
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources, scan_files
from mlslo.scan.incremental import read_state, write_state
from mlslo.spec import load_spec
from mlslo.stats.rollup import BUCKET, Rollup

BASE = datetime(2026, 11, 20, tzinfo=UTC)
BUCKET_MINUTES = 5
LATENESS = timedelta(minutes=20)
SPEC = """
    service: incremental
    bucket: 5m
    slos:
      - name: acc
        dimension: accuracy
        sli: {metric: accuracy}
        objective: {target: 0.8}
        window: 1d
      - name: uptime
        dimension: availability
        objective: {target: 0.9}
        window: 1d
      - name: p90
        dimension: latency
        sli: {percentile: 90}
        objective: {target: 300ms}
        window: 1d
"""

prediction = st.tuples(
    st.integers(0, 120),  # minute of ts
    st.integers(0, 20),  # minutes until it reaches the source (within the lateness)
    st.booleans(),  # status ok
    st.integers(0, 1),  # predicted class
    st.integers(1, 900),  # latency in ms
)
label = st.tuples(
    st.integers(0, 10_000),  # which prediction (modulo their number)
    st.integers(0, 150),  # minutes after the prediction the label has its ts
    st.integers(0, 20),  # minutes after its ts it reaches the source
    st.integers(0, 1),  # the label
)


def _spec(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(SPEC).lstrip(), encoding="utf-8")
    return load_spec(path)


def _minutes(m: int) -> datetime:
    return BASE + timedelta(minutes=m)


def _write(folder: Path, predictions, labels, now: int) -> Sources:
    """The sources as they stand at minute ``now``: what had arrived by then."""
    seen = [(i, p) for i, p in enumerate(predictions) if p[0] + p[1] <= now]
    pq.write_table(
        pa.table(
            {
                "id": [f"p{i}" for i, _ in seen],
                "ts": pa.array([_minutes(p[0]) for _, p in seen], pa.timestamp("us", tz="UTC")),
                "status": ["ok" if p[2] else "error" for _, p in seen],
                "prediction": pa.array([p[3] for _, p in seen], pa.int64()),
                "latency_ms": pa.array([float(p[4]) for _, p in seen], pa.float64()),
            }
        ),
        folder / "predictions.parquet",
    )
    arrived = [
        (target % len(predictions), predictions[target % len(predictions)][0] + after, value)
        for target, after, delay, value in labels
        if predictions[target % len(predictions)][0] + after + delay <= now
    ]
    pq.write_table(
        pa.table(
            {
                "id": [f"p{i}" for i, _, _ in arrived],
                "ts": pa.array([_minutes(t) for _, t, _ in arrived], pa.timestamp("us", tz="UTC")),
                "label": pa.array([v for _, _, v in arrived], pa.int64()),
            }
        ),
        folder / "labels.parquet",
    )
    # A label may reach the source before its prediction: not an error of the ids here.
    return Sources(
        str(folder / "predictions.parquet"),
        str(folder / "labels.parquet"),
        allow_unmatched_labels=True,
    )


def _canonical(rollup: Rollup) -> dict[str, list]:
    """Rollup rows (and histogram rows) sorted, zero rows left out: comparable exactly."""
    table = rollup.table
    stats = [c for c in table.column_names if c != BUCKET and c not in rollup.slice_columns]
    rows = sorted(
        (
            tuple(row[k] for k in [BUCKET, *rollup.slice_columns]),
            tuple(round(float(row[s] or 0.0), 9) for s in stats),
        )
        for row in table.to_pylist()
    )
    out: dict[str, list] = {"rows": [r for r in rows if any(r[1])], "stats": sorted(stats)}
    for name, hist in sorted(rollup.histograms.items()):
        out[name] = sorted(
            (r[BUCKET], r["bin"], r["count"]) for r in hist.to_pylist() if r["count"]
        )
    return out


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    predictions=st.lists(prediction, min_size=1, max_size=40),
    labels=st.lists(label, max_size=30),
    runs=st.lists(st.integers(1, 12), min_size=2, max_size=6),
)
# A prediction 5 minutes before the first watermark that reaches the source 10 minutes late,
# and a label (exactly at the second watermark less the lateness) that arrives 5 minutes late.
@example(
    predictions=[(25, 10, True, 1, 100), (30, 0, False, 0, 500)],
    labels=[(0, 15, 5, 1)],
    runs=[6, 6, 6],
)
def test_any_sequence_of_runs_equals_one_full_scan(tmp_path_factory, predictions, labels, runs):
    folder = tmp_path_factory.mktemp("incremental")
    spec = _spec(folder)
    state = folder / "state"
    # Watermarks on bucket boundaries, so records at minute multiples of 5 lie exactly on one.
    now = 0
    for step in runs:
        now += step * BUCKET_MINUTES
        sources = _write(folder, predictions, labels, now)
        run = scan_to_state(spec, sources, state, _minutes(now), lateness=LATENESS)
        assert run.state.watermark == _minutes(now)
    start, end = scan_range(spec, _minutes(now))
    full = scan_files(spec, sources, start=start, end=end)
    stored = read_state(state)
    assert stored is not None
    assert _canonical(stored.rollup) == _canonical(full)
    direct = evaluation_json(evaluate_files(spec, sources, _minutes(now)))
    assert evaluation_json(evaluate_state(spec, state)) == direct


def test_a_late_label_restates_its_prediction_bucket_only_by_rescanning_from_it(tmp_path):
    spec = _spec(tmp_path)
    state = tmp_path / "state"
    predictions = [(10, 0, True, 1, 100), (100, 0, True, 1, 100)]
    first = _write(tmp_path, predictions, [(0, 150, 0, 0)], 120)
    run = scan_to_state(spec, first, state, _minutes(120), lateness=LATENESS)
    assert run.full and run.reason == "no state yet"
    acc = evaluation_json(evaluate_state(spec, state))["slos"][0]
    assert acc["sli"]["n"] == 0
    # At minute 180 the label of the prediction at minute 10 (its ts: minute 160) has arrived.
    later = _write(tmp_path, predictions, [(0, 150, 0, 0)], 180)
    run = scan_to_state(spec, later, state, _minutes(180), lateness=LATENESS)
    assert not run.full
    assert run.rescanned_from == _minutes(10)
    after = evaluation_json(evaluate_state(spec, state))
    assert after == evaluation_json(evaluate_files(spec, later, _minutes(180)))
    assert after["slos"][0]["sli"]["n"] == 1
    # The label's time (minute 160) is exactly the watermark less the lateness: read again.
    run = scan_to_state(spec, later, state, _minutes(240), lateness=LATENESS)
    assert run.rescanned_from == _minutes(10)
    # Without newer labels only the lateness allowance before the watermark is scanned again.
    run = scan_to_state(spec, later, state, _minutes(300), lateness=LATENESS)
    assert run.rescanned_from == _minutes(240) - LATENESS
    assert evaluation_json(evaluate_state(spec, state)) == evaluation_json(
        evaluate_files(spec, later, _minutes(300))
    )


def test_a_changed_spec_rebuilds_and_evaluation_needs_the_scanned_spec(tmp_path, write_spec):
    spec = _spec(tmp_path)
    state = tmp_path / "state"
    sources = _write(tmp_path, [(10, 0, True, 1, 100)], [], 60)
    scan_to_state(spec, sources, state, _minutes(60), lateness=LATENESS)
    other = load_spec(write_spec(SPEC.replace("target: 0.9", "target: 0.95")))
    from mlslo.errors import UsageError

    with pytest.raises(UsageError, match="another spec"):
        evaluate_state(other, state)
    with pytest.raises(UsageError, match="as of 2026-11-20T01:00:00"):
        evaluate_state(spec, state, _minutes(90))
    run = scan_to_state(other, sources, state, _minutes(90), lateness=LATENESS)
    assert run.full and run.reason == "the spec or the sources changed"


def test_a_crash_while_writing_leaves_the_previous_state_whole(tmp_path, monkeypatch):
    spec = _spec(tmp_path)
    state = tmp_path / "state"
    sources = _write(tmp_path, [(10, 0, True, 1, 100), (50, 0, False, 0, 700)], [], 60)
    scan_to_state(spec, sources, state, _minutes(60), lateness=LATENESS)
    before = read_state(state)
    assert before is not None

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("mlslo.scan.incremental.os.replace", crash)
    with pytest.raises(OSError):
        write_state(state, before.__class__(**{**before.__dict__, "watermark": _minutes(999)}))
    monkeypatch.undo()
    after = read_state(state)
    assert after is not None and after.watermark == _minutes(60)
    assert _canonical(after.rollup) == _canonical(before.rollup)
    # the next write removes the abandoned generation
    write_state(state, after)
    assert len([p for p in state.iterdir() if p.name.startswith("generation-")]) == 1


def test_cli_scan_then_evaluate_from_state(cli, tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(textwrap.dedent(SPEC).lstrip(), encoding="utf-8")
    predictions = [(m, 0, m % 7 != 0, m % 2, 100 + m) for m in range(0, 120, 3)]
    sources = _write(tmp_path, predictions, [(i, 30, 0, i % 2) for i in range(20)], 120)
    common = ["--spec", spec_path, "--data", sources.predictions, "--labels", sources.labels]
    scanned = cli("scan", *common, "--state", tmp_path / "st", "--at", "2026-11-20T02:03:00Z")
    assert scanned.exit_code == 0, scanned.stderr
    assert "2026-11-20T02:00:00" in scanned.stdout
    from_state = cli("evaluate", "--spec", spec_path, "--state", tmp_path / "st", "-f", "json")
    assert from_state.exit_code in (0, 1), from_state.stderr
    direct = cli("evaluate", *common, "--at", "2026-11-20T02:00:00Z", "-f", "json")
    assert json.loads(from_state.stdout) == json.loads(direct.stdout)
    both = cli("evaluate", *common, "--state", tmp_path / "st")
    assert both.exit_code == 2
    assert "--state" in both.stderr and "--data" in both.stderr
    deduped = cli("scan", *common, "--state", tmp_path / "st", "--dedupe")
    assert deduped.exit_code == 2 and "deduplication" in deduped.stderr
