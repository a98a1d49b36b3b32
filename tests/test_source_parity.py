"""One log, every kind of source: the same records give the same JSON from Parquet files, a
DuckDB database, PostgreSQL (timestamps with and without a zone), Delta Lake (two versions),
Iceberg (two snapshots) and Spark, through the real ``mlslo evaluate``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import Run
from parity import SPEC
from postgres_server import PASSWORD, write_table

AT = datetime(2026, 11, 4, tzinfo=UTC)


def make_log(n: int = 3000, seed: int = 11) -> dict[str, pa.Table]:
    """Predictions over four days (one before the window), labels arriving hours later (some
    after the evaluation), and outcome counts per hour."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-10-31T12:00:00", "us")
    ts = start + (rng.random(n) * 3.5 * 86_400e6).astype("timedelta64[us]")
    lag = (rng.exponential(400, n) * 1e6).astype("timedelta64[us]")
    truth = rng.random(n) < 0.4
    score = np.clip(np.where(truth, rng.beta(5, 2, n), rng.beta(2, 5, n)), 0, 1)
    utc = pa.timestamp("us", tz="UTC")
    predictions = pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": pa.array(ts).cast(utc),
            "model_version": np.where(ts < start + np.timedelta64(36, "h"), "v1", "v2"),
            "status": np.where(rng.random(n) < 0.997, "ok", "error"),
            "latency_ms": rng.lognormal(4.5, 0.6, n),
            "event_ts": pa.array(ts - lag).cast(utc),
            "prediction": (score > 0.5).astype(np.int64),
            "score": score,
            "group": rng.choice(["A", "B", "C"], n, p=[0.6, 0.3, 0.1]),
            "region": rng.choice(["eu", "us"], n),
        }
    )
    labelled = rng.random(n) < 0.8
    delay = (rng.exponential(6, n) * 3600e6).astype("timedelta64[us]")
    labels = pa.table(
        {
            "id": [f"p{i}" for i in np.flatnonzero(labelled)],
            "ts": pa.array((ts + delay)[labelled]).cast(utc),
            "label": truth[labelled].astype(np.int64),
        }
    )
    hours = start + np.arange(84) * np.timedelta64(1, "h")
    total = rng.integers(500, 1500, hours.size)
    outcomes = pa.table(
        {
            "ts": pa.array(hours).cast(utc),
            "total": total,
            "ok": total - rng.binomial(total, 0.001),
        }
    )
    return {"predictions": predictions, "labels": labels, "outcomes": outcomes}


def halves(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    middle = table.num_rows // 2
    return table.slice(0, middle), table.slice(middle)


def write_parquet(folder: Path, log: dict[str, pa.Table]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for role, table in log.items():
        path = folder / f"{role}.parquet"
        pq.write_table(table, path)
        paths[role] = str(path)
    return paths


def write_duckdb(path: Path, log: dict[str, pa.Table]) -> dict[str, str]:
    con = duckdb.connect(str(path))
    for role, table in log.items():
        con.register("incoming", table)
        con.execute(f"CREATE TABLE {role} AS SELECT * FROM incoming")
        con.unregister("incoming")
    con.close()
    return {role: f"duckdb://{path}?table={role}" for role in log}


def write_delta(folder: Path, log: dict[str, pa.Table]) -> dict[str, str]:
    """Each table in two commits (version 0: the first half; version 1: all rows)."""
    from deltalake import write_deltalake

    urls = {}
    for role, table in log.items():
        first, second = halves(table)
        write_deltalake(str(folder / role), first)
        write_deltalake(str(folder / role), second, mode="append")
        urls[role] = f"delta://{folder / role}"
    return urls


def write_iceberg(folder: Path, log: dict[str, pa.Table]) -> tuple[dict[str, str], dict[str, int]]:
    """Each table in two snapshots; returns the URLs and each table's first snapshot."""
    from pyiceberg.catalog.sql import SqlCatalog

    folder.mkdir(parents=True, exist_ok=True)
    catalog_file = folder / "catalog.db"
    catalog = SqlCatalog(
        "parity", uri=f"sqlite:///{catalog_file}", warehouse=f"file://{folder / 'warehouse'}"
    )
    catalog.create_namespace("ml")
    urls, first_snapshots = {}, {}
    for role, table in log.items():
        first, second = halves(table)
        iceberg = catalog.create_table(f"ml.{role}", schema=table.schema)
        iceberg.append(first)
        first_snapshots[role] = iceberg.current_snapshot().snapshot_id
        iceberg.append(second)
        urls[role] = f"iceberg://{catalog_file}?table=ml.{role}"
    return urls, first_snapshots


def with_option(url: str, option: str) -> str:
    return url + ("&" if "?" in url else "?") + option


EvaluateCli = Callable[..., dict[str, Any]]


@pytest.fixture
def evaluate_cli(
    cli: Callable[..., Run], write_spec: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> EvaluateCli:
    spec = write_spec(SPEC)
    monkeypatch.setenv("MLSLO_PG_PASSWORD", PASSWORD)

    def run(sources: dict[str, str], *options: str) -> dict[str, Any]:
        result = cli(
            "evaluate",
            "--spec",
            spec,
            "--data",
            sources["predictions"],
            "--labels",
            sources["labels"],
            "--outcomes",
            sources["outcomes"],
            "--at",
            AT.isoformat(),
            "--format",
            "json",
            *options,
        )
        assert result.exit_code == 0, result.stderr
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    return run


def _measured(document: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(slo["name"], slo["sli"]["value"]) for slo in document["slos"]]


@pytest.mark.integration
@pytest.mark.system("postgresql")
def test_every_source_gives_the_same_json(
    tmp_path: Path, postgres: Any, evaluate_cli: EvaluateCli
) -> None:
    log = make_log()
    expected = evaluate_cli(write_parquet(tmp_path / "files", log))
    measured = _measured(expected)
    assert all(value is not None for _, value in measured), measured
    assert expected["slos"][0]["sli"]["n"] > 0

    sources: dict[str, dict[str, str]] = {
        "duckdb": write_duckdb(tmp_path / "log.db", log),
        "delta": write_delta(tmp_path / "delta", log),
    }
    sources["iceberg"], _ = write_iceberg(tmp_path / "iceberg", log)
    for zoned in (True, False):
        suffix = "tz" if zoned else "naive"
        for role, table in log.items():
            write_table(postgres, f"{role}_{suffix}", table, zoned=zoned)
        sources[f"postgres ({suffix})"] = {role: postgres.url(f"{role}_{suffix}") for role in log}
    for name, urls in sources.items():
        assert evaluate_cli(urls) == expected, name


@pytest.mark.integration
def test_older_versions_and_snapshots(tmp_path: Path, evaluate_cli: EvaluateCli) -> None:
    """``?version=0`` and ``?snapshot=`` read the table as its first commit left it: the same
    JSON as files holding only the first half of each table; the latest differs."""
    log = make_log()
    first_half = {role: halves(table)[0] for role, table in log.items()}
    expected = evaluate_cli(write_parquet(tmp_path / "half", first_half))
    latest = evaluate_cli(write_parquet(tmp_path / "all", log))
    assert _measured(expected) != _measured(latest)

    delta = write_delta(tmp_path / "delta", log)
    assert evaluate_cli(delta) == latest
    assert evaluate_cli({r: with_option(u, "version=0") for r, u in delta.items()}) == expected
    iceberg, snapshots = write_iceberg(tmp_path / "iceberg", log)
    assert evaluate_cli(iceberg) == latest
    older = {r: with_option(u, f"snapshot={snapshots[r]}") for r, u in iceberg.items()}
    assert evaluate_cli(older) == expected


@pytest.mark.spark
@pytest.mark.system("java")
def test_spark_agrees_with_every_source(tmp_path: Path, spark: Any) -> None:
    import ibis

    from mlslo.api import evaluate_files
    from mlslo.render.documents import evaluation_json
    from mlslo.scan.files import Sources
    from mlslo.spec import parse_spec

    spec = parse_spec(SPEC)
    paths = write_parquet(tmp_path, make_log(n=800))
    sources = Sources(paths["predictions"], paths["labels"], paths["outcomes"])
    on_spark = evaluation_json(evaluate_files(spec, sources, AT, con=ibis.pyspark.connect(spark)))
    assert on_spark == evaluation_json(evaluate_files(spec, sources, AT))


def test_log_spans_more_than_the_window() -> None:
    """The generated log has records before the window and labels after the evaluation, so
    the window's bounds and the labels' arrival time both matter to the numbers."""
    log = make_log()
    ts = log["predictions"]["ts"].to_pylist()
    assert min(ts) < AT - timedelta(days=3) < max(ts) < AT
    assert max(log["labels"]["ts"].to_pylist()) > AT


@pytest.mark.integration
@pytest.mark.system("postgresql")
def test_repeated_ids_count_once_on_every_source(
    tmp_path: Path, postgres: Any, evaluate_cli: EvaluateCli
) -> None:
    """``--dedupe`` on a log where some predictions were logged twice: every source gives the
    JSON of the log without the copies, and says how many it left out."""
    log = make_log()
    predictions = log["predictions"]
    copies = predictions.take(list(range(0, predictions.num_rows, 7)))
    doubled = {**log, "predictions": pa.concat_tables([predictions, copies])}
    once = evaluate_cli(write_parquet(tmp_path / "once", log), "--dedupe")
    expected = evaluate_cli(write_parquet(tmp_path / "files", doubled), "--dedupe")
    assert expected["records"]["repeated_ids"] > 0
    assert _measured(expected) == _measured(once)
    for zoned in (True, False):
        suffix = "tz" if zoned else "naive"
        for role, table in doubled.items():
            write_table(postgres, f"twice_{role}_{suffix}", table, zoned=zoned)
        urls = {role: postgres.url(f"twice_{role}_{suffix}") for role in doubled}
        assert evaluate_cli(urls, "--dedupe") == expected, suffix
    assert evaluate_cli(write_duckdb(tmp_path / "log.db", doubled), "--dedupe") == expected


ONE_PERCENTILE = SPEC.replace(
    """  - name: latency-p99
    dimension: latency
    sli: {percentile: 99}
    objective: {target: 400ms}
    window: 3d
""",
    "",
).replace("sli: {metric: f1, estimate: cbpe}", "sli: {metric: f1}")
ONE_PERCENTILE = ONE_PERCENTILE[: ONE_PERCENTILE.index("  - name: fairness")]


@pytest.mark.integration
@pytest.mark.spark
@pytest.mark.system("postgresql")
@pytest.mark.system("java")
def test_one_percentile_read_with_the_counts_agrees_on_every_engine(
    tmp_path: Path, postgres: Any, spark: Any, cli: Callable[..., Run], monkeypatch: Any
) -> None:
    """On files the percentile's histogram is read with the counts in one GROUP BY (a
    grouping set); PostgreSQL and Spark, with a query each, give the same JSON."""
    import ibis

    from mlslo.api import evaluate_files
    from mlslo.render.documents import evaluation_json
    from mlslo.scan.files import Sources
    from mlslo.scan.histograms import fusable
    from mlslo.spec import parse_spec

    spec = parse_spec(ONE_PERCENTILE)
    assert [slo.name for slo in fusable(spec)] == ["lag-p95"]
    monkeypatch.setenv("MLSLO_CACHE_DIR", str(tmp_path / "cache"))
    log = make_log(n=1500)
    paths = write_parquet(tmp_path / "files", log)
    files = Sources(paths["predictions"], paths["labels"], paths["outcomes"])
    expected = evaluation_json(evaluate_files(spec, files, AT))
    cached = [json.loads(f.read_text()) for f in (tmp_path / "cache").rglob("*.json")]
    assert [c["binned"] for c in cached] == [["lag-p95"]]
    on_spark = evaluate_files(spec, files, AT, con=ibis.pyspark.connect(spark))
    assert evaluation_json(on_spark) == expected
    for role, table in log.items():
        write_table(postgres, f"one_{role}", table)
    monkeypatch.setenv("MLSLO_PG_PASSWORD", PASSWORD)
    urls = Sources(*(postgres.url(f"one_{role}") for role in ("predictions", "labels", "outcomes")))
    assert evaluation_json(evaluate_files(spec, urls, AT)) == expected
