"""The scale curve: mlslo against the anchor benchmark's one-pass DuckDB and Polars jobs, from
1M to 100M rows, plus the same job with 1,000 fairness groups (``make bench-scale``).

For each size (ascending) it generates the anchor log in chunks (``anchors/gen.py``), then
times, each in a fresh process (the anchor harness: wall clock after imports, CPU time, peak
RSS):

* ``mlslo_lib`` on its first run of the spec (an empty scan cache: ibis compiles the SQL);
* ``mlslo_lib`` (cache warm), ``duckdb_onepass`` and ``polars_onepass``, interleaved,
  ``--reps`` times (the minimum is reported);
* ``mlslo_spark``, mlslo's scan on PySpark in local mode, once (up to ``--spark-max``).

Every approach is checked against the DuckDB one-pass (exact metrics to 1e-9) and mlslo's p95
lag against the exact one (DuckDB's ``quantile_cont``, untimed) within the histogram's bound.
At ``--groups-n`` rows it also times the job with the fairness SLOs on a 1,000-value
attribute and an intersectional one (1,000 x 4) against the same job on the two-value one.

It writes ``docs/scale.json`` and ``docs/scale.svg`` and the table between the
``scale`` markers of ``docs/benchmarks.md``. A benchmark, not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import compile_bytecode, describe, log

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = Path(__file__).resolve().parent / "anchors"
sys.path.insert(0, str(ANCHORS))

import anchors  # noqa: E402

PLUGIN = str(ANCHORS / "mlslo_plugin.py")
BOUND = math.sqrt(1.02) - 1  # the histogram's documented error bound (docs/concepts.md)
MARK_BEGIN, MARK_END = "<!-- scale:begin -->", "<!-- scale:end -->"
ONE_PASS = ("mlslo_lib", "duckdb_onepass", "polars_onepass")
COHORTS = 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7, 3e7, 1e8])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--spark-max", type=float, default=1e8, help="largest size run on Spark")
    parser.add_argument("--groups-n", type=float, default=1e7, help="size of the many-groups case")
    parser.add_argument(
        "--groups-cap-gib",
        type=float,
        default=4.0,
        help="address-space cap of the many-groups workers, so a blow-up fails alone",
    )
    parser.add_argument("--data-dir", default=str(ROOT / "bench-data" / "anchors"))
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument(
        "--publish-only", action="store_true", help="redo the plot and table from scale.json"
    )
    args = parser.parse_args(argv)
    if args.publish_only:
        out = Path(args.out)
        kept = json.loads((out / "scale.json").read_text())
        plot(kept, out / "scale.svg")
        publish(kept, out / "benchmarks.md")
        print(table(kept))
        return 0
    sizes = sorted(int(n) for n in args.sizes)
    compile_bytecode()  # as an installed wheel has it: no module compiled in the timed runs
    anchors.load_plugin(PLUGIN)
    anchors.DATA_DIR = os.path.abspath(args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="mlslo-scale-"))
    anchors.RESULTS_DIR = str(work)
    load_before = os.getloadavg()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results: dict[str, Any] = {"sizes": {}, "started": started}
    for n in sizes:
        results["sizes"][str(n)] = run_size(n, args, work)
    if int(args.groups_n) in sizes:
        results["many_groups"] = run_many_groups(int(args.groups_n), args, work)
    results["machine"] = describe(
        [
            ("duckdb", "duckdb"),
            ("polars", "polars"),
            ("pyarrow", "pyarrow"),
            ("numpy", "numpy"),
            ("ibis", "ibis"),
            ("pyspark", "pyspark"),
        ]
    )
    results["load_average"] = [load_before[0], os.getloadavg()[0]]
    out = Path(args.out)
    (out / "scale.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out / "scale.svg")
    publish(results, out / "benchmarks.md")
    print(table(results))
    return 0


# --- running ---------------------------------------------------------------------------------


def timed(name: str, path: str, cache: Path) -> dict[str, Any]:
    os.environ["MLSLO_CACHE_DIR"] = str(cache)
    run = anchors.run_one(name, path, PLUGIN, timeout_s=3600)
    if "error" in run:
        raise SystemExit(f"{name} on {path} failed: {run['error']}")
    return run


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = min(runs, key=lambda r: r["wall_s"])
    return {
        "wall_s": best["wall_s"],
        "cpu_s": best["cpu_s"],
        "rss_peak_mib": max(r["rss_peak_mib"] for r in runs),
        "runs": [r["wall_s"] for r in runs],
    }


def run_size(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    path = anchors.ensure_data(n, 0)
    cache = work / f"cache-{n}"
    log(f"[{n:,}] mlslo_lib, first run of the spec (empty scan cache)")
    first = timed("mlslo_lib", path, cache)
    results: dict[str, Any] = {"mlslo_lib_first": summary([first])}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ONE_PASS}
    values: dict[str, Any] = {"mlslo_lib": first.pop("result")}
    for rep in range(args.reps):
        for name in ONE_PASS:
            run = timed(name, path, cache)
            values.setdefault(name, run.pop("result"))
            runs[name].append(run)
            log(f"[{n:,}] {name} rep {rep + 1}: {run['wall_s']:.3f} s, {run['cpu_s']:.2f} s CPU")
    for name, measured in runs.items():
        results[name] = summary(measured)
    if n <= args.spark_max:
        log(f"[{n:,}] mlslo_spark")
        spark = timed("mlslo_spark", path, cache)
        values["mlslo_spark"] = spark.pop("result")
        results["mlslo_spark"] = summary([spark])
    results["agreement"] = agreement(values, exact_p95(path))
    return results


def in_subprocess(code: str) -> str:
    """Run DuckDB work in a child: the harness stays small, and Linux carries a parent's peak
    RSS over to the workers it starts (see anchors/RESULTS.md)."""
    quiet = "import duckdb; duckdb.sql('SET enable_progress_bar = false'); "
    done = subprocess.run(
        [sys.executable, "-c", quiet + code], check=True, capture_output=True, text=True
    )
    return done.stdout


def exact_p95(path: str) -> dict[str, float]:
    """The exact p95 lag per day and for the whole log (numpy's linear definition)."""
    sql = f"""
        SELECT strftime(date_trunc('day', ts), '%Y-%m-%d') AS w,
               quantile_cont((epoch_us(ts) - epoch_us(event_ts)) / 1e6, 0.95) AS p
        FROM read_parquet('{path}') GROUP BY ALL
        UNION ALL
        SELECT '{anchors.WHOLE}', quantile_cont((epoch_us(ts) - epoch_us(event_ts)) / 1e6, 0.95)
        FROM read_parquet('{path}')"""
    code = f"import duckdb, json; print(json.dumps(dict(duckdb.sql({sql!r}).fetchall())))"
    found: dict[str, float] = json.loads(in_subprocess(code))
    return found


def agreement(values: dict[str, Any], p95: dict[str, float]) -> dict[str, Any]:
    """Every approach against the DuckDB one-pass (exact metrics), and mlslo's p95 against
    the exact one."""
    out: dict[str, Any] = {}
    reference = values["duckdb_onepass"]
    for name, result in values.items():
        if name == "duckdb_onepass":
            continue
        compared = anchors.compare("duckdb_onepass", reference, name, result)
        entry = {
            "values": compared["compared"],
            "disagreements": compared["disagreements"],
            "max_rel_dev_exact": compared["max_rel_dev_exact"],
            "examples": compared["examples"],
        }
        if name.startswith("mlslo"):
            devs = [
                abs(metrics["lag_p95_s"] - p95[w]) / p95[w]
                for w, metrics in result.items()
                if "lag_p95_s" in metrics
            ]
            entry["p95_windows"] = len(devs)
            entry["p95_max_rel_dev"] = max(devs)
            entry["p95_within_bound"] = max(devs) <= BOUND
        out[name] = entry
        if entry["disagreements"] or not entry.get("p95_within_bound", True):
            raise SystemExit(f"{name} disagrees: {json.dumps(entry)[:2000]}")
    return out


def cohort_file(path: str) -> str:
    """The log with a 1,000-value ``cohort`` column (a hash of the prediction id)."""
    out = path.replace(".parquet", f".cohorts{COHORTS}.parquet")
    if not os.path.exists(out):
        cohort = f"'c' || lpad(CAST(hash(prediction_id) % {COHORTS} AS VARCHAR), 4, '0')"
        sql = f"""COPY (SELECT *, {cohort} AS cohort FROM read_parquet('{path}'))
                  TO '{out}.tmp' (FORMAT parquet, ROW_GROUP_SIZE 250000)"""
        in_subprocess(f"import duckdb; duckdb.sql({sql!r})")
        os.replace(out + ".tmp", out)
    return out


def run_many_groups(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Both jobs under an address-space cap (inherited by the workers): a job that needs
    far more memory fails on its own instead of pushing the machine into the OOM killer."""
    import resource

    path = cohort_file(anchors.ensure_data(n, 0))
    cache = work / "cache-groups"
    cap = int(args.groups_cap_gib * 2**30)
    before = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (cap, before[1]))
    try:
        runs: dict[str, list[dict[str, Any]]] = {"mlslo_lib": [], "mlslo_many_groups": []}
        failed: dict[str, str] = {}
        for rep in range(args.reps + 1):  # the first round compiles both specs
            for name in runs:
                if name in failed:
                    continue
                os.environ["MLSLO_CACHE_DIR"] = str(cache)
                run = anchors.run_one(name, path, PLUGIN, timeout_s=3600)
                if "error" in run:
                    failed[name] = run["error"][-300:]
                    log(f"[groups {n:,}] {name} failed: {failed[name]}")
                    continue
                run.pop("result")
                if rep:
                    runs[name].append(run)
                log(f"[groups {n:,}] {name} rep {rep}: {run['wall_s']:.3f} s")
    finally:
        resource.setrlimit(resource.RLIMIT_AS, before)
    out: dict[str, Any] = {name: summary(measured) for name, measured in runs.items() if measured}
    out["failed"] = failed
    out["cap_gib"] = args.groups_cap_gib
    if "mlslo_many_groups" in out and "mlslo_lib" in out:
        out["ratio"] = out["mlslo_many_groups"]["wall_s"] / out["mlslo_lib"]["wall_s"]
    out["n"] = n
    return out


# --- publishing ------------------------------------------------------------------------------

LABELS = {
    "mlslo_lib": "mlslo (scan cache warm)",
    "mlslo_lib_first": "mlslo, first run of the spec",
    "duckdb_onepass": "hand-written DuckDB one-pass",
    "polars_onepass": "hand-written Polars one-pass",
    "mlslo_spark": "mlslo on PySpark (local[2])",
}


def table(results: dict[str, Any]) -> str:
    lines = [
        "| rows | approach | wall (s) | CPU (s) | ns per row (CPU) | peak RSS (MiB) "
        "| vs Polars (wall) | vs Polars (CPU) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n_text, size in results["sizes"].items():
        n = int(n_text)
        polars = size["polars_onepass"]
        for name, label in LABELS.items():
            if name not in size:
                continue
            r = size[name]
            lines.append(
                f"| {n:,} | {label} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | "
                f"{r['cpu_s'] / n * 1e9:.0f} | {r['rss_peak_mib']:,.0f} | "
                f"{r['wall_s'] / polars['wall_s']:.2f}× | {r['cpu_s'] / polars['cpu_s']:.2f}× |"
            )
    text = "\n".join(lines) + "\n"
    groups = results.get("many_groups")
    if groups and "ratio" not in groups:
        base = groups.get("mlslo_lib")
        text += (
            f"\nMany groups ({groups['n']:,} rows): the job with the fairness SLOs on "
            f"{COHORTS:,} cohorts plus one on cohort × region did not finish within the "
            f"{groups['cap_gib']:g} GiB address-space cap "
            f"({'; '.join(sorted(groups['failed']))}); the same job on the two-value group: "
            + (
                f"{base['wall_s']:.2f} s, {base['rss_peak_mib']:,.0f} MiB.\n"
                if base
                else "failed.\n"
            )
        )
    if groups and "ratio" in groups:
        text += (
            f"\nMany groups ({groups['n']:,} rows): the fairness SLOs on {COHORTS:,} cohorts plus "
            f"one on cohort × region, {groups['mlslo_many_groups']['wall_s']:.2f} s "
            f"({groups['mlslo_many_groups']['cpu_s']:.2f} s CPU, "
            f"{groups['mlslo_many_groups']['rss_peak_mib']:,.0f} MiB) against "
            f"{groups['mlslo_lib']['wall_s']:.2f} s ({groups['mlslo_lib']['cpu_s']:.2f} s CPU, "
            f"{groups['mlslo_lib']['rss_peak_mib']:,.0f} MiB) on the two-value group: "
            f"{groups['ratio']:.2f}×.\n"
        )
    worst = max(
        (
            a["p95_max_rel_dev"]
            for s in results["sizes"].values()
            for a in s["agreement"].values()
            if "p95_max_rel_dev" in a
        ),
        default=0.0,
    )
    text += (
        f"\nAgreement: at every size every approach matches the DuckDB one-pass on every exact "
        f"metric (relative 1e-9), and mlslo's p95 lag is within {worst * 100:.2f} % of the exact "
        f"one in every window (bound {BOUND * 100:.3f} %).\n"
    )
    machine = results["machine"]
    text += "\nMachine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + ".\n"
    text += (
        f"Load average (1 min) before and after: {results['load_average'][0]:.1f} / "
        f"{results['load_average'][1]:.1f}; run started {results['started']}.\n"
    )
    return text


def publish(results: dict[str, Any], doc: Path) -> None:
    text = doc.read_text()
    if MARK_BEGIN not in text:
        return
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    body = table(results) + "\n![time and peak RSS against rows](scale.svg)\n"
    doc.write_text(f"{head}{MARK_BEGIN}\n{body}{MARK_END}{tail}")


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    sizes = [int(n) for n in results["sizes"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, label in LABELS.items():
        points = [
            (n, results["sizes"][str(n)][name]) for n in sizes if name in results["sizes"][str(n)]
        ]
        if not points:
            continue
        xs = [n / 1e6 for n, _ in points]
        left.plot(xs, [r["wall_s"] for _, r in points], marker="o", label=label)
        right.plot(xs, [r["rss_peak_mib"] for _, r in points], marker="o", label=label)
    left.set(
        xlabel="rows (millions)", ylabel="wall time (s), min of runs", xscale="log", yscale="log"
    )
    right.set(xlabel="rows (millions)", ylabel="peak RSS (MiB)", xscale="log")
    left.grid(True, which="both", alpha=0.3)
    right.grid(True, alpha=0.3)
    left.legend(fontsize=7)
    fig.suptitle("The anchor job: time grows linearly, memory stays flat")
    fig.tight_layout()
    fig.savefig(out, metadata={"Date": None})
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
