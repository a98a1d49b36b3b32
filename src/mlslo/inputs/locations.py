"""Where records live, as people write it: a file, glob or folder, or a URL naming a table.

``duckdb:///data/log.db?table=predictions``, ``delta:///lake/predictions?version=3``,
``iceberg:///lake/catalog.db?table=ml.predictions&snapshot=…``,
``postgres://mlslo@db.internal:5432/ml?table=predictions`` and any other ibis backend's URL
(``trino://``, ``snowflake://``, ``bigquery://``, ``clickhouse://``) with ``?table=``.

Files, DuckDB databases, Delta and Iceberg tables are read by the embedded DuckDB; a database
URL is scanned by that database, where only the rollups leave it. A password is never part of
a URL (it would end up in shell history, logs and specs): it comes from the environment or a
file (:func:`password_for`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from mlslo.errors import DataError

EMBEDDED = ("file", "duckdb", "delta", "iceberg")
"""Kinds the embedded DuckDB reads; every other scheme is a database that runs the scan."""

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_ALIASES = {"postgresql": "postgres", "pg": "postgres"}
_OWN_OPTIONS = {"table", "schema", "version", "snapshot", "catalog", "password_file"}


@dataclass(frozen=True)
class Location:
    """A parsed source: its ``kind`` (``file``, ``duckdb``, ``delta``, ``iceberg``,
    ``postgres`` or another ibis backend's scheme), the path or URL without mlslo's own
    options, the table and its options (``version``, ``snapshot``, ``schema``, ...)."""

    text: str
    kind: str
    target: str
    table: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        """Whether the embedded DuckDB reads it (else the database itself runs the scan)."""
        return self.kind in EMBEDDED

    @property
    def shown(self) -> str:
        """The location as messages show it (a URL never carries a password)."""
        return self.text

    def database_key(self) -> tuple[str, str]:
        """The database a table lives in: two sources with the same key can be joined."""
        return (self.kind, self.target)


def parse_location(text: str, *, role: str) -> Location:
    """Parse ``--data``/``--labels``/``--outcomes``: a path, glob or folder, or a URL."""
    match = _SCHEME.match(text)
    if match is None:
        return Location(text, "file", text)
    scheme = match.group(1).lower()
    kind = _ALIASES.get(scheme, scheme)
    if kind == "file":
        return Location(text, "file", unquote(text[len(match.group(0)) :]))
    parts = urlsplit(text)
    if parts.password is not None or any(
        key.lower() == "password" for key, _ in parse_qsl(parts.query, keep_blank_values=True)
    ):
        raise DataError(
            "a password in the URL is refused (it would show in shell history, logs and "
            f"specs); set it in MLSLO_{_env_name(kind)}_PASSWORD, or pass password_file=<path>",
            source=masked(text),
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    table = query.get("table") or None
    options = {k: v for k, v in query.items() if k in _OWN_OPTIONS and k != "table"}
    rest = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _OWN_OPTIONS
    ]
    if kind in ("duckdb", "delta", "iceberg"):
        path = unquote(text[len(match.group(0)) :].split("?", 1)[0])
        if not path:
            raise DataError(f"names no path; write {kind}:///absolute/path", source=text)
        location = Location(text, kind, path, table, options)
    else:
        query_text = "&".join(f"{quote(k)}={quote(v)}" for k, v in rest)
        target = urlunsplit((kind, parts.netloc, parts.path, query_text, ""))
        location = Location(text, kind, target, table, options)
    _check_table(location, role)
    _check_options(location)
    return location


def _check_table(location: Location, role: str) -> None:
    if location.kind in ("duckdb", "iceberg") or not location.embedded:
        if location.table is None:
            example = "ml.predictions" if location.kind == "iceberg" else role
            raise DataError(
                f"names no table; add ?table=<name>, e.g. ?table={example}",
                source=location.shown,
            )
    elif location.table is not None and location.kind == "delta":
        raise DataError(
            "a Delta table is its folder; drop ?table= and name the folder", source=location.shown
        )


def _check_options(location: Location) -> None:
    allowed = {
        "duckdb": {"schema"},
        "delta": {"version"},
        "iceberg": {"snapshot", "catalog"},
    }.get(location.kind, {"schema", "password_file"})
    for name, value in location.options.items():
        if name not in allowed:
            raise DataError(
                f"'{name}=' does not apply to {location.kind} sources (they take "
                f"{', '.join(sorted(allowed)) or 'no options'})",
                source=location.shown,
            )
        if name in ("version", "snapshot") and not value.isdigit():
            raise DataError(
                f"'{name}={value}' is not a number; write e.g. ?{name}=3", source=location.shown
            )


def masked(text: str) -> str:
    """The URL with any password (in its user part or as ``password=``) replaced by ``***``."""
    parts = urlsplit(text)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        netloc = f"{user}:***@{host}{port}"
    query = "&".join(
        f"{key}=***" if key.lower() == "password" else f"{key}={quote(value)}"
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _env_name(kind: str) -> str:
    return "PG" if kind == "postgres" else re.sub(r"[^A-Z0-9]", "_", kind.upper())


def password_variable(kind: str) -> str:
    """The environment variable mlslo reads a database's password from."""
    return f"MLSLO_{_env_name(kind)}_PASSWORD"


def password_for(location: Location, environ: Mapping[str, str] | None = None) -> str | None:
    """The database password: the ``password_file=`` (first line), else
    ``MLSLO_<DB>_PASSWORD`` (``MLSLO_PG_PASSWORD`` for PostgreSQL); None leaves it to the
    driver (for PostgreSQL, ``PGPASSWORD`` or ``~/.pgpass``)."""
    env = os.environ if environ is None else environ
    file = location.options.get("password_file")
    if file:
        try:
            lines = Path(file).expanduser().read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise DataError(
                f"cannot read the password_file: {exc.strerror or exc}", source=location.shown
            ) from None
        return lines[0] if lines else ""
    return env.get(password_variable(location.kind)) or None
