"""Reading the records that reached a source since a moment, as Arrow tables, for a service
that pulls from a source instead of being sent records.

Predictions and outcome counts are selected by their own ``ts``, labels by theirs (when the
label arrived), in ``[since, until)``. Files, DuckDB, Delta and Iceberg tables are filtered
by the embedded DuckDB; a database (PostgreSQL, ...) filters the rows itself and sends back
only those.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from mlslo.errors import DataError, first_line
from mlslo.inputs.databases import connect_database, open_database_table
from mlslo.inputs.files import connect_raw, create_view
from mlslo.inputs.frames import name_of
from mlslo.inputs.locations import parse_location
from mlslo.scan.files import Sources
from mlslo.spec import Spec

ROLES = ("predictions", "labels", "outcomes")


@dataclass(frozen=True)
class Pulled:
    """The records of each kind read from the sources (None: the kind has no source)."""

    predictions: pa.Table
    labels: pa.Table | None
    outcomes: pa.Table | None

    @property
    def rows(self) -> dict[str, int]:
        tables = {"predictions": self.predictions, "labels": self.labels}
        tables["outcomes"] = self.outcomes
        return {kind: 0 if t is None else t.num_rows for kind, t in tables.items()}


def sources_fingerprint(sources: Sources) -> str:
    """What a stored watermark is a watermark of: the sources' locations."""
    text = json.dumps([sources.predictions, sources.labels, sources.outcomes])
    return hashlib.sha256(text.encode()).hexdigest()


def read_since(spec: Spec, sources: Sources, since: datetime, until: datetime) -> Pulled:
    """The records of every source with their time column in ``[since, until)``."""
    columns = {
        "predictions": spec.columns.ts,
        "labels": spec.label_columns.ts,
        "outcomes": spec.outcome_columns.ts,
    }
    tables: dict[str, pa.Table | None] = {}
    for role in ROLES:
        location = getattr(sources, role)
        if location is None:
            tables[role] = None
            continue
        if not isinstance(location, str):
            raise DataError("a pull reads sources by their location", source=name_of(location))
        tables[role] = _read(location, role, columns[role], since, until)
    predictions = tables["predictions"]
    assert predictions is not None
    return Pulled(predictions, tables["labels"], tables["outcomes"])


def _read(location: str, role: str, column: str, since: datetime, until: datetime) -> pa.Table:
    parsed = parse_location(location, role=role)
    if parsed.kind == "file" or parsed.embedded:
        return _read_embedded(location, role, column, since, until)
    return _read_database(parsed, column, since, until)


def _read_embedded(
    location: str, role: str, column: str, since: datetime, until: datetime
) -> pa.Table:
    con = connect_raw()
    try:
        view = f"mlslo_pull_{role}"
        described = create_view(con, view, location, role=role)
        names = {name for name, _ in described}
        if column not in names:
            raise DataError(
                f"has no column '{column}' to read the new records by", source=name_of(location)
            )
        moment = f"TRY_CAST({_quote(column)} AS TIMESTAMPTZ)"
        sql = f"SELECT * FROM {view} WHERE {moment} >= ? AND {moment} < ?"
        try:
            table: pa.Table = con.sql(sql, params=[since, until]).to_arrow_table()
        except Exception as exc:
            raise DataError(
                f"cannot read the new records: {first_line(exc)}", source=name_of(location)
            ) from None
        return table
    finally:
        con.close()


def _read_database(location: Any, column: str, since: datetime, until: datetime) -> pa.Table:
    import ibis

    con = connect_database(location)
    try:
        table = open_database_table(con, location)
        if column not in table.columns:
            raise DataError(
                f"has no column '{column}' to read the new records by", source=location.shown
            )
        moment = table[column].cast("timestamp('UTC')")
        low, high = ibis.literal(since), ibis.literal(until)
        try:
            result: pa.Table = table.filter((moment >= low) & (moment < high)).to_pyarrow()
        except Exception as exc:
            raise DataError(
                f"cannot read the new records: {first_line(exc)}", source=location.shown
            ) from None
        return result
    finally:
        con.disconnect()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
