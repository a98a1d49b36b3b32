"""The CLI as people use it: the installed entry point, formats, help and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from mlslo.version import __version__

BASE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
AT = "2026-11-21T00:00:00Z"
SPEC = """
    service: cli
    slos:
      - name: uptime
        dimension: availability
        objective: {target: 0.99}
      - name: f1
        dimension: accuracy
        sli: {metric: f1}
        objective: {target: 0.9}
"""


def _records(write_records):
    n = 20
    return write_records(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": [BASE + timedelta(minutes=i) for i in range(n)],
            "status": ["ok"] * (n - 1) + ["error"],
            "prediction": [1, 0] * (n // 2),
            "label": [1, 0] * (n // 2 - 1) + [None, None],
        }
    )


def test_installed_entry_point_and_exit_codes(write_spec, write_records):
    exe = shutil.which("mlslo") or str(
        __import__("pathlib").Path(sys.executable).with_name("mlslo")
    )
    spec = write_spec(SPEC)
    data = _records(write_records)
    ok = subprocess.run(
        [exe, "evaluate", "--spec", spec, "--data", data, "--at", AT, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["service"] == "cli"
    assert doc["evaluated_at"] == AT
    assert [s["name"] for s in doc["slos"]] == ["uptime", "f1"]
    bad = subprocess.run(
        [exe, "evaluate", "--spec", spec, "--data", "missing.parquet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: missing.parquet: no such file")
    assert "Traceback" not in bad.stderr
    usage = subprocess.run(
        [exe, "evaluate", "--spec", spec], capture_output=True, text=True, check=False
    )
    assert usage.returncode == 2
    assert "--data" in usage.stderr


def test_version_and_help(cli):
    assert cli("--version").stdout.strip() == f"mlslo {__version__}"
    help_text = cli("--help").stdout
    for command in ("evaluate", "validate"):
        assert command in help_text
    evaluate_help = cli("evaluate", "--help").stdout
    for option in (
        "--spec",
        "--data",
        "--labels",
        "--outcomes",
        "--at",
        "--format",
        "--series",
        "--engine",
    ):
        assert option in evaluate_help


def test_table_and_markdown_show_every_slo(cli, write_spec, write_records):
    spec = write_spec(SPEC)
    data = _records(write_records)
    table = cli("evaluate", "--spec", spec, "--data", data, "--at", AT)
    assert table.exit_code == 0, table.stderr
    assert "uptime" in table.stdout and "f1" in table.stdout
    assert "95.000%" in table.stdout
    assert "exhausted" in table.stdout
    assert "90.0% of predictions labelled" in table.stdout
    markdown = cli("evaluate", "--spec", spec, "--data", data, "--at", AT, "-f", "markdown")
    assert markdown.exit_code == 0
    lines = markdown.stdout.splitlines()
    assert lines[0] == f"# cli — SLOs at {AT}"
    rows = [line for line in lines if line.startswith("| uptime") or line.startswith("| f1")]
    assert len(rows) == 2
    assert "| 1.0000 (n=18) |" in rows[1]


def test_series_covers_the_window(cli, write_spec, write_records):
    spec = write_spec(SPEC)
    run = cli(
        "evaluate",
        "--spec",
        spec,
        "--data",
        _records(write_records),
        "--at",
        AT,
        "-f",
        "json",
        "--series",
        "1d",
    )
    assert run.exit_code == 0, run.stderr
    series = run.json()["slos"][0]["series"]
    assert len(series) == 30
    assert series[0]["start"] == "2026-10-22T00:00:00Z"
    assert series[-1]["end"] == AT
    assert [p["n"] for p in series[:-1]] == [0] * 29
    assert series[-1]["n"] == 20
    assert series[-1]["value"] == 0.95
    bad = cli("evaluate", "--spec", spec, "--data", _records(write_records), "--series", "daily")
    assert bad.exit_code == 2
    assert "--series" in bad.stderr


def test_dedupe_counts_a_repeated_id_once(cli, write_spec, write_records):
    spec = write_spec(SPEC)
    rows = {
        "id": ["a", "b", "a", "c"],
        "ts": [BASE] * 4,
        "status": ["ok", "error", "ok", "ok"],
        "prediction": [1, 0, 1, 1],
        "label": [1, 0, 1, 0],
    }
    data = write_records(rows)
    plain = cli("evaluate", "--spec", spec, "--data", data, "--at", AT, "-f", "json").json()
    once = cli(
        "evaluate", "--spec", spec, "--data", data, "--at", AT, "-f", "json", "--dedupe"
    ).json()
    assert plain["slos"][0]["sli"]["valid"] == 4
    assert once["slos"][0]["sli"]["valid"] == 3
    assert once["slos"][0]["sli"]["good"] == 2
    assert once["slos"][1]["sli"]["n"] == 3
    separate = write_records({k: v for k, v in rows.items() if k != "label"})
    labels = write_records({"id": ["a", "b", "c"], "ts": [BASE] * 3, "label": [1, 0, 0]})
    joined = cli(
        "evaluate",
        "--spec",
        spec,
        "--data",
        separate,
        "--labels",
        labels,
        "--at",
        AT,
        "-f",
        "json",
        "--dedupe",
    ).json()
    assert [s["sli"] for s in joined["slos"]] == [s["sli"] for s in once["slos"]]
    no_id = write_records({k: v for k, v in rows.items() if k != "id"})
    run = cli("evaluate", "--spec", spec, "--data", no_id, "--dedupe")
    assert run.exit_code == 2
    assert "counting each prediction id once needs the id column" in run.stderr


def test_series_shows_in_the_table_and_markdown_too(cli, write_spec, write_records):
    spec = write_spec(SPEC)
    data = _records(write_records)
    table = cli("evaluate", "--spec", spec, "--data", data, "--at", AT, "--series", "12h")
    assert table.exit_code == 0, table.stderr
    assert "uptime: availability per step" in table.stdout
    assert "│ 2026-11-20 12:00 │ 2026-11-21 00:00 │" in table.stdout
    markdown = cli(
        "evaluate", "--spec", spec, "--data", data, "--at", AT, "--series", "12h", "-f", "markdown"
    )
    assert "## f1: f1 per step" in markdown.stdout
    assert "| 2026-11-20 12:00 | 2026-11-21 00:00 |" in markdown.stdout
    plain = cli("evaluate", "--spec", spec, "--data", data, "--at", AT)
    assert "per step" not in plain.stdout
