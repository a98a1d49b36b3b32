"""The scan on a real standalone Spark cluster (a master and a worker on loopback): an
application registers with the master, an executor runs on the worker, and the numbers are
the DuckDB path's, through ``mlslo evaluate --engine spark`` and through spark-submit."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spark_cluster import (
    QUICK_SUBMIT,
    Cluster,
    client_environment,
    spark_home,
    start_cluster,
    wait_until,
)
from test_spark_parity import SPEC, _log

pytestmark = [pytest.mark.spark, pytest.mark.system("java")]

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "examples" / "spark-submit" / "evaluate_job.py"
AT = "2026-11-04T00:00:00Z"
MLSLO = str(Path(sys.executable).with_name("mlslo"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    pytest.importorskip("pyspark")
    running = start_cluster(tmp_path_factory.mktemp("spark-cluster"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cluster-records")
    spec = folder / "slos.yaml"
    spec.write_text(SPEC)
    return spec, _log(folder, n=3_000)


@pytest.fixture(scope="module")
def on_duckdb(records: tuple[Path, Path]) -> Any:
    """What ``mlslo evaluate --format json`` prints with the default engine."""
    spec, data = records
    done = subprocess.run(
        [
            MLSLO,
            "evaluate",
            "--spec",
            str(spec),
            "--data",
            str(data),
            "--at",
            AT,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _new_application(cluster: Cluster, before: set[str]) -> dict[str, Any]:
    """The one application that registered since ``before``, once the master has it completed
    and the worker ran an executor for it."""
    found: dict[str, Any] = {}

    def finished() -> bool:
        state = cluster.master_state()
        new = [a for a in state.get("completedapps", []) if a["id"] not in before]
        executors = cluster.worker_state().get("finishedexecutors", [])
        if len(new) == 1 and any(e.get("appid") == new[0]["id"] for e in executors):
            found.update(new[0])
            return True
        return False

    wait_until(finished, 60, cluster)
    return found


def test_cli_scan_runs_on_the_standalone_cluster(
    cluster: Cluster, records: tuple[Path, Path], on_duckdb: Any
) -> None:
    spec, data = records
    before = {a["id"] for a in cluster.applications()}
    done = subprocess.run(
        [
            MLSLO,
            "evaluate",
            "--spec",
            str(spec),
            "--data",
            str(data),
            "--at",
            AT,
            "--format",
            "json",
            "--engine",
            "spark",
        ],
        capture_output=True,
        text=True,
        env={
            **client_environment(cluster.url),
            "PYSPARK_SUBMIT_ARGS": shlex.join([*QUICK_SUBMIT, "pyspark-shell"]),
        },
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    application = _new_application(cluster, before)
    assert application["name"] == "mlslo"
    assert application["cores"] >= 1
    assert json.loads(done.stdout) == on_duckdb


def test_spark_submit_example_runs_on_the_standalone_cluster(
    cluster: Cluster, records: tuple[Path, Path], on_duckdb: Any, tmp_path: Path
) -> None:
    spec, data = records
    output = tmp_path / "evaluation.json"
    before = {a["id"] for a in cluster.applications()}
    done = subprocess.run(
        [
            str(spark_home() / "bin" / "spark-submit"),
            "--master",
            cluster.url,
            *QUICK_SUBMIT,
            str(JOB),
            "--spec",
            str(spec),
            "--data",
            str(data),
            "--at",
            AT,
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        env={k: v for k, v in client_environment(cluster.url).items() if k != "SPARK_MASTER"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    application = _new_application(cluster, before)
    assert application["state"] == "FINISHED"
    assert json.loads(output.read_text()) == on_duckdb
