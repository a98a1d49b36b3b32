"""Absent data: an SLO whose events stopped longer than ``absent_after`` ago is not judged.

``sli.last_event`` is checked against numpy on generated logs (files and the server agree),
the status against the same evaluation with ``absent_after: off``, and the ``absent`` rule
through ``mlslo alerts``, the service's alert loop (a real webhook on loopback) and
``/metrics``."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from conftest import Clock, evaluate_store, evaluate_table
from mlslo.api import evaluate_files
from mlslo.decide.alerts import check
from mlslo.moments import format_duration
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources
from mlslo.server.store import Store
from mlslo.spec import parse_spec
from mlslo.spec.alert_rules import slo_rules
from mlslo.stats.rollup import Rollup
from mlslo.stats.timeline import build_timeline

AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
MINUTE_US = 60_000_000
STAMP = pa.timestamp("us", tz="UTC")

# --- the spec ---------------------------------------------------------------------------------


def one_slo(body: str) -> Any:
    return parse_spec(f"service: s\nslos:\n  - {body}").slos[0]


def test_absent_after_defaults_by_dimension():
    defaults = {
        "availability": "{objective: {target: 0.9}}",
        "latency": "{sli: {latency_threshold: 1s}, objective: {target: 0.9}}",
        "freshness": "{sli: {lag_threshold: 1m}, objective: {target: 0.9}}",
        "accuracy": "{sli: {metric: f1}, objective: {target: 0.9}}",
        "fairness": "{sli: {metric: demographic_parity_difference, attribute: g}, "
        "objective: {target: 0.1}}",
    }
    found = {}
    for dimension, body in defaults.items():
        slo = one_slo(f"{{name: x, dimension: {dimension}, {body[1:-1]}}}")
        found[dimension] = slo.absent_after
    hour = timedelta(hours=1)
    assert found == {
        "availability": hour,
        "latency": hour,
        "freshness": hour,
        "accuracy": None,
        "fairness": None,
    }


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("off", None),
        ("'off'", None),
        ("OFF", None),
        ("null", None),
        ("90s", timedelta(seconds=90)),
        ("2h30m", timedelta(hours=2, minutes=30)),
        ("45s", timedelta(seconds=45)),  # not a whole number of 1-minute buckets: allowed
    ],
)
def test_absent_after_is_a_duration_or_off(written, expected):
    slo = one_slo(
        f"{{name: x, dimension: availability, objective: {{target: 0.9}}, absent_after: {written}}}"
    )
    assert slo.absent_after == expected
    opted_in = one_slo(
        f"{{name: x, dimension: accuracy, sli: {{metric: f1}}, objective: {{target: 0.9}}, "
        f"absent_after: {written}}}"
    )
    assert opted_in.absent_after == expected


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("0s", "'0s' must be longer than zero; or off to turn it off"),
        ("soon", "'soon' is not a duration"),
        ("true", "expected a duration longer than zero such as 1h, or off; found True"),
        ("3600", "expected a duration longer than zero such as 1h, or off; found 3600"),
    ],
)
def test_a_bad_absent_after_is_one_line_naming_the_field(written, message, cli, write_spec):
    path = write_spec(f"""
        service: s
        slos:
          - name: uptime
            dimension: availability
            objective: {{target: 0.9}}
            absent_after: {written}
    """)
    run = cli("validate", path)
    assert run.exit_code == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert lines[0].startswith(f"error: {path}:6: slos[0].absent_after: ")
    assert message in lines[0]


# --- the last bucket with an event, from prefix sums -------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    size=st.integers(1, 80),
    groups=st.integers(0, 3),
)
def test_last_active_bucket_agrees_with_a_scan_of_the_buckets(data, size, groups):
    first = 1000
    width = max(groups, 1)
    counts = np.array(
        data.draw(
            st.lists(
                st.lists(st.sampled_from([0, 0, 0, 1, 2, 7]), min_size=width, max_size=width),
                min_size=size,
                max_size=size,
            )
        ),
        dtype=np.float64,
    )
    rows: dict[str, list[Any]] = {"bucket": [], "g": [], "s/total": []}
    for offset in range(size):
        for group in range(width):
            rows["bucket"].append(first + offset)
            rows["g"].append(f"g{group}")
            rows["s/total"].append(float(counts[offset, group]))
    rollup = Rollup(60, ("g",), pa.table(rows))
    timeline = build_timeline(rollup, "s", first, size, group_by=("g",) if groups else ())
    start = data.draw(st.integers(first - 5, first + size + 5))
    end = data.draw(st.integers(start, first + size + 10))
    excluded = data.draw(
        st.lists(
            st.tuples(st.integers(first - 3, first + size + 3), st.integers(0, 10)).map(
                lambda t: (t[0], t[0] + t[1])
            ),
            max_size=3,
        )
    )
    totals = counts.sum(axis=1)
    expected = None
    for bucket in range(start, end):
        inside = first <= bucket < first + size
        kept = not any(lo <= bucket < hi for lo, hi in excluded)
        if inside and kept and totals[bucket - first] > 0:
            expected = bucket
    assert timeline.last_active("total", start, end, excluded) == expected
    assert timeline.last_active("missing", start, end, excluded) is None


def test_last_active_follows_rows_added_later():
    """The service adds each ingested batch to its timelines; the last active bucket moves
    with them (a grouped timeline caches its summed prefix sums: they must not go stale)."""

    def rows(bucket: int, group: str) -> Rollup:
        return Rollup(60, ("g",), pa.table({"bucket": [bucket], "g": [group], "s/total": [1.0]}))

    timeline = build_timeline(rows(5, "a"), "s", 0, 10, group_by=("g",))
    assert timeline.last_active("total", 0, 100) == 5
    timeline.add(rows(8, "b"))
    assert timeline.last_active("total", 0, 100) == 8
    timeline.add(rows(40, "a"))  # beyond the grid: it grows
    assert timeline.last_active("total", 0, 100) == 40
    assert timeline.last_active("total", 0, 40) == 8


# --- sli.last_event against numpy ---------------------------------------------------------------

SPEC = """
    service: absent
    slos:
      - {name: up, dimension: availability, objective: {target: 0.9}, window: 1d}
      - {name: up-eu, dimension: availability, objective: {target: 0.9}, window: 1d,
         filter: {region: eu}, absent_after: 30m}
      - {name: fast, dimension: latency, sli: {latency_threshold: 250ms},
         objective: {target: 0.9}, window: 1d, absent_after: 2h}
      - {name: fresh, dimension: freshness, sli: {lag_threshold: 15m},
         objective: {target: 0.9}, window: 1d}
      - {name: acc, dimension: accuracy, sli: {metric: accuracy}, objective: {target: 0.5},
         window: 1d, absent_after: 3h}
      - {name: fair, dimension: fairness,
         sli: {metric: demographic_parity_difference, attribute: region},
         objective: {target: 0.5}, window: 1d}
"""
ABSENT_AFTER = {
    "up": timedelta(hours=1),
    "up-eu": timedelta(minutes=30),
    "fast": timedelta(hours=2),
    "fresh": timedelta(hours=1),
    "acc": timedelta(hours=3),
    "fair": None,
}


def without_absent(spec_text: str) -> str:
    """The same spec with every SLO's ``absent_after: off``."""
    out = []
    for line in textwrap.dedent(spec_text).splitlines():
        if line.lstrip().startswith("- {name:"):
            line = line.replace("- {name:", "- {absent_after: off, name:", 1)
        out.append(line.replace(", absent_after: 30m", "").replace(", absent_after: 2h", ""))
    return "\n".join(out).replace(", absent_after: 3h", "")


def generated(seed: int, n: int, at: datetime, stops: dict[str, int]) -> pa.Table:
    """``n`` records over the two days before ``at``, half of them in its last two hours.
    ``stops`` says how many seconds before
    ``at`` each kind of event stopped: ``all`` records, ``latency`` values, ``event_ts``
    values and ``eu`` traffic."""
    rng = np.random.default_rng(seed)
    at_us = int(at.timestamp() * 1_000_000)
    recent = rng.random(n) < 0.5  # half in the last two hours before they stopped
    spread = np.where(recent, 2 * 3600, 2 * 86_400) * 1_000_000
    ts = at_us - stops["all"] * 1_000_000 - (rng.random(n) * spread).astype(np.int64) - 1
    age = at_us - ts
    region = np.where(rng.random(n) < 0.5, "eu", "us")
    region[(region == "eu") & (age < stops["eu"] * 1_000_000)] = "us"
    latency = rng.gamma(2.0, 80.0, n)
    lag = rng.integers(0, 30 * MINUTE_US, n)
    status = np.where(rng.random(n) < 0.95, "ok", "error")
    prediction = rng.integers(0, 2, n)
    return pa.table(
        {
            "id": [f"r{i}" for i in range(n)],
            "ts": pa.array(ts, STAMP),
            "status": pa.array(status),
            "region": pa.array(region),
            "latency_ms": pa.array(latency, mask=age < stops["latency"] * 1_000_000),
            "event_ts": pa.array(ts - lag, STAMP, mask=age < stops["event_ts"] * 1_000_000),
            "prediction": pa.array(prediction),
            "label": pa.array((prediction + (rng.random(n) < 0.2)) % 2),
        }
    )


def expected_last_events(table: pa.Table, at: datetime) -> dict[str, datetime | None]:
    """The end of the last 1-minute bucket of the window ``[at - 1d, at)`` (whole buckets:
    from the first that starts at or after ``at - 1d``) holding an event of each SLO."""
    at_us = int(at.timestamp() * 1_000_000)
    start_us = -(-(at_us - 86_400 * 1_000_000) // MINUTE_US) * MINUTE_US
    ts = table["ts"].cast(pa.int64()).to_numpy()
    in_window = (ts >= start_us) & (ts < at_us)
    eu = table["region"].to_numpy(zero_copy_only=False) == "eu"
    events = {
        "up": in_window,
        "up-eu": in_window & eu,
        "fast": in_window & table["latency_ms"].is_valid().to_numpy(zero_copy_only=False),
        "fresh": in_window & table["event_ts"].is_valid().to_numpy(zero_copy_only=False),
        "acc": in_window,
        "fair": in_window,
    }
    out: dict[str, datetime | None] = {}
    for name, mask in events.items():
        if not mask.any():
            out[name] = None
            continue
        end_us = min((int(ts[mask].max()) // MINUTE_US + 1) * MINUTE_US, at_us)
        out[name] = datetime.fromtimestamp(end_us / 1_000_000, UTC)
    return out


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def assert_absence(
    judged: dict[str, Any], unjudged: dict[str, Any], last: dict[str, Any], at: datetime
) -> None:
    """Each SLO states its last event; past ``absent_after`` it is ``no_data`` with the
    reason and otherwise exactly what it is with ``absent_after: off``."""
    for name, entry in judged.items():
        event = last[name]
        assert entry["sli"]["last_event"] == (None if event is None else iso(event)), name
        limit = ABSENT_AFTER[name]
        plain = unjudged[name]
        if limit is None or (event is not None and at - event <= limit):
            assert entry == plain, name
            continue
        assert entry["budget"]["status"] == "no_data", name
        assert entry["met"] is None, name
        if event is None:
            assert plain["budget"]["status"] == "no_data" and entry == plain, name
            continue
        assert entry["budget"]["reason"] == (
            f"no events since {iso(event)} (absent_after {format_duration(limit)})"
        )
        # the window's numbers are still reported
        assert entry["sli"] == plain["sli"], name
        assert entry["burn_rates"] == plain["burn_rates"], name
        for key in ("consumed", "remaining"):
            assert entry["budget"][key] == plain["budget"][key], name


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    seconds=st.integers(0, 59),
    stops=st.fixed_dictionaries(
        {
            "all": st.integers(0, 5400),
            "latency": st.integers(0, 4 * 3600),
            "event_ts": st.sampled_from([0, 3599, 3600, 3660, 7200, 90_000]),
            "eu": st.integers(0, 3600),
        }
    ),
)
def test_last_event_and_absence_against_numpy(seed, n, seconds, stops):
    at = AT + timedelta(seconds=seconds)
    table = generated(seed, n, at, stops)
    judged = evaluate_table(SPEC, table, at)
    unjudged = evaluate_table(without_absent(SPEC), table, at)
    assert_absence(judged, unjudged, expected_last_events(table, at), at)


def test_absence_is_strictly_longer_than_absent_after():
    """A last event exactly ``absent_after`` ago is not yet absent; a microsecond later it is."""
    table = pa.table(
        {"ts": pa.array([AT - timedelta(minutes=61)], STAMP), "status": pa.array(["ok"])}
    )
    spec = """
        service: s
        slos:
          - {name: up, dimension: availability, objective: {target: 0.9}, window: 1d}
    """
    on_time = evaluate_table(spec, table, AT)["up"]
    assert on_time["sli"]["last_event"] == iso(AT - timedelta(hours=1))
    assert on_time["budget"]["status"] == "healthy" and on_time["met"] is True
    late = evaluate_table(spec, table, AT + timedelta(microseconds=1))["up"]
    assert late["budget"]["status"] == "no_data" and late["met"] is None


def test_files_and_the_server_state_the_same_last_events(tmp_path):
    stops = {"all": 1500, "latency": 9000, "event_ts": 3000, "eu": 2400}
    table = generated(4, 2000, AT, stops)
    from_files = evaluate_table(SPEC, table, AT)
    assert_absence(
        from_files,
        evaluate_table(without_absent(SPEC), table, AT),
        expected_last_events(table, AT),
        AT,
    )
    statuses = {name: entry["budget"]["status"] for name, entry in from_files.items()}
    assert statuses["up-eu"] == statuses["fast"] == "no_data"  # both stopped long enough ago
    assert statuses["up"] != "no_data" and statuses["fresh"] != "no_data"
    store = Store.open(
        tmp_path / "absent.duckdb", parse_spec(textwrap.dedent(SPEC)), clock=Clock(AT)
    )
    try:
        assert store.writer.records("predictions", table).accepted == 2000
        served = {s["name"]: s for s in evaluation_json(evaluate_store(store, AT))["slos"]}
        later = AT + timedelta(hours=5)
        afterwards = {s["name"]: s for s in evaluation_json(evaluate_store(store, later))["slos"]}
    finally:
        store.close()
    assert served == from_files
    assert afterwards == evaluate_table(SPEC, table, later)
    assert {n for n, e in afterwards.items() if e["budget"]["status"] == "no_data"} == {
        "up",
        "up-eu",
        "fast",
        "fresh",
        "acc",
    }


def test_corrected_buckets_hold_no_events():
    table = pa.table(
        {
            "ts": pa.array([AT - timedelta(hours=3), AT - timedelta(minutes=20)], STAMP),
            "status": pa.array(["ok", "ok"]),
        }
    )
    spec = f"""
        service: s
        slos:
          - {{name: up, dimension: availability, objective: {{target: 0.9}}, window: 1d}}
        corrections:
          - {{start: "{iso(AT - timedelta(minutes=30))}", end: "{iso(AT - timedelta(minutes=10))}",
             reason: a migration}}
    """
    slo = evaluate_table(spec, table, AT)["up"]
    assert slo["sli"]["last_event"] == iso(AT - timedelta(hours=3) + timedelta(minutes=1))
    assert slo["sli"]["n"] == 1 and slo["budget"]["status"] == "no_data"


def test_the_gate_treats_an_absent_slo_as_no_data(cli, write_spec, write_records):
    spec = write_spec("""
        service: s
        slos:
          - {name: up, dimension: availability, objective: {target: 0.9}, window: 1d}
        policy: {hard_stop: [up], on_no_data: block}
    """)
    data = write_records({"ts": [AT - timedelta(hours=2)], "status": ["ok"], "id": ["a"]})
    blocked = cli("gate", "--spec", spec, "--data", data, "--at", iso(AT), "-f", "json")
    assert blocked.exit_code == 1, blocked.stderr
    assert [(r["slo"], r["rule"], r["effect"]) for r in blocked.json()["reasons"]] == [
        ("up", "no_data", "block")
    ]
    earlier = iso(AT - timedelta(hours=1, minutes=30))
    allowed = cli("gate", "--spec", spec, "--data", data, "--at", earlier, "-f", "json")
    assert allowed.exit_code == 0, allowed.stdout
    assert allowed.json()["reasons"] == []


# --- the absent rule ----------------------------------------------------------------------------


def test_the_absent_rule_follows_the_dimension_and_absent_after():
    spec = parse_spec(textwrap.dedent(SPEC))
    rules = {
        s.name: [r for r in slo_rules(s, spec.bucket) if r.kind == "absent"] for s in spec.slos
    }
    assert {n: [(r.key, r.severity, r.alertname) for r in found] for n, found in rules.items()} == {
        "up": [("up/absent", "page", "MlsloEventsAbsent")],
        "up-eu": [("up-eu/absent", "page", "MlsloEventsAbsent")],
        "fast": [("fast/absent", "page", "MlsloEventsAbsent")],
        "fresh": [("fresh/absent", "ticket", "MlsloEventsAbsent")],
        "acc": [("acc/absent", "ticket", "MlsloEventsAbsent")],
        "fair": [],
    }


def test_the_absent_check_is_active_exactly_while_the_slo_is_absent(tmp_path):
    spec = parse_spec(
        "service: s\nslos:\n  - {name: up, dimension: availability, objective: {target: 0.9}}"
    )
    minutes = range(1, 121)  # one response a minute for two hours, the last at AT - 30s
    pq.write_table(
        pa.table(
            {
                "ts": pa.array([AT - timedelta(minutes=m, seconds=-30) for m in minutes], STAMP),
                "status": pa.array(["ok"] * len(minutes)),
            }
        ),
        tmp_path / "log.parquet",
    )
    moments = [AT, AT + timedelta(minutes=59), AT + timedelta(hours=1, minutes=1)]
    active = []
    for moment in moments:
        result = evaluate_files(spec, Sources(str(tmp_path / "log.parquet")), moment).get("up")
        (rule,) = [r for r in slo_rules(result.slo, spec.bucket) if r.kind == "absent"]
        outcome = check(rule, result, 1)
        assert outcome.last_event == result.last_event == AT
        assert outcome.suppressed is None
        active.append(outcome.active)
    assert active == [False, False, True]


# --- through the service: the alert loop, a webhook, /api/v1/alerts and /metrics ---------------


class Hook:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with hook.lock:
                    hook.bodies.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, event: str, key: str) -> dict[str, Any]:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with self.lock:
                for body in self.bodies:
                    for alert in body["alerts"]:
                        if (alert["event"], alert["key"]) == (event, key):
                            return alert
            time.sleep(0.05)
        pytest.fail(f"no {event} notification for {key}; received {self.bodies}")

    def events(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(a["event"], a["key"]) for b in self.bodies for a in b["alerts"]]


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def records(start: datetime, minutes: int) -> list[dict[str, Any]]:
    """One ok response a minute from ``start``, its input a minute old."""
    return [
        {
            "id": f"p{start:%H%M}-{m}",
            "ts": iso(start + timedelta(minutes=m, seconds=30)),
            "status": "ok",
            "event_ts": iso(start + timedelta(minutes=m, seconds=-30)),
        }
        for m in range(minutes)
    ]


def metric(text: str, name: str) -> dict[str, float]:
    return {
        s.labels["slo"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_the_service_pages_when_uptime_stops_and_resolves_when_it_resumes(
    live_server: Callable[..., Any], hook: Hook
) -> None:
    live = live_server(
        f"""
        service: fraud
        notifiers:
          - {{name: hook, type: webhook, url: "{hook.url}", send_resolved: true}}
        slos:
          - {{name: uptime, dimension: availability, objective: {{target: 0.9}}, window: 1d}}
          - {{name: freshness, dimension: freshness, sli: {{lag_threshold: 15m}},
             objective: {{target: 0.5}}, window: 1d, absent_after: 30m}}
        """,
        now=AT,
    )
    with live.client() as http:
        assert http.post(
            "/api/v1/predictions", json=records(AT - timedelta(hours=1), 60)
        ).is_success
    engine = live.service.enable_alerts(backoff=0.01)
    states = {a.rule.key: a.state.status for a in engine.evaluate()}
    assert states["uptime/absent"] == states["freshness/absent"] == "inactive"

    live.clock.advance(timedelta(minutes=45))  # past freshness's 30m, not uptime's 1h
    states = {a.rule.key: a.state.status for a in engine.evaluate()}
    assert (states["uptime/absent"], states["freshness/absent"]) == ("inactive", "firing")
    ticket = hook.wait_for("firing", "freshness/absent")
    assert (ticket["severity"], ticket["alertname"]) == ("ticket", "MlsloEventsAbsent")
    assert ticket["summary"] == "fraud: freshness has had no events since 2026-11-21T12:00:00Z"
    assert ticket["last_event"] == "2026-11-21T12:00:00Z"

    live.clock.advance(timedelta(minutes=16))  # 61 minutes without a response
    engine.evaluate()
    page = hook.wait_for("firing", "uptime/absent")
    assert page["severity"] == "page"
    assert page["summary"] == "fraud: uptime has had no events since 2026-11-21T12:00:00Z"
    assert "longer than its absent_after of 1h" in page["description"]
    with live.client() as http:
        listed = {a["key"]: a for a in http.get("/api/v1/alerts").json()["alerts"]}
        slos = {s["name"]: s for s in http.get("/api/v1/slos").json()["slos"]}
        scraped = http.get("/metrics").text
    assert {k for k, a in listed.items() if a["status"] == "firing"} == {
        "uptime/absent",
        "freshness/absent",
    }
    assert slos["uptime"]["budget"]["status"] == "no_data"
    assert slos["uptime"]["budget"]["reason"] == (
        "no events since 2026-11-21T12:00:00Z (absent_after 1h)"
    )
    assert metric(scraped, "mlslo_last_event_timestamp_seconds") == {
        "uptime": AT.timestamp(),
        "freshness": AT.timestamp(),
    }
    # the dashboard at that moment (time travel: rules checked without state) says so too
    with httpx.Client(base_url=live.url, cookies={"mlslo_token": live.admin}) as browser:
        page = browser.get("/", params={"at": iso(live.clock())})
    assert page.status_code == 200
    assert page.text.count("<td>no events since 2026-11-21T12:00:00Z</td>") == 2  # the panel
    assert "no events since 2026-11-21T12:00:00Z (absent_after 1h)" in page.text  # a card

    # a minute later records arrive again: both resolve, and the webhook is told
    live.clock.advance(timedelta(minutes=1))
    with live.client() as http:
        resumed = records(live.clock() - timedelta(minutes=2), 2)
        assert http.post("/api/v1/predictions", json=resumed).is_success
    states = {a.rule.key: a.state.status for a in engine.evaluate()}
    assert (states["uptime/absent"], states["freshness/absent"]) == ("resolved", "resolved")
    assert hook.wait_for("resolved", "uptime/absent")["summary"] == "fraud: uptime has events again"
    hook.wait_for("resolved", "freshness/absent")
    fired = [key for event, key in hook.events() if event == "firing"]
    assert sorted(fired) == ["freshness/absent", "uptime/absent"]  # each told once


# --- mlslo alerts ---------------------------------------------------------------------------


def test_mlslo_alerts_lists_the_absent_rule_with_the_last_event(cli, write_spec, write_records):
    spec = write_spec("""
        service: fraud
        slos:
          - {name: uptime, dimension: availability, objective: {target: 0.9}, window: 1d}
          - {name: f1, dimension: accuracy, sli: {metric: f1}, objective: {target: 0.5},
             window: 1d}
    """)
    rows = records(AT - timedelta(hours=3), 60)  # the log stops two hours before AT
    data = write_records(
        {
            "id": [r["id"] for r in rows],
            "ts": [r["ts"] for r in rows],
            "status": [r["status"] for r in rows],
            "prediction": [1] * len(rows),
            "label": [1] * len(rows),
        },
        "csv",
    )
    run = cli("alerts", "--spec", spec, "--data", data, "--at", iso(AT), "-f", "json")
    assert run.exit_code == 1, run.stderr  # the absent rule pages
    found = {(a["slo"], a["rule"]): a for a in run.json()["alerts"]}
    absent = found[("uptime", "absent")]
    assert (absent["status"], absent["severity"]) == ("firing", "page")
    assert absent["last_event"] == "2026-11-21T10:00:00Z"
    assert absent["threshold"] is None and absent["long_window"] is None
    assert ("f1", "absent") not in found  # accuracy: absent_after is off by default
    assert found[("uptime", "exhausted")]["suppressed"] == "budget status is no_data"
    table = cli("alerts", "--spec", spec, "--data", data, "--at", iso(AT))
    assert table.exit_code == 1, table.stderr
    row = next(line for line in table.stdout.splitlines() if "absent" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells == [
        "uptime",
        "absent",
        "page",
        "firing",
        "—",
        "—",
        "—",
        "last event 2026-11-21T10:00:00Z",
    ]
