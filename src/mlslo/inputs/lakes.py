"""Tables the embedded DuckDB reads in place: DuckDB database files, Delta Lake and Iceberg.

Each becomes something a DuckDB view can select from, without loading the log into Python
first where the format allows it: a DuckDB file is attached read-only; a Delta table is an
Arrow dataset (DuckDB pushes the window's filter and the columns it reads into it); an Iceberg
table is read by pyiceberg with the window's filter planned against its manifests, so files
outside the window are skipped.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlslo.errors import DataError, UsageError, first_line
from mlslo.inputs.locations import Location


@dataclass(frozen=True)
class RowFilter:
    """Rows a reader may skip: those whose ``column`` falls outside [start, end) (rows
    without a value are kept, so the scan can still name them)."""

    column: str
    start: datetime
    end: datetime


_attached = itertools.count()


def table_source(con: Any, view: str, location: Location, *, rows: RowFilter | None = None) -> str:
    """What a DuckDB view over ``location`` selects from (registering or attaching it on
    ``con`` first)."""
    if location.kind == "duckdb":
        return _duckdb_table(con, location)
    if location.kind == "delta":
        con.register(f"{view}_delta", _delta_dataset(location))
        return f"{view}_delta"
    if location.kind == "iceberg":
        con.register(f"{view}_iceberg", _iceberg_arrow(location, rows))
        return f"{view}_iceberg"
    raise ValueError(f"not a table the embedded DuckDB reads: {location.kind}")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duckdb_table(con: Any, location: Location) -> str:
    path = Path(location.target).expanduser()
    if not path.is_file():
        raise DataError("no such DuckDB database file", source=location.shown)
    alias = f"mlslo_db_{next(_attached)}"
    literal = "'" + str(path).replace("'", "''") + "'"
    try:
        con.execute(f"ATTACH {literal} AS {alias} (READ_ONLY)")
    except Exception as exc:
        raise DataError(
            f"cannot be opened as a DuckDB database: {first_line(exc)}", source=location.shown
        ) from None
    schema = location.options.get("schema", "main")
    table = str(location.table)
    found = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = ? "
        "AND schema_name = ?",
        [alias, schema, alias, schema],
    ).fetchall()
    names = sorted(str(row[0]) for row in found)
    if table not in names:
        raise no_table(location, table, names)
    return f"{alias}.{_quoted(schema)}.{_quoted(table)}"


def no_table(location: Location, table: str, names: list[str]) -> DataError:
    listed = ", ".join(names[:20]) if names else "none"
    return DataError(
        f"has no table '{table}' (tables: {listed}); fix ?table=", source=location.shown
    )


def _delta_dataset(location: Location) -> Any:
    try:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError
    except ImportError:
        raise UsageError(
            "Delta tables need the deltalake package: pip install 'mlslo[lake]'"
        ) from None
    version = location.options.get("version")
    try:
        table = DeltaTable(location.target, version=int(version) if version else None)
        return table.to_pyarrow_dataset()
    except TableNotFoundError:
        raise DataError("is not a Delta table (no _delta_log)", source=location.shown) from None
    except Exception as exc:
        raise DataError(
            f"cannot be read as a Delta table: {first_line(exc)}", source=location.shown
        ) from None


def _iceberg_arrow(location: Location, rows: RowFilter | None) -> Any:
    try:
        from pyiceberg.exceptions import NoSuchTableError
        from pyiceberg.expressions import (
            AlwaysTrue,
            And,
            BooleanExpression,
            GreaterThanOrEqual,
            IsNull,
            LessThan,
            Or,
        )
    except ImportError:
        raise UsageError("Iceberg tables need pyiceberg: pip install 'mlslo[lake]'") from None
    catalog = _iceberg_catalog(location)
    try:
        table = catalog.load_table(str(location.table))
    except NoSuchTableError:
        names = sorted(
            ".".join(ident)
            for namespace in catalog.list_namespaces()
            for ident in catalog.list_tables(namespace)
        )
        raise no_table(location, str(location.table), names) from None
    except Exception as exc:
        raise DataError(
            f"cannot load the Iceberg table: {first_line(exc)}", source=location.shown
        ) from None
    snapshot = location.options.get("snapshot")
    if snapshot is not None and table.snapshot_by_id(int(snapshot)) is None:
        known = ", ".join(str(s.snapshot_id) for s in table.snapshots()) or "none"
        raise DataError(f"has no snapshot {snapshot} (snapshots: {known})", source=location.shown)
    condition: BooleanExpression = AlwaysTrue()
    zoned = _timestamp_zoned(table.schema(), rows.column) if rows is not None else None
    if rows is not None and zoned is not None:
        low, high = (_iso(moment, zoned=zoned) for moment in (rows.start, rows.end))
        # pyiceberg's predicates take (term, literal); its pydantic models hide that from mypy
        condition = Or(
            IsNull(rows.column),  # type: ignore[call-arg]
            And(
                GreaterThanOrEqual(rows.column, low),  # type: ignore[call-arg]
                LessThan(rows.column, high),  # type: ignore[call-arg]
            ),
        )
    try:
        scan = table.scan(
            row_filter=condition, snapshot_id=int(snapshot) if snapshot is not None else None
        )
        return scan.to_arrow()
    except Exception as exc:
        raise DataError(
            f"cannot read the Iceberg table: {first_line(exc)}", source=location.shown
        ) from None


def _iceberg_catalog(location: Location) -> Any:
    """A SQLite catalog file (``iceberg:///lake/catalog.db``), or a catalog configured by
    name in ``~/.pyiceberg.yaml`` or ``PYICEBERG_CATALOG__<NAME>__*`` (``iceberg://prod``)."""
    from pyiceberg.catalog import load_catalog

    target = location.target
    try:
        if "/" in target or target.endswith((".db", ".sqlite")):
            path = Path(target).expanduser()
            if not path.is_file():
                raise DataError("no such Iceberg catalog file", source=location.shown)
            from pyiceberg.catalog.sql import SqlCatalog

            name = location.options.get("catalog") or _only_catalog(location, path)
            return SqlCatalog(name, uri=f"sqlite:///{path.resolve()}")
        return load_catalog(target)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"cannot open the Iceberg catalog: {first_line(exc)}", source=location.shown
        ) from None


def _only_catalog(location: Location, path: Path) -> str:
    """The catalog a SQLite catalog file holds (a file may hold several: then ?catalog=)."""
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT DISTINCT catalog_name FROM iceberg_tables").fetchall()
    except sqlite3.Error:
        raise DataError("is not an Iceberg SQL catalog", source=location.shown) from None
    finally:
        con.close()
    names = sorted(str(row[0]) for row in rows)
    if len(names) != 1:
        listed = ", ".join(names) or "none"
        raise DataError(
            f"holds {len(names)} catalogs ({listed}); name one with ?catalog=",
            source=location.shown,
        )
    return names[0]


def _timestamp_zoned(schema: Any, column: str) -> bool | None:
    """Whether ``column`` is a timestamp with a zone, without one, or (None) not one."""
    from pyiceberg.types import TimestampType, TimestamptzType

    try:
        kind = schema.find_field(column).field_type
    except ValueError:
        return None
    if isinstance(kind, TimestamptzType):
        return True
    return False if isinstance(kind, TimestampType) else None


def _iso(moment: datetime, *, zoned: bool) -> str:
    utc = moment.astimezone(UTC)
    return utc.isoformat() if zoned else utc.replace(tzinfo=None).isoformat()
