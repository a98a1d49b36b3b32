"""Soak: a real ``mlslo serve`` under a fixed mixed load for a while (default 10 minutes).

It starts ``mlslo serve --no-auth`` on 127.0.0.1 with a fresh DuckDB file and a five-SLO spec
(every dimension, a fairness SLO over 10 groups, a gate policy), then runs the fixed load of
``benchmarks/mixed.py``: 200 predictions every 0.25 s (800/s), labels for 100 acknowledged
predictions every second, a status GET every 0.5 s and a gate call every 5 s. It reads the
server's RSS every 5 s (``/proc/<pid>/status``) and prints, per minute, RSS, status and gate
latency percentiles and the rows acknowledged, then whether RSS stayed flat and p99 stable.
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

from common import describe, log
from ingest import Server, percentile
from mixed import SPEC, Call, Load, Rates

FLAT_MB = 50.0  # "flat": the last minute's RSS within this of the second minute's
STABLE_P99 = 2.0  # "stable": no minute's status p99 above this multiple of the median p99


def per_minute(
    calls: Sequence[Call], rss: Sequence[tuple[float, float]], began: float, minutes: int
) -> list[dict[str, float]]:
    rows = []
    for minute in range(minutes):
        lo, hi = began + 60 * minute, began + 60 * (minute + 1)
        inside = [c for c in calls if lo <= c.at < hi]
        status = [c.ms for c in inside if c.kind == "status" and c.status == 200]
        gate = [c.ms for c in inside if c.kind == "gate" and c.status == 200]
        rows.append(
            {
                "minute": minute + 1,
                "rss_mb": max((m for t, m in rss if lo <= t < hi), default=float("nan")),
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
        with Server(spec, db, work / "soak.log") as server:
            start_mb = server.status()["VmRSS"] / 1024
            load = Load(server.url, "soak", Rates(), args.seed)
            rss: list[tuple[float, float]] = []
            began = time.monotonic()
            load.start()
            try:
                end = began + 60 * args.minutes
                while time.monotonic() < end:
                    rss.append((time.monotonic(), server.status()["VmRSS"] / 1024))
                    log(
                        f"{(time.monotonic() - began) / 60:4.1f} min: RSS {rss[-1][1]:.0f} MB, "
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
    rows = per_minute(load.calls, rss, began, args.minutes)
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
        "| minute | RSS (MB) | status GETs | status p50 / p99 (ms) | gate p50 (ms) "
        "| predictions/s | labels/s | failed requests |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['minute']:.0f} | {r['rss_mb']:.0f} | {r['status_n']:.0f} "
            f"| {r['status_p50']:.1f} / {r['status_p99']:.1f} | {r['gate_p50']:.1f} "
            f"| {r['predictions_per_s']:.0f} | {r['labels_per_s']:.0f} | {r['failed']:.0f} |"
        )
    middle = rows[len(rows) // 2]["rss_mb"]
    second = rows[min(1, len(rows) - 1)]["rss_mb"]
    last = rows[-1]["rss_mb"]
    p99s = sorted(r["status_p99"] for r in rows)
    median_p99 = p99s[len(p99s) // 2]
    flat = last - second <= FLAT_MB
    stable = max(p99s) <= STABLE_P99 * median_p99
    lines += [
        "",
        f"RSS: {start_mb:.0f} MB after start-up, {second:.0f} MB in minute 2, {middle:.0f} MB "
        f"in the middle, {last:.0f} MB in the last minute; peak {peak_mb:.0f} MB. "
        f"Flat (last minute within {FLAT_MB:.0f} MB of minute 2): "
        f"{'**yes**' if flat else '**no**'}.",
        f"Status p99 per minute: {p99s[0]:.1f}-{p99s[-1]:.1f} ms, median {median_p99:.1f} ms. "
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
