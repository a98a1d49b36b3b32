"""The spec: defaults implied by each metric, and located, actionable validation errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mlslo.errors import SpecError
from mlslo.moments import format_duration, parse_duration
from mlslo.spec import parse_spec

REFERENCE_SPEC = Path(__file__).parent / "data" / "design_spec.yaml"


def test_design_example_spec_validates(cli):
    run = cli("validate", REFERENCE_SPEC)
    assert run.exit_code == 0, run.stderr
    assert "valid" in run.stdout
    assert "5 SLOs" in run.stdout


def test_defaults_follow_the_metric():
    spec = parse_spec(REFERENCE_SPEC.read_text())
    got = {s.name: (s.metric, s.op, s.effective_budgeting, s.target) for s in spec.slos}
    assert got == {
        "accuracy": ("f1", ">=", "aggregate", 0.92),
        "freshness": ("fresh_share", ">=", "occurrences", 0.95),
        "uptime": ("availability", ">=", "occurrences", 0.9995),
        "latency": ("fast_share", ">=", "occurrences", 0.99),
        "fairness": ("true_positive_rate_difference", "<=", "aggregate", 0.05),
    }
    assert spec.slos[0].window.rolling == timedelta(days=30)
    assert spec.bucket == timedelta(minutes=1)


def test_percentile_targets_are_durations_in_the_sli_unit():
    spec = parse_spec("""
service: s
slos:
  - {name: lag, dimension: freshness, sli: {percentile: 95}, objective: {target: 15m}}
  - {name: lat, dimension: latency, sli: {percentile: 99}, objective: {target: 250ms}}
  - {name: mae, dimension: accuracy, sli: {metric: mae}, objective: {target: 3}}
  - {name: di, dimension: fairness, sli: {metric: disparate_impact_ratio, attribute: g},
     objective: {target: 0.8}}
""")
    lag, lat, mae, di = spec.slos
    assert (lag.metric, lag.op, lag.unit, lag.target) == ("lag_p95", "<=", "s", 900.0)
    assert (lat.metric, lat.op, lat.unit, lat.target) == ("latency_p99", "<=", "ms", 250.0)
    assert (mae.op, mae.effective_budgeting) == ("<=", "aggregate")
    assert di.op == ">="


def test_windows_and_timeslices():
    spec = parse_spec("""
service: s
bucket: 5m
slos:
  - name: monthly
    dimension: availability
    objective: {target: 0.999}
    window: {calendar: month}
  - name: hourly-f1
    dimension: accuracy
    sli: {metric: f1}
    budgeting: timeslices
    slice: 1h
    objective: {target: 0.99, timeslice_target: 0.9}
    window: 7d
""")
    monthly, hourly = spec.slos
    assert str(monthly.window) == "calendar month"
    assert hourly.effective_budgeting == "timeslices"
    assert (hourly.op, hourly.slice_op, hourly.timeslice_target) == (">=", ">=", 0.9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", timedelta(milliseconds=250)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(days=14)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_durations_round_trip(text, expected):
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "15", "15 minutes", "m15", "0s", "-5m"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match=r"duration|longer than zero"):
        parse_duration(text)


BASE = """service: s
slos:
  - name: uptime
    dimension: availability
    objective: {target: 0.999}
  - name: fair
    dimension: fairness
    sli: {metric: true_positive_rate_difference, attribute: group}
    objective: {target: 0.05}
policy:
  hard_stop: [uptime]
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "path", "fragments"),
    [
        (
            "target: 0.999",
            "target: 1.5",
            5,
            "slos[0].objective.target",
            ["between 0 and 1", "found 1.5"],
        ),
        ("target: 0.05", "target: 0", 9, "slos[1].objective.target", ["greater than 0"]),
        (
            "dimension: fairness",
            "dimension: fairnes",
            7,
            "slos[1].dimension",
            ["must be one of", "'fairnes'"],
        ),
        (
            "attribute: group}",
            "attribute: group, colour: red}",
            8,
            "slos[1].sli.colour",
            ["unknown field 'colour'", "expected one of: metric, attribute"],
        ),
        (
            "    objective: {target: 0.999}\n",
            "    objectve: {target: 0.999}\n",
            5,
            "slos[0].objectve",
            ["unknown field 'objectve'", "did you mean 'objective'"],
        ),
        (
            "hard_stop: [uptime]",
            "hard_stop: [uptme]",
            11,
            "policy.hard_stop[0]",
            ["'uptme' names no SLO (did you mean 'uptime'?)", "did you mean 'uptime'"],
        ),
        ("  - name: fair", "  - name: uptime", 6, "slos[1].name", ["used twice"]),
        (
            "metric: true_positive_rate_difference",
            "metric: tpr",
            8,
            "slos[1].sli.metric",
            ["must be one of"],
        ),
    ],
)
def test_located_errors(cli, write_spec, old, new, line, path, fragments):
    assert old in BASE
    spec = write_spec(BASE.replace(old, new), name="bad.yaml")
    run = cli("validate", spec)
    assert run.exit_code == 2
    message = run.stderr.strip()
    assert len(message.splitlines()) == 1
    assert message.startswith(f"error: {spec}:{line}: {path}: "), message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("service: s\nslos: []\n", "slos: list should have at least 1 item"),
        (
            "service: s\nslos:\n  - {name: a, dimension: latency, objective: {target: 0.9}}\n",
            "slos[0].sli: is required",
        ),
        (
            "service: s\nslos:\n  - {name: a, dimension: latency, sli: {latency_threshold: 250},"
            " objective: {target: 0.9}}\n",
            "expected a duration",
        ),
        (
            "service: s\nslos:\n  - {name: a, dimension: freshness, sli: {percentile: 95},"
            " objective: {target: 0.9}}\n",
            "is a duration; write the bound with a unit",
        ),
        (
            "service: s\nslos:\n  - {name: a, dimension: accuracy, sli: {metric: f1},"
            " budgeting: occurrences, objective: {target: 0.9}}\n",
            "slos[0].budgeting: occurrences counts good and bad events",
        ),
        (
            "service: s\nslos:\n  - {name: a, dimension: availability, window: 100d,"
            " objective: {target: 0.9}}\n",
            "between 5m and 90d",
        ),
        (
            "service: s\nbucket: 7m\nslos:\n  - {name: a, dimension: availability,"
            " objective: {target: 0.9}}\n",
            "divides a day",
        ),
        (
            "service: s\nslos:\n  - {name: a, dimension: fairness, objective: {target: 0.1},"
            " sli: {metric: demographic_parity_difference, attribute: g, method: reference}}\n",
            "needs reference_group",
        ),
        ("version: 2\nservice: s\nslos: []\n", "spec version 2 is not supported"),
        ("service: s\nservice: t\nslos: []\n", "key 'service' appears twice"),
        ("service: [unclosed\n", "not valid YAML"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_more_errors(write_spec, text, fragment):
    with pytest.raises(SpecError) as caught:
        parse_spec(text, file="x.yaml")
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("x.yaml")


def test_missing_spec_file(cli, tmp_path):
    run = cli("validate", tmp_path / "nope.yaml")
    assert run.exit_code == 2
    assert (
        run.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: file not found; pass the "
        "path of your SLO spec (YAML)"
    )
