"""Benchmark the mlslo service: ingestion throughput, status latency and memory.

What it does, in one run (see docs/benchmarks.md for the results and how to read them):

1. Starts a real ``mlslo serve --no-auth`` on 127.0.0.1 (a free port, a fresh DuckDB file in
   a temporary directory, a spec with four 30-day SLOs: availability 99.9 %, latency 99 %
   <= 250 ms, freshness 95 % <= 15 min, F1 >= 0.9) and measures ingestion of generated
   prediction records (every column; unique ids; ``ts`` spread over the last 30 days):

   a. batched Arrow IPC streams (``application/vnd.apache.arrow.stream``), 50,000-row
      batches from a few concurrent senders;
   b. NDJSON (``application/x-ndjson``) and c. JSON arrays (``application/json``),
      10,000-row batches from the same senders;
   d. one record per request with a durable acknowledgement: many concurrent keep-alive
      connections, each POSTing one JSON record and waiting for the 200 before the next.

   Throughput is rows (or requests) acknowledged per second of wall time. The server's
   RSS is polled from /proc/<pid>/status during every phase.
2. Builds two stores outside the server with the store's own API (``Store.open`` +
   ``store.writer.bulk_load``, in a child process): 30 days x ``--daily`` predictions (default
   1,000,000 a day: 30M rows) and 30 days x ``--rss-daily`` (default a tenth). For each it
   starts ``mlslo serve`` on the file, times sequential ``GET /api/v1/slos`` after a
   warm-up, and reads the server's RSS, to show whether memory depends on retained rows.
   Into the large store it then also sends ``--big-ingest-rows`` Arrow rows, since
   ingestion does per-batch work against the rows already stored.
3. Prints a Markdown table with the targets, each marked met / not met, and the machine.

Every server is stopped by its PID (SIGTERM, then SIGKILL after 30 s), also on errors or
when this script is interrupted (Ctrl-C or SIGTERM).

Quick smoke run (well under a minute)::

    python benchmarks/ingest.py --daily 20000 --quick

This is a benchmark, not a test: it is not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import describe, log, mlslo_command

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
DAY_US = 86_400 * 1_000_000
MINUTE_US = 60 * 1_000_000
ARROW = "application/vnd.apache.arrow.stream"
NDJSON = "application/x-ndjson"
JSON = "application/json"

SPEC = """\
# Written by benchmarks/ingest.py: four SLOs, 30-day windows.
service: bench-ingest
slos:
  - name: availability
    dimension: availability
    objective: {target: 0.999}               # 99.9 % of requests ok
    window: 30d
  - name: latency
    dimension: latency
    sli: {latency_threshold: 250ms}
    objective: {target: 0.99}                # 99 % of responses <= 250 ms
    window: 30d
  - name: freshness
    dimension: freshness
    sli: {lag_threshold: 15m}
    objective: {target: 0.95}                # 95 % of data <= 15 min old
    window: 30d
  - name: accuracy
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.9}                 # F1 >= 0.9
    window: 30d
"""

# The targets of the performance issue.
TARGET_ARROW = 200_000  # rows/s, batched Arrow
TARGET_NDJSON = 50_000  # rows/s, NDJSON
TARGET_SINGLE = 500  # one-record requests/s, each acknowledged after its commit
TARGET_P99_MS = 50.0  # GET /api/v1/slos p99 with 30 days x 1M predictions/day stored
TARGET_RSS_MB = 1024.0  # server RSS (MB = 2**20 bytes), independent of retained rows
RSS_GROWTH_MB = 100.0  # "independent": at most this much more RSS for 10x the rows

# Full-size defaults, and the --quick ones (an explicit option wins over both).
FULL = {
    "arrow_rows": 2_000_000,
    "text_rows": 400_000,
    "single": 6_000,
    "gets": 200,
    "big_ingest_rows": 500_000,
}
QUICK = {
    "arrow_rows": 300_000,
    "text_rows": 40_000,
    "single": 1_000,
    "gets": 50,
    "big_ingest_rows": 100_000,
}


# --- the records ------------------------------------------------------------------------------


def now_us() -> int:
    return time.time_ns() // 1_000


def records(rng: Any, first_id: int, n: int, lo_us: int, hi_us: int, *, ordered: bool) -> Any:
    """``n`` prediction records with every column: unique ids from ``first_id``, ``ts``
    uniform in [lo_us, hi_us) (sorted if ``ordered``), rare errors, lognormal latency,
    exponential input lag, a binary classifier (F1 about 0.97) with ~10 % labels pending."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ts = rng.integers(lo_us, hi_us, n)
    if ordered:
        ts.sort()
    index = pa.array(np.arange(first_id, first_id + n, dtype=np.int64)).cast(pa.string())
    ids = pc.binary_join_element_wise("pred-", pc.utf8_lpad(index, 10, "0"), "")
    truth = rng.random(n) < 0.3
    logit = np.where(truth, 2.2, -2.2) + rng.standard_normal(n)
    score = 1.0 / (1.0 + np.exp(-logit))
    lag = rng.exponential(3.5 * MINUTE_US, n).astype(np.int64)
    version = ts >= hi_us - 10 * DAY_US
    return pa.table(
        {
            "id": ids,
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "model": pa.repeat(pa.scalar("fraud-scorer"), n),
            "model_version": pa.array(["v1", "v2"]).take(version.astype(np.int64)),
            "status": pa.array(["ok", "error"]).take((rng.random(n) < 0.0005).astype(np.int64)),
            "latency_ms": pa.array(np.round(rng.lognormal(np.log(62.0), 0.55, n), 3)),
            "event_ts": pa.array(ts - lag, pa.timestamp("us", tz="UTC")),
            "prediction": pa.array((score >= 0.5).astype(np.int64)),
            "score": pa.array(score),
            "label": pa.array(truth.astype(np.int64), mask=rng.random(n) < 0.1),
        }
    )


def json_records(table: Any) -> list[bytes]:
    """Each record as one JSON object (times as ISO-8601 with a Z, as a client sends them)."""
    import pyarrow.compute as pc

    columns = {}
    for name in table.column_names:
        column = table[name]
        if name in ("ts", "event_ts"):
            column = pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ")
        columns[name] = column.to_pylist()
    names = list(columns)
    return [
        json.dumps(dict(zip(names, row, strict=True)), separators=(",", ":")).encode()
        for row in zip(*columns.values(), strict=True)
    ]


def text_bodies(table: Any, batch: int, fmt: str) -> list[tuple[int, bytes]]:
    rows = json_records(table)
    out = []
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        body = b"\n".join(part) + b"\n" if fmt == "ndjson" else b"[" + b",".join(part) + b"]"
        out.append((len(part), body))
    return out


def arrow_bodies(table: Any, batch: int) -> list[tuple[int, bytes]]:
    from mlslo.client import arrow_bytes

    return [
        (min(batch, table.num_rows - start), arrow_bytes(table.slice(start, batch)))
        for start in range(0, table.num_rows, batch)
    ]


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """``mlslo serve`` as a child process, reachable on 127.0.0.1; stop() ends it by PID."""

    def __init__(self, spec: Path, db: Path, logfile: Path, extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.logfile = logfile
        command = [
            *mlslo_command(),
            "serve",
            "--spec",
            str(spec),
            "--db",
            str(db),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--no-auth",
            *extra,
        ]
        began = time.perf_counter()
        with logfile.open("wb") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup = time.perf_counter() - began

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlslo serve exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"mlslo serve was not ready within 300 s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def status(self) -> dict[str, int]:
        return proc_status(self.pid)

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        except ProcessLookupError:
            self.process.wait(timeout=30)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class RssPoller:
    """The largest VmRSS of a process, polled every 20 ms while in use."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            try:
                self.peak_kb = max(self.peak_kb, proc_status(self.pid)["VmRSS"])
            except (OSError, KeyError):
                return
            if self._stop.wait(0.02):
                return

    def __enter__(self) -> RssPoller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# --- the measurements -------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    rows: int
    requests: int
    seconds: float
    server_cpu: float
    client_cpu: float
    peak_rss_mb: float
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100])."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def check_ingest(status: int, text: str, rows: int) -> None:
    if status != 200:
        raise RuntimeError(f"ingest failed with HTTP {status}: {text[:500]}")
    answer = json.loads(text)
    if answer != {"accepted": rows, "duplicates": 0, "folded": 0}:
        raise RuntimeError(f"expected {rows} accepted and no duplicates, got {answer}")


def send_batches(
    server: Server, name: str, bodies: list[tuple[int, bytes]], content_type: str, senders: int
) -> Phase:
    """POST every body from ``senders`` threads (each its own keep-alive connection)."""
    import httpx

    todo = iter(bodies)
    lock = threading.Lock()
    failures: list[BaseException] = []
    latencies: list[float] = []

    def sender() -> None:
        with httpx.Client(base_url=server.url, timeout=600) as http:
            while not failures:
                with lock:
                    item = next(todo, None)
                if item is None:
                    return
                rows, body = item
                try:
                    began = time.perf_counter()
                    response = http.post(
                        "/api/v1/predictions",
                        content=body,
                        headers={"Content-Type": content_type},
                    )
                    latencies.append((time.perf_counter() - began) * 1000)
                    check_ingest(response.status_code, response.text, rows)
                except BaseException as exc:
                    failures.append(exc)
                    return

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    cpu0, client0 = server.cpu(), time.process_time()
    with RssPoller(server.pid) as rss:
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - began
    if failures:
        raise failures[0]
    return Phase(
        name,
        sum(rows for rows, _ in bodies),
        len(bodies),
        seconds,
        server.cpu() - cpu0,
        time.process_time() - client0,
        rss.peak_kb / 1024,
        latencies,
    )


async def _single_records(port: int, bodies: list[bytes], clients: int) -> list[float]:
    """``clients`` keep-alive connections; each POSTs one record and waits for its 200
    before sending the next. A minimal HTTP/1.1 client, so that on a small machine the
    client's own CPU takes as little as possible from the server."""
    todo = iter(bodies)
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for body in todo:
                head = (
                    f"POST /api/v1/predictions HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                    f"Content-Type: {JSON}\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                began = time.perf_counter()
                writer.write(head + body)
                status_line = await reader.readline()
                length = None
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    key, _, value = line.decode("latin-1").partition(":")
                    if key.strip().lower() == "content-length":
                        length = int(value)
                if length is None:
                    raise RuntimeError(f"no Content-Length in the answer to {status_line!r}")
                answer = await reader.readexactly(length)
                latencies.append((time.perf_counter() - began) * 1000)
                code = int(status_line.split()[1])
                check_ingest(code, answer.decode(), 1)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(clients)))
    return latencies


def send_single(server: Server, bodies: list[bytes], clients: int) -> Phase:
    cpu0, client0 = server.cpu(), time.process_time()
    with RssPoller(server.pid) as rss:
        began = time.perf_counter()
        latencies = asyncio.run(_single_records(server.port, bodies, clients))
        seconds = time.perf_counter() - began
    return Phase(
        "single",
        len(bodies),
        len(bodies),
        seconds,
        server.cpu() - cpu0,
        time.process_time() - client0,
        rss.peak_kb / 1024,
        latencies,
    )


def time_gets(server: Server, count: int, warmup: int) -> tuple[list[float], dict[str, Any]]:
    """Sequential GET /api/v1/slos on one keep-alive connection: latencies in ms."""
    import httpx

    latencies = []
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for index in range(warmup + count):
            began = time.perf_counter()
            response = http.get("/api/v1/slos")
            elapsed = (time.perf_counter() - began) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"GET /api/v1/slos: HTTP {response.status_code}")
            if index >= warmup:
                latencies.append(elapsed)
        document = response.json()
    return latencies, document


def slo_counts(document: dict[str, Any]) -> dict[str, tuple[Any, int]]:
    return {s["name"]: (s["sli"]["value"], s["sli"]["n"]) for s in document["slos"]}


# --- building a large store outside the server (run in a child process) ---------------------


def load_store(db: Path, spec: Path, daily: int, seed: int, scratch: Path) -> dict[str, Any]:
    """30 days x ``daily`` records into an empty store: generated a day at a time into
    uncompressed Arrow IPC files, memory-mapped, and passed as one (zero-copy) table to
    ``store.writer.bulk_load``, which normalises and inserts 500,000 rows at a time and then
    builds the rollups a day at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.ipc as ipc

    from mlslo.server.store import Store
    from mlslo.spec import load_spec

    timings: dict[str, Any] = {}
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    end = now_us() - MINUTE_US
    start = end - 30 * DAY_US + 60 * MINUTE_US  # stays inside the 30-day window for an hour
    span = (end - start) // 30
    scratch.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in range(30):
        lo = start + day * span
        table = records(rng, day * daily, daily, lo, lo + span, ordered=True)
        path = scratch / f"day-{day:02d}.arrow"
        with ipc.new_file(path, table.schema) as writer:
            writer.write_table(table, max_chunksize=500_000)
        paths.append(path)
        del table
    timings["generate_s"] = time.perf_counter() - began
    began = time.perf_counter()
    table = pa.concat_tables(ipc.open_file(pa.memory_map(str(p))).read_all() for p in paths)
    # The input is memory-mapped, so its pages count as (file-backed) RSS; track the
    # anonymous part, which is what the store itself allocates.
    anon = {"peak_kb": 0}
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.05):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    anon["peak_kb"] = max(anon["peak_kb"], int(line.split()[1]))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    store = Store.open(db, load_spec(spec))
    try:
        store.writer.bulk_load(table, None)
        timings["bulk_load_s"] = time.perf_counter() - began
        timings["rows"] = store.counts()["predictions"]
    finally:
        store.close()
        done.set()
        poller.join()
    timings["anon_peak_mb"] = anon["peak_kb"] / 1024
    timings["close_s"] = time.perf_counter() - began - timings["bulk_load_s"]
    for path in paths:
        path.unlink()
    timings["db_mb"] = db.stat().st_size / 2**20
    return timings


def build_store(db: Path, spec: Path, daily: int, seed: int, scratch: Path) -> dict[str, Any]:
    """``load_store`` in a fresh process (so this one stays small); adds its peak RSS."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker-load",
        str(db),
        "--spec-path",
        str(spec),
        "--daily",
        str(daily),
        "--seed",
        str(seed),
        "--scratch",
        str(scratch),
    ]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"building the store failed:\n{stderr[-4000:]}")
    result: dict[str, Any] = json.loads(stdout)
    result["loader_peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


# --- the report -------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    return describe(
        [
            ("DuckDB", "duckdb"),
            ("pyarrow", "pyarrow"),
            ("FastAPI", "fastapi"),
            ("uvicorn", "uvicorn"),
            ("httpx", "httpx"),
            ("mlslo", "mlslo"),
        ]
    )


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark a real `mlslo serve`: ingestion throughput (Arrow, NDJSON and JSON "
            "batches; one-record requests with a durable ack), GET /api/v1/slos latency with "
            "30 days of predictions stored, and the server's RSS."
        ),
        epilog="Quick smoke run: python benchmarks/ingest.py --daily 20000 --quick",
    )
    parser.add_argument(
        "--daily",
        type=int,
        default=1_000_000,
        help="predictions per day in the large store for the status test (default 1,000,000: "
        "30M rows)",
    )
    parser.add_argument(
        "--rss-daily",
        type=int,
        help="predictions per day in the small store the RSS is compared with "
        "(default: --daily / 10)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller ingestion phases and fewer GETs (a smoke run; use with a small --daily)",
    )
    parser.add_argument(
        "--arrow-rows",
        type=int,
        help=f"rows sent as Arrow (default {FULL['arrow_rows']:,}; "
        f"--quick {QUICK['arrow_rows']:,})",
    )
    parser.add_argument("--arrow-batch", type=int, default=50_000, help="rows per Arrow batch")
    parser.add_argument(
        "--text-rows",
        type=int,
        help=f"rows sent as NDJSON, and again as JSON arrays (default {FULL['text_rows']:,}; "
        f"--quick {QUICK['text_rows']:,})",
    )
    parser.add_argument(
        "--text-batch", type=int, default=10_000, help="rows per NDJSON / JSON batch"
    )
    parser.add_argument(
        "--senders", type=int, default=3, help="concurrent batch senders (default 3)"
    )
    parser.add_argument(
        "--single",
        type=int,
        help=f"one-record requests (default {FULL['single']:,}; --quick {QUICK['single']:,})",
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=64,
        help="concurrent connections for the one-record requests (default 64)",
    )
    parser.add_argument(
        "--gets",
        type=int,
        help=f"timed GET /api/v1/slos per store (default {FULL['gets']}; --quick {QUICK['gets']})",
    )
    parser.add_argument("--warmup", type=int, default=20, help="untimed GETs first (default 20)")
    parser.add_argument(
        "--big-ingest-rows",
        type=int,
        help="Arrow rows sent into the large store after its GETs, 0 to skip "
        f"(default {FULL['big_ingest_rows']:,}; --quick {QUICK['big_ingest_rows']:,})",
    )
    parser.add_argument("--seed", type=int, default=20260101, help="generator seed")
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="where the DuckDB files, spec and server logs go (default: a new temporary "
        "directory, removed at the end)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 3 when a target is not met"
    )
    parser.add_argument("--worker-load", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spec-path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker_load:
        result = load_store(args.worker_load, args.spec_path, args.daily, args.seed, args.scratch)
        json.dump(result, sys.stdout)
        return 0

    sizes = QUICK if args.quick else FULL
    for name, default in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.rss_daily is None:
        args.rss_daily = max(1, args.daily // 10)
    for name in ("daily", "rss_daily", "arrow_batch", "text_batch", "senders", "clients"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("arrow_rows", "text_rows", "single", "gets"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    # SIGTERM unwinds like Ctrl-C, so every server started so far is stopped by its PID.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.work_dir is None:
        with tempfile.TemporaryDirectory(prefix="mlslo-bench-") as tmp:
            return run(args, Path(tmp))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    return run(args, args.work_dir.resolve())


def run(args: argparse.Namespace, work: Path) -> int:
    import numpy as np

    spec = work / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    for name in ("ingest", "status-small", "status-large"):  # left by an earlier --work-dir run
        for suffix in (".duckdb", ".duckdb.wal"):
            (work / f"{name}{suffix}").unlink(missing_ok=True)
    load_before = os.getloadavg()
    rng = np.random.default_rng(args.seed)

    # 1. Ingestion into a fresh store. The records' ts lie in the last 30 days (none in the
    # future); bodies are built before the clock starts.
    log("building request bodies ...")
    end = now_us() - MINUTE_US
    lo = end - 30 * DAY_US + 60 * MINUTE_US
    next_id = 10**9  # clear of the ids of the bulk-loaded stores

    def fresh(n: int) -> Any:
        nonlocal next_id
        table = records(rng, next_id, n, lo, end, ordered=False)
        next_id += n
        return table

    warm = {
        "arrow": arrow_bodies(fresh(1_000), 1_000),
        "ndjson": text_bodies(fresh(1_000), 1_000, "ndjson"),
        "json": text_bodies(fresh(1_000), 1_000, "json"),
    }
    bodies = {
        "arrow": arrow_bodies(fresh(args.arrow_rows), args.arrow_batch),
        "ndjson": text_bodies(fresh(args.text_rows), args.text_batch, "ndjson"),
        "json": text_bodies(fresh(args.text_rows), args.text_batch, "json"),
    }
    singles = json_records(fresh(args.single))
    warm_single = json_records(fresh(args.clients))
    types = {"arrow": ARROW, "ndjson": NDJSON, "json": JSON}

    phases: dict[str, Phase] = {}
    ingest_db = work / "ingest.duckdb"
    log(f"starting mlslo serve on a fresh store ({ingest_db}) ...")
    with Server(spec, ingest_db, work / "serve-ingest.log") as server:
        sent = 0
        for fmt in ("arrow", "ndjson", "json"):
            send_batches(server, f"warm-{fmt}", warm[fmt], types[fmt], 1)
            sent += 1_000
            phase = send_batches(server, fmt, bodies[fmt], types[fmt], args.senders)
            sent += phase.rows
            phases[fmt] = phase
            log(
                f"  {fmt}: {phase.rows:,} rows in {phase.seconds:.2f}s = "
                f"{phase.rows_per_s:,.0f} rows/s (server CPU {phase.server_cpu:.1f}s)"
            )
        send_single(server, warm_single, args.clients)
        sent += len(warm_single)
        phase = send_single(server, singles, args.clients)
        sent += phase.rows
        phases["single"] = phase
        log(
            f"  single records: {phase.requests:,} requests in {phase.seconds:.2f}s = "
            f"{phase.requests_per_s:,.0f}/s (server CPU {phase.server_cpu:.1f}s)"
        )
        _, document = time_gets(server, 1, 0)
        counted = slo_counts(document)["availability"][1]
        if counted != sent:
            raise RuntimeError(f"sent {sent:,} records but availability counts {counted:,}")
        ingest_status = server.status()
        ingest_hwm_mb = ingest_status["VmHWM"] / 1024
    log(f"  server peak RSS {ingest_hwm_mb:.0f} MB; all {sent:,} records counted")

    # 2. Status latency and RSS with 30 days of predictions stored.
    stores: dict[str, dict[str, Any]] = {}
    for label, daily in (("small", args.rss_daily), ("large", args.daily)):
        db = work / f"status-{label}.duckdb"
        log(f"building a store with 30 days x {daily:,} predictions/day ...")
        built = build_store(db, spec, daily, args.seed + daily, work / "scratch")
        log(
            f"  generated in {built['generate_s']:.1f}s, bulk_load {built['bulk_load_s']:.1f}s "
            f"({built['rows'] / built['bulk_load_s']:,.0f} rows/s), file "
            f"{built['db_mb']:.0f} MB, loader peak RSS {built['loader_peak_rss_mb']:.0f} MB "
            f"({built['anon_peak_mb']:.0f} MB anonymous)"
        )
        with Server(spec, db, work / f"serve-{label}.log") as server:
            at_start = server.status()
            with RssPoller(server.pid) as rss:
                latencies, document = time_gets(server, args.gets, args.warmup)
            after_gets = server.status()
            info: dict[str, Any] = {
                "daily": daily,
                "built": built,
                "startup_s": server.startup,
                "rss_start_mb": at_start["VmRSS"] / 1024,
                "rss_after_gets_mb": after_gets["VmRSS"] / 1024,
                "hwm_after_gets_mb": max(after_gets["VmHWM"], rss.peak_kb) / 1024,
                "latencies": latencies,
                "slos": slo_counts(document),
            }
            log(
                f"  GET /api/v1/slos p50 {percentile(latencies, 50):.1f} ms, p99 "
                f"{percentile(latencies, 99):.1f} ms; RSS {info['rss_after_gets_mb']:.0f} MB "
                f"(peak {info['hwm_after_gets_mb']:.0f} MB)"
            )
            if label == "large" and args.big_ingest_rows:
                # Ingestion checks every batch's ids against the stored rows within a day of
                # the batch's time range: once with ts spread over the 30 days (a backfill,
                # late data), once with ts in the last minute (live traffic).
                send_batches(server, "warm", arrow_bodies(fresh(1_000), 1_000), ARROW, 1)
                moment = now_us()
                spans = {
                    "arrow-large": (lo, end),
                    "arrow-large-live": (moment - MINUTE_US, moment),
                }
                for key, (first, last) in spans.items():
                    table = records(rng, next_id, args.big_ingest_rows, first, last, ordered=False)
                    next_id += args.big_ingest_rows
                    bodies_large = arrow_bodies(table, args.arrow_batch)
                    phase = send_batches(server, key, bodies_large, ARROW, args.senders)
                    phases[key] = phase
                    log(f"  Arrow into this store ({key}): {phase.rows_per_s:,.0f} rows/s")
                info["hwm_after_ingest_mb"] = server.status()["VmHWM"] / 1024
                log(f"  server peak RSS {info['hwm_after_ingest_mb']:.0f} MB")
        stores[label] = info
    load_after = os.getloadavg()
    text, met = report(args, phases, stores, ingest_hwm_mb, sent, load_before, load_after)
    print(text)
    if args.strict and not all(met):
        return 3
    return 0


def report(
    args: argparse.Namespace,
    phases: dict[str, Phase],
    stores: dict[str, dict[str, Any]],
    ingest_hwm_mb: float,
    sent: int,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> tuple[str, list[bool]]:
    """The Markdown report and, per target, whether it was met."""
    small, large = stores["small"], stores["large"]
    large_rows = large["built"]["rows"]
    small_rows = small["built"]["rows"]
    lines = [
        f"Ingestion into a fresh store ({args.senders} concurrent senders for batches; "
        f"{args.clients} connections for one-record requests). Throughput is acknowledged rows "
        "(requests) per second of wall time; CPU is summed over all threads.",
        "",
        "| phase | batch | requests | rows | wall (s) | rows/s | requests/s | "
        "request p50 / p99 (ms) | server CPU (s) | client CPU (s) | server peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "arrow": "Arrow IPC stream",
        "ndjson": "NDJSON",
        "json": "JSON array",
        "single": "one JSON record per request",
        "arrow-large": f"Arrow, into the {large_rows / 1e6:g}M-row store (ts over 30 days)",
        "arrow-large-live": f"Arrow, into the {large_rows / 1e6:g}M-row store (ts in the last "
        "minute)",
    }
    for key, phase in phases.items():
        batch = 1 if key == "single" else phase.rows // max(1, phase.requests)
        lines.append(
            f"| {names[key]} | {batch:,} | {phase.requests:,} | {phase.rows:,} | "
            f"{phase.seconds:.2f} | {phase.rows_per_s:,.0f} | {phase.requests_per_s:,.1f} | "
            f"{percentile(phase.latencies_ms, 50):.0f} / {percentile(phase.latencies_ms, 99):.0f}"
            f" | {phase.server_cpu:.1f} | {phase.client_cpu:.1f} | {phase.peak_rss_mb:.0f} |"
        )
    lines += [
        "",
        f"All {sent:,} records sent to the fresh store (the phases plus one untimed warm-up "
        "request per format) were acknowledged as accepted, and GET /api/v1/slos counts "
        "exactly that many.",
        "",
        f"Status latency: {args.gets} sequential `GET /api/v1/slos` on one keep-alive "
        f"connection after {args.warmup} untimed ones.",
        "",
        "| retained predictions | bulk_load (s) | DuckDB file (MB) | server start (s) | "
        "GET p50 (ms) | GET p99 (ms) | GET max (ms) | server RSS after GETs (MB) | "
        "server peak RSS (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for info in (small, large):
        latencies = info["latencies"]
        peak = max(info["hwm_after_gets_mb"], info.get("hwm_after_ingest_mb", 0.0))
        lines.append(
            f"| {info['built']['rows']:,} (30 d × {info['daily']:,}) | "
            f"{info['built']['bulk_load_s']:.1f} | {info['built']['db_mb']:.0f} | "
            f"{info['startup_s']:.1f} | {percentile(latencies, 50):.1f} | "
            f"{percentile(latencies, 99):.1f} | {max(latencies):.1f} | "
            f"{info['rss_after_gets_mb']:.0f} | {peak:.0f} |"
        )
    if "hwm_after_ingest_mb" in large:
        lines += [
            "",
            "The large store's peak RSS includes the Arrow rows sent to it after the GETs (the "
            "last two rows of the first table).",
        ]
    rss_values = [ingest_hwm_mb]
    for info in (small, large):
        rss_values.append(max(info["hwm_after_gets_mb"], info.get("hwm_after_ingest_mb", 0.0)))
    worst_rss = max(rss_values)
    growth = large["rss_after_gets_mb"] - small["rss_after_gets_mb"]
    p99 = percentile(large["latencies"], 99)
    met: list[bool] = []

    def target(text: str, ok: bool, got: str) -> str:
        met.append(ok)
        return f"| {text} | {got} | {verdict(ok)} |"

    scaled = (
        ""
        if args.daily >= 1_000_000
        else f" (measured with {args.daily:,}/day: scaled down, not the target's size)"
    )
    lines += [
        "",
        "| target | measured | |",
        "|---|---:|---|",
        target(
            f"batched Arrow ≥ {TARGET_ARROW:,} rows/s",
            phases["arrow"].rows_per_s >= TARGET_ARROW,
            f"{phases['arrow'].rows_per_s:,.0f} rows/s",
        ),
        target(
            f"NDJSON ≥ {TARGET_NDJSON:,} rows/s",
            phases["ndjson"].rows_per_s >= TARGET_NDJSON,
            f"{phases['ndjson'].rows_per_s:,.0f} rows/s",
        ),
        target(
            f"one-record requests with durable ack ≥ {TARGET_SINGLE:,}/s",
            phases["single"].requests_per_s >= TARGET_SINGLE,
            f"{phases['single'].requests_per_s:,.0f} requests/s",
        ),
        target(
            f"`GET /api/v1/slos` p99 ≤ {TARGET_P99_MS:g} ms with 30 d × 1M predictions/day"
            + scaled,
            p99 <= TARGET_P99_MS,
            f"{p99:.1f} ms",
        ),
        target(
            f"server RSS ≤ 1 GB, independent of retained rows (peak of every server ≤ "
            f"{TARGET_RSS_MB:.0f} MB, and < {RSS_GROWTH_MB:.0f} MB more with "
            f"{large_rows:,} rows than with {small_rows:,})",
            worst_rss <= TARGET_RSS_MB and growth < RSS_GROWTH_MB,
            f"peak {worst_rss:.0f} MB; {growth:+.0f} MB",
        ),
    ]
    lines += [
        "",
        "30-day SLIs in the large store (value, n): "
        + "; ".join(
            f"{name} {value:.4f} (n = {n:,})" if value is not None else f"{name} — (n = {n:,})"
            for name, (value, n) in large["slos"].items()
        )
        + ".",
    ]
    info = machine()
    info["load average (1 min) before/after"] = f"{load_before[0]:.2f}/{load_after[0]:.2f}"
    info["RSS from"] = "/proc/<pid>/status (VmRSS polled every 20 ms, VmHWM)"
    lines += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items())]
    return "\n".join(lines), met


if __name__ == "__main__":
    sys.exit(main())
