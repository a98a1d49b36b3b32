"""``mlslo alerts`` and ``mlslo rules`` through the real CLI, on a small generated log with a
3-minute outage.

The log: 20 requests a minute for 3 days from T0, every one served 60 s after its input was
produced; from 12:00 to 12:03 on day 2.5 every request fails. At 12:03 the burn rates of a
99.9 % uptime SLO are exact: 60 errors in the last hour's 1200 requests is 50x, in the last 5
minutes' 100 it is 600x; over 6h 8.3x, 30m 100x; over 1d 2.08x and over 3d (2.5 days of log)
0.83x. So both page rules fire and neither ticket rule does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

T0 = datetime(2026, 3, 1, tzinfo=UTC)
OUTAGE = T0 + timedelta(days=2, hours=12)
AT = "2026-03-03T12:03:00Z"
BEFORE = "2026-03-03T11:59:00Z"

SPEC = """
service: fraud-scoring
slos:
  - name: uptime
    dimension: availability
    objective: {target: 0.999}
    runbook_url: https://runbooks.example.com/fraud-scoring/uptime
  - name: freshness
    dimension: freshness
    sli: {lag_threshold: 15m}
    objective: {target: 0.95}
    min_samples: 500
"""


@pytest.fixture
def files(write_spec: Callable[..., Path], write_records: Callable[..., Path]) -> tuple[Path, Path]:
    n = 3 * 1440 * 20
    ts = [T0 + timedelta(seconds=3 * i) for i in range(n)]
    status = ["error" if OUTAGE <= t < OUTAGE + timedelta(minutes=3) else "ok" for t in ts]
    stamp = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "id": pa.array([f"p{i}" for i in range(n)]),
            "ts": pa.array(ts, stamp),
            "status": pa.array(status),
            "event_ts": pa.array([t - timedelta(seconds=60) for t in ts], stamp),
        }
    )
    assert status.count("error") == 60
    return write_spec(SPEC), write_records(table)


def rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{a['slo']}/{a['rule']}": a for a in doc["alerts"]}


def test_alerts_json_shows_the_page_rules_firing(
    cli: Callable[..., Any], files: tuple[Path, Path]
) -> None:
    spec, data = files
    run = cli("alerts", "--spec", spec, "--data", data, "--at", AT, "--format", "json")
    assert run.exit_code == 1, run.stderr  # a page fires
    doc = run.json()
    assert doc["service"] == "fraud-scoring"
    assert doc["evaluated_at"] == AT
    alerts = rows(doc)
    assert len(alerts) == 2 * 6  # every rule of every SLO (absent too), whatever its status
    status = {k: a["status"] for k, a in alerts.items() if k.startswith("uptime/")}
    assert status == {
        "uptime/page-1h-5m": "firing",
        "uptime/page-6h-30m": "firing",
        "uptime/ticket-1d-2h": "ok",
        "uptime/ticket-3d-6h": "ok",
        "uptime/exhausted": "ok",
        "uptime/absent": "ok",
    }
    page = alerts["uptime/page-1h-5m"]
    assert page["severity"] == "page"
    assert (page["long_window"], page["short_window"], page["threshold"]) == ("1h", "5m", 14.4)
    assert page["long_burn_rate"] == pytest.approx(50.0)
    assert page["short_burn_rate"] == pytest.approx(600.0)
    assert (page["long_samples"], page["short_samples"]) == (1200, 100)
    slow = alerts["uptime/page-6h-30m"]
    assert slow["long_burn_rate"] == pytest.approx(60 / 7200 / 0.001)
    assert slow["short_burn_rate"] == pytest.approx(100.0)
    day = alerts["uptime/ticket-1d-2h"]
    assert day["long_burn_rate"] == pytest.approx(60 / 28800 / 0.001) and day["long_burn_rate"] < 3
    three = alerts["uptime/ticket-3d-6h"]
    assert three["long_samples"] == 2 * 28800 + 12 * 1200 + 60  # the log began 2.5 days ago
    assert three["long_burn_rate"] == pytest.approx(60 / three["long_samples"] / 0.001)
    budget = 1 - 60 / three["long_samples"] / 0.001
    assert page["budget_remaining"] == pytest.approx(budget)
    assert page["time_to_exhaustion_hours"] == pytest.approx(budget * 720 / 50.0)
    # freshness is fine, but its 5m window (100 inputs) is below min_samples 500
    fresh = alerts["freshness/page-1h-5m"]
    assert fresh["status"] == "suppressed"
    assert fresh["suppressed"] == (
        "the 5m window has 100 samples, fewer than min_samples 500: too few to fire"
    )
    assert fresh["long_burn_rate"] == 0.0
    assert alerts["freshness/page-6h-30m"]["status"] == "ok"


def test_alerts_json_before_the_outage_fires_nothing(
    cli: Callable[..., Any], files: tuple[Path, Path]
) -> None:
    spec, data = files
    run = cli("alerts", "--spec", spec, "--data", data, "--at", BEFORE, "--format", "json")
    assert run.exit_code == 0, run.stderr
    alerts = rows(run.json())
    assert not [k for k, a in alerts.items() if a["status"] == "firing"]
    assert alerts["uptime/page-1h-5m"]["long_burn_rate"] == 0.0


def table_rows(out: str) -> list[list[str]]:
    """The cells of each row of a rich table (rows are the lines with │ separators)."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if "│" in line]


def test_alerts_table_lists_what_fires_and_exits_like_the_gate(
    cli: Callable[..., Any], files: tuple[Path, Path]
) -> None:
    spec, data = files
    run = cli("alerts", "--spec", spec, "--data", data, "--at", AT)
    assert run.exit_code == 1, run.stderr  # a page fires: 1, as a blocking gate
    assert "fraud-scoring — alerts at 2026-03-03T12:03:00Z" in run.stdout
    # SLO, rule, severity, status, long burn, short burn, threshold, note; only what fires
    assert table_rows(run.stdout) == [
        ["uptime", "page-1h-5m", "page", "firing", "50.00×", "600.00×", "14.4×", ""],
        ["uptime", "page-6h-30m", "page", "firing", "8.33×", "100.00×", "6×", ""],
    ]


def test_alerts_table_all_shows_every_rule(
    cli: Callable[..., Any], files: tuple[Path, Path]
) -> None:
    spec, data = files
    run = cli("alerts", "--spec", spec, "--data", data, "--at", AT, "--all")
    assert run.exit_code == 1, run.stderr
    uptime = {row[1]: row[3] for row in table_rows(run.stdout) if row[0] == "uptime"}
    assert uptime == {
        "page-1h-5m": "firing",
        "page-6h-30m": "firing",
        "ticket-1d-2h": "ok",
        "ticket-3d-6h": "ok",
        "exhausted": "ok",
        "absent": "ok",
    }
    held = {(row[0], row[1]): (row[3], row[7]) for row in table_rows(run.stdout)}
    assert held[("freshness", "page-1h-5m")] == (
        "held back",
        "the 5m window has 100 samples, fewer than min_samples 500: too few to fire",
    )
    quiet = cli("alerts", "--spec", spec, "--data", data, "--at", BEFORE)
    assert quiet.exit_code == 0
    assert table_rows(quiet.stdout) == []
    assert "no alert would fire (--all shows every rule)" in quiet.stdout


def test_rules_yaml_has_the_recording_and_alerting_groups(
    cli: Callable[..., Any], write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = write_spec(SPEC)
    run = cli("rules", spec)
    assert run.exit_code == 0, run.stderr
    doc = yaml.safe_load(run.stdout)
    groups = {g["name"]: g["rules"] for g in doc["groups"]}
    assert list(groups) == ["mlslo-fraud-scoring-burn-rates", "mlslo-fraud-scoring-alerts"]
    recording, alerting = groups.values()
    assert all("record" in r and "expr" in r for r in recording)
    assert len(recording) == 2 * 4 * 2  # burn rate and samples, per burn rule, per SLO
    assert all("alert" in r for r in alerting)
    burns = [r for r in alerting if r["alert"] == "MlsloErrorBudgetBurn"]
    assert len(burns) == 8 and len(alerting) == 12  # and exhausted and absent per SLO
    page = next(
        r
        for r in burns
        if r["labels"] == {"slo": "uptime", "severity": "page", "rule": "page-1h-5m"}
    )
    assert "> 14.4" in page["expr"] and ">= 1" in page["expr"]
    assert page["annotations"]["runbook_url"] == "https://runbooks.example.com/fraud-scoring/uptime"
    thin = next(
        r
        for r in burns
        if r["labels"]["slo"] == "freshness" and r["labels"]["rule"] == "page-1h-5m"
    )
    assert ">= 500" in thin["expr"]  # min_samples carries over
    out = tmp_path / "rules.yaml"
    written = cli("rules", spec, "--out", out)
    assert written.exit_code == 0 and written.stdout == ""
    assert yaml.safe_load(out.read_text(encoding="utf-8")) == doc
    assert json.dumps(doc)  # plain data: no YAML-only types


def test_alerts_exit_3_when_only_a_ticket_fires(
    cli: Callable[..., Any], write_spec: Callable[..., Path], files: tuple[Path, Path]
) -> None:
    _, data = files
    ticket_only = SPEC.replace(
        "objective: {target: 0.999}",
        "objective: {target: 0.999}\n"
        "    alerts: [{long: 1h, short: 5m, burn_rate: 14.4, severity: ticket}]",
        1,
    )
    assert ticket_only != SPEC
    run = cli("alerts", "--spec", write_spec(ticket_only), "--data", data, "--at", AT)
    assert run.exit_code == 3, run.stdout + run.stderr
    assert [row[2] for row in table_rows(run.stdout)] == ["ticket"]


def test_every_command_takes_the_spec_as_an_option(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    spec = write_spec(SPEC)
    for command in ("validate", "rules"):
        positional, option = cli(command, spec), cli(command, "--spec", spec)
        assert positional.exit_code == option.exit_code == 0, option.stderr
        assert positional.stdout == option.stdout
        both = cli(command, spec, "--spec", spec)
        assert both.exit_code == 2 and "give the spec once" in both.stderr
