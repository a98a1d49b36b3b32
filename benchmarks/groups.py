"""Memory of the mlslo service per fairness group, with 30 days of predictions retained.

For each group count (default 10, 100 and 1,000) it starts a real ``mlslo serve --no-auth``
on 127.0.0.1 with a fresh DuckDB file and a spec with a 30-day fairness SLO (true positive
rate difference between the values of ``group``) beside a 30-day availability SLO, sends
30 days x ``--daily`` generated predictions as Arrow batches (``group`` uniform over the
group values, ``ts`` spread over the last 30 days), and reads the server's RSS
(``/proc/<pid>/status``): after start-up, after ingestion, and after ``--gets`` status
GETs (``GET /api/v1/slos``, timed). The memory a group costs is the slope of RSS against
the number of groups. Every server is stopped by its PID, also on errors and Ctrl-C.

Quick smoke run::

    python benchmarks/groups.py --daily 2000 --groups 10 100

This is a benchmark, not a test: it is not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import describe, log
from ingest import (
    ARROW,
    DAY_US,
    MINUTE_US,
    Server,
    now_us,
    percentile,
    records,
    send_batches,
    time_gets,
)

SPEC = """\
# Written by benchmarks/groups.py: a fairness SLO over the values of `group`.
service: bench-groups
slos:
  - name: fairness
    dimension: fairness
    sli: {metric: true_positive_rate_difference, attribute: group}
    objective: {target: 0.05}
    window: 30d
  - name: availability
    dimension: availability
    objective: {target: 0.999}
    window: 30d
"""

TARGET_KB_PER_GROUP = 300.0  # "a few hundred KB" per group


@dataclass
class Run:
    groups: int
    rows: int
    ingest_s: float
    start_mb: float
    ingested_mb: float
    after_gets_mb: float
    peak_mb: float
    get_p50_ms: float
    get_p99_ms: float
    groups_seen: int


def group_records(rng: Any, first: int, n: int, lo: int, hi: int, groups: int) -> Any:
    """``n`` predictions with ``ts`` sorted in [lo, hi) and ``group`` uniform over
    ``g0000`` .. ``g{groups - 1}``."""
    import pyarrow as pa

    table = records(rng, first, n, lo, hi, ordered=True)
    names = pa.array([f"g{i:04d}" for i in range(groups)])
    return table.append_column("group", names.take(pa.array(rng.integers(0, groups, n))))


def measure(groups: int, args: argparse.Namespace, work: Path) -> Run:
    import numpy as np

    from mlslo.client import arrow_bytes

    spec = work / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    db = work / f"groups-{groups}.duckdb"
    for suffix in ("", ".wal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    rng = np.random.default_rng(args.seed)
    end = now_us() - MINUTE_US
    start = end - 30 * DAY_US + 60 * MINUTE_US
    span = (end - start) // 30
    log(f"{groups} groups: building 30 x {args.daily:,} records ...")
    bodies = []
    for day in range(30):
        table = group_records(
            rng, day * args.daily, args.daily, start + day * span, start + (day + 1) * span, groups
        )
        for offset in range(0, table.num_rows, args.batch):
            part = table.slice(offset, args.batch)
            bodies.append((part.num_rows, arrow_bytes(part)))
    extra = ["--max-groups", str(max(groups, 1000))]
    with Server(spec, db, work / f"groups-{groups}.log", extra) as server:
        time.sleep(1)
        start_mb = server.status()["VmRSS"] / 1024
        log(f"{groups} groups: sending {len(bodies)} Arrow batches ...")
        phase = send_batches(server, "groups", bodies, ARROW, args.senders)
        del bodies
        time.sleep(1)
        ingested_mb = server.status()["VmRSS"] / 1024
        latencies, document = time_gets(server, args.gets, args.warmup)
        time.sleep(1)
        status = server.status()
    fairness = next(s for s in document["slos"] if s["name"] == "fairness")
    seen = len(fairness.get("sli", {}).get("groups") or [])
    return Run(
        groups,
        phase.rows,
        phase.seconds,
        start_mb,
        ingested_mb,
        status["VmRSS"] / 1024,
        status["VmHWM"] / 1024,
        percentile(latencies, 50),
        percentile(latencies, 99),
        seen,
    )


def timeline_bytes(groups: int, daily: int, seed: int) -> tuple[int, int, float]:
    """In this process: the bytes the fairness SLO's timeline holds for 30 days x ``daily``
    predictions spread over ``groups`` groups (a rollup of one-minute buckets, as the
    server's), what the dense bucket x group grid with prefix sums held before, and the
    fastest of five evaluations of the SLO from it (seconds; a status read's work)."""
    import datetime as dt
    import time

    import numpy as np
    import pyarrow as pa

    from mlslo.stats.rollup import Rollup
    from mlslo.stats.timeline import Timeline

    rng = np.random.default_rng(seed)
    minutes = 30 * 1440
    timeline = Timeline("fairness", 0, minutes + 3 * 1440, group_by=("group",))
    names = pa.array([f"g{i:04d}" for i in range(groups)])
    for day in range(30):
        bucket = rng.integers(day * 1440, (day + 1) * 1440, daily)
        code = rng.integers(0, groups, daily)
        keys, counts = np.unique(bucket * groups + code, return_counts=True)
        columns = {
            "bucket": pa.array(keys // groups, pa.int64()),
            "group": names.take(pa.array(keys % groups)),
        }
        for stat in ("predictions", "tp", "fp", "fn", "tn"):
            columns[f"fairness/{stat}"] = pa.array(counts.astype(float))
        timeline.add(Rollup(60, ("group",), pa.table(columns)))
    timeline.window(0, minutes)
    cells = timeline._cells
    assert cells is not None
    held = cells.nbytes() + sum(a.nbytes for a in timeline._stats.values())
    dense = (minutes + 3 * 1440) * groups * 5 * 8 * 2
    from mlslo.measure.evaluate import evaluate
    from mlslo.spec import parse_spec

    spec = parse_spec(SPEC)
    at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=30)
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        evaluate(spec, {"fairness": timeline}, at, slos=["fairness"])
        best = min(best, time.perf_counter() - began)
    return held, dense, best


def slope_kb(runs: Sequence[Run], attribute: str) -> float:
    """Least-squares KB of RSS per group."""
    import numpy as np

    x = np.array([r.groups for r in runs], dtype=float)
    y = np.array([getattr(r, attribute) for r in runs]) * 1024
    return float(np.polyfit(x, y, 1)[0]) if len(runs) > 1 else float("nan")


def report(runs: Sequence[Run], args: argparse.Namespace, load: tuple[float, float]) -> str:
    lines = [
        f"30 days x {args.daily:,} predictions/day, {args.gets} timed GETs after {args.warmup}.",
        "",
        "| groups | rows | ingest (s) | RSS after start (MB) | RSS after ingest (MB) "
        "| RSS after GETs (MB) | peak RSS (MB) | GET p50 / p99 (ms) | groups in the answer |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.groups:,} | {r.rows:,} | {r.ingest_s:.1f} | {r.start_mb:.0f} "
            f"| {r.ingested_mb:.0f} | {r.after_gets_mb:.0f} | {r.peak_mb:.0f} "
            f"| {r.get_p50_ms:.1f} / {r.get_p99_ms:.1f} | {r.groups_seen:,} |"
        )
    after = slope_kb(runs, "after_gets_mb")
    peak = slope_kb(runs, "peak_mb")
    verdict = "**met**" if after <= TARGET_KB_PER_GROUP else "**NOT met**"
    lines += [
        "",
        f"RSS per group (least-squares slope over the group counts): {after:.0f} KB after "
        f"the GETs, {peak:.0f} KB at the peak. Target: at most {TARGET_KB_PER_GROUP:.0f} KB "
        f"per group: {verdict}.",
        "",
        "| | |",
        "|---|---|",
    ]
    info = describe(
        [("DuckDB", "duckdb"), ("pyarrow", "pyarrow"), ("numpy", "numpy"), ("mlslo", "mlslo")]
    )
    info["load average (1 min)"] = f"{load[0]:.2f} before, {load[1]:.2f} after"
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="RSS of a real `mlslo serve` against the number of fairness groups, "
        "with 30 days of predictions retained.",
        epilog="Quick smoke run: python benchmarks/groups.py --daily 2000 --groups 10 100",
    )
    parser.add_argument("--groups", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument(
        "--daily", type=int, default=100_000, help="predictions per day (default 100,000)"
    )
    parser.add_argument("--batch", type=int, default=50_000, help="rows per Arrow batch")
    parser.add_argument("--senders", type=int, default=2, help="concurrent senders")
    parser.add_argument("--gets", type=int, default=50, help="timed status GETs")
    parser.add_argument("--warmup", type=int, default=5, help="untimed status GETs first")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--json", action="store_true", help="also print the runs as JSON")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="only measure the fairness timeline's arrays in this process (no server)",
    )
    parser.add_argument("--work-dir", type=Path, help="default: a temporary directory")
    args = parser.parse_args(argv)
    if min(args.groups) < 1 or args.daily < 1:
        parser.error("--groups and --daily must be at least 1")
    if args.in_process:
        print(
            "| groups | timeline arrays (MB) | per group (KB) | dense grid before (MB) "
            "| one evaluation (ms) |"
        )
        print("|---:|---:|---:|---:|---:|")
        for n in args.groups:
            held, dense, seconds = timeline_bytes(n, args.daily, args.seed)
            print(
                f"| {n:,} | {held / 2**20:.1f} | {held / n / 1024:.0f} | {dense / 2**20:.0f} "
                f"| {seconds * 1000:.0f} |"
            )
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mlslo-groups-") as tmp:
        work = args.work_dir.resolve() if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        runs = [measure(n, args, work) for n in args.groups]
    print(report(runs, args, (load_before, os.getloadavg()[0])))
    if args.json:
        print(json.dumps([r.__dict__ for r in runs]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
