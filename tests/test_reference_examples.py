"""The worked examples of docs/concepts.md, each through the real CLI with the stated numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

BASE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
AT = "2026-11-21T00:00:00Z"


def test_accuracy_f1(cli, write_spec, write_records):
    spec = write_spec("""
        service: ref
        slos:
          - name: accuracy
            dimension: accuracy
            sli: {metric: f1, positive_label: 1}
            objective: {target: 0.92}
            window: 30d
    """)
    data = write_records(
        {
            "id": [f"p{i}" for i in range(10)],
            "ts": [BASE + timedelta(minutes=i) for i in range(10)],
            "label": [1, 0, 1, 1, 0, 1, 0, 0, 1, 1],
            "prediction": [1, 0, 1, 0, 0, 1, 0, 1, 1, 1],
        }
    )
    run = cli("evaluate", "--spec", spec, "--data", data, "--at", AT, "--format", "json")
    assert run.exit_code == 0, run.stderr
    slo = run.json()["slos"][0]
    assert slo["sli"]["value"] == pytest.approx(0.8333, abs=5e-5)
    assert slo["budget"]["consumed"] == pytest.approx(2.083, abs=5e-4)
    assert slo["budget"]["remaining"] == pytest.approx(-1.083, abs=5e-4)
    assert slo["budget"]["status"] == "exhausted"
    assert slo["met"] is False
    assert slo["sli"]["n"] == 10
    assert slo["sli"]["label_coverage"] == 1.0


def test_freshness_share_and_p95(cli, write_spec, write_records):
    spec = write_spec("""
        service: ref
        slos:
          - name: freshness
            dimension: freshness
            sli: {lag_threshold: 15m}
            objective: {target: 0.95}
          - name: freshness-p95
            dimension: freshness
            sli: {percentile: 95}
            objective: {target: 15m}
    """)
    lags = [5, 10, 20, 7, 30]
    first = datetime(2026, 11, 20, 23, 55, tzinfo=UTC)  # as in the docs: recent, not absent
    ts = [first + timedelta(minutes=i) for i in range(5)]
    data = write_records(
        {
            "id": [f"f{i}" for i in range(5)],
            "ts": ts,
            "event_ts": [t - timedelta(minutes=lag) for t, lag in zip(ts, lags, strict=True)],
        }
    )
    run = cli("evaluate", "--spec", spec, "--data", data, "--at", AT, "--format", "json")
    assert run.exit_code == 0, run.stderr
    share, p95 = run.json()["slos"]
    assert share["sli"]["value"] == pytest.approx(0.60)
    assert share["budget"]["consumed"] == pytest.approx(8.0)
    assert share["met"] is False
    assert p95["sli"]["unit"] == "s"
    assert p95["sli"]["value"] / 60 == pytest.approx(28.0, rel=0.01)
    assert p95["met"] is False


def test_uptime(cli, write_spec, write_records):
    spec = write_spec("""
        service: ref
        slos:
          - name: uptime
            dimension: availability
            objective: {target: 0.9995}
            window: 30d
            absent_after: off  # the million responses end on November 18
    """)
    n = 1_000_000
    status = np.full(n, "ok", dtype=object)
    status[np.linspace(0, n - 1, 320).astype(int)] = "error"
    start = np.datetime64("2026-11-01T00:00:00", "us")
    ts = start + (np.arange(n) * 1_500_000).astype("timedelta64[us]")
    data = write_records(
        pa.table(
            {
                "ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
                "status": pa.array(status.astype(str)),
            }
        )
    )
    run = cli(
        "evaluate",
        "--spec",
        spec,
        "--data",
        data,
        "--at",
        "2026-11-30T00:00:00Z",
        "--format",
        "json",
    )
    assert run.exit_code == 0, run.stderr
    slo = run.json()["slos"][0]
    assert slo["sli"]["value"] == pytest.approx(0.99968)
    assert slo["sli"]["n"] == n
    assert slo["budget"]["consumed"] == pytest.approx(0.64)
    assert slo["budget"]["remaining"] == pytest.approx(0.36)
    assert slo["budget"]["status"] == "healthy"
    assert slo["met"] is True


def test_uptime_from_outcome_counts(cli, write_spec, write_records):
    spec = write_spec("""
        service: ref
        slos:
          - name: uptime
            dimension: availability
            objective: {target: 0.9995}
    """)
    predictions = write_records({"ts": [BASE], "prediction": [1]})
    outcomes = write_records(
        {
            "ts": [BASE, BASE + timedelta(hours=1)],
            "total": [600_000, 400_000],
            "ok": [599_800, 399_880],
        }
    )
    run = cli(
        "evaluate",
        "--spec",
        spec,
        "--data",
        predictions,
        "--outcomes",
        outcomes,
        "--at",
        AT,
        "--format",
        "json",
    )
    assert run.exit_code == 0, run.stderr
    slo = run.json()["slos"][0]
    assert slo["sli"]["value"] == pytest.approx(0.99968)
    assert slo["budget"]["consumed"] == pytest.approx(0.64)


def _fairness_rows(tpr_hits: dict[str, int]) -> dict[str, list]:
    rows = []
    for group, hits in tpr_hits.items():
        rows += [(group, 1, 1 if i < hits else 0) for i in range(100)]
        rows += [(group, 0, 1 if i < 10 else 0) for i in range(100)]
    return {
        "id": [f"x{i}" for i in range(len(rows))],
        "ts": [BASE] * len(rows),
        "group": [r[0] for r in rows],
        "label": [r[1] for r in rows],
        "prediction": [r[2] for r in rows],
    }


def test_fairness_gap_exactly_at_the_bound(cli, write_spec, write_records):
    spec = write_spec("""
        service: ref
        slos:
          - name: fairness
            dimension: fairness
            sli: {metric: true_positive_rate_difference, attribute: group}
            objective: {target: 0.05}
    """)
    data = write_records(_fairness_rows({"A": 91, "B": 86}))
    run = cli("evaluate", "--spec", spec, "--data", data, "--at", AT, "--format", "json")
    assert run.exit_code == 0, run.stderr
    slo = run.json()["slos"][0]
    assert slo["sli"]["value"] == 0.05
    assert slo["met"] is True
    assert slo["budget"]["remaining"] == 0
    assert slo["budget"]["status"] == "exhausted"
    rates = {
        g["group"]["group"]: g["rates"]["true_positive_rate"]["value"] for g in slo["sli"]["groups"]
    }
    assert rates == {"A": pytest.approx(0.91), "B": pytest.approx(0.86)}
