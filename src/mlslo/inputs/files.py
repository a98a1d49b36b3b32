"""Opening record files (Parquet, CSV, NDJSON/JSON, Arrow IPC): a file, a glob or a folder.

On DuckDB the sources become views with fixed names (:func:`open_views`), which the compiled
scan reads; on other engines they are opened through ibis (:func:`open_table`). Either way the
scan runs where the data is and the log is never materialised in Python.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlslo.errors import DataError, first_line

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


def open_table(con: Any, location: str, *, role: str = "predictions") -> Any:
    """An ibis table over the records at ``location`` (not read until the scan runs)."""
    import ibis

    kind, files = resolve(location, role=role)
    try:
        if kind == "parquet":
            table = con.read_parquet(_one_or_many(files))
        elif kind == "csv":
            table = con.read_csv(_one_or_many(files))
        elif kind == "json":
            table = con.read_json(_one_or_many(files))
        else:
            table = ibis.memtable(_read_arrow(files))
            if getattr(con, "name", "duckdb") != "duckdb":
                table = con.create_table(f"mlslo_{role}", table.to_pyarrow(), overwrite=True)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot be read as {kind}: {first_line(exc)}", source=location) from None
    return flatten_attributes(table)


def connect_raw(threads: int | None = None) -> Any:
    """A plain DuckDB connection set up as ibis sets up its own (UTC, no replacement scans)."""
    import duckdb

    config: dict[str, Any] = {"threads": threads} if threads is not None else {}
    con = duckdb.connect(":memory:", config=config)
    for setting in (
        "SET TimeZone = 'UTC'",
        "SET python_enable_replacements = false",
        "SET enable_progress_bar = false",
    ):
        con.execute(setting)
    return con


VIEWS = {"predictions": "mlslo_predictions", "labels": "mlslo_labels", "outcomes": "mlslo_outcomes"}


def open_views(con: Any, locations: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """Views named ``mlslo_<role>`` over the records at each location, on a DuckDB
    connection; returns each view's columns as (name, DuckDB type)."""
    schemas = {}
    for role, location in locations.items():
        view = VIEWS[role]
        kind, files = resolve(location, role=role)
        try:
            if kind == "arrow":
                con.register(f"{view}_arrow", _read_arrow(files))
                source = f"{view}_arrow"
            else:
                reader = {
                    "parquet": "read_parquet({})",
                    "csv": "read_csv({}, header = true, auto_detect = true)",
                    "json": "read_json_auto({})",
                }[kind]
                source = reader.format(_sql_list(files))
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {source}")
            described = con.execute(f"DESCRIBE {view}").fetchall()
        except DataError:
            raise
        except Exception as exc:
            raise DataError(
                f"cannot be read as {kind}: {first_line(exc)}", source=location
            ) from None
        schemas[role] = [(str(row[0]), str(row[1])) for row in described]
    return schemas


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
