"""A private PostgreSQL server from Debian's binaries, for the tests that read tables from it.

It listens on 127.0.0.1 only, with password (SCRAM) authentication, and its own time zone set
away from UTC so a session that forgot to ask for UTC would read naive timestamps wrongly.
PostgreSQL refuses to run as root: when the tests run as root the cluster belongs to the
``postgres`` system user (or ``nobody``) and is started through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_GLOB = "/usr/lib/postgresql/*/bin/postgres"
USER = "mlslo"
PASSWORD = "s3cret-Pg-pass"
SERVER_TIMEZONE = "Asia/Singapore"


def binaries() -> Path | None:
    found = sorted(glob.glob(SERVER_GLOB))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    def url(self, table: str, database: str = "postgres", **options: str) -> str:
        query = "&".join([f"table={table}", *(f"{k}={v}" for k, v in options.items())])
        return f"postgres://{USER}@127.0.0.1:{self.port}/{database}?{query}"

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=USER,
            password=PASSWORD,
            dbname="postgres",
            autocommit=True,
        )

    def version(self) -> str:
        with self.connect() as con:
            row = con.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--"] if owner else []


def start() -> PostgresServer:
    """initdb a cluster in a temporary folder and start it on a free loopback port."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    folder = Path(tempfile.mkdtemp(prefix="mlslo-pg-"))
    owner = None
    if os.geteuid() == 0:
        owner = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(folder, user=owner)
    data = folder / "data"
    password_file = folder / "pw"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    if owner:
        shutil.chown(password_file, user=owner)
    subprocess.run(
        [
            *_as_owner(owner),
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "--pwfile",
            str(password_file),
            "-A",
            "scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    with open(folder / "server.log", "wb") as log:
        process = subprocess.Popen(
            [
                *_as_owner(owner),
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                "",
                "-c",
                f"timezone={SERVER_TIMEZONE}",
                "-c",
                "fsync=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PostgresServer(port, folder, process)
    deadline = time.monotonic() + 30
    while True:
        try:
            server.version()
            return server
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(
                    "PostgreSQL did not start: " + (folder / "server.log").read_text()[-2000:]
                ) from None
            time.sleep(0.1)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def write_table(server: PostgresServer, name: str, table: Any, *, zoned: bool = True) -> None:
    """Create ``name`` from an Arrow table: timestamps as ``timestamptz`` (or ``timestamp``
    without a zone, holding UTC wall-clock times), text, bigint, double precision."""
    import pyarrow as pa

    columns = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_timestamp(kind):
            sql = "timestamptz" if zoned else "timestamp"
        elif pa.types.is_integer(kind):
            sql = "bigint"
        elif pa.types.is_floating(kind):
            sql = "double precision"
        elif pa.types.is_boolean(kind):
            sql = "boolean"
        else:
            sql = "text"
        columns.append(f'"{field.name}" {sql}')
    rows = table.to_pylist()
    with server.connect() as con:
        con.execute("SET TIME ZONE 'UTC'")
        con.execute(f'DROP TABLE IF EXISTS "{name}"')
        con.execute(f'CREATE TABLE "{name}" ({", ".join(columns)})')
        names = ", ".join(f'"{f}"' for f in table.column_names)
        with con.cursor().copy(f'COPY "{name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                values = [row[f] for f in table.column_names]
                if not zoned:
                    values = [_naive(v) for v in values]
                copy.write_row(values)


def _naive(value: Any) -> Any:
    from datetime import UTC, datetime

    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value
