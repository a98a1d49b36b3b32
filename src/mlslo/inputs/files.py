"""Opening record files (Parquet, CSV, NDJSON/JSON, Arrow IPC): a file, a glob or a folder.

On DuckDB the sources become views (:func:`open_views` with fixed names, which the compiled
scan reads; :func:`open_table` for the ibis scan); on other engines they are opened through
ibis (:func:`open_table`). Either way the scan runs where the data is and the log is never
materialised in Python, and timestamps of every unit read as microseconds.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mlslo.errors import DataError, UsageError, first_line
from mlslo.inputs.frames import InMemory, Records, name_of
from mlslo.inputs.lakes import RowFilter, table_source
from mlslo.inputs.locations import Location, parse_location

FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".ndjson": "json",
    ".jsonl": "json",
    ".json": "json",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
}


def connect_duckdb(raw: Any | None = None) -> Any:
    """An ibis DuckDB backend on ``raw`` (a :func:`connect_raw` connection, by default a
    new one), for the portable scan."""
    import ibis

    return ibis.duckdb.from_connection(raw if raw is not None else connect_raw())


def format_of(path: str) -> str | None:
    name = path.lower()
    for compression in (".gz", ".zst"):
        name = name.removesuffix(compression)
    return FORMATS.get(os.path.splitext(name)[1])


def resolve(location: str, *, role: str) -> tuple[str, list[str]]:
    """The format and the files behind a path, a glob or a folder (searched recursively)."""
    if any(ch in location for ch in "*?["):
        files = sorted(glob.glob(location, recursive=True))
    elif Path(location).is_dir():
        files = sorted(
            str(p)
            for p in Path(location).rglob("*")
            if p.is_file() and format_of(p.name) is not None
        )
    elif Path(location).exists():
        files = [location]
    else:
        raise DataError(
            f"no such file or folder; pass the {role} as a file, a glob such as "
            "'logs/*.parquet', or a folder",
            source=location,
        )
    if not files:
        raise DataError(
            f"no {role} files found (expected .parquet, .csv, .ndjson/.jsonl, .json or .arrow)",
            source=location,
        )
    formats = {format_of(f) for f in files}
    if None in formats:
        unknown = next(f for f in files if format_of(f) is None)
        raise DataError(
            "unknown file type; use .parquet, .csv, .ndjson/.jsonl, .json or "
            ".arrow (optionally .gz)",
            source=unknown,
        )
    if len(formats) > 1:
        raise DataError(
            f"mixes formats ({', '.join(sorted(str(f) for f in formats))}); keep "
            f"one format per {role} source",
            source=location,
        )
    return str(formats.pop()), files


def open_table(con: Any, location: Records, *, role: str = "predictions") -> Any:
    """An ibis table over the records at ``location`` (not read until the scan runs).

    On DuckDB it is a view made as :func:`open_views` makes them; on another engine (Spark)
    timestamps of any unit or zone become zoned microsecond timestamps, as DuckDB sees them.
    """
    if getattr(con, "name", "duckdb") == "duckdb":
        view = f"{VIEWS.get(role, 'mlslo_' + role)}_{next(_opened)}"
        create_view(con.con, view, location, role=role)
        return flatten_attributes(con.table(view))
    import ibis

    if isinstance(location, InMemory):
        raise UsageError(
            f"{location.name} is a table in memory, which the scan reads on DuckDB only; "
            f"write it to Parquet to scan it on {getattr(con, 'name', 'another engine')}",
            parameter="engine",
        )
    parsed = parse_location(location, role=role)
    if parsed.kind != "file":
        raise DataError(
            "tables are scanned by the embedded DuckDB or by their own database, not on "
            f"{getattr(con, 'name', 'this engine')}",
            source=parsed.shown,
        )
    kind, files = resolve(parsed.target, role=role)
    try:
        if kind == "parquet":
            table = _spark_parquet(con, files)
        elif kind == "csv":
            table = con.read_csv(_one_or_many(files))
        elif kind == "json":
            table = con.read_json(_one_or_many(files))
        else:
            arrow = _microseconds(_read_arrow(files))
            table = con.create_view(f"mlslo_{role}", ibis.memtable(arrow), overwrite=True)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"cannot be read as {kind}: {first_line(exc)}", source=name_of(location)
        ) from None
    return flatten_attributes(_zoned(table))


_opened = itertools.count()


def _spark_parquet(con: Any, files: Sequence[str]) -> Any:
    """Parquet on Spark, which cannot read nanosecond timestamps: those are read as the
    integers they are stored as, and floored to the microsecond."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(files[0])
    nanos = [f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"]
    if nanos:
        con._session.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    table = con.read_parquet(_one_or_many(files))
    if not nanos:
        return table
    return table.mutate(**{name: _from_nanos(table[name]) for name in nanos})


def _from_nanos(value: Any) -> Any:
    import ibis
    import ibis.expr.datatypes as dt

    def timestamp_micros(micros: int) -> Any:
        """Compiled to Spark's function; never called in Python."""

    to_timestamp = ibis.udf.scalar.builtin(
        timestamp_micros,
        name="timestamp_micros",
        signature=((dt.int64,), dt.Timestamp(timezone="UTC")),
    )
    micros = (value.cast(dt.Decimal(38, 0)) / 1000).floor().cast("int64")
    return to_timestamp(micros)


def _zoned(table: Any) -> Any:
    """Timestamps without a zone are UTC: made zoned, so every engine treats them alike."""
    import ibis.expr.datatypes as dt

    schema = table.schema()
    naive = [
        name for name, dtype in schema.items() if dtype.is_timestamp() and dtype.timezone is None
    ]
    if not naive:
        return table
    return table.mutate(**{name: table[name].cast(dt.Timestamp(timezone="UTC")) for name in naive})


def _microseconds(table: pa.Table) -> pa.Table:
    """Every timestamp column as microseconds in UTC (nanoseconds floored)."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            column = floor_to_micros(column)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def floor_to_micros(column: pa.ChunkedArray | pa.Array) -> Any:
    """A timestamp column of any unit as ``timestamp[us, tz=UTC]`` (a column without a zone
    is UTC). Nanoseconds are floored, never rounded: a record just before a window's end
    stays in the window."""
    kind = column.type
    zoned = column if kind.tz else column.cast(pa.timestamp(kind.unit, tz="UTC"))
    if kind.unit == "ns":
        zoned = pc.floor_temporal(zoned, unit="microsecond")
    return zoned.cast(pa.timestamp("us", tz="UTC"))


def connect_raw(threads: int | None = None) -> Any:
    """A plain DuckDB connection set up as ibis sets up its own (UTC, no replacement scans)."""
    import duckdb

    config: dict[str, Any] = {"threads": threads} if threads is not None else {}
    con = duckdb.connect(":memory:", config=config)
    for setting in ("SET TimeZone = 'UTC'", "SET python_enable_replacements = false"):
        con.execute(setting)
    if con.execute("SELECT current_setting('enable_progress_bar')").fetchall()[0][0]:
        # In Jupyter the bar is off already, and setting it fails without ipywidgets.
        con.execute("SET enable_progress_bar = false")
    return con


VIEWS = {"predictions": "mlslo_predictions", "labels": "mlslo_labels", "outcomes": "mlslo_outcomes"}


def open_views(
    con: Any, locations: dict[str, Records], *, rows: RowFilter | None = None
) -> dict[str, list[tuple[str, str]]]:
    """Views named ``mlslo_<role>`` over the records at each location, on a DuckDB
    connection; returns each view's columns as (name, DuckDB type). ``rows`` says which
    predictions a table format that filters while reading (Iceberg) may leave out."""
    return {
        role: create_view(
            con, VIEWS[role], location, role=role, rows=rows if role == "predictions" else None
        )
        for role, location in locations.items()
    }


def create_view(
    con: Any, view: str, location: Records, *, role: str, rows: RowFilter | None = None
) -> list[tuple[str, str]]:
    """A view named ``view`` over the records at ``location`` (files, a table, or a table in
    memory registered with the connection), on a DuckDB connection; its columns as (name,
    DuckDB type).

    Categorical columns become text. Timestamps in seconds, milliseconds or nanoseconds
    (``TIMESTAMP_S``, ``TIMESTAMP_MS``, ``TIMESTAMP_NS``, ``TIMESTAMPTZ_NS``: Spark, pandas
    and many Arrow writers make them) become DuckDB's microsecond ``TIMESTAMP`` /
    ``TIMESTAMPTZ``, which the scan reads;
    nanoseconds are floored to the microsecond, as the service does. The columns returned
    are the view's after that, which is all the compiled scan depends on.
    """
    files: list[str] = []
    if isinstance(location, InMemory):
        kind = "a table"
    else:
        parsed = parse_location(location, role=role)
        if parsed.kind != "file":
            return _table_view(con, view, parsed, rows)
        kind, files = resolve(parsed.target, role=role)
    try:
        if isinstance(location, InMemory):
            con.register(f"{view}_arrow", location.table)
            source = f"{view}_arrow"
        elif kind == "arrow":
            con.register(f"{view}_arrow", _read_arrow(files))
            source = f"{view}_arrow"
        else:
            reader = {
                "parquet": "read_parquet({})",
                "csv": "read_csv({}, header = true, auto_detect = true)",
                "json": "read_json_auto({})",
            }[kind]
            source = reader.format(_sql_list(files))
        return _view_over(con, view, source)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"cannot be read as {kind}: {first_line(exc)}", source=name_of(location)
        ) from None


def _table_view(
    con: Any, view: str, location: Location, rows: RowFilter | None
) -> list[tuple[str, str]]:
    """A view over a DuckDB, Delta or Iceberg table."""
    if not location.embedded:
        raise DataError(
            "is a database the scan runs in; every source of one evaluation must then be in "
            "that database",
            source=location.shown,
        )
    source = table_source(con, view, location, rows=rows)
    try:
        return _view_over(con, view, source)
    except Exception as exc:
        raise DataError(
            f"cannot be read as a {location.kind} table: {first_line(exc)}",
            source=location.shown,
        ) from None


def _view_over(con: Any, view: str, source: str) -> list[tuple[str, str]]:
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {source}")
    described = con.execute(f"DESCRIBE {view}").fetchall()
    casts = [cast for cast in (_plain_type(str(r[0]), str(r[1])) for r in described) if cast]
    if casts:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {view} AS "
            f"SELECT * REPLACE ({', '.join(casts)}) FROM {source}"
        )
        described = con.execute(f"DESCRIBE {view}").fetchall()
    return [(str(row[0]), str(row[1])) for row in described]


_UNIT_TYPE = re.compile(r"TIMESTAMP(TZ)?_(S|MS|NS)( WITH TIME ZONE)?")


def _plain_type(name: str, sql_type: str) -> str | None:
    """``CAST(...) AS "name"`` for a column the scan reads in another type: a timestamp in
    another unit than microseconds, or an ``ENUM`` (a pandas or Polars categorical, an Arrow
    dictionary), read as its text."""
    if sql_type.upper().startswith("ENUM("):
        column = '"' + name.replace('"', '""') + '"'
        return f"CAST({column} AS VARCHAR) AS {column}"
    return _to_micros(name, sql_type)


def _to_micros(name: str, sql_type: str) -> str | None:
    """``CAST(...) AS "name"`` for a timestamp column in another unit than microseconds."""
    match = _UNIT_TYPE.fullmatch(sql_type.upper())
    if match is None:
        return None
    column = '"' + name.replace('"', '""') + '"'
    target = "TIMESTAMPTZ" if match.group(1) or match.group(3) else "TIMESTAMP"
    if match.group(2) == "NS":
        nanos = f"epoch_ns({column})"
        floored = f"make_timestamp(({nanos} - (({nanos} % 1000) + 1000) % 1000) // 1000)"
        return f"CAST({floored} AS {target}) AS {column}"
    return f"CAST({column} AS {target}) AS {column}"


def _sql_list(files: Sequence[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def flatten_attributes(table: Any) -> Any:
    """Records may nest attributes under ``attributes``; lift them to columns."""
    schema = table.schema()
    if "attributes" in schema and schema["attributes"].is_struct():
        return table.unpack("attributes")
    return table


def _one_or_many(files: Sequence[str]) -> str | list[str]:
    return files[0] if len(files) == 1 else list(files)


def _read_arrow(files: Sequence[str]) -> pa.Table:
    import pyarrow.feather as feather
    import pyarrow.ipc as ipc

    tables = []
    for file in files:
        try:
            tables.append(feather.read_table(file))
        except pa.ArrowInvalid:
            with pa.OSFile(file) as stream:
                tables.append(ipc.open_stream(stream).read_all())
    return pa.concat_tables(tables, promote_options="permissive")
