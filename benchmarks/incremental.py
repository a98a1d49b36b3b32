"""Benchmark incremental scans: an hourly ``mlslo scan --state`` run over a 30-day table kept
as hourly Parquet files, against a full scan of the same table.

What it does (results in docs/benchmarks.md):

1. Generates a seeded 30-day prediction log of ``--rows`` rows as 720 hourly Parquet files
   (plus one more hour, written later) under ``--dir`` (default a folder in /tmp), in chunks.
   Columns: id, ts, status, latency_ms, event_ts. A spec with three 30-day SLOs (99.9 %
   availability, 99 % of responses <= 250 ms, p99 lag <= 15 min) reads them.
2. Runs ``scan_to_state`` to the end of day 30 with no state (a full scan that fills it),
   adds hour 721, then times the incremental run to the new hour, and a full scan to the
   same hour from scratch (what ``mlslo evaluate --data`` does each time).
3. For each run reports wall time and the bytes the process read from files (``rchar`` of
   /proc/self/io: DuckDB reads Parquet with pread, so skipped row groups and files are not
   counted).
4. Checks that the incremental state equals the full scan's rollups; exits 1 otherwise.

Quick run::

    python benchmarks/incremental.py --rows 3000000

This is a benchmark, not a test: it is not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common import describe, log

START = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = 30 * 24
HOUR_US = 3_600_000_000
SPEC = """
service: incremental-bench
slos:
  - name: availability
    dimension: availability
    objective: {target: 0.999}
    window: 30d
  - name: latency
    dimension: latency
    sli: {latency_threshold: 250ms}
    objective: {target: 0.99}
    window: 30d
  - name: lag-p99
    dimension: freshness
    sli: {percentile: 99}
    objective: {target: 15m}
    window: 30d
"""


def write_hour(folder: Path, hour: int, rows: int, seed: int) -> int:
    """One hour of predictions as its own Parquet file; returns its size in bytes."""
    rng = np.random.default_rng([seed, hour])
    start_us = int(START.timestamp() * 1_000_000) + hour * HOUR_US
    ts = np.sort(start_us + rng.integers(0, HOUR_US, rows))
    lag = rng.exponential(120e6, rows).astype(np.int64)
    table = pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64) + hour * rows),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "status": pa.array(np.where(rng.random(rows) < 0.0005, "error", "ok")),
            "latency_ms": pa.array(rng.lognormal(4.3, 0.5, rows)),
            "event_ts": pa.array(ts - lag, pa.timestamp("us", tz="UTC")),
        }
    )
    path = folder / f"predictions-{hour:04d}.parquet"
    pq.write_table(table, path, row_group_size=1_000_000)
    return path.stat().st_size


def read_chars() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def timed(label: str, run: Any) -> tuple[Any, dict[str, Any]]:
    before, started = read_chars(), time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    read = read_chars() - before
    log(f"{label}: {seconds:.2f} s, {read / 2**20:.1f} MiB read")
    return result, {"run": label, "seconds": round(seconds, 3), "MiB read": round(read / 2**20, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000_000, help="rows over 30 days")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None, help="where the table goes")
    parser.add_argument("--keep", action="store_true", help="keep the generated table")
    args = parser.parse_args()

    from mlslo.api import scan_to_state
    from mlslo.measure.windows import scan_range
    from mlslo.scan.files import Sources, scan_files
    from mlslo.spec import load_spec

    root = args.dir or Path(tempfile.mkdtemp(prefix="mlslo-incremental-"))
    table = root / "predictions"
    table.mkdir(parents=True, exist_ok=True)
    per_hour = args.rows // HOURS
    started = time.perf_counter()
    size = sum(write_hour(table, hour, per_hour, args.seed) for hour in range(HOURS))
    log(
        f"wrote {per_hour * HOURS:,} rows in {HOURS} files ({size / 2**20:.0f} MiB) "
        f"in {time.perf_counter() - started:.0f} s"
    )
    spec_path = root / "spec.yaml"
    spec_path.write_text(SPEC, encoding="utf-8")
    spec = load_spec(spec_path)
    sources = Sources(str(table / "*.parquet"))
    state = root / "state"
    shutil.rmtree(state, ignore_errors=True)
    end = START + timedelta(hours=HOURS)
    lateness = timedelta(minutes=10)

    rows = []
    _, row = timed(
        "first run (full, fills the state)",
        lambda: scan_to_state(spec, sources, state, end, lateness=lateness),
    )
    rows.append(row)
    new_size = write_hour(table, HOURS, per_hour, args.seed)
    later = end + timedelta(hours=1)
    incremental, row = timed(
        "hourly incremental run",
        lambda: scan_to_state(spec, sources, state, later, lateness=lateness),
    )
    rows.append(row)
    start, stop = scan_range(spec, later)
    full, row = timed(
        "full scan to the same hour", lambda: scan_files(spec, sources, start=start, end=stop)
    )
    rows.append(row)

    same = _same(incremental.state.rollup, full)
    result = {
        "rows": per_hour * HOURS,
        "table MiB": round(size / 2**20, 1),
        "new hour MiB": round(new_size / 2**20, 2),
        "rescanned from": incremental.rescanned_from.isoformat(),
        "runs": rows,
        "state equals full scan": same,
        "machine": describe([("mlslo", "mlslo"), ("DuckDB", "duckdb"), ("pyarrow", "pyarrow")]),
    }
    print(json.dumps(result, indent=2))
    print()
    print("| run | wall s | MiB read |")
    print("|---|---:|---:|")
    for r in rows:
        print(f"| {r['run']} | {r['seconds']:.2f} | {r['MiB read']:.1f} |")
    if not args.keep and args.dir is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if same else 1


def _same(state: Any, full: Any) -> bool:
    """Equal rollups: the same rows once sorted by their keys (floats to 1e-6)."""
    import pyarrow.compute as pc

    def canonical(table: pa.Table, keys: list[str]) -> pa.Table:
        names = keys + sorted(c for c in table.column_names if c not in keys)
        table = table.select(names).sort_by([(k, "ascending") for k in keys])
        return pa.table(
            {
                n: pc.round(table[n], 6) if pa.types.is_floating(table[n].type) else table[n]
                for n in names
            }
        ).combine_chunks()

    keys = ["bucket", *full.slice_columns]
    if not canonical(state.table, keys).equals(canonical(full.table, keys)):
        return False
    if set(state.histograms) != set(full.histograms):
        return False
    return all(
        canonical(state.histograms[n], ["bucket", "bin"]).equals(
            canonical(full.histograms[n], ["bucket", "bin"])
        )
        for n in full.histograms
    )


if __name__ == "__main__":
    sys.exit(main())
