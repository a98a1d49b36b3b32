"""Databases that run the scan themselves (PostgreSQL, and any ibis backend by its URL):
connecting with credentials from the environment or a file, and opening a table.

The scan's ibis expressions compile to the database's SQL; only the rollups (one row per
bucket x slice) come back. Every error names the source as given, which never holds a
password, and a message from the driver is cleaned of the password before it is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlslo.errors import DataError, UsageError, first_line
from mlslo.inputs.lakes import no_table
from mlslo.inputs.locations import Location, password_for

CONNECT_TIMEOUT_SECONDS = 10


def connect_database(location: Location, environ: Mapping[str, str] | None = None) -> Any:
    """An ibis backend on the database ``location`` names, its session in UTC."""
    import ibis

    if location.kind not in _ibis_backends():
        raise DataError(
            f"is not a kind of source mlslo knows ({location.kind}://); give a path, glob or "
            "folder, or a URL: duckdb://, delta://, iceberg://, postgres://, or another ibis "
            "backend's (trino://, snowflake://, bigquery://, clickhouse://, ...)",
            source=location.shown,
        )
    password = password_for(location, environ)
    options: dict[str, Any] = {}
    if password is not None:
        options["password"] = password
    if location.kind == "postgres":
        options.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
        options["options"] = "-c TimeZone=UTC"
    try:
        return ibis.connect(location.target, **options)
    except ImportError as exc:
        extra = "postgres" if location.kind == "postgres" else location.kind
        raise UsageError(
            f"{location.kind} sources need the driver ibis uses for them ({first_line(exc)}); "
            f"pip install 'ibis-framework[{extra}]'"
        ) from None
    except Exception as exc:
        raise DataError(
            f"cannot connect: {_clean(first_line(exc), password)}", source=location.shown
        ) from None


def open_database_table(con: Any, location: Location) -> Any:
    """The ibis table ``?table=`` names (in ``?schema=`` when given)."""
    table = str(location.table)
    schema = location.options.get("schema")
    try:
        names = con.list_tables(database=schema) if schema else con.list_tables()
    except Exception as exc:
        raise DataError(f"cannot list tables: {first_line(exc)}", source=location.shown) from None
    if table not in names:
        raise no_table(location, table, sorted(names))
    try:
        return con.table(table, database=schema) if schema else con.table(table)
    except Exception as exc:
        raise DataError(
            f"cannot read table '{table}': {first_line(exc)}", source=location.shown
        ) from None


def _ibis_backends() -> set[str]:
    from importlib.metadata import entry_points

    return {entry.name for entry in entry_points(group="ibis.backends")}


def _clean(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text
