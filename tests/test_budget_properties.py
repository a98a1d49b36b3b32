"""Hypothesis properties of the budget math, through the real scan and evaluation.

Records are generated, scanned with :func:`mlslo.scan.queries.scan` on a DuckDB connection
and evaluated with :func:`mlslo.measure.evaluate.evaluate`; the properties are the contract of
docs/concepts.md (Error budgets).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mlslo.inputs.files import connect_duckdb
from mlslo.measure import budget as budgeting
from mlslo.measure.evaluate import Evaluation, evaluate
from mlslo.measure.windows import scan_range
from mlslo.render.documents import evaluation_json
from mlslo.scan.queries import scan
from mlslo.spec import Spec, Window, parse_spec
from mlslo.stats.rollup import Rollup

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ATS = st.sampled_from(
    [AT, AT + timedelta(seconds=30), AT + timedelta(seconds=12, microseconds=345_678)]
)
MINUTE_US = 60_000_000
TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("ts", TS),
        ("status", pa.string()),
        ("latency_ms", pa.float64()),
        ("event_ts", TS),
        ("prediction", pa.int64()),
        ("label", pa.int64()),
        ("group", pa.string()),
    ]
)
SLOW = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FAST = settings(max_examples=300, deadline=None)

SPEC = parse_spec("""
service: properties
slos:
  - {name: up, dimension: availability, objective: {target: 0.99}, window: 1d}
  - name: fast
    dimension: latency
    sli: {latency_threshold: 250ms}
    objective: {target: 0.9}
    window: 1d
  - {name: p95, dimension: latency, sli: {percentile: 95}, objective: {target: 500ms}, window: 1d}
  - {name: fresh, dimension: freshness, sli: {lag_threshold: 15m}, objective: {target: 0.9}}
  - {name: lag90, dimension: freshness, sli: {percentile: 90}, objective: {target: 20m}}
  - {name: f1, dimension: accuracy, sli: {metric: f1}, objective: {target: 0.8}, window: 1d}
  - name: acc
    dimension: accuracy
    sli: {metric: accuracy}
    objective: {target: 0.9}
    window: {calendar: week}
  - name: fair
    dimension: fairness
    sli: {metric: true_positive_rate_difference, attribute: group}
    objective: {target: 0.1}
    window: 1d
""")
# Which SLOs a bad event of each kind is bad for (only those may move, and only down).
BAD_FOR = {
    "error": ("up",),
    "slow": ("fast", "p95"),
    "stale": ("fresh", "lag90"),
    "wrong": ("f1", "acc"),
    "everything": ("up", "fast", "p95", "fresh", "lag90", "f1", "acc"),
}


# --- records ---------------------------------------------------------------------------------


@st.composite
def record(draw: st.DrawFn) -> dict[str, Any]:
    """One prediction record, some minutes (with an odd sub-minute part) before AT."""
    minute = draw(st.one_of(st.integers(0, 90), st.integers(0, 26 * 60)))
    within = draw(st.sampled_from([0, 1, 30_000_000, MINUTE_US - 1]))
    ts = AT + timedelta(seconds=60) - timedelta(microseconds=minute * MINUTE_US + within)
    lag = draw(st.one_of(st.none(), st.sampled_from([0, 60, 899, 900, 901, 1800])))
    return {
        "ts": ts,
        "status": draw(st.sampled_from(["ok", "ok", "error"])),
        "latency_ms": draw(
            st.one_of(st.none(), st.sampled_from([5.0, 120.0, 250.0, 250.5, 400.0]))
        ),
        "event_ts": None if lag is None else ts - timedelta(seconds=lag),
        "prediction": draw(st.one_of(st.none(), st.integers(0, 1), st.integers(0, 1))),
        "label": draw(st.one_of(st.none(), st.integers(0, 1), st.integers(0, 1))),
        "group": draw(st.sampled_from(["A", "B", "C"])),
    }


def records(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(record(), min_size=min_size, max_size=max_size)


def bad_record(kind: str, ts: datetime) -> dict[str, Any]:
    """A record that is bad for ``kind`` and invisible (null) to the other SLIs."""
    row: dict[str, Any] = {
        "ts": ts,
        "status": "ok",
        "latency_ms": None,
        "event_ts": None,
        "prediction": None,
        "label": None,
        "group": "A",
    }
    if kind in ("error", "everything"):
        row["status"] = "error"
    if kind in ("slow", "everything"):
        row["latency_ms"] = 5000.0  # slower than the threshold and than every generated one
    if kind in ("stale", "everything"):
        row["event_ts"] = ts - timedelta(hours=3)  # staler than every generated lag
    if kind in ("wrong", "everything"):
        row["prediction"], row["label"] = 1, 0
    return row


def table(rows: Sequence[dict[str, Any]], prefix: str) -> pa.Table:
    with_ids = [{"id": f"{prefix}{i}", **row} for i, row in enumerate(rows)]
    return pa.Table.from_pylist(with_ids, schema=SCHEMA)


# --- scanning --------------------------------------------------------------------------------

_names = itertools.count()


@pytest.fixture(scope="module")
def con() -> Any:
    return connect_duckdb()


def scanned(spec: Spec, con: Any, data: pa.Table, at: datetime) -> Rollup:
    start, end = scan_range(spec, at)
    name = f"records_{next(_names)}"
    con.con.register(name, data)  # an Arrow view on the UTC session of connect_duckdb()
    predictions = con.table(name)
    return scan(spec, predictions, start=start, end=end)


def evaluated(spec: Spec, con: Any, data: pa.Table, at: datetime) -> Evaluation:
    return evaluate(spec, scanned(spec, con, data, at), at)


def assert_close(actual: Any, expected: Any, path: str = "") -> None:
    """Deep equality with floats compared to 1e-9 (relative)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert actual.keys() == expected.keys(), path
        for key in expected:
            assert_close(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_close(a, e, f"{path}[{i}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12), path
    else:
        assert actual == expected, path


def budgets(evaluation: Evaluation) -> Iterator[tuple[str, budgeting.Budget]]:
    for slo in evaluation.slos:
        yield slo.name, slo.budget


# --- consumed + remaining == 1 ----------------------------------------------------------------


@FAST
@given(
    consumed=st.one_of(st.none(), st.floats(-1e6, 1e6)),
    n=st.integers(0, 1000),
    min_samples=st.integers(1, 100),
    defined=st.booleans(),
    low=st.floats(0.01, 0.99),
)
def test_budget_consumed_plus_remaining_is_one(consumed, n, min_samples, defined, low):
    result = budgeting.budget(
        consumed, n=n, min_samples=min_samples, defined=defined, low_share=low
    )
    if result.consumed is not None and result.remaining is not None:
        assert result.consumed + result.remaining == pytest.approx(1, abs=1e-9)
    assert (result.consumed is None) == (result.remaining is None)


@SLOW
@given(rows=records(), at=ATS)
def test_evaluated_consumed_plus_remaining_is_one(con, rows, at):
    evaluation = evaluated(SPEC, con, table(rows, "r"), at)
    for _, result in budgets(evaluation):
        if result.consumed is not None and result.remaining is not None:
            assert abs(result.consumed + result.remaining - 1) <= 1e-9
    for slo in evaluation_json(evaluation)["slos"]:
        consumed, remaining = slo["budget"]["consumed"], slo["budget"]["remaining"]
        if consumed is not None and remaining is not None:
            assert abs(consumed + remaining - 1) <= 1e-9 * max(1.0, abs(consumed))


# --- bad events never raise the remaining budget ----------------------------------------------


@SLOW
@given(
    rows=records(),
    kind=st.sampled_from(list(BAD_FOR)),
    when=st.lists(st.integers(0, 23 * 60), min_size=1, max_size=5),
    at=ATS,
)
def test_adding_bad_events_never_raises_remaining(con, rows, kind, when, at):
    extra = [bad_record(kind, at - timedelta(minutes=m, seconds=1)) for m in when]
    before = evaluated(SPEC, con, table(rows, "r"), at)
    after = evaluated(SPEC, con, table([*rows, *extra], "r"), at)
    for name in BAD_FOR[kind]:
        old, new = before.get(name).budget.remaining, after.get(name).budget.remaining
        assert new is not None, name  # the bad events are in the window
        if old is not None:
            assert new <= old + 1e-12, name
    # the other SLIs do not see the added rows (their fields are null); availability does
    # (every record has a status), so it is left out here
    for name in set(BAD_FOR["everything"]) - set(BAD_FOR[kind]) - {"up"}:
        assert after.get(name).budget == before.get(name).budget, name


def test_one_more_error_lowers_the_remaining_budget(con):
    rows = [bad_record("error", AT - timedelta(minutes=5))] + [
        {**bad_record("error", AT - timedelta(minutes=m)), "status": "ok"} for m in range(6, 206)
    ]
    one = evaluated(SPEC, con, table(rows, "r"), AT).get("up").budget
    two = evaluated(
        SPEC, con, table([*rows, bad_record("error", AT - timedelta(hours=3))], "r"), AT
    ).get("up")
    assert one.remaining == pytest.approx(1 - 1 / (0.01 * 201))
    assert two.budget.remaining == pytest.approx(1 - 2 / (0.01 * 202))
    assert two.budget.remaining < one.remaining


# --- merging rollups equals scanning the union ------------------------------------------------


@SLOW
@given(first=records(), second=records(), at=ATS)
def test_merged_rollups_equal_the_scan_of_the_union(con, first, second, at):
    a, b = table(first, "a"), table(second, "b")
    merged = scanned(SPEC, con, a, at).merge(scanned(SPEC, con, b, at))
    union = scanned(SPEC, con, pa.concat_tables([a, b]), at)
    step = timedelta(hours=6)
    expected = evaluation_json(evaluate(SPEC, union, at, series_step=step))
    assert_close(evaluation_json(evaluate(SPEC, merged, at, series_step=step)), expected)


def test_merging_keeps_statistics_of_shared_buckets(con):
    """Both halves write to the same minute: the merged counts add up."""
    moment = AT - timedelta(minutes=10, seconds=5)
    a = table([bad_record("everything", moment)] * 2, "a")
    b = table([{**bad_record("everything", moment), "status": "ok"}] * 3, "b")
    merged = scanned(SPEC, con, a, AT).merge(scanned(SPEC, con, b, AT))
    up = evaluate(SPEC, merged, AT).get("up")
    assert (up.measurement.good, up.measurement.valid) == (3.0, 5.0)
    assert merged.table.num_rows == 1


def test_cli_on_a_folder_equals_merged_library_scans(cli, write_spec, tmp_path: Path, con):
    spec_path = write_spec("""
        service: properties
        slos:
          - {name: up, dimension: availability, objective: {target: 0.99}, window: 1d}
          - name: f1
            dimension: accuracy
            sli: {metric: f1}
            objective: {target: 0.8}
            window: 1d
    """)
    spec = parse_spec(spec_path.read_text())
    folder = tmp_path / "logs"
    folder.mkdir()
    halves = []
    for part in range(2):
        rows = [
            {
                **bad_record("everything", AT - timedelta(minutes=7 * i + part + 1)),
                "status": "error" if i % 5 == part else "ok",
                "label": (i + part) % 2,
            }
            for i in range(30)
        ]
        halves.append(table(rows, f"h{part}-"))
        pq.write_table(halves[-1], folder / f"part{part}.parquet")
    at_text = "2026-03-10T12:00:00Z"
    run = cli("evaluate", "--spec", spec_path, "--data", folder, "--at", at_text, "-f", "json")
    assert run.exit_code == 0, run.stderr
    merged = scanned(spec, con, halves[0], AT).merge(scanned(spec, con, halves[1], AT))
    expected = evaluation_json(evaluate(spec, merged, AT))
    assert_close(run.json(), expected)
    assert run.json()["slos"][0]["sli"]["valid"] == 60


# --- a burn window as long as the SLO window burns the consumed share --------------------------

BURN_SPEC = parse_spec("""
service: burn
slos:
  - {name: up10d, dimension: availability, objective: {target: 0.95}, window: 10d}
  - {name: up1d, dimension: availability, objective: {target: 0.95}, window: 1d}
  - {name: up2h, dimension: availability, objective: {target: 0.95}, window: 2h}
  - {name: f1-10d, dimension: accuracy, sli: {metric: f1}, objective: {target: 0.8}, window: 10d}
  - {name: f1-1d, dimension: accuracy, sli: {metric: f1}, objective: {target: 0.8}, window: 1d}
  - {name: f1-2h, dimension: accuracy, sli: {metric: f1}, objective: {target: 0.8}, window: 2h}
""")
HOURLY_SPEC = parse_spec("""
service: hourly
bucket: 1h
slos:
  - {name: up, dimension: availability, objective: {target: 0.95}, window: 1h}
  - {name: f1, dimension: accuracy, sli: {metric: f1}, objective: {target: 0.8}, window: 1h}
""")


@SLOW
@given(rows=records(), at=ATS)
def test_burn_rate_over_the_slo_window_equals_consumed(con, rows, at):
    # a 10-day window burns over 1d and 2h (3d and 6h scaled by 1/3): those are the windows
    # of the 1d and 2h SLOs with the same objective.
    evaluation = evaluated(BURN_SPEC, con, table(rows, "r"), at)
    for family in ("up", "f1-"):
        long = evaluation.get(f"{family}10d")
        for window in ("1d", "2h"):
            short = evaluation.get(f"{family}{window}")
            rate = {r.key: r for r in long.burn_rates}[window]
            assert rate.n == short.measurement.n
            if short.budget.consumed is None:
                assert rate.value is None
            else:
                assert rate.value == pytest.approx(short.budget.consumed, rel=1e-9, abs=1e-12)
    # with one-hour buckets a one-hour window has exactly one burn window: itself
    hourly = evaluated(HOURLY_SPEC, con, table(rows, "r"), at)
    for slo in hourly.slos:
        assert [r.key for r in slo.burn_rates] == ["1h"]
        rate = slo.burn_rates[0]
        assert rate.n == slo.measurement.n
        if slo.budget.consumed is None:
            assert rate.value is None
        else:
            assert rate.value == pytest.approx(slo.budget.consumed, rel=1e-9, abs=1e-12)


# --- status thresholds ------------------------------------------------------------------------


def expected_status(remaining: Fraction | None, n: int, min_samples: int, low: Fraction) -> str:
    if n == 0:
        return "no_data"
    if n < min_samples or remaining is None:
        return "insufficient_data"
    if remaining <= 0:
        return "exhausted"
    return "low" if remaining < low else "healthy"


TARGETS = ["0.5", "0.75", "0.8", "0.9", "0.95", "0.99"]
LOWS = ["0.1", "0.25", "0.5", "0.75"]


@settings(SLOW, max_examples=40)
@given(
    n=st.integers(0, 120),
    spent=st.floats(0, 1.5),
    target=st.sampled_from(TARGETS),
    low=st.one_of(st.none(), st.sampled_from(LOWS)),
    min_samples=st.one_of(st.integers(1, 5), st.integers(1, 130)),
)
def test_status_thresholds_through_the_pipeline(con, n, spent, target, low, min_samples):
    t, share = Fraction(target), Fraction(low or "0.25")
    bad = min(n, round(spent * float(1 - t) * n))  # about ``spent`` of the budget
    remaining = None if n == 0 else 1 - Fraction(bad, n) / (1 - t)
    # float rounding may move a value that lies exactly on the low threshold to either side
    assume(remaining is None or remaining == 0 or abs(remaining - share) > Fraction(1, 10**9))
    budget_low = "" if low is None else f"budget_low: {low}"
    spec = parse_spec(
        f"""
service: status
{budget_low}
slos:
  - name: up
    dimension: availability
    objective: {{target: {target}}}
    window: 1d
    min_samples: {min_samples}
"""
    )
    rows = [
        {
            **bad_record("error", AT - timedelta(minutes=i + 1)),
            "status": "ok" if i >= bad else "error",
        }
        for i in range(n)
    ]
    result = evaluated(spec, con, table(rows, "s"), AT).get("up")
    assert result.budget.status == expected_status(remaining, n, min_samples, share)
    if result.budget.status == "no_data":
        assert result.budget.remaining is None
        assert result.met is None
    else:
        assert result.budget.remaining == pytest.approx(float(remaining), abs=1e-9)
    if result.budget.status == "insufficient_data":
        assert result.met is None
    elif result.budget.status != "no_data":
        assert result.met == (Fraction(n - bad, n) >= t)


@pytest.mark.parametrize(
    ("target", "low", "n", "bad", "status", "remaining"),
    [
        ("0.5", None, 8, 3, "healthy", 0.25),  # exactly 0.25 is not below the default 0.25
        ("0.5", None, 16, 7, "low", 0.125),
        ("0.5", "0.125", 16, 7, "healthy", 0.125),  # exactly the configured share
        ("0.5", "0.2", 16, 7, "low", 0.125),
        ("0.99", None, 100, 1, "exhausted", 0.0),  # 1 - 1/(0.01*100) is ~1e-16 in floats
        ("0.5", None, 8, 4, "exhausted", 0.0),
        ("0.5", None, 8, 5, "exhausted", -0.25),  # overspent
        ("0.5", None, 0, 0, "no_data", None),
    ],
)
def test_status_at_the_thresholds(con, target, low, n, bad, status, remaining):
    budget_low = "" if low is None else f"budget_low: {low}"
    spec = parse_spec(f"""
service: status
{budget_low}
slos:
  - {{name: up, dimension: availability, objective: {{target: {target}}}, window: 1d}}
""")
    rows = [
        {
            **bad_record("error", AT - timedelta(minutes=i + 1)),
            "status": "error" if i < bad else "ok",
        }
        for i in range(n)
    ]
    result = evaluated(spec, con, table(rows, "t"), AT).get("up")
    assert result.budget.status == status
    assert result.budget.remaining == remaining


@FAST
@given(
    consumed=st.floats(-10, 10),
    n=st.integers(0, 100),
    min_samples=st.integers(1, 100),
    low=st.floats(0.01, 0.99),
)
def test_budget_status_rules(consumed, n, min_samples, low):
    result = budgeting.budget(consumed, n=n, min_samples=min_samples, defined=True, low_share=low)
    remaining = 1 - consumed
    if n <= 0:
        assert result == budgeting.Budget(None, None, "no_data")
    elif n < min_samples:
        assert result.status == "insufficient_data"
    elif remaining <= 1e-9:
        assert result.status == "exhausted"
        assert result.remaining is not None and result.remaining <= 0
    elif remaining < low:
        assert result.status == "low"
    else:
        assert result.status == "healthy"


# --- met uses a 1e-9 tolerance ----------------------------------------------------------------


@FAST
@given(
    target=st.floats(0.01, 100),
    slack=st.sampled_from([-1e-3, -1e-8, -2e-9, -5e-10, 0.0, 5e-10, 1e-8, 1e-3]),
    op=st.sampled_from([">=", "<="]),
)
def test_met_tolerance(target, slack, op):
    """``slack`` is how far the value lies on the good side of the bound; up to 1e-9 on the
    bad side still meets it."""
    value = target + slack if op == ">=" else target - slack
    assert budgeting.is_met(value, target, op) is (slack >= -1e-9)
    assert budgeting.is_met(None, target, op) is None


@pytest.mark.parametrize(
    ("target", "met"),
    [("0.9", True), ("0.9000000005", True), ("0.900000002", False), ("0.8999", True)],
)
def test_met_tolerance_through_the_pipeline(con, target, met):
    """9 of 10 good: availability 0.9 meets a target 5e-10 above it, not one 2e-9 above."""
    spec = parse_spec(f"""
service: met
slos:
  - {{name: up, dimension: availability, objective: {{target: {target}}}, window: 1d}}
""")
    rows = [
        {**bad_record("error", AT - timedelta(minutes=i + 1)), "status": "ok" if i else "error"}
        for i in range(10)
    ]
    result = evaluated(spec, con, table(rows, "m"), AT).get("up")
    assert result.measurement.value == 0.9
    assert result.met is met


def test_fairness_gap_of_exactly_the_bound_is_met(con):
    """Selection rates 0.91 and 0.86: the gap is 0.05000000000000004 in floats, and meets
    demographic parity <= 0.05 with remaining 0."""
    spec = parse_spec("""
service: met
slos:
  - name: parity
    dimension: fairness
    sli: {metric: demographic_parity_difference, attribute: group}
    objective: {target: 0.05}
    window: 1d
""")
    rows = []
    for group, selected in (("A", 91), ("B", 86)):
        for i in range(100):
            rows.append(
                {
                    **bad_record("error", AT - timedelta(minutes=i + 1)),
                    "group": group,
                    "prediction": 1 if i < selected else 0,
                }
            )
    result = evaluated(spec, con, table(rows, "g"), AT).get("parity")
    assert result.measurement.value == pytest.approx(0.05)
    assert result.met is True
    assert result.budget.remaining == 0
    assert result.budget.status == "exhausted"


# --- time to exhaustion -----------------------------------------------------------------------


def window_hours(window: Window) -> float:
    return window.nominal_length.total_seconds() / 3600


@SLOW
@given(rows=records(min_size=1), at=ATS)
def test_time_to_exhaustion_is_remaining_over_burn(con, rows, at):
    evaluation = evaluated(SPEC, con, table(rows, "r"), at)
    document = {s["name"]: s for s in evaluation_json(evaluation)["slos"]}
    for slo in evaluation.slos:
        rates = {r.window: r.value for r in slo.burn_rates}
        remaining = slo.budget.remaining
        for key, standard in (("1h", timedelta(hours=1)), ("1d", timedelta(days=1))):
            burn = rates.get(slo.slo.window.scale(standard, SPEC.bucket))
            tte = slo.time_to_exhaustion[key]
            if remaining is None:
                assert tte is None
            elif remaining <= 0:
                assert tte == 0.0
            elif burn is None or burn <= 0:
                assert tte is None
            else:
                expected = remaining * window_hours(slo.slo.window) / burn
                assert tte == pytest.approx(expected, rel=1e-9)
        assert document[slo.name]["time_to_exhaustion_hours"] == (
            None
            if slo.time_to_exhaustion["1h"] is None
            else pytest.approx(slo.time_to_exhaustion["1h"], rel=1e-9)
        )


def test_time_to_exhaustion_example(con):
    """1 error in 200 responses over the last day (target 99 %): half the budget is left.
    For a 1-day window the SRE 1h and 1d windows scale to 2m and 48m. The error is the newest
    response: the 2m window (1 response) burns at 100, the 48m window (16) at 6.25, so the
    budget lasts 0.5 x 24 h / 100 = 0.12 h or 0.5 x 24 h / 6.25 = 1.92 h."""
    rows = [
        {**bad_record("error", AT - timedelta(minutes=3 * i + 1)), "status": "ok" if i else "error"}
        for i in range(200)
    ]
    spec = parse_spec("""
service: tte
slos:
  - {name: up, dimension: availability, objective: {target: 0.99}, window: 1d}
""")
    up = evaluated(spec, con, table(rows, "e"), AT).get("up")
    assert up.budget.remaining == pytest.approx(0.5)
    assert up.burn_rate(timedelta(minutes=2)).value == pytest.approx(100)
    assert up.burn_rate(timedelta(minutes=48)).value == pytest.approx(6.25)
    assert up.time_to_exhaustion["1h"] == pytest.approx(0.12)
    assert up.time_to_exhaustion["1d"] == pytest.approx(1.92)
