"""The store's DuckDB file: one connection, one lock, the schema, and small helpers.

DuckDB allows one writing process per file; the service owns it. Every part of the store
(:mod:`.rollups`, :mod:`.ingest`, :mod:`.tokens`, ...) runs its statements through one
:class:`Database`, under its lock, so a statement never interleaves with another thread's
transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from mlslo.errors import MlsloError, UsageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS predictions (
    id VARCHAR, ts TIMESTAMP, model VARCHAR, model_version VARCHAR,
    status VARCHAR, latency_ms DOUBLE, event_ts TIMESTAMP,
    prediction VARCHAR, score DOUBLE, label VARCHAR, received_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS labels (
    id VARCHAR, ts TIMESTAMP, label VARCHAR, received_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS held_labels (
    id VARCHAR, ts TIMESTAMP, label VARCHAR, received_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS outcomes (
    ts TIMESTAMP, total BIGINT, ok BIGINT, model VARCHAR,
    model_version VARCHAR, received_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS histogram_rows (
    slo VARCHAR, bucket BIGINT, bin BIGINT, count DOUBLE);
CREATE TABLE IF NOT EXISTS repeated_ids (bucket BIGINT, count BIGINT);
CREATE SEQUENCE IF NOT EXISTS token_ids START 1;
CREATE TABLE IF NOT EXISTS tokens (
    id BIGINT PRIMARY KEY, name VARCHAR, scope VARCHAR, hash VARCHAR,
    created_at TIMESTAMP, revoked_at TIMESTAMP);
CREATE SEQUENCE IF NOT EXISTS override_ids START 1;
CREATE TABLE IF NOT EXISTS overrides (
    id BIGINT PRIMARY KEY, reason VARCHAR, created_at TIMESTAMP,
    expires_at TIMESTAMP, created_by VARCHAR, revoked_at TIMESTAMP);
CREATE SEQUENCE IF NOT EXISTS decision_ids START 1;
CREATE TABLE IF NOT EXISTS gate_decisions (
    id BIGINT PRIMARY KEY, "at" TIMESTAMP, policy VARCHAR, candidate VARCHAR,
    decision VARCHAR, caller VARCHAR, override_id BIGINT, document VARCHAR);
CREATE TABLE IF NOT EXISTS batches (
    key VARCHAR PRIMARY KEY, kind VARCHAR, received_at TIMESTAMP,
    accepted BIGINT, duplicates BIGINT);
ALTER TABLE batches ADD COLUMN IF NOT EXISTS fingerprint VARCHAR;
ALTER TABLE batches ADD COLUMN IF NOT EXISTS folded BIGINT;
ALTER TABLE histogram_rows ADD COLUMN IF NOT EXISTS version VARCHAR;
CREATE TABLE IF NOT EXISTS alert_state (
    key VARCHAR PRIMARY KEY, document VARCHAR);
CREATE SEQUENCE IF NOT EXISTS alert_event_ids START 1;
CREATE TABLE IF NOT EXISTS alert_events (
    id BIGINT PRIMARY KEY, "at" TIMESTAMP, key VARCHAR, document VARCHAR);
"""


class StoreError(MlsloError):
    """The store cannot be opened or used as asked."""


class Database:
    """One DuckDB connection and the lock every statement runs under."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str) -> None:
        self.con = con
        self.path = path
        self.lock = threading.RLock()

    @classmethod
    def open(
        cls, path: str | Path, *, memory_limit: str | None = None, create: bool = True
    ) -> Database:
        """Open (or create) the file and its tables. ``memory_limit`` caps DuckDB's cache;
        without ``create``, a file that is not an mlslo store is refused, not converted."""
        location = str(path)
        try:
            con = duckdb.connect(location)
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0] if str(exc) else ""
            if "conflicting lock" in message.lower() or "could not set lock" in message.lower():
                raise StoreError(
                    f"{location}: the database is in use by another process (a running "
                    "mlslo server?); stop it, or go through its API"
                ) from None
            raise damaged(location, exc) from None
        con.execute("SET TimeZone='UTC'")
        con.execute("SET checkpoint_threshold='256MB'")
        if memory_limit is not None:
            try:
                con.execute("SET memory_limit = ?", [memory_limit])
            except duckdb.Error as exc:
                con.close()
                raise UsageError(
                    f"'{memory_limit}' is not a size DuckDB accepts (e.g. 512MB): "
                    f"{str(exc).splitlines()[0]}",
                    parameter="memory_limit",
                ) from None
        database = cls(con, location)
        try:
            if not create and not database.table_exists("meta"):
                con.close()
                raise StoreError(
                    f"{location}: not an mlslo store (a DuckDB file without its tables); "
                    "check the path"
                )
            database.run(SCHEMA)
            database.run("SELECT count(*) FROM meta")
        except duckdb.Error as exc:
            con.close()
            raise damaged(location, exc) from None
        return database

    def run(self, sql: str, params: Sequence[Any] | None = None) -> list[Any]:
        """Execute one statement to completion (DuckDB wants every result consumed)."""
        with self.lock:
            result = self.con.execute(sql, list(params) if params is not None else None)
            try:
                return result.fetchall()
            except duckdb.InvalidInputException:
                return []

    def one(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.run(sql, params)
        return rows[0] if rows else None

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a query and return its rows as an Arrow table (no DB-API copy)."""
        with self.lock:
            relation = self.con.sql(sql, params=list(params)) if params else self.con.sql(sql)
            table: pa.Table = relation.to_arrow_table()
            return table

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, or ROLLBACK on any exception (which is re-raised)."""
        with self.lock:
            self.run("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                self.run("ROLLBACK")
                raise
            self.run("COMMIT")

    @contextmanager
    def registered(self, name: str, table: pa.Table) -> Iterator[str]:
        """``table`` visible to SQL as ``name`` for the duration of the block."""
        with self.lock:
            self.con.register(name, table)
            try:
                yield name
            finally:
                self.con.unregister(name)

    def meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", [key])
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.run("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def table_exists(self, name: str) -> bool:
        row = self.one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        )
        return bool(row and row[0])

    def columns(self, table: str) -> list[str]:
        rows = self.run(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
        )
        return [str(row[0]) for row in rows]

    def checkpoint(self) -> None:
        self.run("CHECKPOINT")

    def close(self) -> None:
        with self.lock:
            self.con.close()

    @contextmanager
    def locked(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection, for a caller that needs several statements without interruption."""
        with self.lock:
            yield self.con


def damaged(location: str, error: BaseException) -> StoreError:
    """The one-line error for a database file that cannot be read."""
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return StoreError(
        f"{location}: the database file cannot be read ({first}); restore it from a backup, "
        f"or see what is still readable with: mlslo store check --db {location}"
    )


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def naive(moment: datetime) -> datetime:
    """A moment as the store keeps it: UTC without a zone."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def constant_time(moment: datetime, n: int) -> pa.Array:
    value = np.datetime64(naive(moment), "us")
    return pa.array(np.full(n, value, dtype="datetime64[us]"), pa.timestamp("us"))
