"""``mlslo demo``: the files it writes show the four planted incidents in the numbers, and the
served demo answers with its dashboard.

The generated files are evaluated by the real ``mlslo evaluate`` (DuckDB); the incident times
come from :meth:`Scenario.incidents`, not from constants copied into the test.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from conftest import free_port
from mlslo.demo.scenario import DEMO_SPEC, Incident, Scenario
from mlslo.spec import load_spec

AT = "2026-11-20T12:00:00Z"
END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
VOLUME = 5000
SLOS = ["accuracy", "freshness", "lag-p95", "uptime", "latency", "fairness"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``mlslo demo --no-serve`` then ``mlslo evaluate --series 1d`` on what it wrote, run
    in process the way the ``cli`` fixture runs them (module scope: generated once)."""
    from typer.testing import CliRunner

    from mlslo.cli import app

    out = tmp_path_factory.mktemp("demo") / "files"
    runner = CliRunner()
    demo = runner.invoke(
        app,
        ["demo", "--no-serve", "--out", str(out), "--at", AT, "--volume", str(VOLUME)],
        catch_exceptions=False,
    )
    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            "--spec",
            str(out / "spec.yaml"),
            "--data",
            str(out / "predictions.parquet"),
            "--labels",
            str(out / "labels.parquet"),
            "--at",
            AT,
            "--format",
            "json",
            "--series",
            "1d",
        ],
        catch_exceptions=False,
    )
    return {"out": out, "demo": demo, "evaluated": evaluated}


@pytest.fixture(scope="module")
def slos(generated: dict[str, Any]) -> dict[str, dict[str, Any]]:
    import json

    run = generated["evaluated"]
    assert run.exit_code == 0, run.stderr
    return {entry["name"]: entry for entry in json.loads(run.stdout)["slos"]}


@pytest.fixture(scope="module")
def incidents() -> dict[str, Incident]:
    return {i.dimension: i for i in Scenario(end=END, daily_volume=VOLUME).incidents()}


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _steps(entry: dict[str, Any]) -> list[tuple[datetime, datetime, float | None]]:
    return [(_moment(p["start"]), _moment(p["end"]), p["value"]) for p in entry["series"]]


def _step_holding(entry: dict[str, Any], moment: datetime) -> tuple[datetime, datetime, float]:
    for start, end, value in _steps(entry):
        if start <= moment < end:
            assert value is not None, f"{entry['name']}: no value in the step of {moment}"
            return start, end, value
    raise AssertionError(f"{entry['name']}: no step holds {moment}")


# --- the files ------------------------------------------------------------------------------


def test_demo_writes_the_spec_and_the_records(generated):
    run, out = generated["demo"], generated["out"]
    assert run.exit_code == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "labels.parquet",
        "predictions.parquet",
        "spec.yaml",
    ]
    assert (out / "spec.yaml").read_text(encoding="utf-8") == DEMO_SPEC
    assert [s.name for s in load_spec(out / "spec.yaml").slos] == SLOS
    predictions = pq.read_table(out / "predictions.parquet")
    labels = pq.read_table(out / "labels.parquet")
    days = Scenario(end=END).days
    assert 0.9 * VOLUME * days < predictions.num_rows < 1.1 * VOLUME * days
    assert 0.5 * predictions.num_rows < labels.num_rows < predictions.num_rows
    assert {"id", "ts", "status", "latency_ms", "event_ts", "prediction", "score", "group"} <= set(
        predictions.column_names
    )
    last = max(predictions.column("ts").to_pylist())
    assert END - timedelta(minutes=1) <= last < END
    # it says what it planted and how to look at it
    for incident in Scenario(end=END).incidents():
        assert incident.name in run.stdout
    assert "Try: mlslo evaluate --spec" in run.stdout and AT in run.stdout


# --- the planted incidents, in the numbers ---------------------------------------------------


def test_fairness_regression_of_v2_exhausts_the_budget(slos, incidents):
    fairness = slos["fairness"]
    assert fairness["budget"]["status"] == "exhausted"
    assert fairness["budget"]["remaining"] < 0
    assert fairness["met"] is False
    switch = incidents["fairness"].start
    before = [v for _, end, v in _steps(fairness) if v is not None and end <= switch]
    after = [v for start, _, v in _steps(fairness) if v is not None and start >= switch]
    assert len(before) >= 10 and len(after) >= 3, (before, after)
    target = fairness["objective"]["target"]
    assert statistics.mean(before) < target < min(after), (before, after)
    assert min(after) > max(before)
    groups = {g["group"]["group"]: g for g in fairness["sli"]["groups"]}
    assert set(groups) == {"A", "B"}


def test_serving_outage_consumes_the_uptime_budget(slos, incidents):
    uptime = slos["uptime"]
    assert uptime["budget"]["consumed"] > 0.5
    assert uptime["budget"]["status"] in ("low", "exhausted")
    outage = incidents["availability"]
    _, _, on_the_day = _step_holding(uptime, outage.start)
    others = [v for s, e, v in _steps(uptime) if v is not None and not s <= outage.start < e]
    # 25 minutes of failures pull that day far below every other (which only see stray errors)
    assert on_the_day < uptime["objective"]["target"]
    assert on_the_day < min(others) - 0.01, (on_the_day, min(others))
    assert statistics.median(others) >= uptime["objective"]["target"]
    assert on_the_day == min(v for _, _, v in _steps(uptime) if v is not None)
    # the burn-down drops on that day by more than on any other
    burndown = [(_moment(p["t"]), p["remaining"]) for p in uptime["burndown"]]
    drops = {
        t1: r0 - r1
        for (_, r0), (t1, r1) in itertools.pairwise(burndown)
        if r0 is not None and r1 is not None
    }
    worst = max(drops, key=lambda t: drops[t])
    assert worst - timedelta(days=1) <= outage.start < worst + timedelta(days=1)


def test_feature_pipeline_stall_shows_in_freshness_and_lag(slos, incidents):
    stall = incidents["freshness"]
    freshness, lag = slos["freshness"], slos["lag-p95"]
    _, _, fresh_on_the_day = _step_holding(freshness, stall.start)
    fresh_others = [
        v for s, e, v in _steps(freshness) if v is not None and not s <= stall.start < e
    ]
    assert fresh_on_the_day < freshness["objective"]["target"] <= min(fresh_others)
    _, _, lag_on_the_day = _step_holding(lag, stall.start)
    lag_others = [v for s, e, v in _steps(lag) if v is not None and not s <= stall.start < e]
    assert lag["sli"]["unit"] == "s"
    assert lag_on_the_day > lag["objective"]["target"] >= max(lag_others)
    assert lag_on_the_day > 1.4 * statistics.median(lag_others)
    assert freshness["budget"]["consumed"] > 0


def test_accuracy_drift_lowers_daily_f1(slos, incidents):
    accuracy = slos["accuracy"]
    drift = incidents["accuracy"]
    steps = [(s, e, v) for s, e, v in _steps(accuracy) if v is not None]
    before = [v for s, e, v in steps if e <= drift.start]
    # the second half of the drift, when the model has slid furthest
    middle = drift.start + (drift.end - drift.start) / 2
    during = [v for s, e, v in steps if s >= middle and e <= drift.end + timedelta(days=1)]
    recovered = [
        v
        for s, e, v in steps
        if s >= drift.end + timedelta(days=2) and e <= incidents["fairness"].start
    ]
    assert len(before) >= 5 and len(during) >= 2 and recovered, (before, during, recovered)
    assert max(during) < min(before), (during, before)
    assert statistics.mean(during) < accuracy["objective"]["target"] < statistics.mean(before)
    assert min(recovered) > max(during)
    assert accuracy["budget"]["consumed"] > 0.5
    assert 0.5 < accuracy["sli"]["label_coverage"] < 1


def test_healthy_slos_stay_healthy(slos):
    """The incidents are planted, not everywhere: latency is within its objective."""
    assert slos["latency"]["met"] is True
    assert slos["latency"]["budget"]["status"] == "healthy"


# --- the served demo ------------------------------------------------------------------------


def _mlslo() -> str:
    script = Path(sys.executable).with_name("mlslo")
    if not script.exists():
        pytest.fail(f"{script} is missing: pip install -e . first", pytrace=False)
    return str(script)


def _reader(stream: Any, lines: list[str]) -> Callable[[], None]:
    def read() -> None:
        for line in iter(stream.readline, ""):
            lines.append(line)

    return read


def test_demo_serves_its_dashboard(tmp_path):
    port = free_port()
    at = "2026-11-20T12:00:00Z"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "TERM": "dumb"}
    lines: list[str] = []
    with (tmp_path / "stderr.txt").open("w", encoding="utf-8") as errors:
        process = subprocess.Popen(
            [
                _mlslo(),
                "demo",
                "--out",
                str(tmp_path / "demo"),
                "--port",
                str(port),
                "--at",
                at,
                "--volume",
                "3000",
            ],
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert process.stdout is not None
        reader = threading.Thread(target=_reader(process.stdout, lines), daemon=True)
        reader.start()
        try:
            pattern = re.compile(rf"(http://127\.0\.0\.1:{port}/\?token=\S+)")
            deadline = time.monotonic() + 90
            url = None
            while url is None:
                found = pattern.search("".join(lines))
                if found:
                    url = found.group(1)
                    break
                if process.poll() is not None:
                    pytest.fail(
                        f"mlslo demo exited with {process.returncode}: {''.join(lines)}"
                        f"{(tmp_path / 'stderr.txt').read_text()}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail(f"no dashboard URL after 90 s; stdout: {''.join(lines)}")
                time.sleep(0.2)
            html = ""
            with httpx.Client(follow_redirects=True, timeout=30) as client:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        response = client.get(url)
                        break
                    except httpx.ConnectError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                assert response.status_code == 200
                assert str(response.url) == f"http://127.0.0.1:{port}/"
                assert "mlslo_token" in client.cookies
                html = response.text
                again = client.get(f"http://127.0.0.1:{port}/slo/uptime")
                assert again.status_code == 200 and 'id="slo-h"' in again.text
            for name in SLOS:
                assert f'data-slo="{name}"' in html, name
            values = dict(re.findall(r'data-slo="([^"]+)" data-value="([^"]*)"', html))
            assert all(values[name] for name in SLOS), values  # every SLO has data
            # the clock follows --at: the dashboard is "now" at the end of the traffic
            assert "as of 2026-11-20 12:0" in html
            assert 'class="card exhausted"' in html  # the planted incidents show
        finally:
            process.send_signal(signal.SIGINT)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
                code = None
            reader.join(timeout=10)
            process.stdout.close()
    assert code is not None, "mlslo demo did not stop on SIGINT within 30 s"
    assert code in (0, 130, -signal.SIGINT), code
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text(encoding="utf-8")
    assert (tmp_path / "demo" / "mlslo.duckdb").exists()
