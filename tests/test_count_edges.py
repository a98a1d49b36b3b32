"""Counts summed between the edges of the windows an evaluation reads.

A file evaluation knows the moment evaluated and the series step, so the scan sums every
statistic (the fairness SLOs' per-group counts included) between the edges of the windows it
reads instead of per minute, and keeps each SLO's last event bucket for ``absent_after``. Every
number of the evaluation must stay the same: the oracle is the per-minute scan of the same
files, compared as whole JSON documents.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlslo.api import evaluate_files
from mlslo.measure.evaluate import evaluate, timelines_for
from mlslo.measure.windows import count_edges, histogram_edges, scan_range
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources, scan_files
from mlslo.spec import parse_spec

BASE = datetime(2026, 3, 1, tzinfo=UTC)
COHORTS = 40
REGIONS = ("eu", "us", "apac")


def spec_text(
    window: str, timeslices: bool, correction: bool, absent: str, fairness: bool = True
) -> str:
    budgeting = (
        "    budgeting: timeslices\n    slice: 6h\n"
        "    objective: {target: 0.9, timeslice_target: 0.95}\n"
        if timeslices
        else "    objective: {target: 0.99}\n"
    )
    text = f"""service: groups
slos:
  - name: up
    dimension: availability
    window: {window}
{budgeting}    absent_after: {absent}
  - name: fresh-share
    dimension: freshness
    sli: {{lag_threshold: 10m}}
    objective: {{target: 0.9}}
    window: {window}
    absent_after: {absent}
  - name: fast
    dimension: latency
    sli: {{latency_threshold: 200ms}}
    objective: {{target: 0.9}}
    window: {window}
    filter: {{region: eu}}
  - name: slow-tail
    dimension: latency
    sli: {{percentile: 90}}
    objective: {{target: 300ms}}
    window: {window}
    filter: {{region: eu}}
  - name: accuracy
    dimension: accuracy
    sli: {{metric: accuracy}}
    objective: {{target: 0.8}}
    window: {window}
  - name: tpr-cohort
    dimension: fairness
    sli: {{metric: true_positive_rate_difference, attribute: cohort, positive_label: 1}}
    objective: {{target: 0.3}}
    window: {window}
  - name: dpd-cohort-region
    dimension: fairness
    sli:
      metric: demographic_parity_difference
      attribute: [cohort, region]
      positive_label: 1
      missing: group
    objective: {{target: 0.3}}
    window: {window}
"""
    if not fairness:  # no slices: the percentile's histogram is read with the counts
        text = text[: text.index("  - name: tpr-cohort")]
    if correction:
        text += """corrections:
  - start: 2026-02-20T03:17:00Z
    end: 2026-02-21T11:02:30Z
    reason: upstream outage
"""
    return text


def log(at: datetime, rows: int, seed: int, quiet_hours: int) -> pa.Table:
    """Labelled predictions over the 35 days before ``at`` (none in the last ``quiet_hours``,
    so ``absent_after`` has something to say), with many cohorts and a few regions."""
    rng = np.random.default_rng(seed)
    end = np.datetime64(at.replace(tzinfo=None), "us") - np.timedelta64(quiet_hours, "h")
    ts = end - rng.integers(1, 35 * 86_400_000_000, rows).astype("timedelta64[us]")
    lag_us = np.round(rng.lognormal(np.log(300e6), 0.9, rows)).astype("timedelta64[us]")
    label = rng.integers(0, 2, rows)
    prediction = np.where(rng.random(rows) < 0.8, label, 1 - label)
    region = rng.choice(np.array((*REGIONS, ""), dtype=object), rows, p=[0.4, 0.4, 0.15, 0.05])
    return pa.table(
        {
            "ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
            "event_ts": pa.array(ts - lag_us).cast(pa.timestamp("us", tz="UTC")),
            "latency_ms": pa.array(rng.lognormal(np.log(80.0), 0.9, rows)),
            "status": pa.array(np.where(rng.random(rows) < 0.995, "ok", "error")),
            "prediction": pa.array(prediction),
            "label": pa.array(label),
            "cohort": pa.array([f"c{i:03d}" for i in rng.integers(0, COHORTS, rows)]),
            "region": pa.array(region.tolist(), pa.string()),
        }
    )


def per_minute(spec: Any, path: str, at: datetime, step: timedelta | None) -> dict[str, Any]:
    start, end = scan_range(spec, at)
    rollup = scan_files(spec, Sources(path), start=start, end=end)
    assert rollup.count_edges is None
    return evaluation_json(evaluate(spec, rollup, at, series_step=step))


@settings(max_examples=6, deadline=None)
@given(
    offset=st.integers(0, 14 * 86_400),
    window=st.sampled_from(["30d", "7d", "1d", "calendar: month", "calendar: week"]),
    step=st.sampled_from([None, timedelta(days=1), timedelta(hours=5), timedelta(minutes=90)]),
    timeslices=st.booleans(),
    correction=st.booleans(),
    quiet_hours=st.sampled_from([0, 3]),
    seed=st.integers(0, 2**32 - 1),
    fairness=st.booleans(),
)
@example(  # slices laid back from each series point; the last events three hours back
    offset=3_600 * 7 + 17,
    window="30d",
    step=timedelta(hours=5),
    timeslices=True,
    correction=True,
    quiet_hours=3,
    seed=0,
    fairness=True,
)
@example(  # no slices: one read gives the counts and the histogram
    offset=3_600 * 7 + 17,
    window="30d",
    step=timedelta(days=1),
    timeslices=False,
    correction=True,
    quiet_hours=3,
    seed=0,
    fairness=False,
)
def test_every_window_reads_the_same_as_per_minute(
    offset: int,
    window: str,
    step: timedelta | None,
    timeslices: bool,
    correction: bool,
    quiet_hours: int,
    seed: int,
    fairness: bool,
) -> None:
    at = BASE + timedelta(seconds=offset)
    yaml_window = "{" + window + "}" if window.startswith("calendar") else window
    spec = parse_spec(spec_text(yaml_window, timeslices, correction, "2h", fairness))
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "log.parquet")
        pq.write_table(log(at, 3000, seed, quiet_hours), path)
        edged = evaluation_json(evaluate_files(spec, Sources(path), at, series_step=step))
        expected = per_minute(spec, path, at, step)
    assert edged == expected


def test_groups_are_counted_per_span_not_per_minute(tmp_path: Path) -> None:
    at = BASE + timedelta(hours=13, minutes=7, seconds=5)
    spec = parse_spec(spec_text("30d", False, False, "1h"))
    path = str(tmp_path / "log.parquet")
    pq.write_table(log(at, 30_000, 11, 3), path)
    edges = count_edges(spec, at, timedelta(days=1))
    assert edges is not None and len(edges) < 60
    start, end = scan_range(spec, at)
    edged = scan_files(spec, Sources(path), start=start, end=end, count_edges=edges)
    minute = scan_files(spec, Sources(path), start=start, end=end)
    assert edged.count_edges == edges
    inside = [b for b in edged.table["bucket"].to_pylist() if b >= edges[0]]
    assert set(inside) <= set(edges)
    assert edged.table.num_rows * 4 < minute.table.num_rows
    # every statistic's total is the same, and the last event is the per-minute one
    for name in minute.table.column_names:
        if "/" not in name:
            continue
        mine = np.asarray(edged.table[name].to_numpy())
        theirs = np.asarray(minute.table[name].to_numpy())
        keep = np.asarray(edged.table["bucket"].to_numpy()) >= edges[0]
        minutes = np.asarray(minute.table["bucket"].to_numpy())
        assert mine[keep].sum() == theirs[minutes >= edges[0]].sum(), name
    for slo, stat in (("up", "total"), ("tpr-cohort", "predictions")):
        last = max(edged.table[f"{slo}/last:{stat}"].to_pylist())
        counted = minute.table.filter(minute.table[f"{slo}/{stat}"].to_numpy() > 0)
        assert last == max(counted["bucket"].to_pylist())
    # the fairness timelines hold one slot per span, whatever the minutes
    timelines = timelines_for(spec, edged, at)
    assert timelines["dpd-cohort-region"].size == len(edges)
    assert len(timelines["dpd-cohort-region"].groups or []) == COHORTS * (len(REGIONS) + 1)


def test_outcome_counts_keep_their_last_event(tmp_path: Path) -> None:
    at = BASE + timedelta(hours=5, minutes=30)
    spec = parse_spec(
        "service: s\nslos:\n  - {name: up, dimension: availability, objective: {target: 0.99},"
        " window: 7d, absent_after: 30m}\n"
    )
    rng = np.random.default_rng(5)
    minutes = np.sort(rng.integers(60, 7 * 1440, 500))
    ts = np.datetime64(at.replace(tzinfo=None), "m") - minutes.astype("timedelta64[m]")
    total = rng.integers(0, 50, minutes.size)
    outcomes = pa.table(
        {
            "ts": pa.array(ts.astype("datetime64[us]")).cast(pa.timestamp("us", tz="UTC")),
            "total": pa.array(total),
            "ok": pa.array(total - rng.integers(0, 2, minutes.size) * (total > 0)),
        }
    )
    predictions = tmp_path / "predictions.parquet"
    outcome_path = tmp_path / "outcomes.parquet"
    pq.write_table(
        outcomes.slice(0, 0).select(["ts"]).append_column("status", pa.array([], pa.string())),
        predictions,
    )
    pq.write_table(outcomes, outcome_path)
    sources = Sources(str(predictions), outcomes=str(outcome_path))
    for step in (None, timedelta(hours=6)):
        edged = evaluation_json(evaluate_files(spec, sources, at, series_step=step))
        start, end = scan_range(spec, at)
        rollup = scan_files(spec, sources, start=start, end=end)
        assert edged == evaluation_json(evaluate(spec, rollup, at, series_step=step))
        assert edged["slos"][0]["budget"]["status"] == "no_data"


def test_the_percentile_histogram_rides_on_the_counts(tmp_path: Path, monkeypatch: Any) -> None:
    """With the same edges for the counts and the histogram, with or without slices, the
    percentile's histogram comes from the counts' read (a grouping set of the same GROUP BY);
    the counts and the histogram must be those of the two separate queries, rows outside the
    SLO's filter counted but not binned."""
    monkeypatch.setenv("MLSLO_CACHE_DIR", str(tmp_path / "cache"))
    at = BASE + timedelta(hours=13, minutes=7, seconds=5)
    path = str(tmp_path / "log.parquet")
    pq.write_table(log(at, 20_000, 3, 0), path)
    table = pq.read_table(path).to_pandas()

    def rows(table: pa.Table) -> list[tuple[Any, ...]]:
        return sorted(tuple(r.values()) for r in table.to_pylist())

    for fairness in (False, True):
        spec = parse_spec(spec_text("30d", False, True, "1h", fairness=fairness))
        edges = histogram_edges(spec, at, timedelta(days=1))
        assert edges is not None and edges == count_edges(spec, at, timedelta(days=1))
        start, end = scan_range(spec, at)
        before = set((tmp_path / "cache").rglob("*.json"))
        fused = scan_files(
            spec, Sources(path), start=start, end=end, histogram_edges=edges, count_edges=edges
        )
        (added,) = set((tmp_path / "cache").rglob("*.json")) - before
        kept = json.loads(added.read_text())
        assert kept["binned"] == ["slow-tail"] and kept["histograms"] == []
        counts = scan_files(spec, Sources(path), start=start, end=end, count_edges=edges)
        binned = scan_files(spec, Sources(path), start=start, end=end, histogram_edges=edges)
        assert fused.table.column_names == counts.table.column_names
        assert rows(fused.table) == rows(counts.table)
        assert rows(fused.histograms["slow-tail"]) == rows(binned.histograms["slow-tail"])
        eu = (table["region"] == "eu") & (table["ts"] >= start) & (table["ts"] < end)
        assert fused.histograms["slow-tail"]["count"].to_numpy().sum() == eu.sum()
        assert (
            fused.table["up/total"].to_numpy().sum()
            == ((table["ts"] >= start) & (table["ts"] < end)).sum()
        )
