"""mlslo side by side with the anchors (anchors.py --plugin mlslo_plugin.py).

Two approaches over the same gen.py log:
  mlslo_lib  the library path after imports (like every other approach, which imports its
             engine before the clock: mlslo's is DuckDB, which mlslo imports only when it
             first scans): one scan, then every SLO for the whole window and per day
  mlslo_cli  `mlslo evaluate --series 1d --format json` as a whole process, start-up included
The spec covers the whole classification + fairness + freshness + uptime job; regression
(mae/rmse) needs other prediction/label columns, so it is a second spec and a second scan
only in mlslo_lib_full.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile

from anchors import WHOLE, approach

AT = "2025-01-31T00:00:00Z"  # gen.py: START 2025-01-01, 30 days
COLS = "columns: {id: prediction_id, prediction: y_pred, label: y_true}\n"
CLS = """service: bench
{cols}slos:
  - {{name: accuracy, dimension: accuracy, sli: {{metric: accuracy}}, objective: {{target: 0.9}}, window: 30d}}
  - {{name: precision, dimension: accuracy, sli: {{metric: precision, positive_label: 1}}, objective: {{target: 0.9}}, window: 30d}}
  - {{name: recall, dimension: accuracy, sli: {{metric: recall, positive_label: 1}}, objective: {{target: 0.9}}, window: 30d}}
  - {{name: f1, dimension: accuracy, sli: {{metric: f1, positive_label: 1}}, objective: {{target: 0.9}}, window: 30d}}
  - {{name: availability, dimension: availability, objective: {{target: 0.999}}, window: 30d}}
  - {{name: fresh_frac, dimension: freshness, sli: {{lag_threshold: 15m}}, objective: {{target: 0.9}}, window: 30d}}
  - {{name: lag_p95_s, dimension: freshness, sli: {{percentile: 95}}, objective: {{target: 30m}}, window: 30d}}
  - {{name: tpr_diff, dimension: fairness, sli: {{metric: true_positive_rate_difference, attribute: group, positive_label: 1}}, objective: {{target: 0.05}}, window: 30d}}
  - {{name: dpd, dimension: fairness, sli: {{metric: demographic_parity_difference, attribute: group, positive_label: 1}}, objective: {{target: 0.05}}, window: 30d}}
  - {{name: dir, dimension: fairness, sli: {{metric: disparate_impact_ratio, attribute: group, positive_label: 1}}, objective: {{target: 0.8}}, window: 30d}}
"""
REG = """service: bench
columns: {id: prediction_id, prediction: y_value_pred, label: y_value}
slos:
  - {name: mae, dimension: accuracy, sli: {metric: mae}, objective: {target: 10}, window: 30d}
  - {name: rmse, dimension: accuracy, sli: {metric: rmse}, objective: {target: 10}, window: 30d}
"""
# metric names of the harness <- SLO names above (the SLO name is the metric name)
KEYS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "availability",
    "fresh_frac",
    "lag_p95_s",
    "tpr_diff",
    "dpd",
    "dir",
    "mae",
    "rmse",
)


def _spec_file(text: str) -> str:
    fd, path = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _day(iso: str) -> str:
    return iso[:10]


def _from_json(doc: dict, out: dict) -> None:
    for s in doc["slos"]:
        name = s["name"]
        if name not in KEYS:
            continue
        out.setdefault(WHOLE, {})[name] = s["sli"]["value"]
        for p in s.get("series") or []:
            out.setdefault(_day(p["start"]), {})[name] = p["value"]


def _lib(path: str, texts: tuple[str, ...]) -> dict:
    from mlslo.api import evaluate_files
    from mlslo.scan.files import Sources
    from mlslo.spec import parse_spec

    at = dt.datetime(2025, 1, 31, tzinfo=dt.UTC)
    out: dict = {}
    for text in texts:
        ev = evaluate_files(
            parse_spec(text), Sources(predictions=path), at, series_step=dt.timedelta(days=1)
        )
        for s in ev.slos:
            out.setdefault(WHOLE, {})[s.name] = s.measurement.value
            for p in s.series or ():
                out.setdefault(p.start.strftime("%Y-%m-%d"), {})[s.name] = p.value
    return out


@approach(
    "mlslo_lib",
    imports=("mlslo.api", "mlslo.scan.files", "mlslo.spec", "duckdb"),
    exact_p95=False,
    what="mlslo library: one scan, 10 SLOs (acc/P/R/F1, availability, freshness share + p95, TPR gap, DP diff, DI ratio), whole window + per day",
)
def mlslo_lib(path: str) -> dict:
    return _lib(path, (CLS.format(cols=COLS),))


@approach(
    "mlslo_lib_full",
    imports=("mlslo.api", "mlslo.scan.files", "mlslo.spec", "duckdb"),
    exact_p95=False,
    what="mlslo library: as mlslo_lib plus MAE/RMSE from a second spec (second scan)",
)
def mlslo_lib_full(path: str) -> dict:
    return _lib(path, (CLS.format(cols=COLS), REG))


@approach(
    "mlslo_cli",
    imports=("subprocess", "json"),
    exact_p95=False,
    what="`mlslo evaluate --series 1d --format json` as a whole process (start-up included; SQL cache warm after the first rep)",
)
def mlslo_cli(path: str) -> dict:
    spec = _spec_file(CLS.format(cols=COLS))
    exe = os.environ.get("MLSLO") or os.path.join(os.path.dirname(sys.executable), "mlslo")
    p = subprocess.run(
        [
            exe,
            "evaluate",
            "--spec",
            spec,
            "--data",
            path,
            "--at",
            AT,
            "--series",
            "1d",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-500:])
    out: dict = {}
    _from_json(json.loads(p.stdout), out)
    return out


# --- the scale curve (benchmarks/scale.py) ---------------------------------------------------
# Many groups: the same job with the fairness SLOs on a 1,000-value attribute (cohort) and one
# more on an intersectional attribute of two columns (cohort x region, 4,000 groups).
MANY = CLS.format(cols=COLS).replace("attribute: group", "attribute: cohort") + (
    "  - {name: dpd_x, dimension: fairness, sli: {metric: demographic_parity_difference, "
    "attribute: [cohort, region], positive_label: 1}, objective: {target: 0.05}, window: 30d}\n"
)


@approach(
    "mlslo_many_groups",
    imports=("mlslo.api", "mlslo.scan.files", "mlslo.spec", "duckdb"),
    exact_p95=False,
    what="mlslo library: as mlslo_lib with the fairness SLOs on 1,000 cohorts, plus a demographic parity SLO on cohort x region",
)
def mlslo_many_groups(path: str) -> dict:
    out = _lib(path, (MANY,))
    for metrics in out.values():  # not comparable with the anchors' two groups
        for name in ("tpr_diff", "dpd", "dir", "dpd_x"):
            metrics.pop(name, None)
    return out


@approach(
    "mlslo_spark",
    imports=("mlslo.api", "mlslo.scan.files", "mlslo.spec", "spark_session"),
    exact_p95=False,
    what="mlslo library on PySpark (local[2], session started before the clock): the scan as ibis expressions on Spark",
)
def mlslo_spark(path: str) -> dict:
    import ibis
    import spark_session

    from mlslo.api import evaluate_files
    from mlslo.scan.files import Sources
    from mlslo.spec import parse_spec

    con = ibis.pyspark.connect(spark_session.SESSION)
    at = dt.datetime(2025, 1, 31, tzinfo=dt.UTC)
    ev = evaluate_files(
        parse_spec(CLS.format(cols=COLS)),
        Sources(predictions=path),
        at,
        series_step=dt.timedelta(days=1),
        con=con,
    )
    out: dict = {}
    for s in ev.slos:
        out.setdefault(WHOLE, {})[s.name] = s.measurement.value
        for p in s.series or ():
            out.setdefault(p.start.strftime("%Y-%m-%d"), {})[s.name] = p.value
    return out
