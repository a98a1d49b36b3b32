"""The scan is engine-portable: PySpark (local mode) and DuckDB give identical rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mlslo.inputs.files import connect_duckdb, open_table
from mlslo.measure.evaluate import evaluate
from mlslo.render.documents import evaluation_json
from mlslo.scan.queries import scan
from mlslo.spec import parse_spec
from mlslo.stats.rollup import BUCKET, Rollup
from parity import SPEC

pytestmark = [pytest.mark.spark, pytest.mark.system("java")]

AT = datetime(2026, 11, 4, tzinfo=UTC)


def _log(path: Path, n: int = 30_000, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-11-01T00:00:00", "us")
    ts = start + (rng.random(n) * 3 * 86_400e6).astype("timedelta64[us]")
    lag_us = rng.exponential(400, n) * 1e6
    ahead = rng.random(n) < 0.03  # clock skew: inputs stamped up to 5 s after the prediction
    lag_us[ahead] = -rng.uniform(0, 5e6, int(ahead.sum()))
    lag = lag_us.astype("timedelta64[us]")
    truth = rng.random(n) < 0.4
    score = np.clip(np.where(truth, rng.beta(5, 2, n), rng.beta(2, 5, n)), 0, 1)
    label = np.where(rng.random(n) < 0.8, truth.astype(np.int64), -1)
    event_ts = pa.array(ts - lag).cast(pa.timestamp("us", tz="UTC"))
    event_ts = pa.array(event_ts.to_pylist()[: n - 50] + [None] * 50, pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
            "model_version": np.where(ts < start + np.timedelta64(1, "D"), "v1", "v2"),
            "status": np.where(rng.random(n) < 0.998, "ok", "error"),
            "latency_ms": rng.lognormal(4.5, 0.6, n),
            "event_ts": event_ts,
            "prediction": (score > 0.5).astype(np.int64),
            "score": score,
            "label": pa.array(label, mask=label < 0),
            "group": rng.choice(["A", "B", "C"], n, p=[0.6, 0.3, 0.1]),
            "region": pa.array(rng.choice(["eu", "us", ""], n).tolist()).to_pylist(),
        }
    )
    out = path / "log.parquet"
    pq.write_table(table, out)
    return out


def _sorted(table: pa.Table) -> pa.Table:
    keys = [c for c in table.column_names if "/" not in c]
    return table.sort_by([(k, "ascending") for k in keys]).select(sorted(table.column_names))


def _assert_same(duck: Rollup, spark_rollup: Rollup) -> None:
    a, b = _sorted(duck.table), _sorted(spark_rollup.table)
    assert a.column_names == b.column_names
    assert a.num_rows == b.num_rows > 0
    for name in a.column_names:
        left, right = a[name].to_pylist(), b[name].to_pylist()
        if name in (BUCKET, "group", "region") or not name.split("/")[-1].startswith(("e", "s")):
            assert left == right, name
        else:
            np.testing.assert_allclose(left, right, rtol=1e-12, atol=1e-9, err_msg=name)
    assert duck.histograms.keys() == spark_rollup.histograms.keys()
    for name, rows in duck.histograms.items():
        assert _sorted(rows).equals(_sorted(spark_rollup.histograms[name])), name


def test_duckdb_and_pyspark_scans_agree(spark: Any, tmp_path: Path) -> None:
    import ibis

    spec = parse_spec(SPEC)
    path = _log(tmp_path)
    start = AT - timedelta(days=3)
    duck = scan(spec, open_table(connect_duckdb(), str(path)), start=start, end=AT)
    spark_rollup = scan(
        spec, open_table(ibis.pyspark.connect(spark), str(path)), start=start, end=AT
    )
    _assert_same(duck, spark_rollup)
    assert pc.sum(duck.table["freshness/clock_skew"]).as_py() > 0
    assert evaluation_json(evaluate(spec, duck, AT)) == evaluation_json(
        evaluate(spec, spark_rollup, AT)
    )


def test_separate_labels_join_agrees(spark: Any, tmp_path: Path) -> None:
    import ibis

    spec = parse_spec(SPEC)
    path = _log(tmp_path)
    log = pq.read_table(path)
    labelled = log.filter(pa.compute.is_valid(log["label"]))
    labels = pa.table(
        {
            "id": labelled["id"],
            "ts": pa.compute.add(labelled["ts"], pa.scalar(timedelta(hours=2))),
            "label": labelled["label"],
        }
    )
    labels_path = tmp_path / "labels.parquet"
    pq.write_table(labels, labels_path)
    predictions_path = tmp_path / "predictions.parquet"
    pq.write_table(log.drop_columns(["label"]), predictions_path)
    start = AT - timedelta(days=3)
    results = []
    for con in (connect_duckdb(), ibis.pyspark.connect(spark)):
        results.append(
            scan(
                spec,
                open_table(con, str(predictions_path)),
                start=start,
                end=AT,
                labels=open_table(con, str(labels_path), role="labels"),
            )
        )
    _assert_same(*results)
    doubled = tmp_path / "doubled.parquet"
    pq.write_table(pa.concat_tables([log, log.slice(0, 500)]), doubled)
    once = [
        scan(spec, open_table(con, str(doubled)), start=start, end=AT, dedupe=True)
        for con in (connect_duckdb(), ibis.pyspark.connect(spark))
    ]
    _assert_same(*once)
    assert _same_totals(
        once[0], scan(spec, open_table(connect_duckdb(), str(path)), start=start, end=AT)
    )


def _same_totals(a: Rollup, b: Rollup) -> bool:
    left, right = _sorted(a.table), _sorted(b.table)
    return all(
        np.allclose(left[c].to_numpy(), right[c].to_numpy())
        if "/" in c
        else left[c].to_pylist() == right[c].to_pylist()
        for c in left.column_names
    )
