"""Clock skew: an ``event_ts`` beyond ``ts + skew_tolerance`` is not fresh. Checked against
numpy on generated logs, through files and through the service's store, which rebuilds an
old store once to count it."""

from __future__ import annotations

import hashlib
import json
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Clock, evaluate_store, evaluate_table
from mlslo.render.documents import evaluation_json
from mlslo.render.tables import reasons
from mlslo.render.views import facts
from mlslo.server.store import Store, rollup_fingerprint
from mlslo.server.store.rollups import store_scan
from mlslo.spec import parse_spec

AT = datetime(2026, 11, 21, tzinfo=UTC)
AT_US = int(AT.timestamp() * 1_000_000)
THRESHOLD = timedelta(minutes=15)


def spec_text(tolerance: str = "1s", extra: str = "") -> str:
    return f"""
        service: skew
        slos:
          - name: fresh
            dimension: freshness
            sli: {{lag_threshold: 15m, skew_tolerance: {tolerance}}}
            objective: {{target: 0.9}}
            window: 1d{extra}
          - name: lag-p90
            dimension: freshness
            sli: {{percentile: 90, skew_tolerance: {tolerance}}}
            objective: {{target: 15m}}
            window: 1d{extra}
    """


def generated_log(seed: int, n: int, tolerance_us: int) -> tuple[pa.Table, np.ndarray]:
    """``n`` predictions over the last 6 hours before ``AT`` with lags (microseconds) from
    half an hour down to well into the future: some within the tolerance, some exactly at
    it, some beyond. At least one of each kind."""
    rng = np.random.default_rng(seed)
    ts_us = AT_US - rng.integers(1_000_000, 6 * 3600 * 1_000_000, n)
    kind = rng.integers(0, 4, n)
    kind[:4] = [0, 1, 2, 3]
    lag_us = np.select(
        [kind == 0, kind == 1, kind == 2],
        [
            rng.integers(0, 30 * 60 * 1_000_000, n),  # in the past: 0 to 30 min
            -rng.integers(0, tolerance_us + 1, n),  # ahead, within the tolerance
            np.full(n, -tolerance_us),  # ahead by exactly the tolerance
        ],
        -tolerance_us - rng.integers(1, 120_000_000, n),  # ahead, beyond it: clock skew
    )
    table = pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
            "event_ts": pa.array(ts_us - lag_us, pa.timestamp("us", tz="UTC")),
        }
    )
    return table, lag_us


def oracle(lag_us: np.ndarray, tolerance_us: int) -> dict[str, Any]:
    skewed = lag_us < -tolerance_us  # event_ts > ts + tolerance
    fresh = (lag_us <= THRESHOLD.total_seconds() * 1_000_000) & ~skewed
    return {
        "valid": len(lag_us),
        "good": int(fresh.sum()),
        "clock_skew": int(skewed.sum()),
        "p90": float(np.percentile(np.maximum(lag_us, 0) / 1e6, 90)),
    }


def assert_matches(slos: dict[str, Any], expected: dict[str, Any]) -> None:
    fresh, p90 = slos["fresh"], slos["lag-p90"]
    assert fresh["sli"]["valid"] == expected["valid"]
    assert fresh["sli"]["good"] == expected["good"]
    assert fresh["sli"]["value"] == pytest.approx(expected["good"] / expected["valid"])
    assert fresh["sli"]["clock_skew"] == expected["clock_skew"]
    assert p90["sli"]["clock_skew"] == expected["clock_skew"]
    # the percentile keeps skewed records at lag 0 (the histogram's zero bin), within 1 %
    assert p90["sli"]["n"] == expected["valid"]
    assert p90["sli"]["value"] == pytest.approx(expected["p90"], rel=0.01, abs=1e-9)


TOLERANCES = {"250ms": 250_000, "1s": 1_000_000, "5s": 5_000_000}


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(4, 400),
    tolerance=st.sampled_from(sorted(TOLERANCES)),
)
def test_skewed_records_are_not_fresh_against_numpy(seed: int, n: int, tolerance: str) -> None:
    tolerance_us = TOLERANCES[tolerance]
    table, lag_us = generated_log(seed, n, tolerance_us)
    expected = oracle(lag_us, tolerance_us)
    assert expected["clock_skew"] >= 1 and expected["good"] < expected["valid"]
    assert_matches(evaluate_table(spec_text(tolerance), table, AT), expected)


def test_files_and_the_server_count_clock_skew_alike(tmp_path):
    tolerance_us = TOLERANCES["1s"]
    table, lag_us = generated_log(11, 3000, tolerance_us)
    expected = oracle(lag_us, tolerance_us)
    spec = spec_text("1s")
    from_files = evaluate_table(spec, table, AT)
    assert_matches(from_files, expected)
    store = Store.open(tmp_path / "skew.duckdb", parse_spec(textwrap.dedent(spec)), clock=Clock(AT))
    try:
        assert store.writer.records("predictions", table).accepted == 3000
        served = {s["name"]: s for s in evaluation_json(evaluate_store(store, AT))["slos"]}
    finally:
        store.close()
    assert served == from_files


def test_the_default_tolerance_is_one_second():
    table = pa.table(
        {
            "ts": pa.array([AT - timedelta(minutes=5)] * 3, pa.timestamp("us", tz="UTC")),
            "event_ts": pa.array(
                [AT - timedelta(minutes=5) + timedelta(seconds=s) for s in (0.5, 1, 1.5)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    spec = """
        service: skew
        slos:
          - {name: fresh, dimension: freshness, sli: {lag_threshold: 1m},
             objective: {target: 0.5}}
    """
    slo = evaluate_table(spec, table, AT)["fresh"]
    assert parse_spec(textwrap.dedent(spec)).slos[0].sli.skew_tolerance == timedelta(seconds=1)
    assert (slo["sli"]["good"], slo["sli"]["valid"], slo["sli"]["clock_skew"]) == (2, 3, 1)


def test_no_skew_reports_zero_and_no_note():
    table, _ = generated_log(3, 50, 1_000_000)
    lagging = table.set_column(2, "event_ts", table["ts"])  # lag 0 everywhere
    spec = spec_text("1s")
    slos = evaluate_table(spec, lagging, AT)
    assert slos["fresh"]["sli"]["clock_skew"] == 0
    assert slos["fresh"]["sli"]["value"] == 1.0
    document = {"slos": list(slos.values())}
    assert not [line for line in reasons(document) if "clock skew" in line]
    assert ("clock skew", "none: no event_ts later than ts beyond the skew_tolerance") in facts(
        slos["fresh"]
    )


def test_the_notes_and_facts_name_the_skewed_records():
    table, lag_us = generated_log(5, 200, 1_000_000)
    expected = oracle(lag_us, 1_000_000)["clock_skew"]
    slos = evaluate_table(spec_text("1s"), table, AT)
    notes = reasons({"slos": list(slos.values())})
    assert (
        f"fresh: clock skew: {expected:,} records have an event_ts later than ts beyond the "
        "skew_tolerance, counted as not fresh"
    ) in notes
    assert any(n.startswith("lag-p90: clock skew:") and n.endswith("at lag 0") for n in notes)
    assert (
        "clock skew",
        f"{expected:,} records with an event_ts later than ts beyond the skew_tolerance",
    ) in facts(slos["fresh"])


def test_timeslice_budgets_report_the_windows_clock_skew():
    table, lag_us = generated_log(9, 300, 1_000_000)
    spec = """
        service: skew
        slos:
          - name: fresh-hours
            dimension: freshness
            sli: {lag_threshold: 15m}
            budgeting: timeslices
            slice: 1h
            objective: {target: 0.5, timeslice_target: 0.5}
            window: 1d
    """
    slo = evaluate_table(spec, table, AT)["fresh-hours"]
    assert slo["sli"]["clock_skew"] == oracle(lag_us, 1_000_000)["clock_skew"]


# --- an old store is rebuilt once ---------------------------------------------------------------


def previous_fingerprint(spec: Any, statistics: list[str]) -> str:
    """The fingerprint mlslo wrote before it counted clock skew: the same recipe as
    :func:`rollup_fingerprint`, over the statistics it kept then and an SLI without
    ``skew_tolerance``."""
    scan = store_scan(spec)
    parts = {
        "bucket": spec.bucket.total_seconds(),
        "slices": list(scan.slices),
        "statistics": sorted(statistics),
        "slos": [
            {
                "name": s.name,
                "dimension": s.dimension,
                "sli": s.sli.model_dump(mode="json", exclude={"skew_tolerance"}),
                "filter": s.filter,
            }
            for s in spec.slos
        ],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def test_a_store_written_before_clock_skew_is_rebuilt_once_on_open(tmp_path):
    spec = parse_spec(textwrap.dedent(spec_text("1s")))
    path = tmp_path / "old.duckdb"
    table, lag_us = generated_log(21, 500, 1_000_000)
    expected = oracle(lag_us, 1_000_000)
    store = Store.open(path, spec, clock=Clock(AT))
    try:
        store.writer.records("predictions", table)
    finally:
        store.close()
    # Make the file what the previous version left: no clock_skew statistics, its fingerprint.
    scan = store_scan(spec)
    skew_columns = [c for c in scan.stat_columns if c.endswith("/clock_skew")]
    assert sorted(skew_columns) == ["fresh/clock_skew", "lag-p90/clock_skew"]
    old = previous_fingerprint(spec, [c for c in scan.stat_columns if c not in skew_columns])
    assert old != rollup_fingerprint(spec, scan)
    with duckdb.connect(str(path)) as con:
        for column in skew_columns:
            con.execute(f'ALTER TABLE rollup_rows DROP COLUMN "{column}"')
        con.execute("UPDATE meta SET value = ? WHERE key = 'rollup_fingerprint'", [old])

    rebuilds: list[tuple[int, int]] = []
    reopened = Store.open(path, spec, clock=Clock(AT), progress=lambda *p: rebuilds.append(p))
    try:
        assert rebuilds and rebuilds[-1][0] == rebuilds[-1][1]  # rebuilt, every day of it
        assert reopened.db.meta("rollup_fingerprint") == rollup_fingerprint(spec, scan)
        slos = {s["name"]: s for s in evaluation_json(evaluate_store(reopened, AT))["slos"]}
        assert_matches(slos, expected)
    finally:
        reopened.close()
    again: list[tuple[int, int]] = []
    third = Store.open(path, spec, clock=Clock(AT), progress=lambda *p: again.append(p))
    try:
        assert again == []  # current now: no second rebuild
        slos = {s["name"]: s for s in evaluation_json(evaluate_store(third, AT))["slos"]}
        assert slos["fresh"]["sli"]["clock_skew"] == expected["clock_skew"]
    finally:
        third.close()


def test_changing_the_tolerance_changes_the_fingerprint():
    one = parse_spec(textwrap.dedent(spec_text("1s")))
    five = parse_spec(textwrap.dedent(spec_text("5s")))
    assert rollup_fingerprint(one, store_scan(one)) != rollup_fingerprint(five, store_scan(five))
