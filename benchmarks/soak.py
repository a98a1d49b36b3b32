"""Soak: a real ``mlslo serve`` under a fixed mixed load for a while (default 10 minutes).

It starts ``mlslo serve --no-auth --memory-limit 64MB`` on 127.0.0.1 with a fresh DuckDB file
and a five-SLO spec
(every dimension, a fairness SLO over 10 groups, a gate policy), then runs the fixed load of
``benchmarks/mixed.py``: 200 predictions every 0.25 s (800/s), labels for 100 acknowledged
predictions every second, a status GET every 0.5 s and a gate call every 5 s. It reads the
server's RSS every 5 s (``/proc/<pid>/status``) with what the store says it holds
(``mlslo_store_memory_bytes``: DuckDB's buffer pool, the kept prediction ids, the timelines)
and prints, per minute, RSS, its parts, status and gate latency percentiles and the rows
acknowledged, then whether the memory outside the store stayed flat and p99 stable.
At the end ``GET /api/v1/slos`` must count exactly the predictions acknowledged.

    python benchmarks/soak.py                 # 10 minutes (make soak)
    python benchmarks/soak.py --minutes 1     # a smoke run

This is a benchmark, not a test: it is not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from common import describe, log
from ingest import Server, percentile
from mixed import SPEC, Call, Load, Rates

FLAT_MB = 50.0  # "flat": the last minute's RSS outside the store within this of minute 2's
STABLE_P99 = 2.0  # "stable": from minute 2, no minute's status p99 above this x the median
MB = 1024 * 1024


class Sample(NamedTuple):
    at: float
    rss_mb: float
    store_mb: dict[str, float]

    @property
    def rest_mb(self) -> float:
        """RSS outside what the store accounts for: interpreter, libraries, allocator."""
        return self.rss_mb - sum(self.store_mb.values())


def store_memory(url: str) -> dict[str, float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        s.labels["part"]: s.value / MB
        for f in text_string_to_metric_families(text)
        if f.name == "mlslo_store_memory_bytes"
        for s in f.samples
    }


def per_minute(
    calls: Sequence[Call], samples: Sequence[Sample], began: float, minutes: int
) -> list[dict[str, float]]:
    rows = []
    for minute in range(minutes):
        lo, hi = began + 60 * minute, began + 60 * (minute + 1)
        inside = [c for c in calls if lo <= c.at < hi]
        taken = [s for s in samples if lo <= s.at < hi]
        top = max(taken, key=lambda s: s.rss_mb) if taken else None
        status = [c.ms for c in inside if c.kind == "status" and c.status == 200]
        gate = [c.ms for c in inside if c.kind == "gate" and c.status == 200]
        rows.append(
            {
                "minute": minute + 1,
                "rss_mb": top.rss_mb if top else float("nan"),
                "duckdb_mb": top.store_mb.get("duckdb", float("nan")) if top else float("nan"),
                "ids_mb": top.store_mb.get("ids", float("nan")) if top else float("nan"),
                "timelines_mb": top.store_mb.get("timelines", float("nan"))
                if top
                else float("nan"),
                "rest_mb": top.rest_mb if top else float("nan"),
                "status_n": len(status),
                "status_p50": percentile(status, 50) if status else float("nan"),
                "status_p99": percentile(status, 99) if status else float("nan"),
                "gate_p50": percentile(gate, 50) if gate else float("nan"),
                "predictions_per_s": sum(
                    c.rows for c in inside if c.kind == "predictions" and c.status == 200
                )
                / 60,
                "labels_per_s": sum(
                    c.rows for c in inside if c.kind == "labels" and c.status == 200
                )
                / 60,
                "failed": sum(1 for c in inside if c.status not in (200, 204)),
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=10, help="how long (default 10)")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--work-dir", type=Path, help="default: a temporary directory")
    parser.add_argument(
        "--memory-limit",
        default="64MB",
        help="the server's --memory-limit (default 64MB, so DuckDB's pool reaches its cap "
        "within the run and what is left to grow shows)",
    )
    args = parser.parse_args(argv)
    if args.minutes < 1:
        parser.error("--minutes must be at least 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mlslo-soak-") as tmp:
        work = args.work_dir.resolve() if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        spec = work / "spec.yaml"
        spec.write_text(SPEC, encoding="utf-8")
        db = work / "soak.duckdb"
        for suffix in ("", ".wal"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        extra = ["--memory-limit", args.memory_limit]
        with Server(spec, db, work / "soak.log", extra) as server:
            start_mb = server.status()["VmRSS"] / 1024
            load = Load(server.url, "soak", Rates(), args.seed)
            samples: list[Sample] = []
            began = time.monotonic()
            load.start()
            try:
                end = began + 60 * args.minutes
                while time.monotonic() < end:
                    rss_mb = server.status()["VmRSS"] / 1024
                    samples.append(Sample(time.monotonic(), rss_mb, store_memory(server.url)))
                    log(
                        f"{(time.monotonic() - began) / 60:4.1f} min: RSS {rss_mb:.0f} MB "
                        f"({samples[-1].rest_mb:.0f} MB outside the store), "
                        f"{len(load.predictions):,} predictions acknowledged"
                    )
                    time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            finally:
                load.stop()
            import httpx

            document = httpx.get(f"{server.url}/api/v1/slos", timeout=60).json()
            peak_mb = server.status()["VmHWM"] / 1024
            log_tail = server.log_tail()
    counted = next(s for s in document["slos"] if s["name"] == "availability")["sli"]["n"]
    rows = per_minute(load.calls, samples, began, args.minutes)
    print(report(rows, start_mb, peak_mb, counted, load, (load_before, os.getloadavg()[0])))
    if load.errors:
        print(f"\nFAILED: the load itself failed: {load.errors[0]!r}")
        return 1
    if counted != len(load.predictions):
        print(f"\nFAILED: {len(load.predictions)} predictions acknowledged, {counted} counted")
        print(log_tail)
        return 1
    return 0


def failures(calls: Sequence[Call]) -> str:
    """The requests not answered 200, by kind and status (0: no answer within 30 s)."""
    counts: dict[tuple[str, int], int] = {}
    for c in calls:
        if c.status not in (200, 204):
            counts[(c.kind, c.status)] = counts.get((c.kind, c.status), 0) + 1
    if not counts:
        return "none"
    return ", ".join(
        f"{n} {kind} ({status or 'no answer'})" for (kind, status), n in sorted(counts.items())
    )


def report(
    rows: list[dict[str, float]],
    start_mb: float,
    peak_mb: float,
    counted: int,
    load: Load,
    load_avg: tuple[float, float],
) -> str:
    lines = [
        "| minute | RSS (MB) | DuckDB pool (MB) | ids (MB) | timelines (MB) "
        "| outside the store (MB) | status GETs | status p50 / p99 (ms) | gate p50 (ms) "
        "| predictions/s | labels/s | failed requests |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['minute']:.0f} | {r['rss_mb']:.0f} | {r['duckdb_mb']:.0f} "
            f"| {r['ids_mb']:.1f} | {r['timelines_mb']:.1f} | {r['rest_mb']:.0f} "
            f"| {r['status_n']:.0f} "
            f"| {r['status_p50']:.1f} / {r['status_p99']:.1f} | {r['gate_p50']:.1f} "
            f"| {r['predictions_per_s']:.0f} | {r['labels_per_s']:.0f} | {r['failed']:.0f} |"
        )
    middle = rows[len(rows) // 2]["rss_mb"]
    second = rows[min(1, len(rows) - 1)]
    last = rows[-1]
    steady = rows[1:] or rows
    p99s = sorted(r["status_p99"] for r in steady)
    median_p99 = p99s[len(p99s) // 2]
    flat = last["rest_mb"] - second["rest_mb"] <= FLAT_MB
    stable = max(p99s) <= STABLE_P99 * median_p99
    lines += [
        "",
        f"RSS: {start_mb:.0f} MB after start-up, {second['rss_mb']:.0f} MB in minute 2, "
        f"{middle:.0f} MB in the middle, {last['rss_mb']:.0f} MB in the last minute; peak "
        f"{peak_mb:.0f} MB. Of the growth from minute 2, the store's DuckDB pool took "
        f"{last['duckdb_mb'] - second['duckdb_mb']:.0f} MB, the kept ids "
        f"{last['ids_mb'] - second['ids_mb']:.1f} MB and the timelines "
        f"{last['timelines_mb'] - second['timelines_mb']:.1f} MB; outside the store "
        f"{second['rest_mb']:.0f} MB then {last['rest_mb']:.0f} MB. Flat (outside the store, "
        f"the last minute within {FLAT_MB:.0f} MB of minute 2): "
        f"{'**yes**' if flat else '**no**'}.",
        f"Status p99 per minute from minute 2 (minute 1 warms up: {rows[0]['status_p99']:.1f} "
        f"ms): {p99s[0]:.1f}-{p99s[-1]:.1f} ms, median {median_p99:.1f} ms. "
        f"Stable (no minute above {STABLE_P99:g}x the median): "
        f"{'**yes**' if stable else '**no**'}.",
        f"Acknowledged: {len(load.predictions):,} predictions, {len(load.labels):,} labels; "
        f"GET /api/v1/slos counted {counted:,} predictions.",
        f"Requests not answered 200: {failures(load.calls)}.",
        "",
        "| | |",
        "|---|---|",
    ]
    info = describe(
        [("DuckDB", "duckdb"), ("pyarrow", "pyarrow"), ("numpy", "numpy"), ("mlslo", "mlslo")]
    )
    info["load average (1 min)"] = f"{load_avg[0]:.2f} before, {load_avg[1]:.2f} after"
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
