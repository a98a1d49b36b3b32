"""Benchmark ``mlslo evaluate`` against the two ways people compute the same numbers today.

What it does (see docs/benchmarks.md for the results and how to read them):

1. Generates a seeded, 30-day prediction log of ``--rows`` rows (daily seasonality, a model
   release on day 20, rare errors and one error incident, lognormal latency, exponential input
   lag with two upstream stalls, ~20 % of labels still pending, groups A/B/C) in chunks with
   numpy/pyarrow, and caches it as Parquet under ``bench-data/`` keyed by rows, seed and the
   generator version.
2. Writes a spec with five 30-day SLOs: F1 >= 0.92, 95 % of data <= 15 min old, 99.95 %
   availability, 99 % of responses <= 250 ms, TPR difference on ``group`` <= 0.05.
3. Times three approaches, each in a fresh subprocess, best wall time of ``--repeat`` runs,
   with CPU time and the peak RSS of the process (GNU time's ``%M``, else ``os.wait4``):

   a. ``mlslo evaluate --format json --series 1d --at <end>`` (the installed CLI), with a
      scan cache of its own: one first run compiles the scan's SQL into the empty cache
      (reported on its own row), the timed runs reuse it, as every later evaluation of the
      same spec over files with the same columns does;
   b. a hand-written one-pass DuckDB SQL GROUP BY (minute x group counts for all five SLOs,
      straight from the Parquet file, with ``count_if``, which DuckDB runs faster than
      ``count(*) FILTER (WHERE ...)``) plus the numpy that turns it into the same numbers;
   c. the obvious alternative: pandas + a per-day loop with scikit-learn's ``f1_score`` and
      Fairlearn's ``MetricFrame(true_positive_rate).difference()``.

4. Checks that all three agree (30-day value and sample count of every SLO, and the daily
   series) and exits with status 1 if they do not; prints a Markdown table and the targets.

Quick smoke run::

    python benchmarks/evaluate.py --rows 200000 --repeat 1

This is a benchmark, not a test: it is not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import compile_bytecode, describe, log, mlslo_command

ROOT = Path(__file__).resolve().parents[1]
GENERATOR_VERSION = 1
START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 30
END = START + timedelta(days=DAYS)
MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
START_US = int((START - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000
END_US = START_US + DAYS * DAY_US
CHUNK_ROWS = 1_000_000
TOLERANCE = 1e-9

SLO_NAMES = ("accuracy", "freshness", "uptime", "latency", "fairness")
LATENCY_THRESHOLD_MS = 250.0
LAG_THRESHOLD_US = 15 * MINUTE_US

SPEC = """\
# Written by benchmarks/evaluate.py: all four dimensions plus latency, 30-day windows.
service: bench-scoring
slos:
  - name: accuracy
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.92}                # F1 >= 0.92
    window: 30d
  - name: freshness
    dimension: freshness
    sli: {lag_threshold: 15m}
    objective: {target: 0.95}                # 95 % of data <= 15 min old
    window: 30d
  - name: uptime
    dimension: availability
    objective: {target: 0.9995}
    window: 30d
  - name: latency
    dimension: latency
    sli: {latency_threshold: 250ms}
    objective: {target: 0.99}                # 99 % of responses <= 250 ms
    window: 30d
  - name: fairness
    dimension: fairness
    sli: {metric: true_positive_rate_difference, attribute: group}
    objective: {target: 0.05}                # gap <= 0.05
    window: 30d
"""

# The targets of the performance issue.
TARGET_VS_DUCKDB = 1.5  # mlslo wall time <= 1.5 x the hand-written DuckDB pass
TARGET_VS_PANDAS = 20.0  # mlslo at least 20 x faster than the pandas/sklearn/Fairlearn loop
TARGET_RSS_MB = 2048.0  # mlslo peak RSS under 2 GB (MB = 2**20 bytes)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- 1. the data -------------------------------------------------------------------------------

# Incidents, as (start offset from START, length).
ERROR_INCIDENT = (timedelta(days=24, hours=10), timedelta(minutes=40))
STALLS = (
    (timedelta(days=9, hours=14), timedelta(hours=6)),
    (timedelta(days=26, hours=3), timedelta(minutes=90)),
)
RELEASE_DAY = 20  # model_version v1 before, v2 from this day on
GROUPS = ("A", "B", "C")
GROUP_SHARES = (0.5, 0.35, 0.15)
# Separation of positives (probit of the true positive rate) per version and group, and of
# negatives (probit of 1 - false positive rate) per version.
POSITIVE_SHIFT = {"v1": (1.645, 1.60, 1.48), "v2": (1.555, 1.48, 1.175)}
NEGATIVE_SHIFT = {"v1": 1.88, "v2": 1.75}


def data_path(data_dir: Path, rows: int, seed: int) -> Path:
    return data_dir / f"predictions-g{GENERATOR_VERSION}-n{rows}-s{seed}.parquet"


def hourly_counts(rows: int) -> Any:
    """Rows per hour of the 30 days: daily seasonality (peak mid-afternoon), quieter weekends;
    rounded with the largest remainders so they sum to ``rows`` exactly."""
    import numpy as np

    hours = np.arange(DAYS * 24)
    hour_of_day = hours % 24
    weekday = (START.weekday() + hours // 24) % 7
    weight = 1.0 + 0.6 * np.sin(2 * np.pi * (hour_of_day - 9) / 24)
    weight *= np.where(weekday >= 5, 0.8, 1.0)
    exact = rows * weight / weight.sum()
    counts = np.floor(exact).astype(np.int64)
    short = rows - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    return counts


def _in_span(offset_us: Any, span: tuple[timedelta, timedelta]) -> Any:
    lo = int(span[0].total_seconds() * 1_000_000)
    hi = lo + int(span[1].total_seconds() * 1_000_000)
    return (offset_us >= lo) & (offset_us < hi)


def _batch(rng: Any, first_row: int, hours: Any, counts: Any) -> Any:
    """One chunk of records for consecutive ``hours`` (numpy + pyarrow, no Python loops)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = int(counts.sum())
    offset = np.repeat(hours.astype(np.int64) * HOUR_US, counts)
    offset += rng.integers(0, HOUR_US, n)
    offset.sort()
    ts = START_US + offset
    day = offset / DAY_US
    v2 = day >= RELEASE_DAY
    group = rng.choice(len(GROUPS), size=n, p=GROUP_SHARES)

    error_rate = np.where(_in_span(offset, ERROR_INCIDENT), 0.08, 0.0002)
    error = rng.random(n) < error_rate
    latency = rng.lognormal(np.log(np.where(v2, 68.0, 62.0)), 0.55)

    lag = rng.exponential(3.5 * MINUTE_US, n)
    for stall in STALLS:
        inside = _in_span(offset, stall)
        since = offset - int(stall[0].total_seconds() * 1_000_000)
        lag = np.where(inside, lag + since, lag)
    event_ts = ts - lag.astype(np.int64)

    truth = rng.random(n) < 0.3
    positive_shift = np.where(
        v2, np.take(POSITIVE_SHIFT["v2"], group), np.take(POSITIVE_SHIFT["v1"], group)
    )
    negative_shift = np.where(v2, NEGATIVE_SHIFT["v2"], NEGATIVE_SHIFT["v1"])
    logit = np.where(truth, positive_shift, -negative_shift) + rng.standard_normal(n)
    score = 1.0 / (1.0 + np.exp(-logit))
    prediction = (score >= 0.5).astype(np.int64)
    age_days = (END_US - ts) / DAY_US
    pending = rng.random(n) < 0.1 + 0.9 * np.exp(-age_days / 3.0)

    index = pa.array(np.arange(first_row, first_row + n, dtype=np.int64)).cast(pa.string())
    ids = pc.binary_join_element_wise("pred-", pc.utf8_lpad(index, 10, "0"), "")
    return pa.table(
        {
            "id": ids,
            "ts": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
            "model": pa.repeat(pa.scalar("fraud-scorer"), n),
            "model_version": pa.array(["v1", "v2"]).take(v2.astype(np.int64)),
            "status": pa.array(["ok", "error"]).take(error.astype(np.int64)),
            "latency_ms": pa.array(np.round(latency, 3)),
            "event_ts": pa.array(event_ts, type=pa.timestamp("us", tz="UTC")),
            "prediction": pa.array(prediction),
            "score": pa.array(score),
            "label": pa.array(truth.astype(np.int64), mask=pending),
            "group": pa.array(GROUPS).take(group),
        }
    )


def generate(path: Path, rows: int, seed: int) -> None:
    """Write the log to ``path`` chunk by chunk (about CHUNK_ROWS rows in memory at a time)."""
    import numpy as np
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    counts = hourly_counts(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    writer = None
    first_row = 0
    hour = 0
    try:
        while hour < len(counts):
            stop = hour + 1
            while stop < len(counts) and counts[hour:stop].sum() + counts[stop] <= CHUNK_ROWS:
                stop += 1
            table = _batch(rng, first_row, np.arange(hour, stop), counts[hour:stop])
            if writer is None:
                writer = pq.ParquetWriter(partial, table.schema, compression="snappy")
            writer.write_table(table)
            first_row += table.num_rows
            hour = stop
    finally:
        if writer is not None:
            writer.close()
    partial.replace(path)


def ensure_data(data_dir: Path, rows: int, seed: int) -> Path:
    path = data_path(data_dir, rows, seed)
    if path.exists():
        log(f"using cached {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        return path
    log(f"generating {rows:,} rows (seed {seed}) -> {path}")
    began = time.perf_counter()
    # In a child process, so this process stays small: a forked child starts from (and would
    # report) the parent's peak RSS.
    worker = [sys.executable, str(Path(__file__).resolve()), "--worker", "generate"]
    subprocess.run(
        [*worker, "--data", str(path), "--rows", str(rows), "--seed", str(seed)], check=True
    )
    size = path.stat().st_size / 2**20
    log(f"  done in {time.perf_counter() - began:.1f}s ({size:.0f} MB)")
    return path


def sample_path(source: Path, fraction: float) -> Path:
    return source.with_name(f"{source.stem}-sample{fraction:g}.parquet")


def ensure_sample(source: Path, fraction: float, seed: int) -> Path:
    path = sample_path(source, fraction)
    if not path.exists():
        log(f"sampling {fraction:g} of the rows -> {path}")
        worker = [sys.executable, str(Path(__file__).resolve()), "--worker", "sample"]
        subprocess.run(
            [
                *worker,
                "--data",
                str(source),
                "--seed",
                str(seed),
                "--pandas-fraction",
                str(fraction),
            ],
            check=True,
        )
    return path


def sample_file(source: Path, fraction: float, seed: int) -> None:
    """A seeded row sample of ``source`` (all 30 days kept), for timing the slow loop on a
    fraction of the rows; written batch by batch."""
    import numpy as np
    import pyarrow.parquet as pq

    path = sample_path(source, fraction)
    rng = np.random.default_rng([seed, 1])
    reader = pq.ParquetFile(source)
    partial = path.with_suffix(".partial")
    with pq.ParquetWriter(partial, reader.schema_arrow, compression="snappy") as writer:
        for batch in reader.iter_batches(batch_size=CHUNK_ROWS):
            keep = rng.random(batch.num_rows) < fraction
            writer.write_batch(batch.filter(keep))
    partial.replace(path)


# --- the SLI formulas shared by the hand-written baselines ------------------------------------


def share(good: float, total: float) -> float | None:
    return good / total if total > 0 else None


def f1(tp: float, fp: float, fn: float, tn: float) -> float | None:
    if tp + fp + fn + tn <= 0:
        return None
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator > 0 else None


def tpr_difference(tp: Any, fn: Any, predictions: Any) -> float | None:
    """max - min of tp / (tp + fn) over the groups seen; undefined if a seen group has no
    positive labels (never a silent 0)."""
    rates = []
    for hits, misses, seen in zip(tp, fn, predictions, strict=True):
        if seen <= 0:
            continue
        if hits + misses <= 0:
            return None
        rates.append(hits / (hits + misses))
    return max(rates) - min(rates) if len(rates) >= 2 else None


# --- 3b. hand-written DuckDB SQL + numpy --------------------------------------------------------

DUCKDB_SQL = """
SELECT
  epoch_us(ts) // {minute} AS minute,
  "group" AS grp,
  count(status) AS total,
  count_if(status = 'ok') AS ok,
  count(latency_ms) AS latency_total,
  count_if(latency_ms <= {latency}) AS latency_good,
  count(event_ts) AS lag_total,
  count_if(epoch_us(ts) - epoch_us(event_ts) <= {lag}) AS lag_good,
  count(prediction) AS predictions,
  count_if(prediction = 1 AND label = 1) AS tp,
  count_if(prediction = 1 AND label <> 1) AS fp,
  count_if(prediction <> 1 AND label = 1) AS fn,
  count_if(prediction <> 1 AND label <> 1) AS tn
FROM read_parquet({path})
WHERE ts >= make_timestamptz({start}) AND ts < make_timestamptz({end})
GROUP BY ALL
"""


def run_duckdb(data: Path, timings: dict[str, float]) -> dict[str, Any]:
    import duckdb
    import numpy as np

    timings["import"] = time.perf_counter() - PROCESS_START
    began = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    sql = DUCKDB_SQL.format(
        minute=MINUTE_US,
        latency=LATENCY_THRESHOLD_MS,
        lag=LAG_THRESHOLD_US,
        path="'" + str(data).replace("'", "''") + "'",
        start=START_US,
        end=END_US,
    )
    rows = con.execute(sql).fetchnumpy()
    timings["query"] = time.perf_counter() - began
    began = time.perf_counter()
    day = (rows["minute"].astype(np.int64) - START_US // MINUTE_US) // 1440
    groups, code = np.unique(np.asarray(rows["grp"], dtype=object).astype(str), return_inverse=True)
    g = len(groups)

    def by_day(name: str) -> Any:
        weights = np.asarray(rows[name], dtype=np.float64)
        return np.bincount(day, weights=weights, minlength=DAYS)[:DAYS]

    def by_day_group(name: str) -> Any:
        weights = np.asarray(rows[name], dtype=np.float64)
        flat = np.bincount(day * g + code, weights=weights, minlength=DAYS * g)
        return flat[: DAYS * g].reshape(DAYS, g)

    total, ok = by_day("total"), by_day("ok")
    lat_total, lat_good = by_day("latency_total"), by_day("latency_good")
    lag_total, lag_good = by_day("lag_total"), by_day("lag_good")
    tp, fp, fn, tn = (by_day_group(c) for c in ("tp", "fp", "fn", "tn"))
    predictions = by_day_group("predictions")

    def point(sl: slice) -> dict[str, tuple[float | None, int]]:
        c = [float(x[sl].sum()) for x in (tp, fp, fn, tn)]
        labelled = int(sum(c))
        return {
            "uptime": (share(ok[sl].sum(), total[sl].sum()), int(total[sl].sum())),
            "latency": (share(lat_good[sl].sum(), lat_total[sl].sum()), int(lat_total[sl].sum())),
            "freshness": (share(lag_good[sl].sum(), lag_total[sl].sum()), int(lag_total[sl].sum())),
            "accuracy": (f1(*c), labelled),
            "fairness": (
                tpr_difference(tp[sl].sum(0), fn[sl].sum(0), predictions[sl].sum(0)),
                labelled,
            ),
        }

    result = collect(point(slice(0, DAYS)), [point(slice(d, d + 1)) for d in range(DAYS)])
    timings["numpy"] = time.perf_counter() - began
    return result


# --- 3c. pandas + scikit-learn + Fairlearn, one day at a time ----------------------------------


def run_pandas(data: Path, timings: dict[str, float]) -> dict[str, Any]:
    import pandas as pd
    from fairlearn.metrics import MetricFrame, true_positive_rate
    from sklearn.metrics import f1_score

    timings["import"] = time.perf_counter() - PROCESS_START
    began = time.perf_counter()
    columns = ["ts", "status", "latency_ms", "event_ts", "prediction", "label", "group"]
    df = pd.read_parquet(data, columns=columns)
    start, end = pd.Timestamp(START), pd.Timestamp(END)
    df = df[(df["ts"] >= start) & (df["ts"] < end)]
    df["day"] = (df["ts"] - start) // pd.Timedelta(days=1)
    timings["load"] = time.perf_counter() - began
    began = time.perf_counter()

    def slis(d: pd.DataFrame) -> dict[str, tuple[float | None, int]]:
        labelled = d[d["label"].notna() & d["prediction"].notna()]
        y_true = labelled["label"].astype("int64")
        y_pred = labelled["prediction"].astype("int64")
        fresh = (d["ts"] - d["event_ts"]) <= pd.Timedelta(minutes=15)
        gap = MetricFrame(
            metrics=true_positive_rate,
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=labelled["group"],
        ).difference()
        return {
            "uptime": (float((d["status"] == "ok").mean()), len(d)),
            "latency": (float((d["latency_ms"] <= LATENCY_THRESHOLD_MS).mean()), len(d)),
            "freshness": (float(fresh.mean()), len(d)),
            "accuracy": (float(f1_score(y_true, y_pred, pos_label=1)), len(labelled)),
            "fairness": (float(gap), len(labelled)),
        }

    daily = [slis(d) for _, d in df.groupby("day", sort=True)]
    result = collect(slis(df), daily)
    timings["loop"] = time.perf_counter() - began
    return result


def collect(
    window: Mapping[str, tuple[float | None, int]],
    days: Sequence[Mapping[str, tuple[float | None, int]]],
) -> dict[str, Any]:
    """The common result shape: per SLO the 30-day value and n, and the daily series."""
    starts = [iso(START + timedelta(days=d)) for d in range(DAYS)]
    return {
        name: {
            "value": window[name][0],
            "n": window[name][1],
            "series": [
                [start, day[name][0], day[name][1]] for start, day in zip(starts, days, strict=True)
            ],
        }
        for name in SLO_NAMES
    }


def from_mlslo(document: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for slo in document["slos"]:
        series = [[p["start"], p["value"], p["n"]] for p in slo.get("series") or []]
        out[slo["name"]] = {"value": slo["sli"]["value"], "n": slo["sli"]["n"], "series": series}
    return out


# --- 3. running and measuring -----------------------------------------------------------------

PROCESS_START = time.perf_counter()


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float
    result: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def gnu_time() -> str | None:
    """``/usr/bin/time`` if it is GNU time (``-f %M`` gives the child's own peak RSS)."""
    path = shutil.which("time") or "/usr/bin/time"
    try:
        probe = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return path if "GNU" in probe.stdout + probe.stderr else None


GNU_TIME = gnu_time()


def measured(
    command: Sequence[str], what: str, env: Mapping[str, str] | None = None
) -> tuple[float, float, float, str]:
    """Run ``command`` as a fresh process: wall seconds, CPU seconds (user + system, all
    threads), peak RSS (MB = 2**20 bytes) and its stdout.

    The peak RSS comes from GNU time's ``%M`` when available, else from ``os.wait4``'s
    ``ru_maxrss`` (which is also right here because this process stays small: a child
    starts from the RSS of the process that forked it).
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "time"
        wrapped = list(command)
        if GNU_TIME:
            wrapped = [GNU_TIME, "-f", "%M", "-o", str(report), *command]
        with open(Path(tmp) / "out", "w+b") as out, open(Path(tmp) / "err", "w+b") as err:
            began = time.perf_counter()
            proc = subprocess.Popen(
                wrapped, stdout=out, stderr=err, env={**os.environ, **(env or {})}
            )
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - began
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(), err.read().decode()
        rss_kb = float(usage.ru_maxrss)
        if GNU_TIME and report.exists():
            rss_kb = float(report.read_text().split()[-1])
    if proc.returncode != 0:
        raise SystemExit(
            f"FAILED: {what} exited with status {proc.returncode}\n"
            f"command: {' '.join(command)}\n{stderr[-4000:]}"
        )
    return wall, usage.ru_utime + usage.ru_stime, rss_kb / 1024, stdout


def run_mlslo(spec: Path, data: Path, cache: Path) -> Run:
    command = [
        *mlslo_command(),
        "evaluate",
        "--spec",
        str(spec),
        "--data",
        str(data),
        "--at",
        iso(END),
        "--format",
        "json",
        "--series",
        "1d",
    ]
    wall, cpu, rss, stdout = measured(command, "mlslo evaluate", {"MLSLO_CACHE_DIR": str(cache)})
    return Run(wall, cpu, rss, from_mlslo(json.loads(stdout)))


def run_worker(kind: str, data: Path) -> Run:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--data", str(data)]
    wall, cpu, rss, stdout = measured(command, f"the {kind} baseline")
    document = json.loads(stdout)
    return Run(wall, cpu, rss, document["result"], document["timings"])


def worker_main(kind: str, data: Path) -> None:
    timings: dict[str, float] = {}
    runner: Callable[[Path, dict[str, float]], dict[str, Any]] = (
        run_duckdb if kind == "duckdb" else run_pandas
    )
    result = runner(data, timings)
    timings["total"] = time.perf_counter() - PROCESS_START
    json.dump({"result": result, "timings": timings}, sys.stdout)


# --- agreement ---------------------------------------------------------------------------------


def disagreements(reference: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """Every difference beyond TOLERANCE in the 30-day values, sample counts and series."""
    problems = []

    def differ(a: float | None, b: float | None) -> bool:
        if a is None or b is None:
            return (a is None) != (b is None)
        return not math.isclose(a, b, rel_tol=0.0, abs_tol=TOLERANCE)

    for name in SLO_NAMES:
        if name not in other:
            problems.append(f"{name}: missing")
            continue
        mine, theirs = reference[name], other[name]
        if differ(mine["value"], theirs["value"]) or mine["n"] != theirs["n"]:
            problems.append(
                f"{name} 30d: {mine['value']} (n={mine['n']}) vs {theirs['value']} "
                f"(n={theirs['n']})"
            )
        if len(mine["series"]) != len(theirs["series"]):
            problems.append(
                f"{name} series: {len(mine['series'])} vs {len(theirs['series'])} points"
            )
            continue
        for (s1, v1, n1), (s2, v2, n2) in zip(mine["series"], theirs["series"], strict=True):
            if s1 != s2 or differ(v1, v2) or n1 != n2:
                problems.append(f"{name} day {s1}: {v1} (n={n1}) vs {s2} {v2} (n={n2})")
    return problems


def max_difference(reference: Mapping[str, Any], other: Mapping[str, Any]) -> float:
    worst = 0.0
    for name in SLO_NAMES:
        pairs = [(reference[name]["value"], other[name]["value"])]
        pairs += [
            (a[1], b[1])
            for a, b in zip(reference[name]["series"], other[name]["series"], strict=True)
        ]
        for a, b in pairs:
            if a is not None and b is not None:
                worst = max(worst, abs(a - b))
    return worst


# --- 4. the report ------------------------------------------------------------------------------


PHASES = """
import json, time

marks = [("start", time.perf_counter(), time.process_time())]


def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))


from datetime import timedelta

from datetime import UTC, datetime

from mlslo.measure.evaluate import evaluate
from mlslo.measure.windows import scan_range
from mlslo.moments import parse_moment
from mlslo.render.documents import evaluation_json
from mlslo.scan import compiled
from mlslo.scan.files import Sources, scan_files
from mlslo.spec import load_spec

mark("import mlslo (+ pyarrow, numpy, pydantic, typer)")
spec = load_spec(SPEC)
at = parse_moment(AT, lambda: datetime.now(UTC))
start, end = scan_range(spec, at)
mark("load the spec")
spent = {}


def timed(name, function):
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            before = spent.get(name, (0.0, 0.0))
            spent[name] = (
                before[0] + time.perf_counter() - wall,
                before[1] + time.process_time() - cpu,
            )

    return wrapper


compiled.CompiledScan.run = timed("query", compiled.CompiledScan.run)
rollup = scan_files(spec, Sources(DATA), start=start, end=end)
mark("scan_files")
result = evaluate(spec, rollup, at, series_step=timedelta(days=1))
mark("evaluate (numpy, pure)")
text = json.dumps(evaluation_json(result), indent=2)
mark("render JSON")
out = []
for (_, w0, c0), (name, w1, c1) in zip(marks, marks[1:]):
    if name == "scan_files":
        query = spent["query"]
        out.append(["scan: import DuckDB, connect, open the file, read the cached SQL",
                    w1 - w0 - query[0], c1 - c0 - query[1]])
        out.append(["scan: the DuckDB query, rows to a rollup", *query])
    else:
        out.append([name, w1 - w0, c1 - c0])
print(json.dumps({"phases": out, "rollup_rows": rollup.table.num_rows}))
"""


def mlslo_phases(spec: Path, data: Path, cache: Path) -> tuple[list[tuple[str, float, float]], int]:
    """Where one in-process ``mlslo evaluate`` spends its time (a fresh interpreter, the
    compiled SQL already cached): (phase, wall seconds, CPU seconds), rollup rows."""
    header = f"SPEC = {str(spec)!r}\nDATA = {str(data)!r}\nAT = {iso(END)!r}\n"
    # A script file, not ``python -c``: DuckDB prints a progress bar to stdout when
    # ``__main__`` has no ``__file__`` (it takes that for a notebook).
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "mlslo_phases.py"
        script.write_text(header + PHASES, encoding="utf-8")
        _, _, _, stdout = measured(
            [sys.executable, str(script)],
            "the mlslo phase breakdown",
            {"MLSLO_CACHE_DIR": str(cache)},
        )
    document = json.loads(stdout)
    phases = [(str(name), float(wall), float(cpu)) for name, wall, cpu in document["phases"]]
    return phases, int(document["rollup_rows"])


def versions() -> dict[str, str]:
    return describe(
        [
            ("DuckDB", "duckdb"),
            ("numpy", "numpy"),
            ("pyarrow", "pyarrow"),
            ("pandas", "pandas"),
            ("ibis", "ibis"),
            ("sklearn", "sklearn"),
            ("fairlearn", "fairlearn"),
            ("mlslo", "mlslo"),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark `mlslo evaluate` (all five SLOs, 30d window + daily series) against a "
            "hand-written DuckDB SQL pass and a pandas + scikit-learn + Fairlearn per-day loop "
            "on a generated 30-day prediction log; checks that all three agree."
        ),
        epilog="Quick smoke run: python benchmarks/evaluate.py --rows 200000 --repeat 1",
    )
    parser.add_argument(
        "--rows", type=int, default=10_000_000, help="rows in the log (default 10,000,000)"
    )
    parser.add_argument("--seed", type=int, default=20260101, help="generator seed")
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="runs of mlslo and of the DuckDB pass, interleaved; the best is reported",
    )
    parser.add_argument(
        "--pandas-repeat",
        type=int,
        default=1,
        help="runs of the pandas loop (about 80 s each at 10M rows; default 1)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / "bench-data",
        help="where the generated Parquet and spec are cached (default: bench-data/)",
    )
    parser.add_argument(
        "--pandas-fraction",
        type=float,
        default=1.0,
        help=(
            "time the pandas loop on this seeded row sample of the log and extrapolate "
            "linearly to all rows (use when the full run would exceed ~15 minutes; default 1)"
        ),
    )
    parser.add_argument(
        "--skip-pandas", action="store_true", help="leave out the pandas/scikit-learn loop"
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time mlslo's phases (import, scan, evaluate, render) in one extra run",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 3 when a target is not met"
    )
    parser.add_argument(
        "--worker", choices=("generate", "sample", "duckdb", "pandas"), help=argparse.SUPPRESS
    )
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "generate":
        generate(args.data, args.rows, args.seed)
        return 0
    if args.worker == "sample":
        sample_file(args.data, args.pandas_fraction, args.seed)
        return 0
    if args.worker:
        worker_main(args.worker, args.data)
        return 0
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    if args.repeat < 1 or args.pandas_repeat < 1:
        parser.error("--repeat and --pandas-repeat must be at least 1")
    if not 0 < args.pandas_fraction <= 1:
        parser.error("--pandas-fraction must lie in (0, 1]")

    data_dir = args.data_dir.resolve()
    data = ensure_data(data_dir, args.rows, args.seed)
    spec = data_dir / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    pandas_data = data
    if not args.skip_pandas and args.pandas_fraction < 1:
        pandas_data = ensure_sample(data, args.pandas_fraction, args.seed)

    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="mlslo-scan-cache-") as cache:
        return compare(args, spec, data, pandas_data, Path(cache))


def compare(
    args: argparse.Namespace, spec: Path, data: Path, pandas_data: Path, cache: Path
) -> int:
    """Run the approaches, check they agree, print the tables; the exit status."""
    approaches: dict[str, Callable[[], Run]] = {
        "mlslo": lambda: run_mlslo(spec, data, cache),
        "duckdb": lambda: run_worker("duckdb", data),
    }
    if not args.skip_pandas:
        approaches["pandas"] = lambda: run_worker("pandas", pandas_data)
    runs: dict[str, list[Run]] = {name: [] for name in approaches}
    load_before = os.getloadavg()
    log("first run: mlslo, compiling its scan into an empty cache ...")
    first = run_mlslo(spec, data, cache)
    log(f"  {first.wall:.2f}s, peak RSS {first.rss_mb:.0f} MB")
    for repetition in range(max(args.repeat, args.pandas_repeat)):
        for name, run in approaches.items():
            times = args.pandas_repeat if name == "pandas" else args.repeat
            if repetition >= times:
                continue
            log(f"run {repetition + 1}/{times}: {name} ...")
            runs[name].append(run())
            log(f"  {runs[name][-1].wall:.2f}s, peak RSS {runs[name][-1].rss_mb:.0f} MB")

    # Agreement: every run of every approach against the DuckDB reference.
    reference = runs["duckdb"][0].result
    problems = []
    problems += [f"mlslo first run: {p}" for p in disagreements(reference, first.result)]
    for name, name_runs in runs.items():
        if name == "pandas" and pandas_data != data:
            continue
        for index, run in enumerate(name_runs):
            problems += [
                f"{name} run {index + 1}: {p}" for p in disagreements(reference, run.result)
            ]
    if "pandas" in runs and pandas_data != data:
        sample_reference = run_worker("duckdb", pandas_data).result
        for index, run in enumerate(runs["pandas"]):
            problems += [
                f"pandas run {index + 1} (sample): {p}"
                for p in disagreements(sample_reference, run.result)
            ]
    if problems:
        log("\nFAILED: the approaches disagree (beyond 1e-9, or in sample counts):")
        for problem in problems[:50]:
            log(f"  {problem}")
        if len(problems) > 50:
            log(f"  ... and {len(problems) - 50} more")
        return 1

    best = {name: min(name_runs, key=lambda r: r.wall) for name, name_runs in runs.items()}
    peak = {name: max(r.rss_mb for r in name_runs) for name, name_runs in runs.items()}
    peak["mlslo"] = max(peak["mlslo"], first.rss_mb)
    walls = {name: run.wall for name, run in best.items()}
    cpus = {name: run.cpu for name, run in best.items()}
    note = ""
    if "pandas" in best and pandas_data != data:
        run = best["pandas"]
        variable = run.timings["load"] + run.timings["loop"]
        walls["pandas"] = run.wall - variable + variable / args.pandas_fraction
        cpus["pandas"] = run.cpu / args.pandas_fraction
        note = (
            f"\n\\* timed on a seeded {args.pandas_fraction:g} sample of the rows and "
            "extrapolated linearly (load + loop scaled by 1/fraction; peak RSS is the sample's)."
        )

    labels = {
        "mlslo": "`mlslo evaluate --format json --series 1d` (scan cached)",
        "duckdb": "hand-written DuckDB SQL + numpy",
        "pandas": "pandas + scikit-learn + Fairlearn per-day loop" + ("\\*" if note else ""),
    }
    base = walls["mlslo"]
    lines = [
        f"Results: {args.rows:,} rows, 30-day window + 30 daily points for 5 SLOs; "
        f"best of {args.repeat} run(s) of mlslo and DuckDB"
        + (f", {args.pandas_repeat} of pandas" if "pandas" in runs else "")
        + "; each a fresh process.",
        "",
        "| approach | wall time (s) | ratio vs mlslo | CPU time (s) | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in runs:
        lines.append(
            f"| {labels[name]} | {walls[name]:.2f} | {walls[name] / base:.2f}× | "
            f"{cpus[name]:.2f} | {peak[name]:.0f} |"
        )
        if name == "mlslo":
            lines.append(
                f"| the same, first run (compiles the scan into an empty cache) | "
                f"{first.wall:.2f} | {first.wall / base:.2f}× | {first.cpu:.2f} | "
                f"{first.rss_mb:.0f} |"
            )
    if note:
        lines.append(note)
    met: list[bool] = []

    def target(text: str, ok: bool | None, got: str) -> str:
        if ok is not None:
            met.append(ok)
        verdict = "n/a" if ok is None else ("**met**" if ok else "**NOT met**")
        return f"| {text} | {got} | {verdict} |"

    compared = [r for n, rs in runs.items() if n != "pandas" or pandas_data == data for r in rs]
    compared.append(first)
    largest = max(max_difference(reference, r.result) for r in compared)
    vs_duckdb = walls["mlslo"] / walls["duckdb"]
    vs_pandas = walls["pandas"] / walls["mlslo"] if "pandas" in walls else None
    lines += [
        "",
        "| target | measured | |",
        "|---|---:|---|",
        target(
            f"mlslo within {TARGET_VS_DUCKDB:g}× of the hand-written DuckDB pass",
            vs_duckdb <= TARGET_VS_DUCKDB,
            f"{vs_duckdb:.2f}×",
        ),
        target(
            f"mlslo ≥ {TARGET_VS_PANDAS:g}× faster than the pandas/scikit-learn/Fairlearn loop",
            None if vs_pandas is None else vs_pandas >= TARGET_VS_PANDAS,
            "—" if vs_pandas is None else f"{vs_pandas:.2f}×",
        ),
        target(
            "mlslo peak memory under 2 GB",
            peak["mlslo"] < TARGET_RSS_MB,
            f"{peak['mlslo']:.0f} MB",
        ),
        "",
        "All approaches agree: 30-day value and n of every SLO, and all 30 daily points "
        f"(largest |difference| {largest:.1e}).",
    ]
    inner = []
    for name in ("duckdb", "pandas"):
        if name in best and best[name].timings:
            parts = ", ".join(
                f"{k} {v:.2f}s" for k, v in best[name].timings.items() if k != "total"
            )
            inner.append(f"- {labels[name]}: {parts}")
    if inner:
        lines += ["", "Inside the baseline processes (best run):", "", *inner]
    if args.breakdown:
        phases, rollup_rows = mlslo_phases(spec, data, cache)
        lines += [
            "",
            f"mlslo in one process, by phase (one run; rollup: {rollup_rows:,} minute × group "
            "rows):",
            "",
            "| phase | wall (s) | CPU (s) |",
            "|---|---:|---:|",
            *(f"| {name} | {wall:.2f} | {cpu:.2f} |" for name, wall, cpu in phases),
            f"| **total** | {sum(p[1] for p in phases):.2f} | {sum(p[2] for p in phases):.2f} |",
        ]
    machine = versions()
    machine["load average (1 min) before/after the runs"] = (
        f"{load_before[0]:.2f}/{os.getloadavg()[0]:.2f}"
    )
    machine["peak RSS from"] = "GNU time %M" if GNU_TIME else "os.wait4 ru_maxrss"
    lines += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items())]
    print("\n".join(lines))
    if args.strict and not all(met):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
