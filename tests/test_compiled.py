"""The compiled scan and its cache: the same rollups as the ibis scan for any window, one
compilation per (spec, schema), a repeated run without ibis, and a cache that can be corrupt,
unwritable or switched off without changing a result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlslo.api import evaluate_files
from mlslo.errors import DataError
from mlslo.inputs.files import connect_duckdb
from mlslo.render.documents import evaluation_json
from mlslo.scan.compiled import CACHE_FORMAT
from mlslo.scan.files import Sources, scan_files
from mlslo.scan.queries import scan
from mlslo.spec import parse_spec

START = datetime(2026, 3, 1, tzinfo=UTC)
SPEC = """
service: cache-check
slos:
  - name: accuracy
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.8}
    window: 7d
  - name: freshness
    dimension: freshness
    sli: {lag_threshold: 10m}
    objective: {target: 0.9}
    window: 3d
  - name: uptime
    dimension: availability
    objective: {target: 0.99}
    window: 7d
  - name: p95
    dimension: latency
    sli: {percentile: 95}
    objective: {target: 300ms}
    window: 1d
  - name: fairness
    dimension: fairness
    sli: {metric: true_positive_rate_difference, attribute: group}
    objective: {target: 0.2}
    window: 7d
"""


def records(n: int = 4000, seed: int = 3, *, naive: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, 8 * 86_400_000_000, n))
    ts = np.datetime64(START.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]")
    lag = rng.exponential(300e6, n).astype("timedelta64[us]")
    label = rng.integers(0, 2, n)
    kind = pa.timestamp("us") if naive else pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": pa.array(ts, kind),
            "event_ts": pa.array(ts - lag, kind),
            "status": rng.choice(["ok", "ok", "ok", "error"], n),
            "latency_ms": rng.lognormal(4.5, 0.6, n),
            "prediction": np.where(rng.random(n) < 0.8, label, 1 - label),
            "label": pa.array(label, mask=rng.random(n) < 0.2),
            "group": rng.choice(["A", "B", "C"], n),
        }
    )


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("MLSLO_CACHE_DIR", str(folder))
    return folder


def entries(folder: Path) -> list[Path]:
    return sorted((folder / "scans").glob("*.json")) if (folder / "scans").exists() else []


def write(table: pa.Table, folder: Path, name: str = "log.parquet") -> Path:
    path = folder / name
    pq.write_table(table, path)
    return path


def sorted_rows(table: pa.Table) -> list[dict[str, Any]]:
    keys = [c for c in ("bucket", "group") if c in table.column_names]
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


@pytest.mark.parametrize("naive", [False, True])
def test_cached_sql_matches_the_ibis_scan_for_every_window(
    cache: Path, tmp_path: Path, naive: bool
) -> None:
    """One compiled SQL serves windows that start and end anywhere, at bucket boundaries and
    between them, with zoned and naive timestamps: each rollup equals the ibis scan's (which
    puts the bounds in the SQL as literals)."""
    spec = parse_spec(textwrap.dedent(SPEC))
    path = write(records(naive=naive), tmp_path)
    windows = [
        (START, START + timedelta(days=8)),
        (START + timedelta(days=2, seconds=30), START + timedelta(days=5, minutes=7)),
        (START + timedelta(hours=13), START + timedelta(hours=13, minutes=1)),
        (START - timedelta(days=3), START),
    ]
    for start, end in windows:
        compiled = scan_files(spec, Sources(str(path)), start=start, end=end)
        con = connect_duckdb()
        direct = scan(spec, con.read_parquet(str(path)), start=start, end=end, source=str(path))
        assert compiled.table.column_names == direct.table.column_names
        assert sorted_rows(compiled.table) == sorted_rows(direct.table)
        assert compiled.histograms.keys() == direct.histograms.keys()
        for name in direct.histograms:
            assert sorted(compiled.histograms[name].to_pylist(), key=str) == sorted(
                direct.histograms[name].to_pylist(), key=str
            )
    assert len(entries(cache)) == 1


def test_one_entry_per_spec_and_schema_and_results_do_not_depend_on_it(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = parse_spec(textwrap.dedent(SPEC))
    at = START + timedelta(days=8)
    table = records()
    path = write(table, tmp_path)
    first = evaluation_json(evaluate_files(spec, Sources(str(path)), at))
    again = evaluation_json(evaluate_files(spec, Sources(str(path)), at))
    assert first == again
    assert len(entries(cache)) == 1

    other_spec = parse_spec(
        textwrap.dedent(SPEC).replace("lag_threshold: 10m", "lag_threshold: 20m")
    )
    evaluate_files(other_spec, Sources(str(path)), at)
    assert len(entries(cache)) == 2

    wider = write(
        table.append_column("region", pa.array(["eu"] * table.num_rows)), tmp_path, "w.parquet"
    )
    assert evaluation_json(evaluate_files(spec, Sources(str(wider)), at)) == first
    assert len(entries(cache)) == 3

    monkeypatch.setenv("MLSLO_CACHE_DIR", "off")
    assert evaluation_json(evaluate_files(spec, Sources(str(path)), at)) == first
    assert len(entries(cache)) == 3


def test_a_corrupt_or_unwritable_cache_changes_nothing(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = parse_spec(textwrap.dedent(SPEC))
    at = START + timedelta(days=8)
    path = write(records(), tmp_path)
    expected = evaluation_json(evaluate_files(spec, Sources(str(path)), at))
    (entry,) = entries(cache)
    entry.write_text('{"format": 1, "sql": "SELECT', encoding="utf-8")
    assert evaluation_json(evaluate_files(spec, Sources(str(path)), at)) == expected
    assert json.loads(entry.read_text(encoding="utf-8"))["format"] == CACHE_FORMAT

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be", encoding="utf-8")
    monkeypatch.setenv("MLSLO_CACHE_DIR", str(blocked))
    assert evaluation_json(evaluate_files(spec, Sources(str(path)), at)) == expected


def test_bad_values_are_located_when_the_sql_comes_from_the_cache(
    cache: Path, tmp_path: Path
) -> None:
    """The cached SQL only counts failing rows; the error still names the column, the row
    and the value, exactly as an uncached scan does."""
    spec = parse_spec(textwrap.dedent(SPEC))
    at = START + timedelta(days=8)
    table = records()
    evaluate_files(spec, Sources(str(write(table, tmp_path))), at)
    assert len(entries(cache)) == 1

    latency = table["latency_ms"].to_pylist()
    latency[3000] = -5.0
    bad = table.set_column(
        table.schema.get_field_index("latency_ms"), "latency_ms", pa.array(latency)
    )
    with pytest.raises(DataError) as raised:
        evaluate_files(spec, Sources(str(write(bad, tmp_path, "bad.parquet"))), at)
    message = str(raised.value)
    assert "latency_ms" in message and "row 3001" in message and "-5.0" in message

    ts = table["ts"].to_pylist()
    ts[3500] = None
    missing = table.set_column(1, "ts", pa.array(ts, table.schema.field("ts").type))
    with pytest.raises(DataError) as raised:
        evaluate_files(spec, Sources(str(write(missing, tmp_path, "nots.parquet"))), at)
    assert "row 3501" in str(raised.value) and "timestamp" in str(raised.value)
    assert len(entries(cache)) == 1


def test_multiclass_classes_from_the_data_are_never_cached(cache: Path, tmp_path: Path) -> None:
    spec = parse_spec(
        textwrap.dedent(
            """
            service: classes
            slos:
              - name: accuracy
                dimension: accuracy
                sli: {metric: accuracy, average: micro}
                objective: {target: 0.5}
                window: 7d
            """
        )
    )
    at = START + timedelta(days=8)
    table = records().drop_columns(["label", "prediction"])
    n = table.num_rows
    table = table.append_column(
        "prediction", pa.array(["cat", "dog", "owl"] * (n // 3) + ["cat"] * (n % 3))
    )
    table = table.append_column("label", pa.array((["dog", "dog", "owl"] * n)[:n]))
    first = evaluate_files(spec, Sources(str(write(table, tmp_path))), at)
    assert first.slos[0].measurement.value == pytest.approx(2 / 3, abs=1e-3)
    assert entries(cache) == []


def test_a_repeated_evaluation_does_not_import_ibis(tmp_path: Path) -> None:
    """The point of the cache: the second process runs the stored SQL with DuckDB alone (and
    nothing converts through pandas, whose import alone costs a tenth of a second)."""
    path = write(records(), tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(SPEC), encoding="utf-8")
    program = textwrap.dedent(
        f"""
        import json, sys
        from datetime import UTC, datetime
        from mlslo.api import evaluate_files
        from mlslo.render.documents import evaluation_json
        from mlslo.scan.files import Sources
        from mlslo.spec import load_spec
        result = evaluate_files(load_spec({str(spec)!r}), Sources({str(path)!r}),
                                datetime(2026, 3, 9, tzinfo=UTC))
        print(json.dumps({{"document": evaluation_json(result),
                          "ibis": "ibis" in sys.modules, "sqlglot": "sqlglot" in sys.modules,
                          "pandas": "pandas" in sys.modules}}))
        """
    )
    env = {**os.environ, "MLSLO_CACHE_DIR": str(tmp_path / "cache")}
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(2)
    ]
    assert runs[0]["ibis"] is True
    assert runs[1]["ibis"] is False and runs[1]["sqlglot"] is False
    assert runs[1]["pandas"] is False
    assert runs[0]["document"] == runs[1]["document"]
