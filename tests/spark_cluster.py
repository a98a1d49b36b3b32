"""A standalone Spark cluster on loopback: one master and one worker, started with the
``spark-class`` that PySpark ships and stopped by process group.

Used by the cluster tests and by ``benchmarks/spark.py``; it imports nothing from pytest.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
"""JVM options for short jobs on few cores: no optimizing JIT, no parallel GC threads."""

QUICK_SUBMIT = [
    "--driver-java-options",
    QUICK_JVM,
    "--conf",
    f"spark.executor.extraJavaOptions={QUICK_JVM}",
    "--conf",
    "spark.sql.shuffle.partitions=2",
    "--conf",
    "spark.ui.showConsoleProgress=false",
]
"""spark-submit options for the small jobs of the tests."""


def spark_home() -> Path:
    """The PySpark package folder: it holds ``bin/`` and ``jars/`` as a Spark install does."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def client_environment(master: str) -> dict[str, str]:
    """The environment of a driver that uses ``master``: loopback only, executors run this
    interpreter."""
    return {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_MASTER": master,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }


@dataclass
class Cluster:
    url: str
    master_ui: str
    worker_ui: str
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def master_state(self) -> dict[str, Any]:
        return _get_json(f"{self.master_ui}/json/")

    def worker_state(self) -> dict[str, Any]:
        return _get_json(f"{self.worker_ui}/json/")

    def applications(self) -> list[dict[str, Any]]:
        """Every application the master has seen, running or completed."""
        state = self.master_state()
        return [*state.get("activeapps", []), *state.get("completedapps", [])]

    def stop(self) -> None:
        for process in reversed(self.processes):
            _stop_group(process)
        self.processes.clear()

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            out.append(f"--- {path.name}")
            out.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out)


def start_cluster(
    work: Path, *, cores: int = 1, memory: str = "1g", timeout: float = 120.0
) -> Cluster:
    """Start a master and one worker on 127.0.0.1 and wait until the worker is registered."""
    work.mkdir(parents=True, exist_ok=True)
    port, master_ui_port, worker_ui_port = free_port(), free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    cluster = Cluster(
        url=url,
        master_ui=f"http://127.0.0.1:{master_ui_port}",
        worker_ui=f"http://127.0.0.1:{worker_ui_port}",
        logs=work,
    )
    environment = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(work),
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_DAEMON_JAVA_OPTS": QUICK_JVM,
        "PYSPARK_PYTHON": sys.executable,
    }
    spark_class = str(spark_home() / "bin" / "spark-class")
    try:
        cluster.processes.append(
            _spawn(
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--webui-port",
                    str(master_ui_port),
                ],
                environment,
                work / "master.log",
            )
        )
        wait_until(lambda: cluster.master_state().get("status") == "ALIVE", timeout, cluster)
        cluster.processes.append(
            _spawn(
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    str(cores),
                    "--memory",
                    memory,
                    "--webui-port",
                    str(worker_ui_port),
                    "--work-dir",
                    str(work / "worker"),
                ],
                environment,
                work / "worker.log",
            )
        )
        wait_until(lambda: _alive_workers(cluster.master_state()) >= 1, timeout, cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _alive_workers(state: Mapping[str, Any]) -> int:
    return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")


def _spawn(command: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_until(condition: Any, timeout: float, cluster: Cluster) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in cluster.processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"a Spark daemon exited with {process.returncode}\n{cluster.log_tail()}"
                )
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the Spark cluster was not ready in {timeout:.0f} s\n{cluster.log_tail()}")


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.load(response))


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
