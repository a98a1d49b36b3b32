"""Benchmark the scan on DuckDB against the same scan on Spark, on logs of 10M and 50M rows.

For each size it generates the seeded 30-day log of ``benchmarks/evaluate.py`` (in chunks,
cached under ``--data-dir``, /tmp by default), writes that benchmark's five-SLO spec, and
times ``mlslo evaluate --format json --series 1d`` in a fresh process:

a. on DuckDB (the default engine; the scan's SQL is compiled once into a cache of this run
   by an untimed first run, as every later evaluation of the same spec does);
b. with ``--engine spark`` and ``SPARK_MASTER=local[2]`` (one JVM, two cores);
c. with ``--engine spark`` against a standalone cluster on loopback: one master and one
   worker with two cores, started with PySpark's ``spark-class`` and stopped by PID.

Every Spark run must print exactly the JSON that DuckDB printed; otherwise the script
prints the differences and exits with status 1. Spark's wall time includes starting its JVM
(and, on the cluster, an executor), which is a large part of it on small logs.

    python benchmarks/spark.py                       # 10M and 50M rows
    python benchmarks/spark.py --rows 200000         # smoke run, about a minute

This is a benchmark, not a test: it is not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common import compile_bytecode, describe, log, mlslo_command
from evaluate import END, SPEC, ensure_data, iso

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from spark_cluster import Cluster, client_environment, start_cluster  # noqa: E402

SIZES = (10_000_000, 50_000_000)


def run(command: list[str], environment: Mapping[str, str]) -> tuple[float, Any]:
    """Wall time of ``command`` and the JSON it printed."""
    began = time.perf_counter()
    done = subprocess.run(command, env=dict(environment), capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed:\n{done.stderr[-4000:]}")
    return wall, json.loads(done.stdout)


def differences(reference: Any, other: Any, where: str = "") -> list[str]:
    """Where two JSON documents differ, as paths with both values."""
    if isinstance(reference, dict) and isinstance(other, dict):
        keys = sorted(set(reference) | set(other))
        return [
            d for k in keys for d in differences(reference.get(k), other.get(k), f"{where}.{k}")
        ]
    if isinstance(reference, list) and isinstance(other, list) and len(reference) == len(other):
        return [
            d
            for i, pair in enumerate(zip(reference, other, strict=False))
            for d in differences(*pair, f"{where}[{i}]")
        ]
    return [] if reference == other else [f"{where}: {reference!r} != {other!r}"]


def benchmark(
    rows: int, args: argparse.Namespace, cluster: Cluster | None, cache: Path
) -> list[dict[str, Any]]:
    data = ensure_data(args.data_dir, rows, args.seed)
    spec = args.data_dir / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    command = [*mlslo_command(), "evaluate", "--spec", str(spec), "--data", str(data)]
    command += ["--at", iso(END), "--format", "json", "--series", "1d"]
    duck_env = {**os.environ, "MLSLO_CACHE_DIR": str(cache)}
    log(f"{rows:,} rows: DuckDB, first run (compiles the scan) ...")
    run(command, duck_env)
    engines: list[tuple[str, list[str], Mapping[str, str]]] = [
        ("DuckDB (embedded)", command, duck_env),
        ("Spark local[2]", [*command, "--engine", "spark"], client_environment("local[2]")),
    ]
    if cluster is not None:
        engines.append(
            (
                "Spark standalone (1 worker, 2 cores)",
                [*command, "--engine", "spark"],
                client_environment(cluster.url),
            )
        )
    results: list[dict[str, Any]] = []
    reference: Any = None
    for name, engine_command, environment in engines:
        best = float("inf")
        for repetition in range(args.repeat):
            log(f"{rows:,} rows: {name}, run {repetition + 1}/{args.repeat} ...")
            wall, document = run(engine_command, environment)
            log(f"  {wall:.1f} s")
            best = min(best, wall)
            if reference is None:
                reference = document
            found = differences(reference, document)
            if found:
                log(f"{name} differs from DuckDB in {len(found)} places:")
                for line in found[:20]:
                    log(f"  {line}")
                raise SystemExit(1)
        results.append({"rows": rows, "engine": name, "wall": best, "identical": True})
    size = data.stat().st_size / 2**20
    log(f"{rows:,} rows ({size:.0f} MB Parquet): every engine printed identical JSON")
    return results


def table(results: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| rows | engine | wall time (s) | vs DuckDB | JSON identical to DuckDB's |",
        "|---:|---|---:|---:|---|",
    ]
    duck = {r["rows"]: r["wall"] for r in results if r["engine"].startswith("DuckDB")}
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['engine']} | {r['wall']:.1f} | "
            f"{r['wall'] / duck[r['rows']]:.1f}× | {'yes' if r['identical'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=list(SIZES), help="log sizes (default 10M 50M)"
    )
    parser.add_argument("--seed", type=int, default=20260101, help="generator seed")
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine; best reported")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "mlslo-bench-spark",
        help="where the generated Parquet is cached (default: /tmp/mlslo-bench-spark)",
    )
    parser.add_argument(
        "--no-cluster", action="store_true", help="leave out the standalone cluster"
    )
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir.resolve()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the cluster on the way out
    compile_bytecode()
    load_before = os.getloadavg()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mlslo-bench-spark-") as work:
        cluster = None
        if not args.no_cluster:
            log("starting a standalone Spark master and worker on 127.0.0.1 ...")
            cluster = start_cluster(Path(work) / "cluster", cores=2, memory="2g")
        try:
            for rows in args.rows:
                results.extend(benchmark(rows, args, cluster, Path(work) / "scan-cache"))
                print(table(results), flush=True)
        finally:
            if cluster is not None:
                cluster.stop()
    load_after = os.getloadavg()
    print()
    print(table(results))
    print()
    machine = describe(
        [
            ("DuckDB", "duckdb"),
            ("pyarrow", "pyarrow"),
            ("PySpark", "pyspark"),
            ("ibis", "ibis"),
            ("mlslo", "mlslo"),
        ]
    )
    machine["Java"] = _java_version()
    machine["load average (1 min)"] = f"{load_before[0]:.2f} before, {load_after[0]:.2f} after"
    for key, value in machine.items():
        print(f"| {key} | {value} |")
    return 0


def _java_version() -> str:
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True)
    except OSError:
        return "not found"
    return done.stderr.splitlines()[0] if done.stderr else "unknown"


if __name__ == "__main__":
    sys.exit(main())
