"""Unit tests of :mod:`mlslo.measure.budget` and :mod:`mlslo.measure.windows`: the budget
formulas, the SRE Workbook burn windows and their scaling, time to exhaustion and window
bounds (docs/concepts.md, Error budgets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mlslo.measure.budget import (
    TOLERANCE,
    Budget,
    budget,
    consumed_aggregate,
    consumed_occurrences,
    is_met,
    snap,
    time_to_exhaustion,
)
from mlslo.measure.windows import (
    STANDARD_BURN_WINDOWS,
    burn_key,
    standard_burn_windows,
    window_bounds,
)
from mlslo.spec import Window

MINUTE = timedelta(minutes=1)


def rolling(text: str) -> Window:
    return Window.model_validate(text)


def keys(windows: list[timedelta]) -> list[str]:
    return [burn_key(w) for w in windows]


# --- occurrences ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("good", "valid", "target", "consumed"),
    [
        (999_680, 1_000_000, 0.9995, 0.64),  # docs/concepts.md: 320 failed of 1,000,000
        (3, 5, 0.95, 8.0),  # docs/concepts.md: freshness, 2 of 5 stale against 95 %
        (100, 100, 0.99, 0.0),  # nothing bad: nothing spent
        (99, 100, 0.99, 1.0),  # exactly the allowed bad events
        (0, 100, 0.99, 100.0),  # everything bad: 1 / (1 - target)
        (0.5, 1, 0.5, 1.0),  # statistics may be fractional (estimates)
    ],
)
def test_consumed_occurrences(good, valid, target, consumed):
    assert consumed_occurrences(good, valid, target) == pytest.approx(consumed, rel=1e-12)


@pytest.mark.parametrize("valid", [0, 0.0, -1])
def test_consumed_occurrences_without_valid_events_is_undefined(valid):
    assert consumed_occurrences(0, valid, 0.99) is None


def test_consumed_occurrences_is_bad_over_allowed_bad():
    good, valid, target = 9_990, 10_000, 0.999
    allowed_bad = (1 - target) * valid
    assert consumed_occurrences(good, valid, target) == pytest.approx((valid - good) / allowed_bad)
    # twice the bad events, twice the budget
    assert consumed_occurrences(9_980, valid, target) == pytest.approx(
        2 * consumed_occurrences(good, valid, target)
    )


# --- aggregate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "target", "op", "consumed"),
    [
        (10 / 12, 0.92, ">=", 2.0833333333333335),  # docs/concepts.md accuracy: F1 0.8333 vs 0.92
        (1.0, 0.92, ">=", 0.0),  # the ideal spends nothing
        (0.92, 0.92, ">=", 1.0),  # on the bound: all of it
        (0.0, 0.5, ">=", 2.0),
        (0.05, 0.05, "<=", 1.0),  # docs/concepts.md fairness: gap 0.05 vs <= 0.05
        (0.0, 0.05, "<=", 0.0),  # lower is better: ideal 0
        (28 * 60.0, 15 * 60.0, "<=", 28 / 15),  # p95 lag 28 min vs <= 15 min
        (1.5, 3.0, "<=", 0.5),  # MAE 1.5 vs <= 3
        (0.7, 0.8, ">=", 1.5),  # disparate impact 0.7 vs >= 0.8
    ],
)
def test_consumed_aggregate(value, target, op, consumed):
    assert consumed_aggregate(value, target, op) == pytest.approx(consumed, rel=1e-12)


def test_reference_accuracy_budget():
    f1 = 2 * 5 / (2 * 5 + 1 + 1)  # tp 5, fp 1, fn 1
    consumed = consumed_aggregate(f1, 0.92, ">=")
    result = budget(consumed, n=10, min_samples=1, defined=True, low_share=0.25)
    assert f1 == pytest.approx(0.8333, abs=5e-5)
    assert result.consumed == pytest.approx(2.083, abs=5e-4)
    assert result.remaining == pytest.approx(-1.083, abs=5e-4)
    assert result.status == "exhausted"
    assert is_met(f1, 0.92, ">=") is False


def test_reference_fairness_budget_leaves_exactly_zero():
    gap = 0.91 - 0.86  # 0.05000000000000004
    assert gap > 0.05
    consumed = consumed_aggregate(gap, 0.05, "<=")
    result = budget(consumed, n=200, min_samples=1, defined=True, low_share=0.25)
    assert result.remaining == 0.0  # snapped, not -8e-16
    assert result.consumed == 1.0
    assert result.status == "exhausted"
    assert is_met(gap, 0.05, "<=") is True


# --- budget status ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consumed", "n", "min_samples", "defined", "expected"),
    [
        (0.0, 10, 1, True, Budget(0.0, 1.0, "healthy")),
        (0.75, 10, 1, True, Budget(0.75, 0.25, "healthy")),  # 0.25 left is not below 0.25
        (0.76, 10, 1, True, None),  # low
        (1.0, 10, 1, True, Budget(1.0, 0.0, "exhausted")),
        (1.0 - 5e-10, 10, 1, True, Budget(1.0, 0.0, "exhausted")),  # within the tolerance
        (1.0 - 5e-9, 10, 1, True, None),  # low, not exhausted
        (2.5, 10, 1, True, Budget(2.5, -1.5, "exhausted")),
        (None, 0, 1, False, Budget(None, None, "no_data")),
        (0.3, 0, 1, True, Budget(None, None, "no_data")),  # no samples: no data
        (0.3, 9, 10, True, Budget(0.3, 0.7, "insufficient_data")),
        (None, 9, 1, False, Budget(None, None, "insufficient_data")),  # undefined SLI
    ],
)
def test_budget_status(consumed, n, min_samples, defined, expected):
    result = budget(consumed, n=n, min_samples=min_samples, defined=defined, low_share=0.25)
    if expected is None:
        assert result.status == "low"
        assert 0 < result.remaining < 0.25
    else:
        assert result.status == expected.status
        for actual, wanted in (
            (result.consumed, expected.consumed),
            (result.remaining, expected.remaining),
        ):
            assert actual == (None if wanted is None else pytest.approx(wanted))


@pytest.mark.parametrize(("low", "status"), [(0.1, "healthy"), (0.25, "healthy"), (0.5, "low")])
def test_budget_low_share_is_configurable(low, status):
    assert budget(0.75, n=5, min_samples=1, defined=True, low_share=low).status == status


def test_snap():
    assert snap(None) is None
    assert snap(1e-10) == 0.0
    assert snap(-1e-10) == 0.0
    assert snap(2e-9) == 2e-9
    assert snap(-0.5) == -0.5
    assert TOLERANCE == 1e-9


@pytest.mark.parametrize(
    ("value", "target", "op", "met"),
    [
        (0.9, 0.9, ">=", True),
        (0.9 - 5e-10, 0.9, ">=", True),
        (0.9 - 2e-9, 0.9, ">=", False),
        (0.05 + 5e-10, 0.05, "<=", True),
        (0.05 + 2e-9, 0.05, "<=", False),
        (0.0, 0.05, "<=", True),
        (1.0, 0.9, ">=", True),
        (None, 0.9, ">=", None),
    ],
)
def test_is_met(value, target, op, met):
    assert is_met(value, target, op) is met


# --- burn windows: the SRE Workbook table ------------------------------------------------------


def test_standard_windows_are_the_sre_workbook_ones():
    assert keys(list(STANDARD_BURN_WINDOWS)) == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


def test_thirty_day_window_burns_over_exactly_the_workbook_windows():
    windows = standard_burn_windows(rolling("30d"), MINUTE)
    assert windows == [
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=1),
        timedelta(hours=2),
        timedelta(hours=6),
        timedelta(days=1),
        timedelta(days=3),
    ]
    assert keys(windows) == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


@pytest.mark.parametrize(
    ("burn_rate", "long", "budget_share", "days_to_exhaustion"),
    [
        (14.4, timedelta(hours=1), 0.02, 50 / 24),  # page: 1h & 5m
        (6, timedelta(hours=6), 0.05, 5),  # page: 6h & 30m
        (3, timedelta(days=1), 0.10, 10),  # ticket: 1d & 2h
        (1, timedelta(days=3), 0.10, 30),  # ticket: 3d & 6h
    ],
)
def test_sre_workbook_alert_table(burn_rate, long, budget_share, days_to_exhaustion):
    """The Workbook's thresholds: a burn rate sustained over the long window spends the
    stated share of a 30-day budget, and a full budget lasts 30 days / burn rate."""
    month = rolling("30d")
    assert long in standard_burn_windows(month, MINUTE)
    assert burn_rate * long / month.nominal_length == pytest.approx(budget_share)
    hours = time_to_exhaustion(1.0, burn_rate, month)
    assert hours == pytest.approx(days_to_exhaustion * 24)


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("7d", ["1m", "7m", "14m", "28m", "1h24m", "5h36m", "16h48m"]),
        ("28d", ["5m", "28m", "56m", "1h52m", "5h36m", "22h24m", "2d19h12m"]),
        ("90d", ["15m", "1h30m", "3h", "6h", "18h", "3d", "9d"]),
        # 5m and 30m both scale below one minute: one 1m window, not two
        ("1d", ["1m", "2m", "4m", "12m", "48m", "2h24m"]),
    ],
)
def test_scaled_burn_windows(window, expected):
    assert keys(standard_burn_windows(rolling(window), MINUTE)) == expected


def test_seven_day_windows_are_seven_thirtieths_rounded_to_minutes():
    for standard, scaled_window in zip(
        STANDARD_BURN_WINDOWS, standard_burn_windows(rolling("7d"), MINUTE), strict=True
    ):
        exact = standard * 7 / 30
        assert scaled_window % MINUTE == timedelta(0)
        assert abs(scaled_window - exact) <= MINUTE / 2
        assert scaled_window >= MINUTE


def test_calendar_windows_scale_by_their_nominal_length():
    assert standard_burn_windows(Window(calendar="month"), MINUTE) == standard_burn_windows(
        rolling("30d"), MINUTE
    )
    assert standard_burn_windows(Window(calendar="week"), MINUTE) == standard_burn_windows(
        rolling("7d"), MINUTE
    )


@pytest.mark.parametrize(
    ("bucket", "expected"),
    [
        (timedelta(minutes=5), ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]),
        (timedelta(hours=1), ["1h", "2h", "6h", "1d", "3d"]),  # 5m and 30m round up to 1h
        (timedelta(seconds=10), ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]),
    ],
)
def test_burn_windows_are_whole_buckets(bucket, expected):
    windows = standard_burn_windows(rolling("30d"), bucket)
    assert keys(windows) == expected
    assert all(w % bucket == timedelta(0) for w in windows)


def test_burn_windows_with_a_coarse_bucket_on_a_short_window():
    assert standard_burn_windows(rolling("1h"), timedelta(hours=1)) == [timedelta(hours=1)]


@pytest.mark.parametrize(
    ("duration", "window", "bucket", "expected"),
    [
        (timedelta(hours=1), "30d", MINUTE, timedelta(hours=1)),
        (timedelta(hours=1), "7d", MINUTE, timedelta(minutes=14)),
        (timedelta(days=1), "7d", MINUTE, timedelta(hours=5, minutes=36)),
        (timedelta(hours=1), "1d", MINUTE, timedelta(minutes=2)),
        (timedelta(minutes=5), "1d", MINUTE, MINUTE),  # at least one bucket
        (timedelta(hours=1), "30d", timedelta(hours=1), timedelta(hours=1)),
    ],
)
def test_scaled(duration, window, bucket, expected):
    assert rolling(window).scale(duration, bucket) == expected


def test_scaled_agrees_with_burn_windows():
    for window in ("7d", "28d", "30d", "90d", "14d"):
        for standard in STANDARD_BURN_WINDOWS:
            assert rolling(window).scale(standard, MINUTE) in standard_burn_windows(
                rolling(window), MINUTE
            )


@pytest.mark.parametrize(
    ("duration", "key"),
    [
        (timedelta(minutes=5), "5m"),
        (timedelta(hours=1, minutes=24), "1h24m"),
        (timedelta(days=3), "3d"),
        (timedelta(days=2, hours=19, minutes=12), "2d19h12m"),
        (timedelta(seconds=30), "30s"),
    ],
)
def test_burn_key(duration, key):
    assert burn_key(duration) == key


# --- time to exhaustion -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remaining", "burn", "window", "hours"),
    [
        (0.5, 1.0, "30d", 360.0),
        (1.0, 14.4, "30d", 50.0),
        (0.36, 2.0, "30d", 129.6),
        (0.25, 7.0, "7d", 6.0),
        (1.0, 0.5, "1d", 48.0),
    ],
)
def test_time_to_exhaustion(remaining, burn, window, hours):
    result = time_to_exhaustion(remaining, burn, rolling(window))
    assert result == pytest.approx(hours)
    expected = remaining * rolling(window).nominal_length.total_seconds() / 3600 / burn
    assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    ("remaining", "burn", "expected"),
    [
        (None, 2.0, None),  # no budget
        (0.0, 2.0, 0.0),  # already gone
        (-1.5, 2.0, 0.0),  # overspent
        (-1.5, None, 0.0),
        (0.5, None, None),  # no recent burn measured
        (0.5, 0.0, None),  # not burning: never exhausted
        (0.5, -1.0, None),
    ],
)
def test_time_to_exhaustion_edge_cases(remaining, burn, expected):
    assert time_to_exhaustion(remaining, burn, rolling("30d")) == expected


def test_time_to_exhaustion_of_calendar_windows_uses_their_nominal_length():
    assert time_to_exhaustion(1.0, 1.0, Window(calendar="month")) == pytest.approx(720)
    assert time_to_exhaustion(1.0, 1.0, Window(calendar="week")) == pytest.approx(168)


# --- window bounds ----------------------------------------------------------------------------


def test_rolling_bounds():
    end = datetime(2026, 3, 10, 12, 0, 30, 5, tzinfo=UTC)
    assert window_bounds(rolling("30d"), end) == (end - timedelta(days=30), end)
    assert window_bounds(rolling("1h30m"), end) == (end - timedelta(minutes=90), end)


@pytest.mark.parametrize(
    ("end", "start"),
    [
        (datetime(2026, 3, 10, 12, 0, 30, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
        (datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
        (datetime(2028, 2, 29, 8, tzinfo=UTC), datetime(2028, 2, 1, tzinfo=UTC)),  # leap day
        (datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_calendar_month_bounds(end, start):
    assert window_bounds(Window(calendar="month"), end) == (start, end)


@pytest.mark.parametrize(
    ("end", "start"),
    [
        # 2026-03-10 is a Tuesday
        (datetime(2026, 3, 10, 12, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)),
        (datetime(2026, 3, 15, 23, 59, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC)),  # Sunday
        (datetime(2026, 3, 16, 0, 0, 1, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC)),
        # a week across the new year: Friday 2027-01-01 is in the week of Monday 2026-12-28
        (datetime(2027, 1, 1, 9, tzinfo=UTC), datetime(2026, 12, 28, tzinfo=UTC)),
        # and across a month end
        (datetime(2026, 4, 2, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC)),
    ],
)
def test_calendar_week_bounds(end, start):
    bounds = window_bounds(Window(calendar="week"), end)
    assert bounds == (start, end)
    assert bounds[0].weekday() == 0  # Monday
    assert bounds[0].tzinfo is not None and bounds[0].utcoffset() == timedelta(0)


def test_calendar_bounds_are_computed_in_utc():
    """23:00 on Feb 28 UTC is 01:00 on March 1 in UTC+2: the month is February."""
    end = datetime(2026, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    start, stop = window_bounds(Window(calendar="month"), end)
    assert start == datetime(2026, 2, 1, tzinfo=UTC)
    assert stop == end
    # Monday 00:30 in UTC+2 is still Sunday in UTC: the week began the Monday before
    monday = datetime(2026, 3, 16, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert window_bounds(Window(calendar="week"), monday)[0] == datetime(2026, 3, 9, tzinfo=UTC)


def test_calendar_window_at_the_period_start_is_empty():
    month_start = datetime(2026, 3, 1, tzinfo=UTC)
    assert window_bounds(Window(calendar="month"), month_start) == (month_start, month_start)
    monday = datetime(2026, 3, 9, tzinfo=UTC)
    assert window_bounds(Window(calendar="week"), monday) == (monday, monday)


# --- through the CLI --------------------------------------------------------------------------


def test_cli_reports_scaled_burn_windows_and_budget(cli, write_spec, write_records):
    spec = write_spec("""
        service: budget
        slos:
          - {name: month, dimension: availability, objective: {target: 0.99}, window: 30d}
          - {name: four-weeks, dimension: availability, objective: {target: 0.99}, window: 28d}
          - {name: week, dimension: availability, objective: {target: 0.99}, window: 7d}
    """)
    at = datetime(2026, 3, 10, 12, tzinfo=UTC)
    n = 400
    data = write_records(
        {
            "id": [f"b{i}" for i in range(n)],
            "ts": [at - timedelta(minutes=3 * i + 1) for i in range(n)],  # the last 20 hours
            "status": ["error" if i % 100 == 0 else "ok" for i in range(n)],  # 4 errors
        }
    )
    run = cli("evaluate", "--spec", spec, "--data", data, "--at", at.isoformat(), "-f", "json")
    assert run.exit_code == 0, run.stderr
    slos = {s["name"]: s for s in run.json()["slos"]}
    assert list(slos["month"]["burn_rates"]) == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
    four_weeks = ["5m", "28m", "56m", "1h52m", "5h36m", "22h24m", "2d19h12m"]
    assert list(slos["four-weeks"]["burn_rates"]) == four_weeks
    week = ["1m", "7m", "14m", "28m", "1h24m", "5h36m", "16h48m"]
    assert list(slos["week"]["burn_rates"]) == week
    for slo in slos.values():
        # 4 of 400 bad against 1 % allowed: the whole budget, exactly
        assert slo["budget"] == {
            "consumed": 1.0,
            "remaining": 0.0,
            "status": "exhausted",
            "reason": None,
        }
        assert slo["met"] is True  # 0.99 meets >= 0.99
        assert slo["time_to_exhaustion"] == {"1h": 0.0, "1d": 0.0}
    month = slos["month"]
    # the first error is the newest response (1 min old): the 5m window holds 2 responses
    assert month["burn_rate_samples"]["5m"] == 2
    assert month["burn_rates"]["5m"] == pytest.approx(0.5 / 0.01)
    assert month["burn_rates"]["1d"] == pytest.approx(1.0)  # all 400 in the last day
    assert month["burn_rates"]["1h"] == pytest.approx((1 / 20) / 0.01)
