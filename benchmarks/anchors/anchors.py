#!/usr/bin/env python3
"""Benchmark of the "anchor" tools for computing ML SLIs over a prediction log.

Every approach is one function  `fn(path: str) -> dict`  that reads the Parquet log at
`path` (written by gen.py) and returns  {window: {metric: float}}, where window is
"YYYY-MM-DD" (one per UTC day of `ts`) or "all" (the whole 30-day window). An approach
may cover only some metrics (evidently: f1; nannyml: f1, accuracy); the cross-check
compares whatever two approaches have in common.

The SLI job (the full result set, per window):
  n_rows        rows in the window
  availability  rows with status == "ok" / n_rows
  fresh_frac    rows with ts - event_ts <= 15 min / n_rows
  lag_p95_s     95th percentile of ts - event_ts in seconds (numpy "linear" definition)
  n_labeled     rows with status == "ok" and y_true not null (the "labelled rows")
  accuracy, precision, recall, f1      on labelled rows, positive class 1
  mae, rmse     |y_value - y_value_pred| on labelled rows (y_value is null exactly where
                y_true is; y_value_pred is null exactly where status == "error")
  tpr_A, tpr_B  true-positive rate per group on labelled rows
  tpr_diff      max - min of the group TPRs (fairlearn MetricFrame.difference(), i.e.
                the equal-opportunity difference)
  dpd           demographic parity difference: max - min over groups of the share of
                status == "ok" rows with y_pred == 1 (labels are not needed, so all ok rows)
  dir           disparate impact ratio: min / max of those same selection rates
                (fairlearn's demographic_parity_ratio)

Add an approach: write a function with the signature above and decorate it with
@approach("name", imports=(...modules to import before the clock starts...)). It can
live in this file or in a separate file passed with --plugin FILE (which does
`from anchors import approach, metrics_from_sufficient_stats`).

Run (each approach x repetition is a fresh subprocess; time = wall clock of fn(path)
after imports, min over --reps; peak RSS = ru_maxrss of that subprocess; data is made
with gen.py into data/ when missing; results go to results/n<N>.json, overwriting that N):
    .venv-anchors/bin/python anchors.py --n 1000000 10000000 30000000   # as in RESULTS.md
    .venv-anchors/bin/python anchors.py --n 1000000                      # one size
    .venv-anchors/bin/python anchors.py --report     # rebuild results/tables.md from results/
An approach predicted (linearly from the largest smaller N already in results/) to take
more than --max-seconds (300) or --max-rss-gib (16) is not run at that N but extrapolated,
and marked so in the table: run the sizes in increasing order (or in one command).
duckdb_onepass always runs, since every ratio is to it. A new tool side by side:
    .venv-anchors/bin/python anchors.py --n 10000000 --plugin mytool_bench.py \
        --approaches mytool polars_onepass duckdb_onepass --results-dir results-mytool
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import importlib
import importlib.util
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------------------
# The SLI job: constants shared by every approach
# --------------------------------------------------------------------------------------
FRESH_LIMIT_S = 15 * 60  # freshness SLO: lag <= 15 minutes
FRESH_LIMIT_US = FRESH_LIMIT_S * 1_000_000
LAG_QUANTILE = 0.95
LAG_BUCKET_BASE = 1.01  # log-bucketed lag histogram: bucket b = [1.01^b, 1.01^(b+1)) s
LAG_BUCKET_LN = math.log(LAG_BUCKET_BASE)
GROUPS = ("A", "B")
WHOLE = "all"  # key of the rolling 30-day (whole-file) window
METRICS = (
    "n_rows",
    "availability",
    "fresh_frac",
    "lag_p95_s",
    "n_labeled",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "mae",
    "rmse",
    "tpr_A",
    "tpr_B",
    "tpr_diff",
    "dpd",
    "dir",
)
EXACT_TOL = 1e-9  # |a - b| <= EXACT_TOL * max(1, |b|)
HIST_P95_TOL = 0.02  # relative tolerance for p95 from a histogram
# Cross-check reference: the first of these that ran (exact p95 first).
EXACT_REFERENCES = ("sklearn_fairlearn", "pandas_sklearn", "duckdb_onepass", "polars_onepass")
# Columns of the log the SLI job needs; every approach reads only these.
JOB_COLUMNS = ["ts", "event_ts", "status", "y_pred", "y_true", "group", "y_value", "y_value_pred"]
# Offline: keep the anchors from trying to phone home.
WORKER_ENV = {"NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1"}

Result = dict[str, dict[str, float]]


@dataclasses.dataclass
class Approach:
    name: str
    fn: Callable[[str], Result]
    imports: tuple  # imported before the clock starts (import time is not timed)
    exact_p95: bool  # False: p95 comes from a histogram, compared within HIST_P95_TOL
    what: str  # one line: what exactly is timed


APPROACHES: dict[str, Approach] = {}


def approach(name: str, *, imports=(), exact_p95: bool = True, what: str = ""):
    """Register `fn(path) -> {window: {metric: value}}` as a benchmarked approach."""

    def register(fn):
        APPROACHES[name] = Approach(
            name, fn, tuple(imports), exact_p95, what or (fn.__doc__ or "").strip()
        )
        return fn

    return register


# --------------------------------------------------------------------------------------
# (a) pandas + scikit-learn + fairlearn: the "library calls per window" way
# --------------------------------------------------------------------------------------
def _fairness_fairlearn(lab, yt, yp, okw, yp_ok) -> dict[str, float]:
    from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate

    # Equal opportunity: TPR per group on labelled rows, and its max - min.
    tpr = MetricFrame(
        metrics=true_positive_rate, y_true=yt, y_pred=yp, sensitive_features=lab["group"]
    )
    r = {f"tpr_{g}": tpr.by_group[g] for g in GROUPS}
    r["tpr_diff"] = tpr.difference()
    # Demographic parity on all ok rows. This one MetricFrame is exactly what
    # fairlearn.metrics.demographic_parity_difference / demographic_parity_ratio build
    # internally; calling both wrappers would build it twice. y_true is required by the
    # signature but ignored by selection_rate (and is partly null here), so y_pred is passed.
    sel = MetricFrame(
        metrics=selection_rate, y_true=yp_ok, y_pred=yp_ok, sensitive_features=okw["group"]
    )
    r["dpd"] = sel.difference()
    r["dir"] = sel.ratio()
    return r


def _fairness_plain(lab, yt, yp, okw, yp_ok) -> dict[str, float]:
    from sklearn.metrics import recall_score

    tpr = {g: recall_score(yt[lab["group"].eq(g)], yp[lab["group"].eq(g)]) for g in GROUPS}
    sel = {g: yp_ok[okw["group"].eq(g)].mean() for g in GROUPS}
    r = {f"tpr_{g}": v for g, v in tpr.items()}
    r["tpr_diff"] = max(tpr.values()) - min(tpr.values())
    r["dpd"] = max(sel.values()) - min(sel.values())
    r["dir"] = min(sel.values()) / max(sel.values())
    return r


def _sklearn_window(w, fairness) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        mean_absolute_error,
        precision_score,
        recall_score,
        root_mean_squared_error,
    )

    ok = w["status"].eq("ok")
    okw = w[ok]
    lab = okw[okw["y_true"].notna()]
    yt = lab["y_true"].astype("int8")
    yp = lab["y_pred"].astype("int8")
    r = {
        "n_rows": len(w),
        "availability": float(ok.mean()),
        "fresh_frac": float((w["lag_s"] <= FRESH_LIMIT_S).mean()),
        "lag_p95_s": float(np.percentile(w["lag_s"].to_numpy(), LAG_QUANTILE * 100)),
        "n_labeled": len(lab),
        "accuracy": accuracy_score(yt, yp),
        "precision": precision_score(yt, yp),
        "recall": recall_score(yt, yp),
        "f1": f1_score(yt, yp),
        "mae": mean_absolute_error(lab["y_value"], lab["y_value_pred"]),
        "rmse": root_mean_squared_error(lab["y_value"], lab["y_value_pred"]),
    }
    r.update(fairness(lab, yt, yp, okw, okw["y_pred"].astype("int8")))
    return {k: float(v) for k, v in r.items()}


def _pandas_windows(path: str, fairness) -> Result:
    import pandas as pd

    df = pd.read_parquet(path, columns=JOB_COLUMNS)
    df["day"] = df["ts"].dt.floor("D")
    df["lag_s"] = (df["ts"] - df["event_ts"]).dt.total_seconds()
    out = {
        day.strftime("%Y-%m-%d"): _sklearn_window(w, fairness)
        for day, w in df.groupby("day", sort=True)
    }
    out[WHOLE] = _sklearn_window(df, fairness)
    return out


@approach(
    "sklearn_fairlearn",
    imports=("numpy", "pandas", "sklearn.metrics", "fairlearn.metrics"),
    what="pd.read_parquet(8 columns); groupby(day); per day and once for the whole frame: "
    "4 sklearn classification metrics + MAE + RMSE, np.percentile p95, 2 fairlearn "
    "MetricFrames (TPR on labelled rows; selection_rate on ok rows -> difference/ratio)",
)
def sklearn_fairlearn(path: str) -> Result:
    return _pandas_windows(path, _fairness_fairlearn)


@approach(
    "pandas_sklearn",
    imports=("numpy", "pandas", "sklearn.metrics"),
    what="extra (not an anchor from the brief): as sklearn_fairlearn, but per-group TPR with "
    "sklearn recall_score on each group's rows and selection rates with pandas mean(), no fairlearn",
)
def pandas_sklearn(path: str) -> Result:
    return _pandas_windows(path, _fairness_plain)


# --------------------------------------------------------------------------------------
# (b) evidently 0.7: one Report([F1Score()]) per window (F1 only)
# --------------------------------------------------------------------------------------
@approach(
    "evidently",
    imports=("pandas", "evidently", "evidently.metrics"),
    what="pd.read_parquet(ts,status,y_true,y_pred); keep ok+labelled rows; per day and "
    "once for all rows: Dataset.from_pandas + Report([F1Score()]).run + snapshot.dict() (F1 only)",
)
def evidently_f1(path: str) -> Result:
    import pandas as pd
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import F1Score

    df = pd.read_parquet(path, columns=["ts", "status", "y_true", "y_pred"])
    lab = df[df["status"].eq("ok") & df["y_true"].notna()]
    lab = pd.DataFrame(
        {
            "day": lab["ts"].dt.floor("D"),
            "y_true": lab["y_true"].astype("int64"),
            "y_pred": lab["y_pred"].astype("int64"),
        }
    )
    definition = DataDefinition(
        classification=[BinaryClassification(target="y_true", prediction_labels="y_pred")],
        categorical_columns=["y_true", "y_pred"],
        numerical_columns=[],
    )

    def f1_of(w) -> float:
        ds = Dataset.from_pandas(w[["y_true", "y_pred"]], data_definition=definition)
        snapshot = Report([F1Score()]).run(current_data=ds)
        return float(snapshot.dict()["metrics"][0]["value"])

    out = {day.strftime("%Y-%m-%d"): {"f1": f1_of(w)} for day, w in lab.groupby("day", sort=True)}
    out[WHOLE] = {"f1": f1_of(lab)}
    return out


# --------------------------------------------------------------------------------------
# (c) nannyml: realized PerformanceCalculator, daily chunks (f1, accuracy)
# --------------------------------------------------------------------------------------
@approach(
    "nannyml",
    imports=("pandas", "nannyml"),
    what="pd.read_parquet(ts,status,y_true,y_pred,score); keep ok rows; PerformanceCalculator"
    "(f1, accuracy).fit(first day).calculate(all) with chunk_period='D', and again with "
    "chunk_number=1 for the whole window",
)
def nannyml_perf(path: str) -> Result:
    import warnings

    import nannyml as nml
    import pandas as pd

    df = pd.read_parquet(path, columns=["ts", "status", "y_true", "y_pred", "score"])
    ok = df[df["status"].eq("ok")]
    reference = ok[ok["ts"] < ok["ts"].min().floor("D") + pd.Timedelta(days=1)]  # the first day
    common = dict(
        y_pred_proba="score",
        y_pred="y_pred",
        y_true="y_true",
        timestamp_column_name="ts",
        problem_type="classification_binary",
        metrics=["f1", "accuracy"],
    )
    out: Result = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "number of chunks is too low" for the 1-day reference
        daily = nml.PerformanceCalculator(chunk_period="D", **common).fit(reference).calculate(ok)
        whole = nml.PerformanceCalculator(chunk_number=1, **common).fit(reference).calculate(ok)
    for frame, key in ((daily, None), (whole, WHOLE)):
        t = frame.filter(period="analysis").to_df()
        for _, row in t.iterrows():
            out[key or str(row[("chunk", "key")])] = {
                "f1": float(row[("f1", "value")]),
                "accuracy": float(row[("accuracy", "value")]),
            }
    return out


# --------------------------------------------------------------------------------------
# Shared: the SLI job from sufficient statistics per (day, group, lag bucket)
# --------------------------------------------------------------------------------------
STAT_COLUMNS = (
    "n_rows",
    "n_ok",
    "n_fresh",
    "n_pos_pred",
    "n_lab",
    "tp",
    "fp",
    "fn",
    "tn",
    "sum_abs_err",
    "sum_sq_err",
)


def _p95_from_histogram(bucket_keys, counts) -> float:
    """numpy-"linear" p95 approximated by the geometric middle of the bucket holding
    order statistic floor(0.95 * (n - 1)); relative error <= sqrt(1.01) - 1 ~ 0.5%."""
    import numpy as np

    n = counts.sum()
    k = math.floor(LAG_QUANTILE * (n - 1))
    i = int(np.searchsorted(np.cumsum(counts), k, side="right"))
    return float(LAG_BUCKET_BASE ** (bucket_keys[i] + 0.5))


def _metrics_from_cells(c, groups, hist_keys, hist_counts) -> dict[str, float]:
    """c[stat] is an array over groups for one window."""
    t = {k: float(v.sum()) for k, v in c.items()}
    tpr = [c["tp"][i] / (c["tp"][i] + c["fn"][i]) for i in range(len(groups))]
    sel = [c["n_pos_pred"][i] / c["n_ok"][i] for i in range(len(groups))]
    r = {
        "n_rows": t["n_rows"],
        "availability": t["n_ok"] / t["n_rows"],
        "fresh_frac": t["n_fresh"] / t["n_rows"],
        "lag_p95_s": _p95_from_histogram(hist_keys, hist_counts),
        "n_labeled": t["n_lab"],
        "accuracy": (t["tp"] + t["tn"]) / t["n_lab"],
        "precision": t["tp"] / (t["tp"] + t["fp"]),
        "recall": t["tp"] / (t["tp"] + t["fn"]),
        "f1": 2 * t["tp"] / (2 * t["tp"] + t["fp"] + t["fn"]),
        "mae": t["sum_abs_err"] / t["n_lab"],
        "rmse": math.sqrt(t["sum_sq_err"] / t["n_lab"]),
        "tpr_diff": max(tpr) - min(tpr),
        "dpd": max(sel) - min(sel),
        "dir": min(sel) / max(sel),
    }
    for g, v in zip(groups, tpr):
        r[f"tpr_{g}"] = float(v)
    return {k: float(v) for k, v in r.items()}


def metrics_from_sufficient_stats(day, grp, bucket, stats) -> Result:
    """Derive the whole SLI job from a small table of sufficient statistics.

    day:    array of datetime64 / date per row of the table (the UTC day of ts)
    grp:    array of group labels
    bucket: array of int lag-bucket ids, floor(ln(lag_s) / ln(LAG_BUCKET_BASE))
    stats:  {name: array} for every name in STAT_COLUMNS, summed per (day, grp, bucket)
    """
    import numpy as np

    day_keys, day_idx = np.unique(
        np.asarray(day).astype("datetime64[D]").astype(str), return_inverse=True
    )
    grp_keys, grp_idx = np.unique(np.asarray(grp).astype(str), return_inverse=True)
    b_keys, b_idx = np.unique(np.asarray(bucket), return_inverse=True)
    nd, ng, nb = len(day_keys), len(grp_keys), len(b_keys)
    cell = day_idx * ng + grp_idx
    per_cell = {
        k: np.bincount(
            cell, weights=np.asarray(stats[k], dtype="float64"), minlength=nd * ng
        ).reshape(nd, ng)
        for k in STAT_COLUMNS
    }
    hist = np.bincount(
        day_idx * nb + b_idx,
        weights=np.asarray(stats["n_rows"], dtype="float64"),
        minlength=nd * nb,
    ).reshape(nd, nb)
    groups = [str(g) for g in grp_keys]
    out = {
        str(d): _metrics_from_cells({k: v[i] for k, v in per_cell.items()}, groups, b_keys, hist[i])
        for i, d in enumerate(day_keys)
    }
    out[WHOLE] = _metrics_from_cells(
        {k: v.sum(axis=0) for k, v in per_cell.items()}, groups, b_keys, hist.sum(axis=0)
    )
    return out


# --------------------------------------------------------------------------------------
# (d) DuckDB: one hand-written aggregate query, metrics derived in Python
# --------------------------------------------------------------------------------------
DUCKDB_SQL = """
WITH log AS (
  SELECT date_trunc('day', ts)                AS day,
         "group"                              AS grp,
         status = 'ok'                        AS ok,
         status = 'ok' AND y_true IS NOT NULL AS lab,
         y_true, y_pred,
         y_value - y_value_pred               AS err,
         epoch_us(ts) - epoch_us(event_ts)    AS lag_us
  FROM read_parquet({path})
)
SELECT day, grp,
       CAST(floor(ln(greatest(lag_us, 1) / 1e6) / {ln_base}) AS INTEGER) AS bucket,
       count(*)                                                 AS n_rows,
       count(*) FILTER (WHERE ok)                               AS n_ok,
       count(*) FILTER (WHERE lag_us <= {fresh_us})             AS n_fresh,
       count(*) FILTER (WHERE ok AND y_pred = 1)                AS n_pos_pred,
       count(*) FILTER (WHERE lab)                              AS n_lab,
       count(*) FILTER (WHERE lab AND y_true = 1 AND y_pred = 1) AS tp,
       count(*) FILTER (WHERE lab AND y_true = 0 AND y_pred = 1) AS fp,
       count(*) FILTER (WHERE lab AND y_true = 1 AND y_pred = 0) AS fn,
       count(*) FILTER (WHERE lab AND y_true = 0 AND y_pred = 0) AS tn,
       coalesce(sum(abs(err)) FILTER (WHERE lab), 0)            AS sum_abs_err,
       coalesce(sum(err * err) FILTER (WHERE lab), 0)           AS sum_sq_err
FROM log
GROUP BY ALL
"""


@approach(
    "duckdb_onepass",
    imports=("duckdb", "numpy"),
    exact_p95=False,
    what="one DuckDB query over read_parquet: GROUP BY (day, group, lag bucket) -> ~35k rows "
    "of counters (lag histogram folded in as the 3rd key), fetchnumpy, metrics in numpy",
)
def duckdb_onepass(path: str) -> Result:
    import duckdb

    sql = DUCKDB_SQL.format(
        path="'" + path.replace("'", "''") + "'",
        ln_base=repr(LAG_BUCKET_LN),
        fresh_us=FRESH_LIMIT_US,
    )
    with duckdb.connect() as con:
        t = con.execute(sql).fetchnumpy()
    return metrics_from_sufficient_stats(
        t["day"], t["grp"], t["bucket"], {k: t[k] for k in STAT_COLUMNS}
    )


# --------------------------------------------------------------------------------------
# (e) Polars: the same aggregation with a lazy group_by
# --------------------------------------------------------------------------------------
@approach(
    "polars_onepass",
    imports=("polars", "numpy"),
    exact_p95=False,
    what="pl.scan_parquet -> lazy group_by (day, group, lag bucket) with the same counters "
    "as duckdb_onepass -> collect -> metrics in numpy",
)
def polars_onepass(path: str) -> Result:
    import polars as pl

    ok, lab = pl.col("ok"), pl.col("lab")
    yt, yp, err = pl.col("y_true"), pl.col("y_pred"), pl.col("err")
    lag_us = (pl.col("ts") - pl.col("event_ts")).dt.total_microseconds()
    t = (
        pl.scan_parquet(path)
        .select(
            pl.col("ts").dt.truncate("1d").alias("day"),
            pl.col("group").alias("grp"),
            (pl.col("status") == "ok").alias("ok"),
            ((pl.col("status") == "ok") & pl.col("y_true").is_not_null()).alias("lab"),
            yt,
            yp,
            (pl.col("y_value") - pl.col("y_value_pred")).alias("err"),
            lag_us.alias("lag_us"),
        )
        .with_columns(
            ((pl.col("lag_us").clip(lower_bound=1) / 1e6).log() / LAG_BUCKET_LN)
            .floor()
            .cast(pl.Int32)
            .alias("bucket")
        )
        .group_by("day", "grp", "bucket")
        .agg(
            pl.len().alias("n_rows"),
            ok.sum().alias("n_ok"),
            (pl.col("lag_us") <= FRESH_LIMIT_US).sum().alias("n_fresh"),
            (ok & (yp == 1)).sum().alias("n_pos_pred"),
            lab.sum().alias("n_lab"),
            (lab & (yt == 1) & (yp == 1)).sum().alias("tp"),
            (lab & (yt == 0) & (yp == 1)).sum().alias("fp"),
            (lab & (yt == 1) & (yp == 0)).sum().alias("fn"),
            (lab & (yt == 0) & (yp == 0)).sum().alias("tn"),
            err.abs().filter(lab).sum().alias("sum_abs_err"),
            (err * err).filter(lab).sum().alias("sum_sq_err"),
        )
        .collect()
    )
    return metrics_from_sufficient_stats(
        t["day"].to_numpy(),
        t["grp"].to_numpy(),
        t["bucket"].to_numpy(),
        {k: t[k].to_numpy() for k in STAT_COLUMNS},
    )


# --------------------------------------------------------------------------------------
# Cross-check
# --------------------------------------------------------------------------------------
def compare(ref_name: str, ref: Result, name: str, res: Result) -> dict:
    """Compare `res` to `ref` on every (window, metric) both have."""
    hist = not (APPROACHES[ref_name].exact_p95 and APPROACHES[name].exact_p95)
    compared, p95_compared, bad, worst_exact, worst_p95 = 0, 0, [], 0.0, 0.0
    missing_windows = sorted(set(ref) ^ set(res))
    for w in sorted(set(ref) & set(res)):
        for m in sorted(set(ref[w]) & set(res[w])):
            a, b = res[w][m], ref[w][m]
            compared += 1
            p95_compared += m == "lag_p95_s"
            if m == "lag_p95_s" and hist:
                dev = abs(a - b) / abs(b)
                worst_p95 = max(worst_p95, dev)
                ok = dev <= HIST_P95_TOL
            else:
                dev = abs(a - b) / max(1.0, abs(b))
                if m == "lag_p95_s":
                    worst_p95 = max(worst_p95, dev)
                else:
                    worst_exact = max(worst_exact, dev)
                ok = dev <= EXACT_TOL
            if not ok:
                bad.append(f"{w} {m}: {name}={a!r} {ref_name}={b!r}")
    return {
        "reference": ref_name,
        "compared": compared,
        "disagreements": len(bad),
        "examples": bad[:10],
        "missing_windows": missing_windows,
        "max_rel_dev_exact": worst_exact,
        "max_rel_dev_p95": worst_p95,
        "p95_compared": p95_compared,
        "p95_from_histogram": hist,
    }


# --------------------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------------------
def _rss_mib() -> float:
    """Peak RSS so far from getrusage's ru_maxrss (Linux: KiB).

    Caveat: Linux carries ru_maxrss over from the process that spawned us (fork/vfork +
    exec), so it is a true figure only while the harness itself stays small; the harness
    therefore never loads data, and VmHWM (per address space, reset by exec) is recorded
    next to it as a check."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _vmhwm_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def validate(result: Result) -> None:
    """A result must use the window keys and metric names of the SLI job."""
    if WHOLE not in result:
        raise ValueError(f"result has no {WHOLE!r} window")
    for w, metrics in result.items():
        if w != WHOLE:
            dt.date.fromisoformat(w)  # "YYYY-MM-DD"
        unknown = set(metrics) - set(METRICS)
        if unknown:
            raise ValueError(f"window {w}: unknown metrics {sorted(unknown)}; known: {METRICS}")


def worker(name: str, path: str, out: str) -> None:
    """Runs in a fresh subprocess: import, time fn(path) once, write JSON."""
    a = APPROACHES[name]
    t0 = time.perf_counter()
    for m in a.imports:
        importlib.import_module(m)
    import_s = time.perf_counter() - t0
    rss_base, hwm_base = _rss_mib(), _vmhwm_mib()
    gc.collect()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    result = a.fn(path)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    validate(result)
    with open(out, "w") as f:
        json.dump(
            {
                "wall_s": wall,
                "cpu_s": cpu,
                "import_s": import_s,
                "rss_base_mib": rss_base,
                "rss_peak_mib": _rss_mib(),
                "vmhwm_base_mib": hwm_base,
                "vmhwm_peak_mib": _vmhwm_mib(),
                "result": result,
            },
            f,
        )


def run_one(name: str, path: str, plugin: str | None, timeout_s: float) -> dict:
    tmp = os.path.join(RESULTS_DIR, f".worker_{os.getpid()}_{name}.json")
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        name,
        "--path",
        path,
        "--out",
        tmp,
    ]
    if plugin:
        cmd += ["--plugin", plugin]
    env = dict(os.environ, **WORKER_ENV)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    if p.returncode != 0 or not os.path.exists(tmp):
        return {"error": f"exit {p.returncode}: " + (p.stderr or p.stdout)[-2000:]}
    with open(tmp) as f:
        r = json.load(f)
    os.remove(tmp)
    r["process_s"] = time.perf_counter() - t0
    return r


def environment() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nproc": os.cpu_count(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
    }
    try:
        with open("/proc/cpuinfo") as f:
            env["cpu"] = next(
                (l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None
            )
        with open("/proc/meminfo") as f:
            env["mem_total_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    for pkg in (
        "numpy",
        "pandas",
        "pyarrow",
        "duckdb",
        "polars",
        "scikit-learn",
        "fairlearn",
        "nannyml",
        "evidently",
    ):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = None
    return env


def data_path(n: int, seed: int) -> str:
    return os.path.join(DATA_DIR, f"log_n{n}_seed{seed}.parquet")


def ensure_data(n: int, seed: int) -> str:
    path = data_path(n, seed)
    if not os.path.exists(path):  # in a subprocess, to keep this process small (see _rss_mib)
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                os.path.join(HERE, "gen.py"),
                "--n",
                str(n),
                "--out",
                path,
                "--seed",
                str(seed),
            ],
            check=True,
        )
        print(f"generated {path} in {time.perf_counter() - t0:.1f} s", flush=True)
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:  # warm the page cache so rep 1 is not a cold read
        while f.readinto(buf):
            pass
    return path


def load_results() -> dict[int, dict]:
    out = {}
    if os.path.isdir(RESULTS_DIR):
        for fn in os.listdir(RESULTS_DIR):
            if fn.startswith("n") and fn.endswith(".json") and ".metrics" not in fn:
                with open(os.path.join(RESULTS_DIR, fn)) as f:
                    r = json.load(f)
                out[r["n"]] = r
    return out


def predict(name: str, n: int, previous: dict[int, dict]):
    """Linear extrapolation from the largest smaller N at which `name` was measured."""
    smaller = [
        m
        for m, r in previous.items()
        if m < n and r["approaches"].get(name, {}).get("status") == "measured"
    ]
    if not smaller:
        return None
    m = max(smaller)
    a = previous[m]["approaches"][name]
    f = n / m
    return {
        "from_n": m,
        "time_s": a["min_s"] * f,
        "rss_peak_mib": a["rss_base_mib"] + (a["rss_peak_mib"] - a["rss_base_mib"]) * f,
    }


def run_benchmark(
    n: int, names, reps: int, seed: int, max_s: float, max_rss_gib: float, plugin: str | None
) -> dict:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = ensure_data(n, seed)
    previous = load_results()
    record = {
        "n": n,
        "seed": seed,
        "file": os.path.relpath(path, HERE),
        "file_mib": round(os.path.getsize(path) / 2**20, 1),
        "reps": reps,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "approaches": {},
        "agreement": {},
    }
    to_run = []
    for name in names:
        p = predict(name, n, previous)
        if p and (p["time_s"] > max_s or p["rss_peak_mib"] > max_rss_gib * 1024):
            record["approaches"][name] = {
                "status": "extrapolated",
                "what": APPROACHES[name].what,
                "extrapolated_from_n": p["from_n"],
                "min_s": p["time_s"],
                "rss_peak_mib": p["rss_peak_mib"],
            }
            print(
                f"[n={n:,}] {name}: skipped, extrapolated {p['time_s']:.1f} s / "
                f"{p['rss_peak_mib']:.0f} MiB from n={p['from_n']:,}",
                flush=True,
            )
        else:
            to_run.append(name)
            record["approaches"][name] = {
                "status": "measured",
                "what": APPROACHES[name].what,
                "runs": [],
            }
    results = {}
    for rep in range(reps):  # interleave approaches so drift hits all of them alike
        for name in to_run:
            rec = record["approaches"][name]
            if rec["status"] != "measured":
                continue
            r = run_one(name, path, plugin, timeout_s=max(3 * max_s, 600))
            if "error" in r:
                rec["status"], rec["error"] = "failed", r["error"]
                print(f"[n={n:,}] {name} rep {rep + 1}: FAILED {r['error'][-500:]}", flush=True)
                continue
            results.setdefault(name, r.pop("result"))
            rec["runs"].append(r)
            print(
                f"[n={n:,}] {name} rep {rep + 1}: {r['wall_s']:.3f} s wall, {r['cpu_s']:.2f} s cpu, "
                f"peak RSS {r['rss_peak_mib']:.0f} MiB",
                flush=True,
            )
    for name in to_run:
        rec = record["approaches"][name]
        if rec["status"] == "measured":
            runs = rec["runs"]
            rec["min_s"] = min(r["wall_s"] for r in runs)
            rec["cpu_s_at_min"] = min(runs, key=lambda r: r["wall_s"])["cpu_s"]
            rec["rss_peak_mib"] = max(r["rss_peak_mib"] for r in runs)
            rec["rss_base_mib"] = min(r["rss_base_mib"] for r in runs)
            rec["vmhwm_peak_mib"] = max(r["vmhwm_peak_mib"] for r in runs)
            rec["import_s"] = min(r["import_s"] for r in runs)
    base = record["approaches"].get("duckdb_onepass", {})
    if base.get("status") == "measured":
        for rec in record["approaches"].values():
            if "min_s" in rec:
                rec["ratio_to_duckdb"] = rec["min_s"] / base["min_s"]
    # Cross-check against the most exact approach that ran.
    ref = next((a for a in EXACT_REFERENCES if a in results), None)
    if ref:
        for name, res in results.items():
            if name != ref:
                record["agreement"][name] = compare(ref, results[ref], name, res)
                ag = record["agreement"][name]
                print(
                    f"[n={n:,}] agreement {name} vs {ref}: {ag['compared']} values, "
                    f"{ag['disagreements']} disagreements, max dev exact {ag['max_rel_dev_exact']:.2e}, "
                    f"p95 {ag['max_rel_dev_p95']:.2e}",
                    flush=True,
                )
                for e in ag["examples"]:
                    print("    DISAGREE", e, flush=True)
        # Also histogram-vs-histogram (duckdb vs polars), when both ran.
        if ref != "duckdb_onepass" and "duckdb_onepass" in results and "polars_onepass" in results:
            record["agreement"]["polars_onepass~duckdb_onepass"] = compare(
                "duckdb_onepass",
                results["duckdb_onepass"],
                "polars_onepass",
                results["polars_onepass"],
            )
    record["harness_maxrss_mib"] = _rss_mib()  # the floor under every worker's ru_maxrss
    with open(os.path.join(RESULTS_DIR, f"n{n}.json"), "w") as f:
        json.dump(record, f, indent=1)
    with open(os.path.join(RESULTS_DIR, f"n{n}.metrics.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    return record


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------
def _fmt_s(s: float) -> str:
    return f"{s:.3f}" if s < 10 else f"{s:.1f}"


def tables_markdown(all_results: dict[int, dict]) -> str:
    lines = [
        "| approach | N | min time (s) | ratio to duckdb_onepass | CPU s (at min) | peak RSS (MiB) "
        "| RSS after imports (MiB) | agreement |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for n in sorted(all_results):
        rec = all_results[n]
        for name, a in rec["approaches"].items():
            ag = rec["agreement"].get(name)
            if name == next(
                (
                    x
                    for x in EXACT_REFERENCES
                    if rec["approaches"].get(x, {}).get("status") == "measured"
                ),
                None,
            ):
                agree = "reference"
            elif ag:
                agree = (
                    f"{'OK' if not ag['disagreements'] else 'DISAGREE'}: {ag['compared']} values vs "
                    f"{ag['reference']}, {ag['disagreements']} off; max rel dev {ag['max_rel_dev_exact']:.1e}"
                )
                if ag["p95_from_histogram"] and ag.get("p95_compared"):
                    agree += f"; p95 within {ag['max_rel_dev_p95'] * 100:.2f}%"
            else:
                agree = "-"
            if a["status"] == "measured":
                ratio = f"{a['ratio_to_duckdb']:.1f}x" if "ratio_to_duckdb" in a else "-"
                rss = f"{a['rss_peak_mib']:,.0f}"
                hwm = a.get("vmhwm_peak_mib")
                if hwm and abs(a["rss_peak_mib"] - hwm) > 0.05 * hwm:
                    rss += f" (VmHWM {hwm:,.0f})"
                lines.append(
                    f"| {name} | {n:,} | {_fmt_s(a['min_s'])} | {ratio} | {a['cpu_s_at_min']:.1f} "
                    f"| {rss} | {a['rss_base_mib']:,.0f} | {agree} |"
                )
            elif a["status"] == "extrapolated":
                base = rec["approaches"].get("duckdb_onepass", {})
                ratio = (
                    f"~{a['min_s'] / base['min_s']:.0f}x (extrapolated)"
                    if base.get("status") == "measured"
                    else "-"
                )
                lines.append(
                    f"| {name} | {n:,} | ~{_fmt_s(a['min_s'])} **extrapolated** (linear from "
                    f"N={a['extrapolated_from_n']:,}) | {ratio} | - | ~{a['rss_peak_mib']:,.0f} "
                    f"(extrapolated) | - | not run |"
                )
            else:
                lines.append(
                    f"| {name} | {n:,} | failed | - | - | - | - | {a.get('error', '')[:80]} |"
                )
    notes = []
    for n in sorted(all_results):
        ag = all_results[n]["agreement"].get("polars_onepass~duckdb_onepass")
        if ag:
            notes.append(
                f"- N={n:,}: polars_onepass vs duckdb_onepass (same histogram): {ag['compared']} values, "
                f"{ag['disagreements']} off, max rel dev {ag['max_rel_dev_exact']:.1e}, "
                f"p95 max rel dev {ag['max_rel_dev_p95']:.1e}"
            )
    return "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def write_report() -> str:
    res = load_results()
    md = tables_markdown(res)
    with open(os.path.join(RESULTS_DIR, "tables.md"), "w") as f:
        f.write(md)
    return md


# --------------------------------------------------------------------------------------
def load_plugin(path: str) -> None:
    spec = importlib.util.spec_from_file_location("anchors_plugin", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)


DATA_DIR = os.path.join(HERE, "data")
RESULTS_DIR = os.path.join(HERE, "results")


def main(argv=None) -> int:
    global DATA_DIR, RESULTS_DIR
    sys.modules.setdefault("anchors", sys.modules[__name__])  # plugins import this module by name
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--n", type=int, nargs="+", help="row counts to benchmark (data generated if missing)"
    )
    ap.add_argument("--approaches", nargs="+", help="default: all registered")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=300.0,
        help="skip (and extrapolate) an approach predicted to take longer than this",
    )
    ap.add_argument(
        "--max-rss-gib",
        type=float,
        default=16.0,
        help="skip (and extrapolate) an approach predicted to use more memory than this",
    )
    ap.add_argument(
        "--plugin", help="python file registering more approaches with @anchors.approach"
    )
    ap.add_argument("--data-dir", default=DATA_DIR)
    ap.add_argument("--results-dir", default=RESULTS_DIR)
    ap.add_argument("--report", action="store_true", help="rebuild results/tables.md and print it")
    ap.add_argument("--list", action="store_true", help="list approaches and what each one times")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    DATA_DIR, RESULTS_DIR = os.path.abspath(args.data_dir), os.path.abspath(args.results_dir)
    if args.plugin:
        load_plugin(args.plugin)
    if args.worker:
        worker(args.worker, args.path, args.out)
        return 0
    if args.list:
        for a in APPROACHES.values():
            print(f"{a.name}: {a.what}")
        return 0
    if args.n:
        names = args.approaches or list(APPROACHES)
        if (
            "duckdb_onepass" not in names
        ):  # every ratio is to duckdb_onepass, measured in the same run
            names = names + ["duckdb_onepass"]
        unknown = [x for x in names if x not in APPROACHES]
        if unknown:
            ap.error(f"unknown approaches {unknown}; known: {list(APPROACHES)}")
        for n in sorted(args.n):
            run_benchmark(
                n, names, args.reps, args.seed, args.max_seconds, args.max_rss_gib, args.plugin
            )
    if args.n or args.report:
        print(write_report())
    if not (args.n or args.report):
        ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
