"""Checking a store's file without changing it: can every table be read whole?

For ``mlslo store check``, and for the advice a damaged file gets: restore it from a backup
(the service copies nothing by itself), or keep what is readable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from mlslo.server.store.database import StoreError

TABLES = (
    "predictions",
    "labels",
    "held_labels",
    "outcomes",
    "rollup_rows",
    "histogram_rows",
    "repeated_ids",
    "tokens",
    "overrides",
    "gate_decisions",
    "batches",
    "alert_state",
    "alert_events",
    "meta",
)


@dataclass(frozen=True)
class TableCheck:
    table: str
    rows: int | None
    problem: str | None = None


def check_store(path: str | Path) -> list[TableCheck]:
    """Read every table of the store at ``path`` in full, read-only; one result per table.
    Raises StoreError when the file cannot be opened at all."""
    location = str(path)
    if not Path(location).exists():
        raise StoreError(f"{location}: no such database file")
    try:
        con = duckdb.connect(location, read_only=True)
    except duckdb.Error as exc:
        raise StoreError(
            f"{location}: not a readable DuckDB database ({str(exc).splitlines()[0]}); "
            "restore it from a backup"
        ) from None
    out = []
    try:
        present = {
            row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        for table in TABLES:
            if table not in present:
                out.append(TableCheck(table, None, "missing"))
                continue
            try:
                con.sql(f"SELECT * FROM {table}").to_arrow_table()
                ((rows,),) = con.sql(f"SELECT count(*) FROM {table}").fetchall()
                out.append(TableCheck(table, int(rows)))
            except duckdb.Error as exc:
                out.append(TableCheck(table, None, str(exc).splitlines()[0]))
    finally:
        con.close()
    return out
