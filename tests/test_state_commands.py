"""``mlslo alerts``, ``gate`` and ``report`` with ``--state``: after ``mlslo scan --state`` over
tables in a real DuckDB file, each gives the same JSON, file and exit code as reading the
tables directly at the state's watermark, and refuses ``--state`` together with records."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from mlslo.cli import app

T0 = datetime(2026, 11, 20, tzinfo=UTC)
WATERMARK = "2026-11-20T06:00:00Z"
SPEC = """
    service: state-commands
    bucket: 5m
    slos:
      - name: uptime
        dimension: availability
        objective: {target: 0.995}
        window: 1d
      - name: acc
        dimension: accuracy
        sli: {metric: accuracy}
        objective: {target: 0.9}
        window: 1d
    policy:
      hard_stop: [uptime]
      min_remaining: {acc: 0.5}
"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Six hours of predictions (an 18-minute outage in the last) and late labels, as two
    tables of one DuckDB file; returns the spec and the options naming them."""
    tmp_path = tmp_path_factory.mktemp("records")
    rng = np.random.default_rng(16)
    n = 6 * 60 * 4
    minutes = np.arange(n) / 4
    outage = (minutes >= 340) & (minutes < 358)
    status = np.where(outage | (rng.random(n) < 0.002), "error", "ok")
    predicted = rng.integers(0, 2, n)
    truth = np.where(rng.random(n) < 0.96, predicted, 1 - predicted)
    labelled = rng.random(n) < 0.7
    path = tmp_path / "log.db"
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone='UTC'")
    con.execute(
        "CREATE TABLE predictions (id VARCHAR, ts TIMESTAMPTZ, status VARCHAR, prediction BIGINT)"
    )
    con.executemany(
        "INSERT INTO predictions VALUES (?, ?, ?, ?)",
        [
            (f"p{i}", T0 + timedelta(minutes=float(minutes[i])), str(status[i]), int(predicted[i]))
            for i in range(n)
        ],
    )
    con.execute("CREATE TABLE labels (id VARCHAR, ts TIMESTAMPTZ, label BIGINT)")
    con.executemany(
        "INSERT INTO labels VALUES (?, ?, ?)",
        [
            (f"p{i}", T0 + timedelta(minutes=float(minutes[i]) + 45), int(truth[i]))
            for i in np.flatnonzero(labelled)
        ],
    )
    con.close()
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(SPEC).lstrip(), encoding="utf-8")
    tables = ["--data", f"duckdb://{path}?table=predictions"]
    tables += ["--labels", f"duckdb://{path}?table=labels"]
    return spec, tables


@pytest.fixture(scope="module")
def state(recorded: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state after three hourly incremental scans up to the watermark."""
    spec, tables = recorded
    folder = tmp_path_factory.mktemp("scanned") / "state"
    runner = CliRunner()
    for hour in ("04", "05", "06"):
        at = f"2026-11-20T{hour}:00:00Z"
        args = ["scan", "--spec", spec, *tables, "--state", folder, "--at", at]
        run = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert run.exit_code == 0, run.stderr
    assert "incremental" in run.stdout
    return folder


def test_alerts_from_state_equal_alerts_from_the_tables(cli, recorded, state):
    spec, tables = recorded
    direct = cli("alerts", "--spec", spec, *tables, "--at", WATERMARK, "-f", "json")
    stored = cli("alerts", "--spec", spec, "--state", state, "-f", "json")
    assert direct.exit_code == 1, direct.stderr  # the outage pages
    assert stored.exit_code == direct.exit_code, stored.stderr
    assert json.loads(stored.stdout) == json.loads(direct.stdout)
    firing = [a for a in json.loads(stored.stdout)["alerts"] if a["status"] == "firing"]
    assert {a["slo"] for a in firing} == {"uptime"}


def test_gate_from_state_equals_the_gate_from_the_tables(cli, recorded, state):
    spec, tables = recorded
    direct = cli("gate", "--spec", spec, *tables, "--at", WATERMARK, "-f", "json")
    stored = cli("gate", "--spec", spec, "--state", state, "--at", WATERMARK, "-f", "json")
    assert direct.exit_code == 1, direct.stderr  # the uptime budget is spent: block
    assert stored.exit_code == 1, stored.stderr
    assert json.loads(stored.stdout) == json.loads(direct.stdout)
    assert json.loads(stored.stdout)["decision"] == "block"


def test_report_from_state_equals_the_report_from_the_tables(cli, recorded, state, tmp_path):
    spec, tables = recorded
    direct, stored = tmp_path / "direct.md", tmp_path / "stored.md"
    made = cli("report", "--spec", spec, *tables, "--at", WATERMARK, "-o", direct)
    assert made.exit_code == 0, made.stderr
    made = cli("report", "--spec", spec, "--state", state, "-o", stored)
    assert made.exit_code == 0, made.stderr
    text = stored.read_text(encoding="utf-8")
    assert text == direct.read_text(encoding="utf-8")
    assert "uptime" in text and "block" in text


@pytest.mark.parametrize("command", ["alerts", "gate", "report", "evaluate"])
def test_state_with_records_is_one_line_exit_2(cli, recorded, state, tmp_path, command):
    spec, tables = recorded
    extra = ["-o", tmp_path / "r.md"] if command == "report" else []
    run = cli(command, "--spec", spec, *tables[2:], "--state", state, *extra)
    assert run.exit_code == 2
    assert run.stderr.strip().count("\n") == 0
    assert "--state" in run.stderr and "--data" in run.stderr and "not both" in run.stderr


def test_state_at_another_moment_and_a_candidate_are_refused(cli, recorded, state):
    spec, _ = recorded
    run = cli("gate", "--spec", spec, "--state", state, "--at", "2026-11-20T05:00:00Z")
    assert run.exit_code == 2 and "as of 2026-11-20T06:00:00" in run.stderr
    run = cli("gate", "--spec", spec, "--state", state, "--candidate", "model_version=v2")
    assert run.exit_code == 2 and run.stderr.startswith("error: --candidate:")
