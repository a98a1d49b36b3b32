"""The scan compiled to DuckDB SQL: running it, and keeping it on disk between runs.

:func:`mlslo.scan.queries.compile_scan` turns the spec's ibis expressions into SQL over views with
fixed names, with the window's bounds read from DuckDB variables. The SQL then depends only on
the spec and the columns of the sources, so it is cached per (spec, schema): a repeated
``mlslo evaluate`` runs the same SQL without importing ibis or compiling anything.
This module does no ibis work: it runs SQL and shapes the rows into a :class:`Rollup`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlslo.errors import DataError, first_line
from mlslo.stats.fused import split_binned
from mlslo.stats.rollup import (
    Rollup,
    all_valid,
    deduplicated,
    histogram_tables,
    outcome_rollup,
    split_histograms,
    stat_table,
)

CACHE_FORMAT = 8
CACHE_ENTRIES = 256

# The DuckDB variables that hold the window's bounds, for timestamp columns with a zone and
# without one (compared like with like, the engine skips row groups outside the window).
START, END = "mlslo_start", "mlslo_end"
# The DuckDB variable holding the last edge of the histograms' spans (a bucket index).
HISTOGRAM_END = "mlslo_histogram_end"
# The same for the edges the other statistics are summed between.
COUNT_END = "mlslo_count_end"


def edge_offsets(edges: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """Ascending edges as the last one and each edge's distance before it (ascending, the
    first 0): the distances depend on the spec's windows, not on the moment evaluated."""
    end = edges[-1]
    return end, tuple(end - e for e in reversed(edges))


def fuses(histogram_edges: Sequence[int] | None, count_edges: Sequence[int] | None) -> bool:
    """Whether the histograms' spans are the counts' (a percentile's histogram may then come
    from the counts' query)."""
    return bool(histogram_edges) and tuple(histogram_edges or ()) == tuple(count_edges or ())


def bound_variable(name: str, *, zoned: bool) -> str:
    return f"{name}_tz" if zoned else name


@dataclass(frozen=True)
class Views:
    """Sources opened as DuckDB views: each role's view name (``predictions``, ``labels``,
    ``outcomes``), where each came from (for messages), extra slice columns, whether a
    repeated prediction id counts once, the distances of the histograms' edges before the
    last one (None: histograms per bucket) and of the other statistics' edges, the
    columns the percentiles' histograms are also sliced by, and whether both sets of edges
    are the same (the percentiles' histograms may then come from the counts' query)."""

    tables: Mapping[str, str]
    locations: Mapping[str, str]
    slice_columns: Sequence[str] = ()
    dedupe: bool = False
    histogram_offsets: tuple[int, ...] | None = None
    count_offsets: tuple[int, ...] | None = None
    histogram_slices: Sequence[str] = ()
    fuse: bool = False


@dataclass(frozen=True)
class CompiledScan:
    """SQL for one spec over one set of source columns.

    ``sql`` groups the records by bucket x slice; ``names`` maps each statistic column to the
    alias that computes it; the ``x`` column counts rows failing a value check (a record with
    no valid timestamp lands in the null bucket). ``histograms`` are (SQL, percentile SLOs);
    ``outcome_sql`` groups outcome counts by bucket. With ``histogram_offsets`` the histograms
    are summed between edges at those distances before the one :meth:`run` is given;
    with ``count_offsets``, the statistics of ``sql`` and ``outcome_sql`` likewise.
    ``binned`` names the percentile SLOs whose histograms ``sql`` reads too
    (:mod:`mlslo.scan.coded`).
    """

    bucket_seconds: int
    slices: tuple[str, ...]
    sql: str
    names: Mapping[str, str]
    histograms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    outcome_sql: str | None = None
    outcome_names: Mapping[str, str] | None = None
    repeated_sql: str | None = None
    histogram_offsets: tuple[int, ...] | None = None
    count_offsets: tuple[int, ...] | None = None
    binned: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"format": CACHE_FORMAT, **asdict(self)})

    @classmethod
    def from_json(cls, text: str) -> CompiledScan:
        data = json.loads(text)
        if data.pop("format", None) != CACHE_FORMAT:
            raise ValueError("another cache format")
        return cls(
            bucket_seconds=int(data["bucket_seconds"]),
            slices=tuple(data["slices"]),
            sql=str(data["sql"]),
            names=dict(data["names"]),
            histograms=tuple((str(sql), tuple(names)) for sql, names in data["histograms"]),
            outcome_sql=data["outcome_sql"],
            outcome_names=data["outcome_names"],
            repeated_sql=data["repeated_sql"],
            histogram_offsets=_offsets(data["histogram_offsets"]),
            count_offsets=_offsets(data["count_offsets"]),
            binned=tuple(str(name) for name in data["binned"]),
        )

    def run(
        self,
        con: Any,
        start: datetime,
        end: datetime,
        *,
        source: str,
        histogram_edges: Sequence[int] | None = None,
        count_edges: Sequence[int] | None = None,
    ) -> Rollup | None:
        """The rollup of the records in [start, end), or None when a record fails a value
        check (the caller then names the first offending row). ``histogram_edges`` and
        ``count_edges`` are the edges the SQL was compiled for (:attr:`histogram_offsets`,
        :attr:`count_offsets`), placed in time."""
        edges = _place(con, HISTOGRAM_END, self.histogram_offsets, histogram_edges)
        counted = _place(con, COUNT_END, self.count_offsets, count_edges)
        if self.binned and edges != counted:
            raise ValueError("histograms read with the counts need the counts' edges")
        set_window(con, start, end)
        try:
            rows = rows_of(con, self.sql)
            tables: dict[str, pa.Table] = {}
            if self.binned:
                rows, tables = split_binned(rows, self.binned)
            if not all_valid(rows):
                return None
            for sql, names in self.histograms:
                tables.update(histogram_tables(rows_of(con, sql), names))
            histograms, sliced = split_histograms(tables)
            outcome_rows = rows_of(con, self.outcome_sql) if self.outcome_sql else None
            repeated = rows_of(con, self.repeated_sql) if self.repeated_sql else None
        except Exception as exc:
            raise DataError(f"the scan failed: {first_line(exc)}", source=source) from None
        rollup = Rollup(
            self.bucket_seconds,
            self.slices,
            stat_table(rows, self.names),
            histograms,
            histogram_edges=edges if histograms else None,
            sliced_histograms=sliced,
            count_edges=counted,
        )
        if repeated is not None:
            rollup = deduplicated(rollup, repeated)
        if outcome_rows is None or self.outcome_names is None:
            return rollup
        if not all_valid(outcome_rows):
            return None
        return rollup.merge(
            outcome_rollup(
                stat_table(outcome_rows, self.outcome_names),
                self.bucket_seconds,
                self.slices,
                counted,
            )
        )


def _offsets(kept: Any) -> tuple[int, ...] | None:
    return None if kept is None else tuple(int(o) for o in kept)


def _place(
    con: Any, variable: str, offsets: tuple[int, ...] | None, edges: Sequence[int] | None
) -> tuple[int, ...] | None:
    """Set the last edge where the SQL compiled for ``offsets`` reads it."""
    if offsets is None:
        return None
    if not edges or edge_offsets(edges)[1] != offsets:
        raise ValueError("the edges differ from those the scan was compiled for")
    con.execute(f"SET VARIABLE {variable} = {int(edges[-1])}")
    return tuple(edges)


def rows_of(con: Any, sql: str) -> pa.Table:
    table: pa.Table = con.sql(sql).to_arrow_table()
    return table


def set_window(con: Any, start: datetime, end: datetime) -> None:
    """Put the window's bounds where the compiled SQL reads them."""
    for name, moment in ((START, start), (END, end)):
        utc = moment.astimezone(UTC)
        zoned = utc.isoformat()
        naive = utc.replace(tzinfo=None).isoformat()
        con.execute(f"SET VARIABLE {bound_variable(name, zoned=True)} = TIMESTAMPTZ '{zoned}'")
        con.execute(f"SET VARIABLE {bound_variable(name, zoned=False)} = TIMESTAMP '{naive}'")


# --- the cache --------------------------------------------------------------------------------


def cache_dir() -> Path | None:
    """Where compiled scans are kept: ``$MLSLO_CACHE_DIR``, else the user cache folder;
    None when ``MLSLO_CACHE_DIR`` is ``off``."""
    configured = os.environ.get("MLSLO_CACHE_DIR")
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "false") else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlslo"


def cache_key(
    spec_json: str, schemas: Mapping[str, Sequence[tuple[str, str]]], **extra: Any
) -> str:
    """A digest of everything the SQL depends on: the spec, the sources' columns, the options,
    mlslo's code, and the installed DuckDB, ibis and sqlglot (found, not imported)."""
    import duckdb

    from mlslo.version import __version__

    digest = hashlib.sha256()
    for module in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(module.read_bytes())
    libraries = {"duckdb": duckdb.__version__}
    for name in ("ibis", "sqlglot"):
        found = importlib.util.find_spec(name)
        if found is not None and found.origin:
            installed = os.stat(found.origin)
            libraries[name] = f"{found.origin}:{installed.st_size}:{installed.st_mtime_ns}"
    document = {
        "format": CACHE_FORMAT,
        "mlslo": __version__,
        "libraries": libraries,
        "spec": spec_json,
        "schemas": {role: [list(c) for c in columns] for role, columns in schemas.items()},
        **extra,
    }
    digest.update(json.dumps(document, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def load(key: str) -> CompiledScan | None:
    folder = cache_dir()
    if folder is None:
        return None
    try:
        return CompiledScan.from_json((folder / "scans" / f"{key}.json").read_text("utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(key: str, compiled: CompiledScan) -> None:
    """Keep ``compiled`` for the next run (atomically; a cache that cannot be written is
    skipped, and the oldest entries go beyond CACHE_ENTRIES)."""
    folder = cache_dir()
    if folder is None:
        return
    scans = folder / "scans"
    try:
        scans.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=scans, suffix=".tmp", delete=False
        ) as handle:
            handle.write(compiled.to_json())
        os.replace(handle.name, scans / f"{key}.json")
        entries = sorted(scans.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-CACHE_ENTRIES]:
            old.unlink(missing_ok=True)
    except OSError:
        return
