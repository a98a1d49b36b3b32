"""Percentile histograms summed between the edges of the windows an evaluation reads.

A file scan knows the moment evaluated and the series step, so it sums each percentile SLO's
histogram between the edges of its windows (window, burn-rate windows, series points,
timeslices, corrections) instead of per minute. Every number of the evaluation must stay the
same as with per-minute histograms: the oracle here is the per-minute scan of the same file.
"""

from __future__ import annotations

import itertools
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlslo.api import evaluate_files
from mlslo.measure.evaluate import evaluate
from mlslo.measure.windows import MOST_HISTOGRAM_EDGES, histogram_edges, scan_range
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources, scan_files
from mlslo.spec import parse_spec
from mlslo.stats.rollup import merge_all
from mlslo.stats.timeline import build_timeline

BASE = datetime(2026, 3, 1, tzinfo=UTC)


def spec_text(window: str, timeslices: bool, correction: bool) -> str:
    lag = (
        "objective: {target: 0.9, timeslice_target: 20m}\n    budgeting: timeslices\n"
        "    slice: 6h\n"
        if timeslices
        else "objective: {target: 15m}\n    absent_after: off\n"
    )
    text = f"""service: edges
slos:
  - name: lag-p95
    dimension: freshness
    sli: {{percentile: 95}}
    window: {window}
    {lag}  - name: latency-p50
    dimension: latency
    sli: {{percentile: 50}}
    objective: {{target: 250ms}}
    window: {window}
  - name: fresh-share
    dimension: freshness
    sli: {{lag_threshold: 10m}}
    objective: {{target: 0.9}}
    window: {window}
"""
    if correction:
        text += """corrections:
  - start: 2026-02-20T03:17:00Z
    end: 2026-02-21T11:02:30Z
    reason: upstream outage
"""
    return text


def log(at: datetime, rows: int, seed: int) -> pa.Table:
    """Predictions over the 35 days before ``at`` with lognormal lags and latencies."""
    rng = np.random.default_rng(seed)
    end = np.datetime64(at.replace(tzinfo=None), "us")
    ts = end - rng.integers(1, 35 * 86_400_000_000, rows).astype("timedelta64[us]")
    lag_us = np.round(rng.lognormal(np.log(300e6), 0.9, rows)).astype("timedelta64[us]")
    return pa.table(
        {
            "ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
            "event_ts": pa.array(ts - lag_us).cast(pa.timestamp("us", tz="UTC")),
            "latency_ms": pa.array(rng.lognormal(np.log(80.0), 0.7, rows)),
        }
    )


def per_bucket(spec: Any, path: str, at: datetime, step: timedelta | None) -> dict[str, Any]:
    start, end = scan_range(spec, at)
    rollup = scan_files(spec, Sources(path), start=start, end=end)
    assert rollup.histogram_edges is None
    return evaluation_json(evaluate(spec, rollup, at, series_step=step))


@settings(max_examples=5, deadline=None)
@given(
    offset=st.integers(0, 14 * 86_400),
    window=st.sampled_from(["30d", "7d", "1d", "calendar: month"]),
    step=st.sampled_from([None, timedelta(days=1), timedelta(hours=5), timedelta(minutes=90)]),
    timeslices=st.booleans(),
    correction=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@example(  # series points 5 h apart, timeslices 6 h: each point's slices need edges of their own
    offset=0, window="30d", step=timedelta(hours=5), timeslices=True, correction=False, seed=0
)
def test_every_window_reads_the_same_as_per_minute(
    offset: int,
    window: str,
    step: timedelta | None,
    timeslices: bool,
    correction: bool,
    seed: int,
) -> None:
    at = BASE + timedelta(seconds=offset)
    yaml_window = "{calendar: month}" if window.startswith("calendar") else window
    spec = parse_spec(spec_text(yaml_window, timeslices, correction))
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "log.parquet")
        pq.write_table(log(at, 1000, seed), path)
        edged = evaluation_json(evaluate_files(spec, Sources(path), at, series_step=step))
        expected = per_bucket(spec, path, at, step)
    assert edged == expected


def test_histograms_shrink_to_the_edges(tmp_path: Path) -> None:
    at = BASE + timedelta(hours=13, minutes=7, seconds=5)
    spec = parse_spec(spec_text("30d", False, False))
    path = str(tmp_path / "log.parquet")
    pq.write_table(log(at, 20_000, 7), path)
    edges = histogram_edges(spec, at, timedelta(days=1))
    assert edges is not None
    start, end = scan_range(spec, at)
    edged = scan_files(spec, Sources(path), start=start, end=end, histogram_edges=edges)
    minute = scan_files(spec, Sources(path), start=start, end=end)
    assert edged.histogram_edges == edges
    for name, rows in edged.histograms.items():
        buckets = set(rows["bucket"].to_pylist())
        inside = {b for b in buckets if edges[0] <= b < edges[-1]}
        # every row inside the edges starts a span; the rows before the first edge (the
        # scan reaches back to the longest burn window) stay per minute
        assert inside <= set(edges), name
        assert len(buckets) < len(set(minute.histograms[name]["bucket"].to_pylist())) / 5
        assert sum(rows["count"].to_pylist()) == sum(minute.histograms[name]["count"].to_pylist())
        # spans hold exactly the counts of their minutes
        minute_rows = minute.histograms[name].to_pydict()
        for lo, hi in itertools.pairwise(edges):
            mine = sum(
                c
                for b, c in zip(rows["bucket"].to_pylist(), rows["count"].to_pylist(), strict=True)
                if b == lo
            )
            theirs = sum(
                c
                for b, c in zip(minute_rows["bucket"], minute_rows["count"], strict=True)
                if lo <= b < hi
            )
            assert mine == theirs


def test_a_window_off_the_edges_is_refused(tmp_path: Path) -> None:
    at = BASE
    spec = parse_spec(spec_text("30d", False, False))
    path = str(tmp_path / "log.parquet")
    pq.write_table(log(at, 2000, 3), path)
    edges = histogram_edges(spec, at)
    assert edges is not None
    start, end = scan_range(spec, at)
    rollup = scan_files(spec, Sources(path), start=start, end=end, histogram_edges=edges)
    timeline = build_timeline(
        rollup, "lag-p95", edges[0] - 10, edges[-1] - edges[0] + 10, histogram=True
    )
    assert timeline.window(edges[1], edges[-1]).histogram is not None
    with pytest.raises(ValueError, match="not one"):
        timeline.window(edges[1] + 1, edges[-1])
    per_minute = scan_files(spec, Sources(path), start=start, end=end)
    with pytest.raises(ValueError, match="different edges"):
        merge_all([rollup, per_minute])


def test_edges_are_given_up_when_there_would_be_too_many() -> None:
    spec = parse_spec(spec_text("30d", False, False))
    assert histogram_edges(spec, BASE, timedelta(minutes=10)) is None
    edges = histogram_edges(spec, BASE, timedelta(days=1))
    assert edges is not None and len(edges) <= MOST_HISTOGRAM_EDGES
    no_percentile = parse_spec(
        "service: s\nslos:\n  - {name: up, dimension: availability, objective: {target: 0.99}}\n"
    )
    assert histogram_edges(no_percentile, BASE) is None
