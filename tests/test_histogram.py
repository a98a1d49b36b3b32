"""Log-bucketed histograms against ``numpy.percentile`` (linear interpolation).

Each value is read back as its bin's geometric midpoint, within ~1 % of the true order
statistic, so a percentile (an interpolation between two order statistics) is within ~1 % of
numpy's; the tests allow 2 %. Checked on the histogram module directly, through real
evaluations of latency (ms) and freshness lag (s) percentile SLOs, and for merging.
"""

from __future__ import annotations

import math
import tempfile
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlslo.api import evaluate_files
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources
from mlslo.spec import parse_spec
from mlslo.stats.histogram import GAMMA, bin_of, percentile, percentile_interval

AT = datetime(2026, 11, 21, tzinfo=UTC)
AT_TEXT = "2026-11-21T00:00:00Z"
QS = (50, 90, 95, 99)
TOLERANCE = 0.02
# What docs/concepts.md promises: a bin's midpoint is within sqrt(GAMMA) - 1 (~0.995 %) of any value
# in it, and linear interpolation between two such order statistics keeps that bound.
PROMISED_BOUND = math.sqrt(GAMMA) - 1 + 1e-9
WINDOW_US = 28 * 24 * 3600 * 1_000_000


def histogram_percentile(values: np.ndarray, q: float) -> float | None:
    return percentile(bin_of(values), np.ones(len(values)), q)


def sample(kind: str, size: int, seed: int, scale: float) -> np.ndarray:
    """A positive sample: lognormal (heavy right tail) or uniform."""
    rng = np.random.default_rng(seed)
    if kind == "lognormal":
        return rng.lognormal(mean=np.log(scale), sigma=1.2, size=size)
    return rng.uniform(scale * 0.01, scale, size=size)


samples = st.builds(
    sample,
    kind=st.sampled_from(["lognormal", "uniform"]),
    size=st.integers(1, 5000),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.05, 1.0, 250.0, 3600.0, 1e6]),
)


# --- the histogram module ---------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(values=samples)
def test_percentile_within_two_percent_of_numpy(values: np.ndarray) -> None:
    for q in QS:
        expected = float(np.percentile(values, q))
        got = histogram_percentile(values, q)
        assert got == pytest.approx(expected, rel=TOLERANCE), q
        assert abs(got - expected) <= PROMISED_BOUND * expected, q


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.floats(1e-6, 1e9, allow_nan=False), min_size=1, max_size=40),
    q=st.sampled_from(QS),
)
def test_percentile_of_small_samples_within_two_percent(values: list[float], q: int) -> None:
    array = np.array(values)
    expected = float(np.percentile(array, q))
    got = histogram_percentile(array, q)
    assert got == pytest.approx(expected, rel=TOLERANCE)
    assert abs(got - expected) <= PROMISED_BOUND * expected


@settings(max_examples=100, deadline=None)
@given(values=samples, q=st.sampled_from(QS))
def test_percentile_interval_contains_the_percentile(values: np.ndarray, q: int) -> None:
    bins, counts = bin_of(values), np.ones(len(values))
    value = percentile(bins, counts, q)
    low, high = percentile_interval(bins, counts, q)
    assert low <= value <= high


def test_empty_histogram_has_no_percentile() -> None:
    assert percentile(np.zeros(0, dtype=np.int64), np.zeros(0), 95) is None
    assert percentile_interval(np.zeros(0, dtype=np.int64), np.zeros(0), 95) is None


@settings(max_examples=100, deadline=None)
@given(first=samples, second=samples, q=st.sampled_from(QS))
def test_histograms_merge_by_addition(first: np.ndarray, second: np.ndarray, q: int) -> None:
    union = np.concatenate([first, second])
    whole = percentile(bin_of(union), np.ones(len(union)), q)
    # Concatenated per-sample bins (repeated bins, unsorted) ...
    bins = np.concatenate([bin_of(first), bin_of(second)])
    assert percentile(bins, np.ones(len(bins)), q) == whole
    # ... and per-sample compacted histograms (bin, count) concatenated.
    parts = [np.unique(bin_of(part), return_counts=True) for part in (first, second)]
    merged_bins = np.concatenate([b for b, _ in parts])
    merged_counts = np.concatenate([c for _, c in parts]).astype(np.float64)
    assert percentile(merged_bins, merged_counts, q) == whole
    assert percentile_interval(merged_bins, merged_counts, q) == percentile_interval(
        bin_of(union), np.ones(len(union)), q
    )
    assert whole == pytest.approx(float(np.percentile(union, q)), rel=TOLERANCE)


# --- through real evaluations -----------------------------------------------------------------

PERCENTILE_SPEC = "service: oracle\nslos:" + "".join(
    textwrap.dedent(f"""
      - name: latency-p{q}
        dimension: latency
        sli: {{percentile: {q}}}
        objective: {{target: 250ms}}
        absent_after: off
      - name: lag-p{q}
        dimension: freshness
        sli: {{percentile: {q}}}
        objective: {{target: 15m}}
        absent_after: off""")
    for q in QS
)


def records(latency_ms: np.ndarray, lag_s: np.ndarray, seed: int) -> pa.Table:
    """Predictions with the given latencies (ms) and input lags (s, to the microsecond)."""
    rng = np.random.default_rng(seed)
    n = len(latency_ms)
    at = np.datetime64(AT.replace(tzinfo=None), "us")
    ts = at - rng.integers(1_000_000, WINDOW_US, n).astype("timedelta64[us]")
    event_ts = ts - np.round(lag_s * 1e6).astype("timedelta64[us]")
    return pa.table(
        {
            "ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
            "event_ts": pa.array(event_ts).cast(pa.timestamp("us", tz="UTC")),
            "latency_ms": pa.array(latency_ms, pa.float64()),
        }
    )


def evaluate(spec_text: str, location: str) -> dict[str, Any]:
    document = evaluation_json(evaluate_files(parse_spec(spec_text), Sources(location), AT))
    return {slo["name"]: slo for slo in document["slos"]}


def assert_percentiles(result: dict[str, Any], latency_ms: np.ndarray, lag_s: np.ndarray):
    n = len(latency_ms)
    for q in QS:
        for name, values, unit, target in (
            (f"latency-p{q}", latency_ms, "ms", 250.0),
            (f"lag-p{q}", lag_s, "s", 900.0),
        ):
            slo = result[name]
            expected = float(np.percentile(values, q))
            assert slo["sli"]["unit"] == unit
            assert slo["sli"]["n"] == n
            assert slo["sli"]["value"] == pytest.approx(expected, rel=TOLERANCE), name
            assert abs(slo["sli"]["value"] - expected) <= PROMISED_BOUND * expected, name
            low, high = slo["sli"]["ci"]
            assert low <= slo["sli"]["value"] <= high
            consumed = slo["sli"]["value"] / target
            assert slo["budget"]["consumed"] == pytest.approx(consumed, rel=1e-9)
            if abs(expected - target) > TOLERANCE * target:
                assert slo["met"] is (expected <= target), name


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(1, 3000),
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(["lognormal", "uniform"]),
)
def test_latency_and_lag_percentile_slos(size: int, seed: int, kind: str) -> None:
    latency_ms = sample(kind, size, seed, 180.0)
    lag_s = sample(kind, size, seed + 1, 600.0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "records.parquet"
        pq.write_table(records(latency_ms, np.round(lag_s, 6), seed), path)
        result = evaluate(PERCENTILE_SPEC, str(path))
    assert_percentiles(result, latency_ms, np.round(lag_s, 6))


def test_latency_p95_through_the_cli(cli: Any, write_spec: Any, write_records: Any) -> None:
    latency_ms = sample("lognormal", 2000, 3, 120.0)
    lag_s = sample("uniform", 2000, 4, 1200.0).round(6)
    spec = write_spec(PERCENTILE_SPEC)
    data = write_records(records(latency_ms, lag_s, 5))
    run = cli("evaluate", "--spec", spec, "--data", data, "--at", AT_TEXT, "--format", "json")
    assert run.exit_code == 0, run.stderr
    result = {slo["name"]: slo for slo in run.json()["slos"]}
    assert_percentiles(result, latency_ms, lag_s)
    p95 = result["latency-p95"]
    assert p95["objective"]["target"] == 250.0
    assert p95["budget"]["status"] in ("healthy", "low", "exhausted")


@settings(max_examples=10, deadline=None)
@given(
    sizes=st.tuples(st.integers(1, 1500), st.integers(1, 1500)),
    seed=st.integers(0, 2**32 - 1),
)
def test_two_files_merge_like_one(sizes: tuple[int, int], seed: int) -> None:
    """Scanning a folder of two files gives the same percentiles as one file of the union."""
    parts = [
        (sample("lognormal", n, seed + i, 90.0), sample("lognormal", n, seed + 7 + i, 300.0))
        for i, n in enumerate(sizes)
    ]
    parts = [(latency, lag.round(6)) for latency, lag in parts]
    tables = [records(latency, lag, seed + i) for i, (latency, lag) in enumerate(parts)]
    with tempfile.TemporaryDirectory() as folder:
        split = Path(folder) / "split"
        split.mkdir()
        for i, table in enumerate(tables):
            pq.write_table(table, split / f"part{i}.parquet")
        single = Path(folder) / "single.parquet"
        pq.write_table(pa.concat_tables(tables), single)
        merged = evaluate(PERCENTILE_SPEC, str(split))
        whole = evaluate(PERCENTILE_SPEC, str(single))
    for name, slo in whole.items():
        assert merged[name]["sli"] == slo["sli"], name
    latency = np.concatenate([p[0] for p in parts])
    lag = np.concatenate([p[1] for p in parts])
    assert_percentiles(whole, latency, lag)
