"""mlslo against the real Prometheus 2.42 (and promtool) and Alertmanager 0.25.

Every server runs on 127.0.0.1 on a free port, keeps its data in tmp_path and is stopped by
its PID. The binaries come from Debian's ``prometheus`` and ``prometheus-alertmanager``
packages, which ``.ci/run`` installs; a missing binary fails the test instead of skipping it.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from mlslo.decide.alerts import checks
from mlslo.spec import parse_spec
from mlslo.spec.alert_rules import slo_rules

pytestmark = [
    pytest.mark.integration,
    pytest.mark.system("prometheus", "promtool", "prometheus-alertmanager"),
]

INSTALL = (
    "it comes from Debian's prometheus / prometheus-alertmanager packages, which .ci/run "
    "installs (apt-get install -y --no-install-recommends prometheus prometheus-alertmanager)"
)
DASHBOARD = "https://grafana.example.com/d/fraud"
RUNBOOK = "https://runbooks.example.com/fraud/uptime"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH: {INSTALL}", pytrace=False)
    return path


def _poll(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Call ``probe`` until it returns something truthy; fail with the last value if not."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _recent() -> datetime:
    """A service clock a few hours behind the real one, on a whole minute: the alerts mlslo
    sends carry this clock's times, and Alertmanager judges endsAt against its real clock."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(hours=8)


# --- processes -------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-6000:]


@pytest.fixture
def start_binary(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start a server binary on a free loopback port; terminated (then killed) by its PID."""
    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(name: str, args: Callable[[int], list[str]], ready: str = "/-/ready") -> Proc:
        binary = _binary(name)
        for attempt in range(3):
            port = free_port()
            log_path = tmp_path / f"{name}-{len(started)}.log"
            log = log_path.open("wb")
            process = subprocess.Popen(
                [binary, *args(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
            started.append((process, log))
            proc = Proc(name, process, log_path, f"http://127.0.0.1:{port}")
            deadline = time.monotonic() + 20
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    if httpx.get(proc.url + ready, timeout=1).status_code == 200:
                        return proc
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            if process.poll() is not None and "address already in use" in proc.output():
                continue  # lost the race for the port: try another
            pytest.fail(
                f"{name} did not become ready on {proc.url} (attempt {attempt + 1}, "
                f"exit code {process.poll()}):\n{proc.output()}",
                pytrace=False,
            )
        pytest.fail(f"{name}: no free port after 3 attempts", pytrace=False)

    try:
        yield start
    finally:
        for process, log in reversed(started):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
            log.close()


@dataclass
class Receiver:
    """A loopback webhook receiver: records every JSON body POSTed to it."""

    payloads: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.payloads.append(json.loads(body))
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

    def wait_for(self, what: str, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            with self.lock:
                return next((p for p in self.payloads if match(p)), None)

        found: dict[str, Any] = _poll(what, probe, timeout=15)
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    try:
        yield hook
    finally:
        hook.close()


@pytest.fixture
def alertmanager(tmp_path: Path, start_binary: Callable[..., Proc], receiver: Receiver) -> Proc:
    config = tmp_path / "am.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "mlslo-test",
                    "group_by": ["alertname", "slo"],
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "mlslo-test",
                        "webhook_configs": [{"url": receiver.url, "send_resolved": True}],
                    }
                ],
            }
        )
    )
    storage = tmp_path / "am-data"
    return start_binary(
        "prometheus-alertmanager",
        lambda port: [
            f"--config.file={config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
    )


# --- traffic ---------------------------------------------------------------------------------


def _outcomes(now: datetime, *, outage_minutes: int = 10) -> list[dict[str, Any]]:
    """29 days of clean traffic (hourly counts, then per minute for the last hour) ending in a
    full outage over the last ``outage_minutes``."""
    rows = [
        {"ts": _iso(now - timedelta(hours=h)), "total": 60_000, "ok": 60_000}
        for h in range(2, 29 * 24)
    ]
    for m in range(1, 61):
        bad = m <= outage_minutes
        ts = now - timedelta(minutes=m, seconds=-30)
        rows.append({"ts": _iso(ts), "total": 1000, "ok": 0 if bad else 1000})
    return rows


def _recovery(start: datetime, end: datetime) -> list[dict[str, Any]]:
    minutes = int((end - start).total_seconds() // 60)
    return [
        {"ts": _iso(start + timedelta(minutes=m, seconds=30)), "total": 1000, "ok": 1000}
        for m in range(minutes)
    ]


def _post(live: Any, kind: str, rows: list[dict[str, Any]]) -> None:
    with live.client() as http:
        response = http.post(f"/api/v1/{kind}", json=rows)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(rows)


def _slos(live: Any) -> dict[str, dict[str, Any]]:
    with live.client() as http:
        response = http.get("/api/v1/slos")
    assert response.status_code == 200, response.text
    return {s["name"]: s for s in response.json()["slos"]}


UPTIME_SPEC = f"""
    service: fraud
    dashboard_url: {DASHBOARD}
    slos:
      - name: uptime
        dimension: availability
        objective: {{target: 0.999}}
        window: 30d
        min_samples: 100
        runbook_url: {RUNBOOK}
"""
AM_NOTIFIER = """
    notifiers:
      - {{name: am, type: alertmanager, url: "{url}"}}
"""


# --- 1. Alertmanager -------------------------------------------------------------------------


def test_alertmanager_delivers_mlslo_alerts_firing_then_resolved(
    live_server: Callable[..., Any], alertmanager: Proc, receiver: Receiver
) -> None:
    now = _recent()
    live = live_server(UPTIME_SPEC + AM_NOTIFIER.format(url=alertmanager.url), now=now)
    _post(live, "outcomes", _outcomes(now))
    engine = live.service.enable_alerts(backoff=0.2)
    alerts = engine.evaluate()
    firing = {a.rule.name for a in alerts if a.state.status == "firing"}
    assert {"page-1h-5m", "page-6h-30m"} <= firing, firing
    uptime = _slos(live)["uptime"]
    rate_1h, rate_5m = uptime["burn_rates"]["1h"], uptime["burn_rates"]["5m"]
    assert rate_5m == pytest.approx(1000) and rate_1h == pytest.approx(1000 / 6)

    def page_alert(payload: dict[str, Any], status: str) -> bool:
        return payload.get("status") == status and any(
            a["labels"].get("rule") == "page-1h-5m" for a in payload["alerts"]
        )

    payload = receiver.wait_for(
        "Alertmanager's firing notification", lambda p: page_alert(p, "firing")
    )
    assert payload["receiver"] == "mlslo-test"
    assert payload["groupLabels"] == {"alertname": "MlsloErrorBudgetBurn", "slo": "uptime"}
    alert = next(a for a in payload["alerts"] if a["labels"]["rule"] == "page-1h-5m")
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "MlsloErrorBudgetBurn",
        "service": "fraud",
        "slo": "uptime",
        "dimension": "availability",
        "severity": "page",
        "rule": "page-1h-5m",
        "window": "30d",
    }
    notes = alert["annotations"]
    assert notes["summary"] == f"fraud: uptime is burning its error budget {rate_1h:.2f}×"
    description = notes["description"]
    assert description.startswith("SLO uptime (availability: availability >= 99.9% over 30d)")
    assert f"burning its error budget {rate_1h:.2f}× over the last 1h" in description
    assert f"{rate_5m:.2f}× over the last 5m" in description
    assert f"{uptime['budget']['remaining'] * 100:.1f}% of the budget is left" in description
    assert f"Runbook: {RUNBOOK}." in description
    assert notes["runbook_url"] == RUNBOOK
    assert float(notes["burn_rate_long"]) == pytest.approx(rate_1h, abs=1e-3)
    assert alert["generatorURL"] == f"{DASHBOARD}/slo/uptime"
    assert _parse_time(alert["startsAt"]) == now

    # Recovery: clean traffic for 7 hours, past every page and ticket window of the outage.
    live.clock.advance(timedelta(hours=7))
    _post(live, "outcomes", _recovery(now, live.clock.now))
    alerts = engine.evaluate()
    still = {a.rule.name for a in alerts if a.state.status in ("firing", "pending")}
    assert still == set(), still
    payload = receiver.wait_for(
        "Alertmanager's resolved notification", lambda p: page_alert(p, "resolved")
    )
    assert {a["status"] for a in payload["alerts"]} == {"resolved"}
    alert = next(a for a in payload["alerts"] if a["labels"]["rule"] == "page-1h-5m")
    assert _parse_time(alert["endsAt"]) == live.clock.now
    assert _parse_time(alert["startsAt"]) == now
    assert alert["generatorURL"] == f"{DASHBOARD}/slo/uptime"
    # The notifier counted both deliveries and gave up on none.
    sender = engine.senders["am"]
    _poll("the sender to count its second delivery", lambda: sender.sent >= 2, 5)
    assert sender.failed == 0


# --- 4. /metrics and /api/v1/alerts agree ----------------------------------------------------


def test_metrics_alert_counts_agree_with_alerts_api(live_server: Callable[..., Any]) -> None:
    now = _recent()
    live = live_server(UPTIME_SPEC, now=now)
    _post(live, "outcomes", _outcomes(now))
    live.service.enable_alerts()
    live.service.alerts.evaluate()
    with live.client() as http:
        metrics = http.get("/metrics")
        current = http.get("/api/v1/alerts")
        every = http.get("/api/v1/alerts", params={"all": "true"})
    assert metrics.status_code == current.status_code == every.status_code == 200
    counts = {
        (s.labels["severity"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(metrics.text)
        if family.name == "mlslo_alerts"
        for s in family.samples
    }
    assert counts, "no mlslo_alerts series in /metrics"

    def tally(body: dict[str, Any]) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for alert in body["alerts"]:
            key = (alert["severity"], alert["status"])
            out[key] = out.get(key, 0) + 1
        return out

    listed, listed_all = tally(current.json()), tally(every.json())
    assert counts[("page", "firing")] == listed.get(("page", "firing"), 0) == 2
    for (severity, status), value in counts.items():
        expected = listed_all if status == "inactive" else listed
        assert value == expected.get((severity, status), 0), (severity, status, value, expected)
    assert sum(counts.values()) == len(every.json()["alerts"]) == 6  # with uptime/absent
    history = current.json()["history"]
    assert {h["key"] for h in history if h["event"] == "firing"} >= {
        "uptime/page-1h-5m",
        "uptime/page-6h-30m",
    }


# --- 2. Prometheus scrapes mlslo and loads its rules -----------------------------------------


SCRAPE_SPEC = """
    service: fraud
    slos:
      - name: uptime
        dimension: availability
        objective: {target: 0.999}
        window: 30d
        min_samples: 100
      - name: latency
        dimension: latency
        sli: {latency_threshold: 250ms}
        objective: {target: 0.99}
        window: 7d
      - name: freshness
        dimension: freshness
        sli: {lag_threshold: 15m}
        objective: {target: 0.95}
        window: 7d
"""


def _predictions(now: datetime) -> list[dict[str, Any]]:
    """Two hours of predictions, ten a minute; half of them slow in the last ten minutes."""
    rows = []
    for m in range(1, 121):
        for i in range(10):
            slow = m <= 10 and i % 2 == 0
            rows.append(
                {
                    "id": f"p{m}-{i}",
                    "ts": _iso(now - timedelta(minutes=m, seconds=-(i * 5))),
                    "status": "ok",
                    "latency_ms": 400.0 if slow else 80.0,
                }
            )
    return rows


def test_prometheus_scrapes_mlslo_and_evaluates_its_rules(
    tmp_path: Path,
    live_server: Callable[..., Any],
    start_binary: Callable[..., Proc],
    cli: Callable[..., Any],
) -> None:
    # The real clock (on a whole minute): the absent rules compare the last event with
    # Prometheus's own time(), as they would in production.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    live = live_server(SCRAPE_SPEC, now=now)
    _post(live, "outcomes", _outcomes(now))
    _post(live, "predictions", _predictions(now))
    slos = _slos(live)
    expected = {n: s["budget"]["remaining"] for n, s in slos.items()}
    assert expected["freshness"] is None  # no event_ts: no data, so no series either
    assert expected["uptime"] is not None and expected["latency"] is not None

    rules = cli("rules", live.service.spec_path)
    assert rules.exit_code == 0, rules.stderr
    rules_path = tmp_path / "mlslo-rules.yml"
    rules_path.write_text(rules.stdout, encoding="utf-8")
    generated = yaml.safe_load(rules.stdout)

    host_port = live.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules_path)],
                "scrape_configs": [
                    {
                        "job_name": "mlslo",
                        "metrics_path": "/metrics",
                        "authorization": {"type": "Bearer", "credentials": live.token("read")},
                        "static_configs": [{"targets": [host_port]}],
                    }
                ],
            }
        )
    )
    storage = tmp_path / "prometheus-data"
    prometheus = start_binary(
        "prometheus",
        lambda port: [
            f"--config.file={config}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
    )

    with httpx.Client(base_url=prometheus.url, timeout=10) as api:

        def query(promql: str) -> list[dict[str, Any]]:
            response = api.get("/api/v1/query", params={"query": promql})
            assert response.status_code == 200, response.text
            result: list[dict[str, Any]] = response.json()["data"]["result"]
            return result

        present = {n for n, v in expected.items() if v is not None}

        def remaining() -> dict[str, dict[str, Any]] | None:
            series = {r["metric"]["slo"]: r for r in query("mlslo_error_budget_remaining_ratio")}
            return series if set(series) == present else None

        series = _poll("mlslo_error_budget_remaining_ratio in Prometheus", remaining, 20)
        for name, entry in series.items():
            labels = entry["metric"]
            assert labels["service"] == "fraud"
            assert labels["dimension"] == slos[name]["dimension"]
            assert labels["window"] == slos[name]["window"]
            assert labels["job"] == "mlslo" and labels["instance"] == host_port
            # The JSON API rounds to 12 significant digits; /metrics keeps every digit.
            value = float(entry["value"][1])
            assert float(f"{value:.12g}") == expected[name], (name, value)
            assert value == pytest.approx(expected[name], rel=1e-11), (name, value)
        # The last event of each SLO, as the JSON states it (none for freshness: no event_ts).
        last = {r["metric"]["slo"]: r for r in query("mlslo_last_event_timestamp_seconds")}
        assert set(last) == present
        for name, entry in last.items():
            stated = _parse_time(slos[name]["sli"]["last_event"]).timestamp()
            assert float(entry["value"][1]) == stated, name
        assert slos["freshness"]["sli"]["last_event"] is None
        up = query('up{job="mlslo"}')
        assert [u["value"][1] for u in up] == ["1"]  # the read token was accepted

        # The generated rules load and evaluate cleanly.
        def healthy() -> list[dict[str, Any]] | None:
            groups: list[dict[str, Any]] = api.get("/api/v1/rules").json()["data"]["groups"]
            states = [r["health"] for g in groups for r in g["rules"]]
            return groups if groups and all(h == "ok" for h in states) else None

        groups = _poll("every generated rule to evaluate with health ok", healthy, 15)
        loaded = {g["name"]: len(g["rules"]) for g in groups}
        assert loaded == {g["name"]: len(g["rules"]) for g in generated["groups"]}
        assert set(loaded) == {"mlslo-fraud-burn-rates", "mlslo-fraud-alerts"}
        assert all(not r.get("lastError") for g in groups for r in g["rules"])

        # The recording rule keeps the lower burn rate of the two windows.
        recorded = _poll(
            "the recording rule's first value",
            lambda: query(
                'slo:mlslo_burn_rate:min_long_short{slo="uptime", alert_rule="page-1h-5m"}'
            ),
            10,
        )
        burn = slos["uptime"]["burn_rates"]
        assert [float(f"{float(r['value'][1]):.12g}") for r in recorded] == [
            min(burn["1h"], burn["5m"])
        ]

        # Prometheus fires the same rules as mlslo's own engine on the same data.
        evaluation = live.service.evaluate(live.clock())
        active = {
            (slo.name, rule.name)
            for slo, rule, result in checks(live.service.spec, evaluation)
            if result.active
        }
        assert ("uptime", "page-1h-5m") in active and ("latency", "page-14m-1m") in active
        # freshness has no event in its window: absent, for mlslo and for Prometheus alike
        assert {r for r in active if r[1] == "absent"} == {("freshness", "absent")}

        def prometheus_alerts() -> set[tuple[str, str]] | None:
            data = api.get("/api/v1/alerts").json()["data"]["alerts"]
            got = {
                (a["labels"]["slo"], a["labels"]["rule"]) for a in data if a["state"] == "firing"
            }
            return got if got == active else None

        deadline = time.monotonic() + 10
        got: set[tuple[str, str]] | None = None
        while got is None and time.monotonic() < deadline:
            got = prometheus_alerts()
            time.sleep(0.25)
        if got is None:
            data = api.get("/api/v1/alerts").json()["data"]["alerts"]
            firing = {(a["labels"]["slo"], a["labels"]["rule"]) for a in data}
            pytest.fail(f"Prometheus fires {sorted(firing)}; mlslo's engine {sorted(active)}")


# --- 3. promtool -----------------------------------------------------------------------------


MULTI_SPEC = """
    service: fraud-scoring
    slos:
      - name: uptime
        dimension: availability
        objective: {target: 0.999}
        window: 30d
        min_samples: 100
        runbook_url: https://runbooks.example.com/fraud/uptime
      - name: latency
        dimension: latency
        sli: {latency_threshold: 250ms}
        objective: {target: 0.99}
        window: 7d
      - name: f1
        dimension: accuracy
        sli: {metric: f1}
        objective: {target: 0.9}
        window: 30d
        min_samples: 200
        alerts:
          - {long: 1h, short: 5m, burn_rate: 14.4, severity: page}
          - {long: 1d, short: 2h, burn_rate: 3, severity: ticket, for: 15m}
"""


def _rules_file(cli: Callable[..., Any], write_spec: Callable[..., Path], spec: str) -> Path:
    path = write_spec(spec)
    run = cli("rules", path)
    assert run.exit_code == 0, run.stderr
    out = path.with_suffix(".rules.yml")
    out.write_text(run.stdout, encoding="utf-8")
    return out


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_binary("promtool"), *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _slo_labels(
    slo: str = "uptime", dimension: str = "availability", window: str = "30d"
) -> dict[str, str]:
    """The labels mlslo's /metrics puts on an SLO's series (Prometheus adds job, instance)."""
    return {"service": "fraud-scoring", "slo": slo, "dimension": dimension, "window": window}


def _slo_series(name: str, labels: dict[str, str] | None = None, **extra: str) -> str:
    pairs = {**(labels or _slo_labels()), **extra}
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def _burn_inputs(
    slo: str, dimension: str, window: str, rates: dict[str, str], samples: dict[str, str]
) -> list[dict[str, str]]:
    """Input series for mlslo_burn_rate and mlslo_burn_rate_samples, per burn window."""
    labels = _slo_labels(slo, dimension, window)
    return [
        {"series": _slo_series(name, labels, burn_window=burn_window), "values": values}
        for name, per_window in (("mlslo_burn_rate", rates), ("mlslo_burn_rate_samples", samples))
        for burn_window, values in per_window.items()
    ]


def _alert_labels(slo: str, dimension: str, window: str, rule: str) -> dict[str, str]:
    return {
        "alertname": "MlsloErrorBudgetBurn",
        **_slo_labels(slo, dimension, window),
        "alert_rule": rule,
        "severity": rule.split("-")[0],
        "rule": rule,
    }


# The uptime SLO's outage: at minute 10 the 5m window burns 500x and the 1h window 60x.
OUTAGE_RATES = {"5m": "0.5x9 500x20", "1h": "0.2x9 60x20", "30m": "0.3x30", "6h": "0.1x30"}
UPTIME_NOTES = {
    "summary": "fraud-scoring: uptime is burning its error budget 60.0x (page)",
    "description": "SLO uptime (availability: availability >= 99.9% over 30d) burns faster "
    "than 14.4x over both 1h and 5m.",
    "runbook_url": "https://runbooks.example.com/fraud/uptime",
}


def _unit_tests(rules: Path) -> dict[str, Any]:
    enough = {w: "1000x30" for w in OUTAGE_RATES}
    return {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "outage pages on the 1h/5m rule, not before",
                "interval": "1m",
                "input_series": _burn_inputs("uptime", "availability", "30d", OUTAGE_RATES, enough),
                "alert_rule_test": [
                    {"eval_time": "9m", "alertname": "MlsloErrorBudgetBurn", "exp_alerts": []},
                    {
                        "eval_time": "15m",
                        "alertname": "MlsloErrorBudgetBurn",
                        "exp_alerts": [
                            {
                                "exp_labels": _alert_labels(
                                    "uptime", "availability", "30d", "page-1h-5m"
                                ),
                                "exp_annotations": UPTIME_NOTES,
                            }
                        ],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": "MlsloErrorBudgetExhausted",
                        "exp_alerts": [],
                    },
                ],
            },
            {
                "name": "the same outage on fewer samples than min_samples stays silent",
                "interval": "1m",
                "input_series": _burn_inputs(
                    "uptime",
                    "availability",
                    "30d",
                    OUTAGE_RATES,
                    {"5m": "50x30", "1h": "5000x30", "30m": "1000x30", "6h": "1000x30"},
                ),
                "alert_rule_test": [
                    {"eval_time": "15m", "alertname": "MlsloErrorBudgetBurn", "exp_alerts": []},
                    {"eval_time": "25m", "alertname": "MlsloErrorBudgetBurn", "exp_alerts": []},
                ],
            },
            {
                "name": "a 7d window uses the scaled 14m/1m windows",
                "interval": "1m",
                "input_series": _burn_inputs(
                    "latency",
                    "latency",
                    "7d",
                    {"1m": "0x9 50x20", "14m": "0x9 20x20"},
                    {"1m": "10x30", "14m": "140x30"},
                ),
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "MlsloErrorBudgetBurn", "exp_alerts": []},
                    {
                        "eval_time": "12m",
                        "alertname": "MlsloErrorBudgetBurn",
                        "exp_alerts": [
                            {
                                "exp_labels": _alert_labels(
                                    "latency", "latency", "7d", "page-14m-1m"
                                ),
                                "exp_annotations": {
                                    "summary": "fraud-scoring: latency is burning its error "
                                    "budget 20.0x (page)",
                                    "description": "SLO latency (latency: fast_share >= 99% over "
                                    "7d) burns faster than 14.4x over both 14m and 1m.",
                                },
                            }
                        ],
                    },
                ],
            },
            {
                "name": "an exhausted budget opens a ticket",
                "interval": "1m",
                "input_series": [
                    {
                        "series": _slo_series("mlslo_error_budget_remaining_ratio"),
                        "values": "0.2x4 -0.5x10",
                    },
                    {"series": _slo_series("mlslo_sli_samples"), "values": "5000x14"},
                    {
                        "series": _slo_series("mlslo_error_budget_status", status="healthy"),
                        "values": "1x4 _x10",
                    },
                    {
                        "series": _slo_series("mlslo_error_budget_status", status="exhausted"),
                        "values": "_x4 1x10",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "MlsloErrorBudgetExhausted", "exp_alerts": []},
                    {
                        "eval_time": "8m",
                        "alertname": "MlsloErrorBudgetExhausted",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    **_slo_labels(),
                                    "severity": "ticket",
                                    "rule": "exhausted",
                                },
                                "exp_annotations": {
                                    "summary": "fraud-scoring: uptime error budget is exhausted",
                                    "description": "SLO uptime (availability) has spent its whole "
                                    "error budget.",
                                    "runbook_url": "https://runbooks.example.com/fraud/uptime",
                                },
                            }
                        ],
                    },
                ],
            },
            {
                "name": "a custom ticket rule waits for its for: 15m",
                "interval": "1m",
                "input_series": _burn_inputs(
                    "f1",
                    "accuracy",
                    "30d",
                    {"1d": "5x40", "2h": "5x40"},
                    {"1d": "900x40", "2h": "300x40"},
                ),
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "MlsloErrorBudgetBurn", "exp_alerts": []},
                    {
                        "eval_time": "20m",
                        "alertname": "MlsloErrorBudgetBurn",
                        "exp_alerts": [
                            {
                                "exp_labels": _alert_labels(
                                    "f1", "accuracy", "30d", "ticket-1d-2h"
                                ),
                                "exp_annotations": {
                                    "summary": "fraud-scoring: f1 is burning its error budget "
                                    "5.0x (ticket)",
                                    "description": "SLO f1 (accuracy: f1 >= 0.9 over 30d) burns "
                                    "faster than 3x over both 1d and 2h.",
                                },
                            }
                        ],
                    },
                ],
            },
        ],
    }


def test_promtool_accepts_generated_rules(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    rules = _rules_file(cli, write_spec, MULTI_SPEC)
    spec = parse_spec(textwrap.dedent(MULTI_SPEC))
    burn = sum(1 for s in spec.slos for r in slo_rules(s, spec.bucket) if r.kind == "burn")
    absent = sum(1 for s in spec.slos if s.absent_after is not None)
    assert absent == 2  # uptime and latency; accuracy has no absent_after by default
    # two recording rules and an alert per burn rule, an exhausted and an absent alert per SLO
    expected = 3 * burn + len(spec.slos) + absent
    run = _promtool("check", "rules", rules)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {expected} rules found" in run.stdout, run.stdout
    assert "FAILED" not in run.stdout + run.stderr, run.stdout + run.stderr


def test_promtool_unit_tests_of_generated_rules(
    tmp_path: Path, cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    rules = _rules_file(cli, write_spec, MULTI_SPEC)
    tests = _unit_tests(rules)
    good = rules.parent / "rules_test.yml"
    good.write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
    run = _promtool("test", "rules", good)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout + run.stderr

    # The same file with one wrong expectation must fail: the unit tests can catch a bug.
    wrong = copy.deepcopy(tests)
    expectation = wrong["tests"][0]["alert_rule_test"][1]["exp_alerts"][0]["exp_labels"]
    expectation["severity"] = "ticket"
    early = copy.deepcopy(tests)
    early["tests"][1]["alert_rule_test"][0]["exp_alerts"] = [
        {"exp_labels": _alert_labels("uptime", "availability", "30d", "page-1h-5m")}
    ]
    for case, document in (("wrong label", wrong), ("alert on thin data", early)):
        path = tmp_path / f"rules_test_{case.replace(' ', '_')}.yml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        run = _promtool("test", "rules", path)
        assert run.returncode != 0, f"{case}: promtool passed a wrong expectation\n{run.stdout}"
        assert "FAILED" in run.stdout + run.stderr, run.stdout + run.stderr


ABSENT_SPEC = """
    service: fraud-scoring
    slos:
      - name: uptime
        dimension: availability
        objective: {target: 0.999}
        window: 30d
        runbook_url: https://runbooks.example.com/fraud/uptime
      - name: freshness
        dimension: freshness
        sli: {lag_threshold: 15m}
        objective: {target: 0.95}
        window: 7d
        absent_after: 30m
      - name: f1
        dimension: accuracy
        sli: {metric: f1}
        objective: {target: 0.9}
"""
FRESHNESS = _slo_labels("freshness", "freshness", "7d")
ABSENT_NOTE = ": records stopped arriving, so its budget is not judged."
UPTIME_ABSENT = {
    "exp_labels": {
        "alertname": "MlsloEventsAbsent",
        **_slo_labels(),
        "severity": "page",
        "rule": "absent",
    },
    "exp_annotations": {
        "summary": "fraud-scoring: uptime has had no events for more than 1h",
        "description": "SLO uptime (availability: availability >= 99.9% over 30d) has had no "
        "events for longer than its absent_after of 1h" + ABSENT_NOTE,
        "runbook_url": "https://runbooks.example.com/fraud/uptime",
    },
}
FRESHNESS_NOTES = {
    "summary": "fraud-scoring: freshness has had no events for more than 30m",
    "description": "SLO freshness (freshness: fresh_share >= 95% over 7d) has had no events for "
    "longer than its absent_after of 30m" + ABSENT_NOTE,
}


def _absent_tests(rules: Path) -> dict[str, Any]:
    """promtool's clock starts at 0: a last event that keeps up with it has a value of 60 per
    minute; one that stops stays where it was."""
    last = "mlslo_last_event_timestamp_seconds"
    return {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "uptime's events stop at minute 30: a page once they are 1h old",
                "interval": "1m",
                "input_series": [
                    {"series": _slo_series(last), "values": "0+60x30 1800x120"},
                    {"series": _slo_series(last, FRESHNESS), "values": "0+60x150"},
                ],
                "alert_rule_test": [
                    {"eval_time": "60m", "alertname": "MlsloEventsAbsent", "exp_alerts": []},
                    {"eval_time": "90m", "alertname": "MlsloEventsAbsent", "exp_alerts": []},
                    {
                        "eval_time": "91m",
                        "alertname": "MlsloEventsAbsent",
                        "exp_alerts": [UPTIME_ABSENT],
                    },
                ],
            },
            {
                "name": "freshness's own absent_after: a ticket after 30m",
                "interval": "1m",
                "input_series": [
                    {"series": _slo_series(last), "values": "0+60x60"},
                    {"series": _slo_series(last, FRESHNESS), "values": "0+60x5 300x55"},
                ],
                "alert_rule_test": [
                    {"eval_time": "35m", "alertname": "MlsloEventsAbsent", "exp_alerts": []},
                    {
                        "eval_time": "36m",
                        "alertname": "MlsloEventsAbsent",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "alertname": "MlsloEventsAbsent",
                                    **FRESHNESS,
                                    "severity": "ticket",
                                    "rule": "absent",
                                },
                                "exp_annotations": FRESHNESS_NOTES,
                            }
                        ],
                    },
                ],
            },
            {
                "name": "no last event at all (an empty window): absent() fires; f1 has no rule",
                "interval": "1m",
                "input_series": [
                    {"series": _slo_series(last), "values": "0+60x30"},
                    {"series": _slo_series(last, FRESHNESS), "values": "0+60x5 _x25"},
                ],
                "alert_rule_test": [
                    {"eval_time": "4m", "alertname": "MlsloEventsAbsent", "exp_alerts": []},
                    {
                        "eval_time": "20m",
                        "alertname": "MlsloEventsAbsent",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "alertname": "MlsloEventsAbsent",
                                    "service": "fraud-scoring",
                                    "slo": "freshness",
                                    "severity": "ticket",
                                    "rule": "absent",
                                },
                                "exp_annotations": FRESHNESS_NOTES,
                            }
                        ],
                    },
                ],
            },
        ],
    }


def test_promtool_unit_tests_of_the_absent_rules(
    tmp_path: Path, cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    rules = _rules_file(cli, write_spec, ABSENT_SPEC)
    generated = yaml.safe_load(rules.read_text(encoding="utf-8"))
    rules_of = [r for g in generated["groups"] for r in g["rules"]]
    absent = [r for r in rules_of if r.get("alert") == "MlsloEventsAbsent"]
    assert [r["labels"]["slo"] for r in absent] == ["uptime", "freshness"]
    selector = '{service="fraud-scoring", slo="uptime"}'
    assert absent[0]["expr"] == (
        f"absent(mlslo_last_event_timestamp_seconds{selector})\n"
        f"or (time() - mlslo_last_event_timestamp_seconds{selector} > 3600)"
    )
    tests = _absent_tests(rules)
    good = rules.parent / "absent_test.yml"
    good.write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
    run = _promtool("test", "rules", good)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout + run.stderr

    # One wrong expectation each: a page a minute early, and the wrong severity.
    early = copy.deepcopy(tests)
    early["tests"][0]["alert_rule_test"][1]["exp_alerts"] = [UPTIME_ABSENT]
    wrong = copy.deepcopy(tests)
    wrong["tests"][1]["alert_rule_test"][1]["exp_alerts"][0]["exp_labels"]["severity"] = "page"
    for case, document in (("early", early), ("severity", wrong)):
        path = tmp_path / f"absent_test_{case}.yml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        run = _promtool("test", "rules", path)
        assert run.returncode != 0, f"{case}: promtool passed a wrong expectation\n{run.stdout}"
        assert "FAILED" in run.stdout + run.stderr, run.stdout + run.stderr


# --- mlslo defects these tools expose (see the report) ---------------------------------------


SHORT_WINDOW_SPEC = """
    service: fraud-scoring
    slos:
      - name: uptime
        dimension: availability
        objective: {target: 0.999}
        window: 12h
"""


def test_generated_rule_fires_when_long_and_short_windows_scale_to_one_bucket(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    """A 12h window with the default 1m bucket scales the Workbook's 1h/5m pair to 1m/1m.
    mlslo's own engine fires such a rule; the generated Prometheus rule must fire too."""
    spec = parse_spec(textwrap.dedent(SHORT_WINDOW_SPEC))
    names = [r.name for r in slo_rules(spec.slos[0], spec.bucket)]
    assert "page-1m-1m" in names
    rules = _rules_file(cli, write_spec, SHORT_WINDOW_SPEC)
    document = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _burn_inputs(
                    "uptime",
                    "availability",
                    "12h",
                    {"1m": "0x4 500x20", "6m": "0x30", "24m": "0x30", "72m": "0x30"},
                    {"1m": "1000x30", "6m": "6000x30", "24m": "24000x30", "72m": "72000x30"},
                ),
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "MlsloErrorBudgetBurn",
                        "exp_alerts": [
                            {
                                "exp_labels": _alert_labels(
                                    "uptime", "availability", "12h", "page-1m-1m"
                                ),
                                "exp_annotations": {
                                    "summary": "fraud-scoring: uptime is burning its error "
                                    "budget 500.0x (page)",
                                    "description": "SLO uptime (availability: availability >= "
                                    "99.9% over 12h) burns faster than 14.4x over both 1m and 1m.",
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    path = rules.parent / "short_window_test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    run = _promtool("test", "rules", path)
    assert run.returncode == 0, (
        "the generated page-1m-1m rule never fires: its expression requires "
        "count(mlslo_burn_rate{burn_window=~'1m|1m'}) == 2, but /metrics exports one series "
        "for the single 1m window\n" + run.stdout + run.stderr
    )


def test_generated_rules_stay_distinct_when_windows_collapse(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    """A 1d window on 1h buckets scales both Workbook page pairs (1h/5m and 6h/30m) to 1h/1h:
    two rules with one name. Prometheus flags the duplicates, and mlslo's engine keeps one
    state for both keys (so the alert flips between firing and resolved every evaluation)."""
    text = """
        service: fraud-scoring
        bucket: 1h
        slos:
          - {name: uptime, dimension: availability, objective: {target: 0.99}, window: 1d}
    """
    spec = parse_spec(textwrap.dedent(text))
    keys = [r.key for r in slo_rules(spec.slos[0], spec.bucket)]
    run = _promtool("check", "rules", _rules_file(cli, write_spec, text))
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "duplicate rule" not in output and "FAILED" not in output, output
    assert len(keys) == len(set(keys)), f"rule keys collide: {keys}"


def test_generated_exhausted_rule_respects_min_samples(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    """On fewer samples than min_samples the budget status is insufficient_data and mlslo's
    engine suppresses the exhausted alert ("budget status is insufficient_data"), but /metrics
    still exports the (negative) remaining ratio. The generated rule must stay silent too."""
    rules = _rules_file(cli, write_spec, MULTI_SPEC)  # uptime: min_samples 100
    # What /metrics exports for uptime with 30 of 60 requests failing (status insufficient_data).
    document = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": _slo_series("mlslo_error_budget_remaining_ratio"),
                        "values": "-499x10",
                    },
                    {
                        "series": _slo_series("mlslo_error_budget_consumed_ratio"),
                        "values": "500x10",
                    },
                    {"series": _slo_series("mlslo_sli_samples"), "values": "60x10"},
                    {
                        "series": _slo_series(
                            "mlslo_error_budget_status", status="insufficient_data"
                        ),
                        "values": "1x10",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "MlsloErrorBudgetExhausted", "exp_alerts": []}
                ],
            }
        ],
    }
    path = rules.parent / "thin_exhausted_test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    run = _promtool("test", "rules", path)
    assert run.returncode == 0, (
        "the generated MlsloErrorBudgetExhausted rule fires on insufficient data (its expr is "
        "only remaining_ratio <= 0), where mlslo's engine stays silent\n" + run.stdout + run.stderr
    )
