"""Leave-one-slice-out attribution of percentile SLOs (p95 latency, p95 lag) against numpy on
the records without each slice, and each slice's count against a pandas groupby: from files
(``mlslo explain``, whose scan keeps the percentile's histogram per slice only then), from
the service's store (the route reads the stored predictions' histogram per slice) and by the
hour of each bucket (from the histograms every scan keeps)."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlslo.api import explain_files
from mlslo.client import arrow_bytes
from mlslo.render.attribution import attribution_json
from mlslo.scan.files import Sources, scan_files
from mlslo.spec import parse_spec
from mlslo.stats.histogram import GAMMA
from test_attribution import AT, AT_TEXT, STREAM, records, slice_of

BOUND = GAMMA**0.5 - 1
"""The histogram's documented relative error of any percentile (~0.995 %)."""
SPEC = """
service: shop
attribution: [model_version, region]
slos:
  - name: latency-p95
    dimension: latency
    sli: {percentile: 95}
    objective: {target: 250ms}
  - name: lag-p95
    dimension: freshness
    sli: {percentile: 95}
    objective: {target: 10m}
"""
MEASURED = {
    "latency-p95": lambda f: f.latency_ms.to_numpy(),
    "lag-p95": lambda f: (f.ts - f.event_ts).dt.total_seconds().to_numpy(),
}
TARGET = {"latency-p95": 250.0, "lag-p95": 600.0}


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    frame = records()
    path = tmp_path_factory.mktemp("percentiles") / "log.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return frame, path


def explain(path: Path, slo: str, by: list[str], **options: Any) -> dict[str, Any]:
    spec = parse_spec(textwrap.dedent(SPEC))
    return attribution_json(explain_files(spec, Sources(str(path)), AT, slo, by, **options))


def _check(document: dict[str, Any], frame: pd.DataFrame, by: list[str], slo: str) -> None:
    """Every slice: its count is the groupby's, its own and its leave-one-out percentile are
    numpy's within the histogram's bound, their intervals hold them, and the budget it
    spent is the consumption with it less without it."""
    values = MEASURED[slo](frame)
    grouped = frame.groupby(by, dropna=False).size()
    assert len(document["slices"]) == len(grouped)
    whole = float(np.percentile(values, 95))
    assert document["sli"]["value"] == pytest.approx(whole, rel=BOUND)
    for row in document["slices"]:
        mine = slice_of(frame, by, row["values"]).to_numpy()
        assert row["n"] == int(mine.sum()), row["label"]
        own, rest = np.percentile(values[mine], 95), np.percentile(values[~mine], 95)
        assert row["value"] == pytest.approx(own, rel=BOUND), row["label"]
        assert row["without"] == pytest.approx(rest, rel=BOUND), row["label"]
        assert row["ci"][0] <= row["value"] <= row["ci"][1]
        assert row["without_ci"][0] <= row["without"] <= row["without_ci"][1]
        assert row["change"] == pytest.approx(document["sli"]["value"] - row["without"])
        spent = (document["sli"]["value"] - row["without"]) / TARGET[slo]
        assert row["spent"] == pytest.approx(spent, abs=1e-9)
    spent = [row["spent"] for row in document["slices"]]
    assert spent == sorted(spent, reverse=True)


@pytest.mark.parametrize("slo", ["latency-p95", "lag-p95"])
def test_leave_one_slice_out_percentiles_match_numpy(log, slo):
    frame, path = log
    by = ["model_version", "region"]
    document = explain(path, slo, by)
    assert document["attribution"] == "aggregate"
    assert document["slices_reason"] is None
    _check(document, frame, by, slo)


def test_the_slow_version_spends_the_latency_budget(log):
    """``v3`` answers 1.8 times slower: without it the p95 falls most."""
    frame, path = log
    document = explain(path, "latency-p95", ["model_version"])
    _check(document, frame, ["model_version"], "latency-p95")
    worst = document["slices"][0]
    assert worst["values"] == {"model_version": "v3"}
    assert worst["change"] > 0 and worst["without"] < document["sli"]["value"]
    assert all(row["change"] <= 0 for row in document["slices"][1:])


def test_hour_slices_of_a_percentile_come_from_the_plain_histograms(log):
    frame, path = log
    frame = frame.assign(hour=frame.ts.dt.floor("h"))
    document = explain(path, "lag-p95", ["hour"])
    counts = frame.groupby("hour").size()
    seen = {pd.Timestamp(row["values"]["hour"]): row["n"] for row in document["slices"]}
    assert seen == {k: int(v) for k, v in counts.items()}
    values = MEASURED["lag-p95"](frame)
    for row in document["slices"][:5]:
        mine = (frame.hour == pd.Timestamp(row["values"]["hour"])).to_numpy()
        assert row["without"] == pytest.approx(np.percentile(values[~mine], 95), rel=BOUND)


def test_only_the_explaining_scan_keeps_histograms_per_slice(log):
    """An evaluation's scan keeps one histogram per bucket; explaining a percentile adds
    the slices, and the histogram summed over them is the unsliced one."""
    _, path = log
    spec = parse_spec(textwrap.dedent(SPEC))
    start = AT - timedelta(days=31)
    plain = scan_files(spec, Sources(str(path)), start=start, end=AT)
    sliced = scan_files(spec, Sources(str(path)), start=start, end=AT, histogram_slices=["region"])
    assert plain.sliced_histograms == {}
    rows = sliced.sliced_histograms["lag-p95"]
    assert rows.column_names == ["bucket", "region", "bin", "count"]
    order = [("bucket", "ascending"), ("bin", "ascending")]
    assert sliced.histograms["lag-p95"].sort_by(order) == plain.histograms["lag-p95"].sort_by(order)
    merged = sliced.merge(sliced).sliced_histograms["lag-p95"]
    assert sum(merged["count"].to_pylist()) == 2 * sum(rows["count"].to_pylist())


def test_cli_explain_ranks_percentile_slices(cli, log, write_spec):
    _, path = log
    spec = write_spec(textwrap.dedent(SPEC))
    common = ["explain", "--spec", str(spec), "--data", str(path), "--at", AT_TEXT]
    run = cli(*common, "--slo", "latency-p95", "--by", "model_version", "--format", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json() == explain(path, "latency-p95", ["model_version"])
    table = cli(*common, "--slo", "latency-p95", "--by", "model_version")
    assert table.exit_code == 0, table.stderr
    lines = [line for line in table.stdout.splitlines() if "model_version=" in line]
    assert "model_version=v3" in lines[0]


def test_the_api_reads_percentile_slices_from_the_store(live_server, log):
    frame, path = log
    live = live_server(SPEC, now=AT)
    table = pa.Table.from_pandas(frame.drop(columns=["group"]), preserve_index=False)
    with live.client() as http:
        response = http.post("/api/v1/predictions", content=arrow_bytes(table), headers=STREAM)
        assert response.status_code == 200, response.text
        by_region = http.get("/api/v1/slos/lag-p95/attribution", params={"by": "region"})
        by_both = http.get(
            "/api/v1/slos/latency-p95/attribution", params={"by": "model_version,hour"}
        )
    assert by_region.status_code == 200, by_region.text
    assert by_region.json()["slices"] == explain(path, "lag-p95", ["region"])["slices"]
    assert by_both.status_code == 200, by_both.text
    document = by_both.json()
    assert document["slices"] == explain(path, "latency-p95", ["model_version", "hour"])["slices"]
    assert sum(row["n"] for row in document["slices"]) == len(frame)
