"""Benchmark incremental scans: hourly ``mlslo scan --state`` runs over a 30-day table kept
as hourly Parquet files, with labels arriving on time and, in one hour, late, against a full
scan of the same table.

What it does (results in docs/benchmarks.md):

1. Generates a seeded 30-day prediction log of ``--rows`` rows as 720 hourly Parquet files
   under ``--dir`` (default a folder in /tmp). Columns: id, ts, status, latency_ms,
   event_ts, prediction. One prediction in five gets a label an hour after its ``ts``; the
   labels are hourly files too, by the hour they arrived. A spec with four 30-day SLOs (99.9 %
   availability, 99 % of responses <= 250 ms, p99 lag <= 15 min, 90 % accuracy) reads them.
2. Runs ``scan_to_state`` to the end of day 30 with no state (a full scan that fills it).
3. Adds hour 721 (its predictions, and the labels of hour 720's) and times the incremental
   run to it: labels on time.
4. Adds hour 722 and, in the same hour, late labels for ``--late`` (default 1 %) as many
   predictions of the last 7 days as have a label, and times the incremental run to it.
5. Times a full scan to the same hour from scratch (what ``mlslo evaluate --data`` does).
6. For each run reports wall time, the prediction rows with ``ts`` in the range it rescanned,
   and the bytes the process read from files (``rchar`` of /proc/self/io: DuckDB reads
   Parquet with pread, so skipped row groups and files are not counted).
7. Checks that the incremental state equals the full scan's rollups; exits 1 otherwise.

Quick run::

    python benchmarks/incremental.py --rows 3600000

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
  - name: accuracy
    dimension: accuracy
    sli: {metric: accuracy}
    objective: {target: 0.9}
    window: 30d
"""
LABELLED = 5
"""One prediction in this many gets a label on time (those with ``index % LABELLED == 0``)."""
LATE_DAYS = 7


def write_hour(folder: Path, hour: int, rows: int, seed: int) -> int:
    """One hour of predictions as its own Parquet file, and the labels of the hour before
    (arrived in this one) as another; returns the bytes of predictions."""
    table = hour_of_predictions(hour, rows, seed)
    path = folder / f"predictions-{hour:04d}.parquet"
    pq.write_table(table, path, row_group_size=1_000_000)
    if hour > 0:
        before = hour_of_predictions(hour - 1, rows, seed).filter(
            pa.array(np.arange(rows) % LABELLED == 0)
        )
        write_labels(folder / f"labels-{hour:04d}.parquet", before, HOUR_US, seed, hour)
    return path.stat().st_size


def hour_of_predictions(hour: int, rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng([seed, hour])
    start_us = int(START.timestamp() * 1_000_000) + hour * HOUR_US
    ts = np.sort(start_us + rng.integers(0, HOUR_US, rows))
    lag = rng.exponential(120e6, rows).astype(np.int64)
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64) + hour * rows),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "status": pa.array(np.where(rng.random(rows) < 0.0005, "error", "ok")),
            "latency_ms": pa.array(rng.lognormal(4.3, 0.5, rows)),
            "event_ts": pa.array(ts - lag, pa.timestamp("us", tz="UTC")),
            "prediction": pa.array(rng.integers(0, 2, rows)),
        }
    )


def write_labels(path: Path, predictions: pa.Table, after_us: Any, seed: int, tag: int) -> int:
    """Labels of ``predictions`` (right 92 % of the time) that arrive ``after_us``
    microseconds after each prediction's ``ts`` (a number, or one per prediction)."""
    rng = np.random.default_rng([seed, tag, 7])
    predicted = predictions["prediction"].to_numpy()
    right = rng.random(len(predicted)) < 0.92
    ts = predictions["ts"].cast(pa.int64()).to_numpy() + after_us
    pq.write_table(
        pa.table(
            {
                "id": predictions["id"],
                "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "label": pa.array(np.where(right, predicted, 1 - predicted)),
            }
        ),
        path,
    )
    return len(predicted)


def write_late_labels(folder: Path, hour: int, rows: int, seed: int, share: float) -> int:
    """Labels arriving in ``hour`` for predictions of the last ``LATE_DAYS`` days that had
    none: ``share`` as many as the labels those days had on time. Returns how many."""
    rng = np.random.default_rng([seed, hour, 11])
    hours = range(hour - LATE_DAYS * 24, hour)
    on_time = len(hours) * len(range(0, rows, LABELLED))
    count = max(1, round(on_time * share))
    chosen = rng.choice(len(hours) * rows, size=count * 2, replace=False)
    chosen = chosen[chosen % rows % LABELLED != 0][:count]
    parts = []
    for offset in sorted(set((chosen // rows).tolist())):
        within = np.sort(chosen[chosen // rows == offset] % rows)
        parts.append(hour_of_predictions(hours[offset], rows, seed).take(pa.array(within)))
    late = pa.concat_tables(parts)
    arrival_us = int(START.timestamp() * 1_000_000) + hour * HOUR_US
    arrival = arrival_us + rng.integers(0, HOUR_US, late.num_rows)
    after = arrival - late["ts"].cast(pa.int64()).to_numpy()
    path = folder / f"labels-{hour:04d}-late.parquet"
    return write_labels(path, late, after, seed, 100_000 + hour)


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
    parser.add_argument(
        "--late", type=float, default=0.01, help="share of a week's labels that arrive late"
    )
    args = parser.parse_args()

    from mlslo.api import scan_to_state
    from mlslo.measure.windows import scan_range
    from mlslo.scan.files import Sources, scan_files
    from mlslo.spec import load_spec

    root = args.dir or Path(tempfile.mkdtemp(prefix="mlslo-incremental-"))
    table = root / "predictions"
    shutil.rmtree(table, ignore_errors=True)
    table.mkdir(parents=True)
    per_hour = args.rows // HOURS
    started = time.perf_counter()
    size = sum(write_hour(table, hour, per_hour, args.seed) for hour in range(HOURS))
    log(
        f"wrote {per_hour * HOURS:,} rows in {HOURS} files ({size / 2**20:.0f} MiB) "
        f"and their labels in {time.perf_counter() - started:.0f} s"
    )
    spec_path = root / "spec.yaml"
    spec_path.write_text(SPEC, encoding="utf-8")
    spec = load_spec(spec_path)
    sources = Sources(str(table / "predictions-*.parquet"), str(table / "labels-*.parquet"))
    state = root / "state"
    shutil.rmtree(state, ignore_errors=True)
    end = START + timedelta(hours=HOURS)
    lateness = timedelta(minutes=10)

    def rescanned(since: datetime, until: datetime) -> int:
        """Prediction rows with ``ts`` in the range a run scanned."""
        import duckdb

        con = duckdb.connect()
        try:
            found = con.execute(
                f"SELECT count(*) FROM read_parquet('{table}/predictions-*.parquet') "
                "WHERE ts >= ? AND ts < ?",
                [since, until],
            ).fetchone()
        finally:
            con.close()
        return int(found[0]) if found else 0

    rows = []
    _, row = timed(
        "first run (full scan, fills the state)",
        lambda: scan_to_state(spec, sources, state, end, lateness=lateness),
    )
    rows.append(row | {"rows": rescanned(*scan_range(spec, end))})
    new_size = write_hour(table, HOURS, per_hour, args.seed)
    later = end + timedelta(hours=1)
    run, row = timed(
        "hourly incremental run, labels on time",
        lambda: scan_to_state(spec, sources, state, later, lateness=lateness),
    )
    rows.append(row | {"rows": rescanned(run.rescanned_from, later)})
    write_hour(table, HOURS + 1, per_hour, args.seed)
    late = write_late_labels(table, HOURS + 1, per_hour, args.seed, args.late)
    latest = later + timedelta(hours=1)
    incremental, row = timed(
        f"hourly incremental run, {args.late:.0%} of {LATE_DAYS} days' labels late",
        lambda: scan_to_state(spec, sources, state, latest, lateness=lateness),
    )
    rows.append(row | {"rows": rescanned(incremental.rescanned_from, latest)})
    start, stop = scan_range(spec, latest)
    full, row = timed(
        "full scan to the same hour", lambda: scan_files(spec, sources, start=start, end=stop)
    )
    rows.append(row | {"rows": rescanned(start, stop)})

    same = _same(incremental.state.rollup, full)
    result = {
        "rows": per_hour * HOURS,
        "table MiB": round(size / 2**20, 1),
        "new hour MiB": round(new_size / 2**20, 2),
        "late labels": late,
        "rescanned from (late labels)": incremental.rescanned_from.isoformat(),
        "runs": rows,
        "state equals full scan": same,
        "machine": describe([("mlslo", "mlslo"), ("DuckDB", "duckdb"), ("pyarrow", "pyarrow")]),
    }
    print(json.dumps(result, indent=2))
    print()
    print("| run | wall s | prediction rows rescanned | MiB read |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['run']} | {r['seconds']:.2f} | {r['rows']:,} | {r['MiB read']:.1f} |")
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
