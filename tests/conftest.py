"""Shared fixtures: the real CLI (in process), and writers for specs and record files."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import uvicorn
from typer.testing import CliRunner

from mlslo.api import evaluate_files
from mlslo.cli import app
from mlslo.measure.evaluate import Evaluation, evaluate
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources
from mlslo.server import Service, create_app
from mlslo.server.store import Store
from mlslo.spec import load_spec, parse_spec

# --- system parts: Debian packages that some tests start ----------------------------------

SYSTEM_PARTS = {
    "chromium": ("/usr/bin/chromium", "chromium"),
    "prometheus": ("prometheus", "prometheus"),
    "promtool": ("promtool", "prometheus"),
    "prometheus-alertmanager": ("prometheus-alertmanager", "prometheus-alertmanager"),
    "java": ("java", "openjdk-17-jre-headless"),
    "postgresql": ("/usr/lib/postgresql/*/bin/postgres", "postgresql"),
}
"""A part's name -> (the command or file that must exist, the Debian package with it)."""


def missing_parts(names: list[str]) -> list[str]:
    out = []
    for name in names:
        path, _ = SYSTEM_PARTS[name]
        if "*" in path:
            found = any(os.access(p, os.X_OK) for p in glob.glob(path))
        else:
            found = os.access(path, os.X_OK) if path.startswith("/") else shutil.which(path)
        if not found:
            out.append(name)
    return out


def _install_hint(parts: list[str]) -> str:
    packages = " ".join(dict.fromkeys(SYSTEM_PARTS[p][1] for p in parts))
    hint = f"apt-get install -y --no-install-recommends {packages}"
    return f"{hint} (./scripts/system-packages does it)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "system(*parts): the test starts these Debian programs (see SYSTEM_PARTS)"
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests whose system parts are missing: in a plain pytest run they are skipped, with one
    line at the start of the run; under the README's test command (MLSLO_REQUIRE_SYSTEM=1)
    they fail."""
    needed = sorted(
        {p for item in items for mark in item.iter_markers("system") for p in mark.args}
    )
    missing = missing_parts(needed)
    if not missing:
        return
    required = os.environ.get("MLSLO_REQUIRE_SYSTEM") == "1"
    affected = [
        item
        for item in items
        if any(p in missing for mark in item.iter_markers("system") for p in mark.args)
    ]
    line = (
        f"missing {', '.join(missing)}: {len(affected)} tests "
        f"{'fail' if required else 'are skipped'}; {_install_hint(missing)}"
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line, yellow=not required, red=required, bold=True)
    for item in affected:
        if required:
            item.user_properties.append(("missing_system_parts", line))
        else:
            item.add_marker(pytest.mark.skip(reason=line))


def pytest_runtest_setup(item: pytest.Item) -> None:
    for name, line in item.user_properties:
        if name == "missing_system_parts":
            pytest.fail(line, pytrace=False)


@pytest.fixture(autouse=True, scope="session")
def _scan_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Compiled scans go to a folder of this test session, not the user's cache (CLI
    subprocesses inherit it)."""
    folder = tmp_path_factory.mktemp("scan-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSLO_CACHE_DIR", str(folder))
        yield folder


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli() -> Callable[..., Run]:
    """Invoke ``mlslo`` with arguments; returns exit code, stdout and stderr."""
    runner = CliRunner()

    def invoke(*args: str) -> Run:
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str], Path]:
    """Write a YAML spec (dedented) and return its path."""
    counter = iter(range(1_000_000))

    def write(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"spec{next(counter)}.yaml")
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_records(tmp_path: Path) -> Callable[..., Path]:
    """Write records (a dict of columns or a pyarrow table) as parquet, csv or ndjson."""
    counter = iter(range(1_000_000))

    def write(
        data: dict[str, list[Any]] | pa.Table, fmt: str = "parquet", name: str | None = None
    ) -> Path:
        table = data if isinstance(data, pa.Table) else pa.table(data)
        path = tmp_path / (name or f"records{next(counter)}.{fmt}")
        if fmt == "parquet":
            pq.write_table(table, path)
        elif fmt == "csv":
            pacsv.write_csv(table, path)
        elif fmt in ("ndjson", "jsonl"):
            with path.open("w", encoding="utf-8") as out:
                for row in table.to_pylist():
                    out.write(json.dumps(row, default=_iso) + "\n")
        else:
            raise ValueError(fmt)
        return path

    return write


def _iso(value: Any) -> str:
    return value.isoformat()


# --- Spark ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local PySpark session for the test session (UTC, two cores, no UI)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    pyspark_sql = pytest.importorskip("pyspark.sql")
    session = (
        pyspark_sql.SparkSession.builder.master("local[2]")
        .appName("mlslo-tests")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One private PostgreSQL server for the test session (loopback, password auth)."""
    import postgres_server

    server = postgres_server.start()
    yield server
    server.stop()


# --- oracle comparisons ---------------------------------------------------------------------


def evaluate_table(spec_text: str, table: pa.Table, at: datetime) -> dict[str, Any]:
    """Evaluate ``spec_text`` on ``table`` (written to Parquet) through the library: the
    CLI's JSON of each SLO, by name."""
    spec = parse_spec(textwrap.dedent(spec_text))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "records.parquet"
        pq.write_table(table, path)
        document = evaluation_json(evaluate_files(spec, Sources(str(path)), at))
    return {slo["name"]: slo for slo in document["slos"]}


def evaluate_store(store: Store, at: datetime, **options: Any) -> Evaluation:
    """Evaluate a store's SLOs at ``at`` the way its service does."""
    reading = store.rollups.at(at)
    return evaluate(reading.spec, reading.rollups, at, repeated_ids=reading.repeated_ids, **options)


def close(expected: float) -> Any:
    """Equal to an oracle's number up to float noise."""
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


# --- a real server on loopback --------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on (for a server to start on, or to be refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Clock:
    """A settable clock for deterministic services."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Live:
    url: str
    service: Service
    admin: str
    clock: Clock

    def client(self, token: str | None = "admin") -> httpx.Client:
        secret = self.admin if token == "admin" else token
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def token(self, scope: str) -> str:
        return self.service.store.tokens.create(scope, f"test {scope}")[1]  # type: ignore[arg-type]


class ThreadedServer:
    """uvicorn serving an app on 127.0.0.1 (an ephemeral port) in a thread."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()


def serve(service: Service, port: int = 0) -> ThreadedServer:
    """Start ``service`` and serve its app on 127.0.0.1 (stop both with :func:`shutdown`)."""
    server = ThreadedServer(create_app(service), port=port)
    service.start()
    server.__enter__()
    return server


def shutdown(server: ThreadedServer, service: Service) -> None:
    server.__exit__()
    service.stop()
    service.store.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., Live]]:
    """Start the real service (uvicorn on 127.0.0.1) for a spec; stopped after the test."""
    stack: list[tuple[ThreadedServer, Service]] = []

    def start(
        spec_text: str,
        *,
        now: datetime | None = None,
        auth: bool = True,
        store_options: dict[str, Any] | None = None,
        **service_options: Any,
    ) -> Live:
        spec_path = tmp_path / f"spec{len(stack)}.yaml"
        spec_path.write_text(textwrap.dedent(spec_text).lstrip())
        clock = Clock(now or datetime(2026, 11, 21, tzinfo=UTC))
        store = Store.open(
            tmp_path / f"db{len(stack)}.duckdb",
            load_spec(spec_path),
            clock=clock,
            **(store_options or {}),
        )
        admin = store.tokens.create("admin", "test admin")[1]
        service = Service(store, spec_path, clock=clock, auth=auth, **service_options)
        server = serve(service)
        stack.append((server, service))
        return Live(f"http://127.0.0.1:{server.port}", service, admin, clock)

    yield start
    for server, service in reversed(stack):
        shutdown(server, service)


def start_mlslo_serve(spec: Path, db: Path, port: int, *options: str) -> subprocess.Popen[bytes]:
    """Run ``mlslo serve --no-auth`` (and ``options``) as a process (stop it by its PID);
    returns once ready."""
    exe = str(Path(sys.executable).with_name("mlslo"))
    log = spec.parent / f"server-{time.monotonic_ns()}.log"
    command = [
        exe,
        "serve",
        "--spec",
        str(spec),
        "--db",
        str(db),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-auth",
        *options,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(f"server did not start: {log.read_text()}")
