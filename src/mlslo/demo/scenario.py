"""A realistic synthetic scenario: 30 days of a fraud-scoring model with real incidents.

Traffic follows a daily cycle; labels (chargebacks) arrive days later and some never do;
two customer groups; model v2 replaces v1 near the end. Four incidents are planted so that
every dimension has something to show: a serving outage, a feature-pipeline stall, a slow
accuracy drift and a fairness regression that ships with v2. Generation is pure and seeded;
:func:`write_files` does the file I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DAY_US = 86_400_000_000
MINUTE_US = 60_000_000


@dataclass(frozen=True)
class Incident:
    name: str
    dimension: str
    start: datetime
    end: datetime
    description: str


@dataclass(frozen=True)
class Scenario:
    """What to generate. ``end`` is the last moment of traffic (the demo's "now")."""

    end: datetime
    seed: int = 7
    days: int = 30
    daily_volume: int = 20_000
    fraud_rate: float = 0.08
    version_change_day: int = 22

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    def at_day(self, day: float) -> datetime:
        """A moment ``day`` days after midnight of the first day (incidents happen at the
        same hours of the day whenever the demo runs)."""
        midnight = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight + timedelta(days=day)

    def incidents(self) -> list[Incident]:
        d = self.at_day
        return [
            Incident(
                "accuracy drift",
                "accuracy",
                d(self.days * 0.30),
                d(self.days * 0.55),
                "fraud patterns shift; the model's F1 slides for a week",
            ),
            Incident(
                "model v2 rollout",
                "fairness",
                d(self.version_change_day),
                self.end,
                "v2 misses more fraud in group B: the TPR gap opens",
            ),
            Incident(
                "feature pipeline stall",
                "freshness",
                d(self.days * 0.80) + timedelta(hours=2),
                d(self.days * 0.80) + timedelta(hours=5),
                "the feature store stops updating; inputs go 3 hours stale",
            ),
            Incident(
                "serving outage",
                "availability",
                d(self.days * 0.87) + timedelta(hours=14),
                d(self.days * 0.87) + timedelta(hours=14, minutes=25),
                "a bad config push: every request fails for 25 minutes",
            ),
        ]


@dataclass(frozen=True)
class DemoData:
    predictions: pa.Table
    labels: pa.Table


def _micros(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)


def generate(scenario: Scenario, progress: Callable[[int, int], None] | None = None) -> DemoData:
    """Generate the scenario's predictions and labels (deterministic for a seed)."""
    rng = np.random.default_rng(scenario.seed)
    start_us = _micros(scenario.start)
    end_us = _micros(scenario.end)
    incidents = {i.name: (_micros(i.start), _micros(i.end)) for i in scenario.incidents()}
    chunks: list[pa.Table] = []
    label_chunks: list[pa.Table] = []
    counter = 0
    for day in range(scenario.days):
        day_start = start_us + day * DAY_US
        ts = _timestamps(rng, day_start, min(day_start + DAY_US, end_us), scenario)
        table, labels = _day(rng, ts, counter, scenario, incidents, end_us)
        counter += len(ts)
        chunks.append(table)
        label_chunks.append(labels)
        if progress is not None:
            progress(day + 1, scenario.days)
    return DemoData(pa.concat_tables(chunks), pa.concat_tables(label_chunks))


def _timestamps(rng: np.random.Generator, lo: int, hi: int, scenario: Scenario) -> np.ndarray:
    minutes = np.arange(lo, hi, MINUTE_US)
    hour = (minutes // 3_600_000_000) % 24
    shape = 1.0 + 0.65 * np.sin((hour - 9) / 24 * 2 * np.pi)
    rate = scenario.daily_volume / 1440 * shape / shape.mean()
    counts = rng.poisson(rate)
    ts = np.repeat(minutes, counts) + rng.integers(0, MINUTE_US, counts.sum())
    return np.sort(ts[ts < hi])


def _within(ts: np.ndarray, span: tuple[int, int]) -> np.ndarray:
    return (ts >= span[0]) & (ts < span[1])


def _day(
    rng: np.random.Generator,
    ts: np.ndarray,
    first_id: int,
    scenario: Scenario,
    incidents: dict[str, tuple[int, int]],
    end_us: int,
) -> tuple[pa.Table, pa.Table]:
    n = len(ts)
    group = np.where(rng.random(n) < 0.7, "A", "B")
    region = rng.choice(np.array(["eu", "us", "apac"]), n, p=[0.45, 0.4, 0.15])
    switch = _micros(scenario.at_day(scenario.version_change_day))
    version = np.where(ts >= switch, "v2", "v1")
    fraud = rng.random(n) < scenario.fraud_rate

    drift_lo, drift_hi = incidents["accuracy drift"]
    drift = np.clip((ts - drift_lo) / max(drift_hi - drift_lo, 1), 0, 1)
    recovered = ts >= drift_hi + 2 * DAY_US
    separation = np.where(recovered, 3.0, 3.0 - 1.3 * drift)
    separation = np.where((version == "v2") & (group == "B"), separation - 1.6, separation)
    logit = np.where(fraud, separation / 2, -separation / 2) + rng.normal(0, 1.0, n)
    score = 1 / (1 + np.exp(-(logit * 1.6 - 1.0)))
    score = np.clip(score, 0.0005, 0.9995)
    prediction = (score >= 0.5).astype(np.int64)

    status = np.where(rng.random(n) < 0.9996, "ok", "error")
    outage = _within(ts, incidents["serving outage"])
    status = np.where(outage, "error", status)
    latency = rng.lognormal(np.log(75), 0.45, n)
    latency = np.where(outage, rng.uniform(1500, 3000, n), latency)
    slow_tail = rng.random(n) < 0.004
    latency = np.where(slow_tail, latency * rng.uniform(3, 8, n), latency)

    lag = rng.exponential(150e6, n) + 20e6
    stall_lo, stall_hi = incidents["feature pipeline stall"]
    stalled = _within(ts, (stall_lo, stall_hi))
    lag = np.where(stalled, ts - stall_lo + 60e6, lag)
    event_ts = ts - lag.astype(np.int64)

    ids = np.char.add("req-", np.arange(first_id, first_id + n).astype(str))
    predictions = pa.table(
        {
            "id": pa.array(ids),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "model": pa.array(np.full(n, "fraud-scoring")),
            "model_version": pa.array(version),
            "status": pa.array(status),
            "latency_ms": pa.array(np.round(latency, 2)),
            "event_ts": pa.array(event_ts, pa.timestamp("us", tz="UTC")),
            "prediction": pa.array(np.where(outage, 0, prediction)),
            "score": pa.array(np.round(score, 5)),
            "group": pa.array(group),
            "region": pa.array(region),
        }
    )
    delay = rng.lognormal(np.log(1.5 * DAY_US), 0.6, n).astype(np.int64)
    arrives = ts + delay
    labelled = (arrives < end_us) & (rng.random(n) < 0.95) & ~outage
    labels = pa.table(
        {
            "id": pa.array(ids[labelled]),
            "ts": pa.array(arrives[labelled], pa.timestamp("us", tz="UTC")),
            "label": pa.array(fraud[labelled].astype(np.int64)),
        }
    )
    return predictions, labels


DEMO_SPEC = """\
# mlslo demo: a fraud-scoring model with four planted incidents.
version: 1
service: fraud-scoring
description: Card-fraud model; labels are chargebacks that arrive days later.
attributes: [region]
slos:
  - name: accuracy
    description: F1 of fraud predictions once chargebacks arrive
    dimension: accuracy
    sli: {metric: f1, positive_label: 1, estimate: cbpe, label_delay: 3d}
    objective: {target: 0.70}
    window: 30d
    min_samples: 200
    runbook_url: https://runbooks.example.com/fraud/accuracy
  - name: freshness
    description: share of predictions served from features at most 15 minutes old
    dimension: freshness
    sli: {lag_threshold: 15m}
    objective: {target: 0.99}
    window: 30d
  - name: lag-p95
    description: 95th percentile of feature lag
    dimension: freshness
    sli: {percentile: 95}
    objective: {target: 10m}
    window: 30d
  - name: uptime
    description: successful scoring responses
    dimension: availability
    objective: {target: 0.999}
    window: 30d
    runbook_url: https://runbooks.example.com/fraud/uptime
  - name: latency
    description: responses within 300 ms
    dimension: latency
    sli: {latency_threshold: 300ms}
    objective: {target: 0.99}
    window: 30d
  - name: fairness
    description: gap in fraud caught (true positive rate) between customer groups
    dimension: fairness
    sli: {metric: true_positive_rate_difference, attribute: group, min_group_size: 30,
          label_delay: 3d}
    objective: {target: 0.05}
    window: 30d
    min_samples: 200
policies:
  production:
    hard_stop: [uptime, fairness]
    soft_stop: [accuracy, freshness]
    min_remaining: {uptime: 0.25, fairness: 0.25}
    risk_score: {weights: {uptime: 0.4, fairness: 0.3, accuracy: 0.2, freshness: 0.1}, max: 0.7}
  experiment:
    hard_stop: [fairness]
    soft_stop: [uptime, accuracy]
default_policy: production
"""


def write_demo(
    out: Path, scenario: Scenario, progress: Callable[[int, int], None] | None = None
) -> dict[str, Path]:
    """Generate the scenario and write its files (see :func:`write_files`)."""
    return write_files(out, generate(scenario, progress))


def write_files(out: Path, data: DemoData) -> dict[str, Path]:
    """Write spec.yaml, predictions.parquet and labels.parquet into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "spec": out / "spec.yaml",
        "predictions": out / "predictions.parquet",
        "labels": out / "labels.parquet",
    }
    paths["spec"].write_text(DEMO_SPEC, encoding="utf-8")
    pq.write_table(data.predictions, paths["predictions"], compression="zstd")
    pq.write_table(data.labels, paths["labels"], compression="zstd")
    return paths
