"""An empty input is empty: a header-only CSV, an empty Parquet, NDJSON or JSON file of
predictions, labels or outcome counts gives SLOs without data, not a type error. A file with
rows keeps its type errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

AT = "2026-11-21T00:00:00Z"
BASE = datetime(2026, 11, 20, 12, tzinfo=UTC)
SPEC = """
    service: empty
    slos:
      - {name: uptime, dimension: availability, objective: {target: 0.9}, window: 1d}
      - name: latency
        dimension: latency
        sli: {latency_threshold: 100ms}
        objective: {target: 0.9}
        window: 1d
      - name: fresh
        dimension: freshness
        sli: {lag_threshold: 1m}
        objective: {target: 0.9}
        window: 1d
      - name: acc
        dimension: accuracy
        sli: {metric: accuracy}
        objective: {target: 0.9}
        window: 1d
      - name: mae
        dimension: accuracy
        sli: {metric: mae}
        objective: {target: 0.5}
        window: 1d
"""
HEADER = "id,ts,status,latency_ms,event_ts,prediction,label\n"


def _statuses(run) -> dict[str, tuple[str, int]]:
    assert run.exit_code == 0, run.stderr
    return {s["name"]: (s["budget"]["status"], s["sli"]["n"]) for s in run.json()["slos"]}


NO_DATA = {name: ("no_data", 0) for name in ("uptime", "latency", "fresh", "acc", "mae")}


def _empty_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    files = {
        "header-only.csv": HEADER,
        "no-bytes.ndjson": "",
        "blank-lines.jsonl": "\n\n",
        "array.json": "[]",
    }
    out = {}
    for name, text in files.items():
        out[name] = folder / name
        out[name].write_text(text)
    typed = pa.schema(
        [
            ("id", pa.string()),
            ("ts", pa.timestamp("ns", tz="UTC")),
            ("status", pa.string()),
            ("latency_ms", pa.float64()),
            ("prediction", pa.float64()),
        ]
    )
    out["typed.parquet"] = folder / "typed.parquet"
    pq.write_table(typed.empty_table(), out["typed.parquet"])
    untyped = pa.table({c: pa.array([], pa.null()) for c in ("id", "ts", "latency_ms", "label")})
    out["untyped.parquet"] = folder / "untyped.parquet"
    pq.write_table(untyped, out["untyped.parquet"])
    return out


@pytest.mark.parametrize(
    "name",
    [
        "header-only.csv",
        "no-bytes.ndjson",
        "blank-lines.jsonl",
        "array.json",
        "typed.parquet",
        "untyped.parquet",
    ],
)
def test_empty_predictions_have_no_data(cli, write_spec, tmp_path, name):
    path = _empty_files(tmp_path)[name]
    run = cli("evaluate", "--spec", write_spec(SPEC), "--data", path, "--at", AT, "-f", "json")
    assert _statuses(run) == NO_DATA


def _predictions(tmp_path: Path) -> Path:
    path = tmp_path / "predictions.csv"
    rows = [
        f"p{i},{(BASE + timedelta(minutes=i)).isoformat()},{'ok' if i % 3 else 'error'},"
        f"{50 + 20 * i},{(BASE + timedelta(minutes=i, seconds=-30)).isoformat()},{i % 2},{i % 2}"
        for i in range(6)
    ]
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("name", ["header-only.csv", "no-bytes.ndjson", "array.json"])
def test_empty_labels_and_outcomes_change_nothing(cli, write_spec, tmp_path, name):
    """With empty labels the predictions' own labels stand; with empty outcome counts the
    availability is the predictions' alone: the same numbers as without those sources."""
    spec = write_spec(SPEC)
    data = _predictions(tmp_path)
    empty = tmp_path / ("labels-" + name)
    empty.write_text(
        "id,ts,label\n" if name.endswith(".csv") else _empty_files(tmp_path)[name].read_text()
    )
    counts = tmp_path / ("outcomes-" + name)
    counts.write_text("ts,total,ok\n" if name.endswith(".csv") else empty.read_text())
    alone = cli("evaluate", "--spec", spec, "--data", data, "--at", AT, "-f", "json")
    both = cli(
        "evaluate",
        "--spec",
        spec,
        "--data",
        data,
        "--labels",
        empty,
        "--outcomes",
        counts,
        "--at",
        AT,
        "-f",
        "json",
    )
    assert both.exit_code == 0, both.stderr
    assert both.json() == alone.json()
    uptime = both.json()["slos"][0]["sli"]
    assert (uptime["good"], uptime["valid"]) == (4, 6)


def test_a_file_with_rows_keeps_its_type_errors(cli, write_spec, tmp_path):
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text(f"ts,total,ok\n{BASE.isoformat()},true,false\n")
    spec = write_spec(SPEC)
    data = _predictions(tmp_path)
    run = cli("evaluate", "--spec", spec, "--data", data, "--outcomes", outcomes, "--at", AT)
    assert run.exit_code == 2
    assert "column 'total': holds boolean; outcome counts must be numbers" in run.stderr
    predictions = tmp_path / "typed.parquet"
    pq.write_table(
        pa.table({"id": ["a"], "ts": [BASE], "status": ["ok"], "latency_ms": [True]}),
        predictions,
    )
    run = cli("evaluate", "--spec", spec, "--data", predictions, "--at", AT)
    assert run.exit_code == 2
    assert "column 'latency_ms': holds boolean" in run.stderr


def test_an_empty_source_is_not_cached_for_a_file_with_rows(cli, write_spec, tmp_path):
    """An empty file may lack columns; the scan compiled for it must not serve a file with
    the same columns that has rows (which must name the missing column)."""
    spec = write_spec("""
        service: empty
        slos:
          - name: latency
            dimension: latency
            sli: {latency_threshold: 100ms}
            objective: {target: 0.9}
    """)
    schema = pa.schema([("id", pa.string()), ("ts", pa.timestamp("us", tz="UTC"))])
    empty, full = tmp_path / "empty.parquet", tmp_path / "full.parquet"
    pq.write_table(schema.empty_table(), empty)
    pq.write_table(pa.table({"id": ["a"], "ts": [BASE]}, schema=schema), full)
    run = cli("evaluate", "--spec", spec, "--data", empty, "--at", AT, "-f", "json")
    assert _statuses(run) == {"latency": ("no_data", 0)}
    run = cli("evaluate", "--spec", spec, "--data", full, "--at", AT)
    assert run.exit_code == 2
    assert "column 'latency_ms': is missing" in run.stderr
