"""Benchmark the Python SDK: what ``Client(durable=True)`` costs a model service.

Against a real ``mlslo serve --no-auth`` on 127.0.0.1 (a fresh DuckDB file in a temporary
directory), for 1 and for 100 records per ``log_predictions()`` call (a list of dicts, as a
model service logs them), with and without ``durable``:

- the logging side: calls and records per second until the last ``log_*()`` call returns,
  and the median and 99th percentile of one call's time — what the model's request path
  pays;
- end to end: records per second until ``flush()`` returns with every record acknowledged
  (checked against the client's count of accepted records).

The spool is a temporary folder on the same disk as the system's temporary directory
(``--spool-root`` to choose another): a durable call costs one fsync there.

    python benchmarks/sdk.py              # 5,000 calls of 1 record, 1,000 of 100
    python benchmarks/sdk.py --quick      # a smoke run, a few seconds

This is a benchmark, not a test: it is not collected by pytest.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import log
from ingest import Server, machine
from mlslo.client import Client

SPEC = """service: sdk-bench
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.999}, window: 30d}
  - name: latency
    dimension: latency
    sli: {latency_threshold: 250ms}
    objective: {target: 0.99}
    window: 30d
"""


@dataclass(frozen=True)
class Result:
    durable: bool
    per_call: int
    calls: int
    log_seconds: float
    total_seconds: float
    call_times: list[float]

    @property
    def records(self) -> int:
        return self.calls * self.per_call

    def percentile(self, q: float) -> float:
        ordered = sorted(self.call_times)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_case(url: str, spool: Path, durable: bool, per_call: int, calls: int, tag: str) -> Result:
    start = datetime.now(UTC) - timedelta(hours=1)
    batches = [
        [
            {
                "id": f"{tag}-{i}-{j}",
                "ts": start + timedelta(milliseconds=i),
                "status": "ok" if (i + j) % 100 else "error",
                "latency_ms": float(20 + (i * 7 + j) % 300),
                "model": "fraud",
                "model_version": "v2",
            }
            for j in range(per_call)
        ]
        for i in range(calls)
    ]
    client = Client(url, spool_dir=spool, durable=durable, flush_at_exit=False)
    times = []
    began = time.perf_counter()
    for records in batches:
        before = time.perf_counter()
        client.log_predictions(records)
        times.append(time.perf_counter() - before)
    logged = time.perf_counter() - began
    if not client.flush(timeout=600):
        raise SystemExit(f"{tag}: not every batch was acknowledged: {client.last_error}")
    total = time.perf_counter() - began
    client.close()
    if client.accepted != calls * per_call:
        raise SystemExit(f"{tag}: {client.accepted} accepted, expected {calls * per_call}")
    return Result(durable, per_call, calls, logged, total, times)


def report(results: list[Result], spool_root: str) -> str:
    lines = [
        "| `durable` | records per call | calls | log calls/s | records/s logged | "
        "call p50 (µs) | call p99 (µs) | records/s acknowledged |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {'yes' if r.durable else 'no'} | {r.per_call} | {r.calls:,} | "
            f"{r.calls / r.log_seconds:,.0f} | {r.records / r.log_seconds:,.0f} | "
            f"{r.percentile(0.5) * 1e6:,.0f} | {r.percentile(0.99) * 1e6:,.0f} | "
            f"{r.records / r.total_seconds:,.0f} |"
        )
    lines.append("")
    described = ", ".join(f"{k} {v}" for k, v in machine().items())
    lines.append(f"spool under {spool_root}; {described}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=5000, help="calls of 1 record")
    parser.add_argument("--batched-calls", type=int, default=1000, help="calls of 100 records")
    parser.add_argument("--spool-root", default=tempfile.gettempdir(), help="where spools go")
    parser.add_argument("--quick", action="store_true", help="a smoke run (a tenth of the calls)")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    with tempfile.TemporaryDirectory(prefix="mlslo-sdk-bench-") as scratch:
        work = Path(scratch)
        spec = work / "spec.yaml"
        spec.write_text(SPEC)
        results = []
        with Server(spec, work / "store.duckdb", work / "server.log") as server:
            for per_call, calls in ((1, args.calls // scale), (100, args.batched_calls // scale)):
                for durable in (False, True):
                    tag = f"{'d' if durable else 'm'}{per_call}"
                    with tempfile.TemporaryDirectory(dir=args.spool_root) as spool:
                        log(f"{calls:,} calls of {per_call} record(s), durable={durable} ...")
                        results.append(
                            run_case(server.url, Path(spool), durable, per_call, calls, tag)
                        )
    print(report(results, args.spool_root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
