"""SLOs read from Prometheus (``source.prometheus``).

End to end: a small exporter on 127.0.0.1 serves counters the test increments, Debian's real
``prometheus`` scrapes it every second, and the CLI (evaluate, gate, alerts, report) and the
service (status, gate, dashboard, /metrics) count exactly the events the exporter served.
Then the failures, from a tiny real HTTP server answering as Prometheus would: a refused
query, a page that is not Prometheus, no series, NaN, too slow, nobody listening. Each is a
located error on the command line (exit 2) and ``no_data`` with the reason in the service,
never a crash.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from mlslo.errors import SourceError
from mlslo.scan.prometheus import read_prometheus
from mlslo.spec import parse_spec, spec_from_dict

# --- the spec ---------------------------------------------------------------------------------


def spec_text(url: str, slos: list[dict[str, Any]], **extra: Any) -> str:
    document = {"service": "checkout", "bucket": "1s", "slos": slos, **extra}
    return yaml.safe_dump(document, sort_keys=False)


def availability(name: str, url: str, timeout: str = "5s", **queries: str) -> dict[str, Any]:
    return {
        "name": name,
        "dimension": "availability",
        "objective": {"target": 0.9},
        "window": "5m",
        "source": {"prometheus": {"url": url, "timeout": timeout, **queries}},
    }


# --- the exporter and Prometheus -------------------------------------------------------------


@dataclass
class Exporter:
    requests: Counter
    latency: Histogram
    port: int
    served: dict[str, float]

    def serve(self, ok: int, errors: int, fast: int, slow: int) -> None:
        """Count responses: ``ok`` 200s and ``errors`` 500s, ``fast`` of 0.1 s and ``slow``
        of 0.7 s."""
        self.requests.labels(code="200").inc(ok)
        self.requests.labels(code="500").inc(errors)
        for _ in range(fast):
            self.latency.observe(0.1)
        for _ in range(slow):
            self.latency.observe(0.7)
        for key, n in (("ok", ok), ("errors", errors), ("fast", fast), ("slow", slow)):
            self.served[key] += n


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    registry = CollectorRegistry()
    requests = Counter("shop_requests", "Responses by code", ["code"], registry=registry)
    latency = Histogram(
        "shop_latency_seconds", "Response time", buckets=(0.25, 0.5, 1.0), registry=registry
    )
    for code in ("200", "500"):
        requests.labels(code=code)  # both series exist at 0 before the first scrape
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield Exporter(requests, latency, port, dict.fromkeys(("ok", "errors", "fast", "slow"), 0.0))
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def prometheus(exporter: Exporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "`prometheus` is not on PATH: Debian's prometheus package (.ci/run installs it)",
            pytrace=False,
        )
    folder = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "shop",
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
                    }
                ],
            }
        )
    )
    log = (folder / "prometheus.log").open("wb")
    for _ in range(3):
        port = free_port()
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        ready = False
        while process.poll() is None and time.monotonic() < deadline and not ready:
            try:
                ready = httpx.get(url + "/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.1)
        if ready:
            break
        process.terminate()
        process.wait(timeout=10)
    else:
        log.close()
        pytest.fail((folder / "prometheus.log").read_text()[-3000:], pytrace=False)
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def scraped(url: str, query: str, expected: float, timeout: float = 20) -> None:
    """Wait until Prometheus' newest sample of ``query`` is ``expected``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        answer = httpx.get(url + "/api/v1/query", params={"query": query}, timeout=5).json()
        result = answer["data"]["result"]
        last = result
        if result and float(result[0]["value"][1]) == expected:
            return
        time.sleep(0.2)
    pytest.fail(f"Prometheus never showed {query} = {expected}; last answer {last}")


def raw_increase(url: str, series: str, start: datetime, end: datetime) -> float:
    """The oracle: the raw samples Prometheus stored for ``series`` in ``[start, end]``,
    their increase from the last sample before ``start`` (a counter that never resets)."""
    span = int((end - start).total_seconds()) + 300
    answer = httpx.get(
        url + "/api/v1/query",
        params={"query": f"{series}[{span}s]", "time": end.timestamp()},
        timeout=5,
    ).json()
    total = 0.0
    for found in answer["data"]["result"]:
        values = [(float(t), float(v)) for t, v in found["values"]]
        before = [v for t, v in values if t < start.timestamp()]
        base = before[-1] if before else 0.0
        total += values[-1][1] - base
    return total


@pytest.fixture(scope="module")
def traffic(exporter: Exporter, prometheus: str) -> datetime:
    """Two rounds of known traffic, each scraped before the next; returns a moment after the
    last scrape."""
    scraped(prometheus, 'shop_requests_total{code="500"}', 0.0)
    for ok, errors, fast, slow in ((120, 8, 100, 28), (75, 2, 70, 7)):
        exporter.serve(ok, errors, fast, slow)
        scraped(prometheus, 'shop_requests_total{code="200"}', exporter.served["ok"])
        scraped(
            prometheus,
            "shop_latency_seconds_count",
            exporter.served["fast"] + exporter.served["slow"],
        )
        scraped(prometheus, 'shop_requests_total{code="500"}', exporter.served["errors"])
    return datetime.now(UTC)


def prometheus_spec(url: str) -> str:
    requests = "shop_requests_total"
    ok = 'shop_requests_total{code="200"}'
    return spec_text(
        url,
        [
            availability("uptime", url, good=f'{requests}{{code="200"}}', total=requests),
            availability("uptime-bad", url, bad=f'{requests}{{code="500"}}', total=requests),
            availability(
                "uptime-windowed",
                url,
                good=f"sum({ok}) - sum({ok} offset $window)",
                total=f"sum({requests}) - sum({requests} offset $window)",
            ),
            {
                "name": "latency",
                "dimension": "latency",
                "sli": {"latency_threshold": "250ms"},
                "objective": {"target": 0.9},
                "window": "5m",
                "source": {
                    "prometheus": {
                        "url": url,
                        "good": 'shop_latency_seconds_bucket{le="0.25"}',
                        "total": "shop_latency_seconds_count",
                    }
                },
            },
        ],
        policy={"hard_stop": ["uptime"], "min_remaining": {"latency": 0.5}},
    )


# --- end to end -------------------------------------------------------------------------------

pytestmark = pytest.mark.integration


@pytest.mark.system("prometheus")
def test_the_cli_counts_what_the_exporter_served(
    exporter: Exporter,
    prometheus: str,
    traffic: datetime,
    cli: Callable[..., Any],
    write_spec: Callable[[str], Path],
) -> None:
    spec = write_spec(prometheus_spec(prometheus))
    at = traffic.isoformat()
    run = cli("evaluate", "--spec", spec, "--at", at, "--format", "json")
    assert run.exit_code == 0, run.stderr
    slos = {s["name"]: s for s in run.json()["slos"]}
    served = exporter.served
    requests = served["ok"] + served["errors"]
    assert requests == 205 and served["errors"] == 10
    window_start = datetime.fromisoformat(slos["uptime"]["window_start"].replace("Z", "+00:00"))
    oracle = raw_increase(prometheus, "shop_requests_total", window_start, traffic)
    assert oracle == requests
    for name in ("uptime", "uptime-bad", "uptime-windowed"):
        sli = slos[name]["sli"]
        assert (sli["good"], sli["valid"], sli["n"]) == (served["ok"], requests, requests), name
        assert sli["value"] == pytest.approx(195 / 205, abs=1e-12)
        assert slos[name]["budget"]["consumed"] == pytest.approx((10 / 205) / 0.1, rel=1e-12)
        assert slos[name]["met"] is True
    latency = slos["latency"]["sli"]
    assert (latency["good"], latency["valid"]) == (170, 205)
    assert slos["latency"]["met"] is False  # 170/205 = 0.829 < 0.9
    assert slos["latency"]["budget"]["status"] == "exhausted"

    gate = cli("gate", "--spec", spec, "--at", at, "--format", "json")
    assert gate.exit_code == 1, gate.stderr
    blocked = json.dumps(gate.json()["reasons"])
    assert "latency" in blocked

    report = cli("report", "--spec", spec, "--at", at, "--out", spec.with_suffix(".md"))
    assert report.exit_code == 0, report.stderr
    assert "uptime" in spec.with_suffix(".md").read_text(encoding="utf-8")

    alerts = cli("alerts", "--spec", spec, "--at", at, "--format", "json")
    assert alerts.exit_code in (0, 1, 3), alerts.stderr
    assert {a["slo"] for a in alerts.json()["alerts"]} >= {"uptime", "latency"}


@pytest.mark.system("prometheus")
def test_the_service_shows_the_same_numbers(
    exporter: Exporter, prometheus: str, traffic: datetime, live_server: Callable[..., Any]
) -> None:
    live = live_server(prometheus_spec(prometheus), now=traffic, auth=False)
    with live.client(None) as client:
        status = client.get("/api/v1/slos")
        assert status.status_code == 200, status.text
        slos = {s["name"]: s for s in status.json()["slos"]}
        gate = client.get("/api/v1/gate").json()
        page = client.get("/")
        metrics = client.get("/metrics").text
    served = exporter.served
    assert slos["uptime"]["sli"]["good"] == served["ok"]
    assert slos["uptime"]["sli"]["valid"] == served["ok"] + served["errors"]
    assert slos["latency"]["sli"]["good"] == served["fast"]
    assert gate["decision"] == "block"
    assert page.status_code == 200 and "latency" in page.text
    samples = {
        (sample.labels.get("slo"), sample.name): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    assert samples[("uptime", "mlslo_sli")] == pytest.approx(195 / 205, rel=1e-12)
    assert samples[("latency", "mlslo_sli_samples")] == 205


# --- failures, from a tiny server answering as Prometheus would -------------------------------


class Canned(BaseHTTPRequestHandler):
    """Answers every query with ``answer(path, params)``: (status, body, delay)."""

    answer: Callable[[str, dict[str, str]], tuple[int, str, float]]

    def do_GET(self) -> None:
        parsed = urlparse(self.path)
        params = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        status, body, delay = type(self).answer(parsed.path, params)
        time.sleep(delay)
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_prometheus() -> Iterator[Callable[..., str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[str, dict[str, str]], tuple[int, str, float]]) -> str:
        handler = type("Handler", (Canned,), {"answer": staticmethod(answer)})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def success(result_type: str, result: Any) -> str:
    return json.dumps({"status": "success", "data": {"resultType": result_type, "result": result}})


def matrix(points: list[tuple[float, str]], labels: dict[str, str] | None = None) -> str:
    return success("matrix", [{"metric": labels or {}, "values": points}])


AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TIMED_OUT = json.dumps(
    {"status": "error", "errorType": "timeout", "error": "query timed out in expression evaluation"}
)
BAD_QUERY = json.dumps(
    {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
)


@pytest.mark.parametrize(
    ("answer", "timeout", "expected"),
    [
        (lambda p, q: (400, BAD_QUERY, 0.0), "5s", "Prometheus refused the query: parse error"),
        (lambda p, q: (502, "<html>Bad gateway</html>", 0.0), "5s", "HTTP 502 without"),
        (lambda p, q: (500, "", 0.0), "5s", "HTTP 500 without"),
        (
            lambda p, q: (503, TIMED_OUT, 0.0),
            "5s",
            "Prometheus refused the query: query timed out in expression evaluation",
        ),
        (lambda p, q: (200, success("string", [1, "x"]), 0.0), "5s", "gives a string"),
        (lambda p, q: (200, '{"status": "success"}', 0.0), "5s", "has no data"),
        (lambda p, q: (200, success("vector", []), 1.0), "200ms", "did not answer within 200ms"),
    ],
    ids=["refused", "not-prometheus", "500", "prometheus-timeout", "string", "no-data", "timeout"],
)
def test_a_failing_source_is_a_located_error_on_the_cli(
    fake_prometheus: Callable[..., str],
    cli: Callable[..., Any],
    write_spec: Callable[[str], Path],
    answer: Callable[[str, dict[str, str]], tuple[int, str, float]],
    timeout: str,
    expected: str,
) -> None:
    url = fake_prometheus(answer)
    spec = write_spec(
        spec_text(url, [availability("uptime", url, timeout, good="up_ok", total="up_all")])
    )
    started = time.monotonic()
    run = cli("evaluate", "--spec", spec, "--at", AT.isoformat())
    assert run.exit_code == 2
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert "slos[0].source.prometheus (uptime).total" in run.stderr
    assert expected in run.stderr
    assert time.monotonic() - started < 5


def test_nobody_listening_is_a_located_error(
    cli: Callable[..., Any], write_spec: Callable[[str], Path]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    spec = write_spec(spec_text(url, [availability("uptime", url, good="a", total="b")]))
    for command in ("evaluate", "gate", "alerts"):
        run = cli(command, "--spec", spec, "--at", AT.isoformat())
        assert run.exit_code == 2, (command, run.stdout)
        assert f"cannot reach Prometheus at {url}" in run.stderr
        assert "slos[0].source.prometheus (uptime)" in run.stderr


def test_no_series_is_no_data_with_the_reason(
    fake_prometheus: Callable[..., str], cli: Callable[..., Any], write_spec: Callable[[str], Path]
) -> None:
    url = fake_prometheus(lambda p, q: (200, success("matrix", []), 0.0))
    spec = write_spec(spec_text(url, [availability("uptime", url, good="a", total="b")]))
    run = cli("evaluate", "--spec", spec, "--at", AT.isoformat(), "--format", "json")
    assert run.exit_code == 0, run.stderr
    (slo,) = run.json()["slos"]
    assert slo["budget"]["status"] == "no_data"
    assert "returned no series" in slo["budget"]["reason"]
    assert slo["met"] is None


def counter_answer(values: dict[str, list[float]]) -> Callable[..., tuple[int, str, float]]:
    """A counter per query (by its text) sampled at each step of the range asked for; an
    instant query answers the last value."""

    def answer(path: str, q: dict[str, str]) -> tuple[int, str, float]:
        series = values[q["query"]]
        if path.endswith("query_range"):
            start, step = float(q["start"]), float(q["step"])
            points = [(start + i * step, repr(v)) for i, v in enumerate(series)]
            end = float(q["end"])
            return 200, matrix([p for p in points if p[0] <= end]), 0.0
        return 200, success("vector", [{"metric": {}, "value": [q["time"], repr(series[-1])]}]), 0.0

    return answer


def test_counters_are_differenced_per_series_with_resets_and_nan_skipped(
    fake_prometheus: Callable[..., str],
) -> None:
    # total: 0, 10, NaN, 25, 5 (a reset: 5 new), 9; good: 0, 9, 9, 20, 4, 8
    url = fake_prometheus(
        counter_answer(
            {
                "total": [0, 10, float("nan"), 25, 5, 9],
                "good": [0, 9, 9, 20, 4, 8],
            }
        )
    )
    spec = spec_from_dict(
        {
            "service": "s",
            "bucket": "1m",
            "slos": [availability("uptime", url, good="good", total="total")],
        }
    )
    start = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    reading = read_prometheus(spec, start, start + timedelta(minutes=5))
    assert reading.rollup is not None and not reading.unavailable
    table = reading.rollup.table.to_pydict()
    first = int(start.timestamp()) // 60
    rows = dict(
        zip(
            table["bucket"],
            zip(table["uptime/total"], table["uptime/ok"], strict=True),
            strict=True,
        )
    )
    # increases: 10 | (NaN skipped) | 15 | 5 (reset) | 4
    assert rows == {
        first: (10.0, 9.0),
        first + 2: (15.0, 11.0),
        first + 3: (5.0, 4.0),
        first + 4: (4.0, 4.0),
    }


def test_each_series_is_differenced_before_the_series_are_summed(
    fake_prometheus: Callable[..., str],
) -> None:
    def answer(path: str, q: dict[str, str]) -> tuple[int, str, float]:
        start, step = float(q["start"]), float(q["step"])
        series = {"a": [0, 50, 60], "b": [10, 2, 4]}  # b restarts in the first bucket
        found = [
            {
                "metric": {"instance": name},
                "values": [[start + i * step, str(v)] for i, v in enumerate(vs)],
            }
            for name, vs in series.items()
        ]
        return 200, success("matrix", found), 0.0

    url = fake_prometheus(answer)
    spec = spec_from_dict(
        {"service": "s", "slos": [availability("uptime", url, bad="bad", total="total")]}
    )
    start = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    reading = read_prometheus(spec, start, start + timedelta(minutes=2))
    assert reading.rollup is not None
    # a: 50 then 10; b: 2 (its value after the restart) then 2. The sum (10, 52, 64) would
    # have read 42 and 12.
    assert reading.rollup.table.to_pydict()["uptime/total"] == [52.0, 12.0]


def test_windowed_queries_get_the_bucket_length(fake_prometheus: Callable[..., str]) -> None:
    asked: list[dict[str, str]] = []

    def answer(path: str, q: dict[str, str]) -> tuple[int, str, float]:
        asked.append({"path": path, **q})
        if path.endswith("query_range"):
            start, end, step = float(q["start"]), float(q["end"]), float(q["step"])
            count = int((end - start) / step) + 1
            return 200, matrix([(start + i * step, "3") for i in range(count)]), 0.0
        return 200, success("vector", [{"metric": {}, "value": [q["time"], "1"]}]), 0.0

    url = fake_prometheus(answer)
    spec = spec_from_dict(
        {
            "service": "s",
            "bucket": "1m",
            "slos": [
                availability(
                    "uptime",
                    url,
                    good="sum(increase(ok[$window]))",
                    total="sum(rate(all[window]) * 60)",
                )
            ],
        }
    )
    start = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    end = start + timedelta(minutes=2, seconds=30)
    reading = read_prometheus(spec, start, end)
    queries = {(a["path"], a["query"]) for a in asked}
    assert ("/api/v1/query_range", "sum(increase(ok[60s]))") in queries
    assert ("/api/v1/query_range", "sum(rate(all[60s]) * 60)") in queries
    assert ("/api/v1/query", "sum(increase(ok[30s]))") in queries  # the partial last bucket
    assert reading.rollup is not None
    table = reading.rollup.table.to_pydict()
    assert table["uptime/total"] == [3.0, 3.0, 1.0]


def test_a_long_window_is_asked_in_chunks_prometheus_accepts(
    fake_prometheus: Callable[..., str],
) -> None:
    spans: list[int] = []

    def answer(path: str, q: dict[str, str]) -> tuple[int, str, float]:
        spans.append(int((float(q["end"]) - float(q["start"])) / float(q["step"])) + 1)
        return 200, success("matrix", []), 0.0

    url = fake_prometheus(answer)
    spec = spec_from_dict(
        {
            "service": "s",
            "slos": [{**availability("uptime", url, good="a", total="b"), "window": "30d"}],
        }
    )
    end = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    reading = read_prometheus(spec, end - timedelta(days=33), end)
    assert max(spans) <= 11_000
    assert sum(spans) == 2 * (33 * 24 * 60 + 1)
    assert reading.unavailable == {
        "uptime": f"the total query returned no series from Prometheus at {url}"
    }


def test_the_service_shows_an_unreachable_source_as_no_data(
    live_server: Callable[..., Any], write_records: Callable[..., Path]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    text = spec_text(
        url,
        [
            availability("uptime", url, good="a", total="b"),
            {"name": "uptime-records", "dimension": "availability", "objective": {"target": 0.9}},
        ],
        policy={"hard_stop": ["uptime-records"]},
    )
    live = live_server(text, now=AT)
    ts = (AT - timedelta(minutes=1)).isoformat()
    records = [{"id": f"r{i}", "ts": ts, "status": "ok" if i else "error"} for i in range(10)]
    with live.client() as client:
        sent = client.post("/api/v1/predictions", json=records)
        assert sent.status_code < 300, sent.text
        status = client.get("/api/v1/slos")
        gate = client.get("/api/v1/gate")
    assert status.status_code == 200, status.text
    slos = {s["name"]: s for s in status.json()["slos"]}
    assert slos["uptime"]["budget"]["status"] == "no_data"
    assert f"cannot reach Prometheus at {url}" in slos["uptime"]["budget"]["reason"]
    assert slos["uptime-records"]["sli"]["good"] == 9
    assert slos["uptime-records"]["sli"]["valid"] == 10
    assert gate.status_code == 200, gate.text


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"url": "http://p:9090", "total": "a"}, "give either good"),
        ({"url": "http://p:9090", "total": "a", "good": "b", "bad": "c"}, "give either good"),
        ({"url": "p:9090", "total": "a", "good": "b"}, "http(s) URL"),
        ({"url": "http://p:9090", "total": " ", "good": "b"}, "empty"),
        ({"url": "http://p:9090", "total": "a", "good": "b", "timeout": "1h"}, "timeout"),
    ],
)
def test_a_wrong_source_is_a_located_spec_error(source: dict[str, Any], message: str) -> None:
    from mlslo.errors import SpecError

    text = spec_text("", [availability("uptime", "http://x")])
    document = yaml.safe_load(text)
    document["slos"][0]["source"] = {"prometheus": source}
    with pytest.raises(SpecError) as caught:
        parse_spec(yaml.safe_dump(document), file="spec.yaml")
    assert "slos[0].source.prometheus" in str(caught.value) or "slos[0]" in str(caught.value)
    assert message in str(caught.value)


def test_a_percentile_or_a_filter_cannot_come_from_prometheus() -> None:
    from mlslo.errors import SpecError

    latency = {
        "name": "p95",
        "dimension": "latency",
        "sli": {"percentile": 95},
        "objective": {"target": "250ms"},
        "source": {"prometheus": {"url": "http://p:9090", "good": "a", "total": "b"}},
    }
    with pytest.raises(SpecError, match="latency_threshold"):
        parse_spec(spec_text("", [latency]), file="spec.yaml")
    filtered = {**availability("up", "http://p:9090", good="a", total="b"), "filter": {"x": 1}}
    with pytest.raises(SpecError, match="filter"):
        parse_spec(spec_text("", [filtered]), file="spec.yaml")


def test_source_error_is_a_library_error() -> None:
    error = SourceError("uptime", "slos[0].source.prometheus (uptime).total", "cannot reach")
    assert str(error) == "slos[0].source.prometheus (uptime).total: cannot reach"


def test_openslo_export_and_import_keep_the_source() -> None:
    from mlslo.render.openslo import openslo_documents, openslo_yaml
    from mlslo.spec.openslo import import_openslo
    from openslo_schema import assert_valid_openslo

    text = spec_text(
        "",
        [
            availability("uptime", "http://prom-a:9090", bad='x{code="500"}', total="x"),
            {
                "name": "latency",
                "dimension": "latency",
                "sli": {"latency_threshold": "300ms"},
                "objective": {"target": 0.99},
                "source": {
                    "prometheus": {
                        "url": "http://prom-b:9090",
                        "good": "job:fast:count",
                        "total": "sum(increase(h_count[$window]))",
                        "timeout": "30s",
                    }
                },
            },
        ],
    )
    spec = parse_spec(text)
    documents = openslo_documents(spec)
    for document in documents:
        assert_valid_openslo(document)
    sources = {
        d["metadata"]["name"]: d["spec"]["connectionDetails"]["url"]
        for d in documents
        if d["kind"] == "DataSource" and d["spec"]["type"] == "Prometheus"
    }
    assert sorted(sources.values()) == ["http://prom-a:9090", "http://prom-b:9090"]
    ratios = [
        d["spec"]["indicator"]["spec"]["ratioMetric"] for d in documents if d["kind"] == "SLO"
    ]
    assert [r["counter"] for r in ratios] == [True, False]
    assert ratios[0]["bad"]["metricSource"]["spec"] == {"query": 'x{code="500"}'}
    imported = import_openslo([("exported.yaml", openslo_yaml(spec))])
    assert imported.notes == ()
    assert imported.spec == spec


def test_records_slos_still_need_their_data(
    cli: Callable[..., Any], write_spec: Callable[[str], Path]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    spec = write_spec(
        spec_text(
            url,
            [
                availability("uptime", url, good="a", total="b"),
                {"name": "logged", "dimension": "availability", "objective": {"target": 0.9}},
            ],
        )
    )
    run = cli("evaluate", "--spec", spec, "--at", AT.isoformat())
    assert run.exit_code == 2
    assert run.stderr.strip() == (
        "error: --data: the SLO logged reads prediction records: give the records (or "
        "source: {predictions: ...} in the spec)"
    )


@dataclass
class Served:
    """What the module's canned Prometheus answers: a counter per query text."""

    values: dict[str, list[float]]


@pytest.fixture(scope="module")
def canned_counters() -> Iterator[tuple[str, Served, httpx.Client]]:
    served = Served({})

    def answer(path: str, q: dict[str, str]) -> tuple[int, str, float]:
        return counter_answer(served.values)(path, q)

    handler = type("Handler", (Canned,), {"answer": staticmethod(answer)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    with httpx.Client() as client:
        yield f"http://127.0.0.1:{server.server_address[1]}", served, client
    server.shutdown()
    server.server_close()


@settings(max_examples=30, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 50), st.booleans()), min_size=1, max_size=12
    )
)
def test_counts_per_bucket_are_the_events_served(
    canned_counters: tuple[str, Served, httpx.Client], events: list[tuple[int, int, bool]]
) -> None:
    """Per bucket ``(good, bad, restart)``: the exporter restarts (counters back to 0) at the
    bucket's start when ``restart`` is drawn and the counter then reads below its last value
    (a restart Prometheus can see); the counts read must be exactly the events served."""
    url, served, client = canned_counters
    good_counter, total_counter = [0.0], [0.0]
    expected: dict[int, tuple[float, float]] = {}
    for index, (good, bad, restart) in enumerate(events):
        if restart and good + bad < good_counter[-1]:
            good_counter.append(float(good))
            total_counter.append(float(good + bad))
        else:
            good_counter.append(good_counter[-1] + good)
            total_counter.append(total_counter[-1] + good + bad)
        if good + bad:
            expected[index] = (float(good + bad), float(good))
    served.values = {"good": good_counter, "total": total_counter}
    spec = spec_from_dict(
        {
            "service": "s",
            "bucket": "1m",
            "slos": [availability("uptime", url, good="good", total="total")],
        }
    )
    start = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    end = start + timedelta(minutes=len(events))
    reading = read_prometheus(spec, start, end, client=client)
    first = int(start.timestamp()) // 60
    if not expected:
        assert reading.rollup is None or reading.rollup.table.num_rows == 0
        return
    assert reading.rollup is not None
    table = reading.rollup.table.to_pydict()
    got = {
        b - first: (t, g)
        for b, t, g in zip(table["bucket"], table["uptime/total"], table["uptime/ok"], strict=True)
    }
    assert got == expected
