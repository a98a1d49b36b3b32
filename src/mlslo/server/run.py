"""``mlslo serve``: open the store, print how to reach it, run uvicorn, stop cleanly."""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console
from rich.progress import Progress

from mlslo.errors import UsageError
from mlslo.scan.files import Sources
from mlslo.server.app import create_app
from mlslo.server.pull import Puller
from mlslo.server.service import Service
from mlslo.server.store import Store
from mlslo.spec import load_spec


def check_port(host: str, port: int) -> None:
    """Fail with a clear message before uvicorn would, if the address is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another port or "
                "stop what uses it",
                parameter="port",
            ) from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerOptions:
    """How ``mlslo serve`` runs: the spec and store, where it listens, and its limits."""

    spec_path: Path
    db: Path
    host: str = "127.0.0.1"
    port: int = 8080
    auth: bool = True
    retention: timedelta = timedelta(days=35)
    max_body: int = 64 * 1024 * 1024
    max_skew: timedelta = timedelta(minutes=5)
    eval_interval: timedelta = timedelta(seconds=30)
    log_level: str = "warning"
    memory_limit: str = "512MB"
    label_horizon: timedelta = timedelta(days=30)
    max_groups: int = 1000
    fold_groups: bool = False
    pull: Sources | None = None
    pull_every: timedelta = timedelta(minutes=1)
    lateness: timedelta = timedelta(hours=1)


def open_store(options: ServerOptions, console: Console) -> Store:
    spec = load_spec(options.spec_path)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("Rebuilding rollups from raw records", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return Store.open(
            options.db,
            spec,
            progress=progress,
            retention=options.retention,
            memory_limit=options.memory_limit,
            label_horizon=options.label_horizon,
            max_groups=options.max_groups,
            fold_groups=options.fold_groups,
        )


def run_server(options: ServerOptions, *, console: Console) -> None:
    """Open the store, make the first admin token if there is none, and serve until
    stopped."""
    check_port(options.host, options.port)
    if not options.auth and not is_loopback(options.host):
        raise UsageError(
            f"serving without tokens is only allowed on a loopback address, not {options.host}; "
            "listen on 127.0.0.1, or keep tokens on",
            parameter="no_auth",
        )
    store = open_store(options, console)
    if not options.auth:
        console.print(
            "[bold yellow]warning:[/] --no-auth: anyone on this machine can send and read "
            "data; no token can be created while it runs"
        )
    elif not store.tokens.any_active():
        _, secret = store.tokens.create("admin", "created at first start")
        console.print("No tokens yet, so an admin token was created (shown only now):")
        console.print(f"  {secret}", markup=False, highlight=False)
        console.print(
            "Create narrower ones with: mlslo token create --scope ingest --url "
            f"http://{options.host}:{options.port} --token <admin token>",
            markup=False,
        )
    serve_store(
        store,
        options.spec_path,
        host=options.host,
        port=options.port,
        auth=options.auth,
        max_body=options.max_body,
        max_skew=options.max_skew,
        eval_interval=options.eval_interval,
        log_level=options.log_level,
        console=console,
        pull=None
        if options.pull is None
        else PullOptions(options.pull, options.pull_every, options.lateness),
    )


@dataclass(frozen=True)
class PullOptions:
    """Where a pulling server reads records, how often, and how late they may arrive."""

    sources: Sources
    every: timedelta | None = timedelta(minutes=1)
    lateness: timedelta = timedelta(hours=1)


def serve_store(
    store: Store,
    spec_path: Path | None,
    *,
    host: str,
    port: int,
    auth: bool,
    max_body: int = 64 * 1024 * 1024,
    max_skew: timedelta = timedelta(minutes=5),
    eval_interval: timedelta = timedelta(seconds=30),
    log_level: str = "warning",
    console: Console,
    banner: str | None = None,
    clock: Callable[[], datetime] | None = None,
    pull: PullOptions | None = None,
) -> None:
    """Serve an open store until interrupted; stops the service and closes the store."""

    def log(message: str) -> None:
        console.print(message, markup=False, highlight=False)

    puller = None
    if pull is not None:
        puller = Puller(
            store,
            pull.sources,
            clock=clock or store.clock,
            lateness=pull.lateness,
            max_skew=max_skew,
            log=log,
        )
    service = Service(
        store,
        spec_path,
        clock=clock or store.clock,
        max_skew=max_skew,
        max_body=max_body,
        auth=auth,
        eval_interval=eval_interval,
        log=log,
        puller=puller,
        pull_every=None if pull is None else pull.every,
    )
    service.enable_alerts(dashboard_url=store.spec.dashboard_url or f"http://{host}:{port}")
    app = create_app(service)
    service.start()

    def reload(*_: Any) -> None:
        def work() -> None:
            try:
                service.reload()
            except Exception as exc:
                console.print(f"reload failed, keeping the previous spec: {exc}", markup=False)

        threading.Thread(target=work, name="mlslo-reload", daemon=True).start()

    signal.signal(signal.SIGHUP, reload)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_level=log_level, access_log=False, lifespan="off"
        )
    )
    console.print(
        banner
        or f"mlslo is serving [bold]{store.spec.service}[/] at "
        f"http://{host}:{port}/ (API docs at /docs, metrics at /metrics); "
        "Ctrl-C stops it"
    )
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it; without a handler of our
    # own that would end the process before the store is closed and checkpointed.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        service.stop()
        store.close()
