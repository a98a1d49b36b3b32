"""Scanning records into a rollup: files and lake tables with the compiled SQL on DuckDB
(cached per spec and schema), or the ibis expressions on another engine; tables in a database
(PostgreSQL, Trino, ...) with the ibis expressions run by that database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow.compute as pc

from mlslo.errors import DataError, UsageError
from mlslo.inputs.databases import connect_database, open_database_table
from mlslo.inputs.files import (
    VIEWS,
    connect_duckdb,
    connect_raw,
    flatten_attributes,
    open_table,
    open_views,
)
from mlslo.inputs.frames import Records, name_of
from mlslo.inputs.lakes import RowFilter
from mlslo.inputs.locations import Location, parse_location
from mlslo.scan.compiled import (
    Views,
    cache_key,
    edge_offsets,
    fuses,
    load,
    set_window,
    store,
)
from mlslo.spec import AccuracySLO, FairnessSLO, Spec
from mlslo.stats.rollup import Rollup, stat_column


@dataclass(frozen=True)
class Sources:
    """Where the records are: predictions, and optionally labels and outcome counts, each a
    file, glob, folder or table URL, or a table in memory
    (:class:`~mlslo.inputs.frames.InMemory`).

    ``allow_unmatched_labels`` lets a labels source none of whose ids is a prediction's
    through (its SLOs then lack labels); otherwise that is an error.
    """

    predictions: Records
    labels: Records | None = None
    outcomes: Records | None = None
    dedupe: bool = False
    allow_unmatched_labels: bool = False


def scan_files(
    spec: Spec,
    sources: Sources,
    *,
    start: datetime,
    end: datetime,
    con: Any | None = None,
    slice_columns: Sequence[str] = (),
    histogram_edges: Sequence[int] | None = None,
    count_edges: Sequence[int] | None = None,
    histogram_slices: Sequence[str] = (),
) -> Rollup:
    """Scan the records between ``start`` and ``end`` into a rollup.

    ``con`` is an ibis backend; without one (or with an ibis DuckDB backend) the scan runs as
    compiled SQL on DuckDB, cached per spec and schema (:mod:`mlslo.scan.compiled`). Sources
    in a database (PostgreSQL, Trino, ...) are scanned by that database.
    ``histogram_edges`` (ascending bucket indexes, from
    :func:`mlslo.measure.windows.histogram_edges`) sums the percentile SLOs' histograms
    between them instead of per bucket: much faster, and exact for every window that starts
    and ends on an edge. ``count_edges`` (from :func:`mlslo.measure.windows.count_edges`)
    does the same for every other statistic, keeping each SLO's last event bucket.
    ``histogram_slices`` also keeps the percentiles' histograms per value of these columns
    (attribution of a percentile SLO).
    """
    reach = _Reach(start, end, slice_columns, histogram_edges, count_edges, histogram_slices)
    locations = {
        role: parse_location(given, role=role)
        for role, given in _given(sources).items()
        if isinstance(given, str)
    }
    if any(not location.embedded for location in locations.values()):
        if con is not None and getattr(con, "name", None) != "duckdb":
            raise UsageError(
                "a database source is scanned by its database; use the default engine",
                parameter="engine",
            )
        return _scan_database(spec, sources, locations, reach)
    if con is None or getattr(con, "name", None) == "duckdb":
        raw = con.con if con is not None else connect_raw()
        try:
            rollup = _scan_compiled(spec, sources, raw, reach)
            if _check_labels(spec, sources, rollup):
                ibis_con = connect_duckdb(raw)
                predictions = flatten_attributes(ibis_con.table(VIEWS["predictions"]))
                labels = flatten_attributes(ibis_con.table(VIEWS["labels"]))
                _refuse_unmatched(spec, sources, predictions, labels, start, end)
            return rollup
        finally:
            if con is None:  # ours: close it, so no source file stays attached
                raw.close()
    tables = {role: open_table(con, text, role=role) for role, text in _given(sources).items()}
    return _scan_tables(spec, sources, tables, reach)


@dataclass(frozen=True)
class _Reach:
    """What one scan reads and keeps: the records with ``start <= ts < end``, grouped by
    these slices, summed between these edges (None: per bucket)."""

    start: datetime
    end: datetime
    slice_columns: Sequence[str] = ()
    histogram_edges: Sequence[int] | None = None
    count_edges: Sequence[int] | None = None
    histogram_slices: Sequence[str] = ()


def _given(sources: Sources) -> dict[str, Records]:
    return {
        role: text
        for role, text in (
            ("predictions", sources.predictions),
            ("labels", sources.labels),
            ("outcomes", sources.outcomes),
        )
        if text
    }


def _scan_database(
    spec: Spec,
    sources: Sources,
    locations: dict[str, Location],
    reach: _Reach,
) -> Rollup:
    """The scan run by the database the predictions are in; the other sources must be
    tables of the same database (a join cannot cross engines)."""
    home = locations["predictions"]
    for role, location in locations.items():
        if location.database_key() != home.database_key():
            raise DataError(
                f"the {role} must be in the same database as the predictions "
                f"({home.shown}), where the scan runs",
                source=location.shown,
            )
    con = connect_database(home)
    try:
        tables = {
            role: flatten_attributes(open_database_table(con, location))
            for role, location in locations.items()
        }
        return _scan_tables(spec, sources, tables, reach)
    finally:
        disconnect = getattr(con, "disconnect", None)
        if disconnect is not None:
            disconnect()


def _scan_tables(
    spec: Spec,
    sources: Sources,
    tables: dict[str, Any],
    reach: _Reach,
) -> Rollup:
    """The ibis scan over opened tables, on the engine they belong to."""
    from mlslo.scan.queries import scan

    labels = tables.get("labels")
    rollup = scan(
        spec,
        tables["predictions"],
        start=reach.start,
        end=reach.end,
        labels=labels,
        outcomes=tables.get("outcomes"),
        slice_columns=reach.slice_columns,
        source=name_of(sources.predictions),
        labels_source=name_of(sources.labels) if sources.labels else "labels",
        outcomes_source=name_of(sources.outcomes) if sources.outcomes else "outcomes",
        dedupe=sources.dedupe,
        histogram_edges=reach.histogram_edges,
        count_edges=reach.count_edges,
        histogram_slices=reach.histogram_slices,
    )
    if labels is not None and _check_labels(spec, sources, rollup):
        _refuse_unmatched(spec, sources, tables["predictions"], labels, reach.start, reach.end)
    return rollup


def _check_labels(spec: Spec, sources: Sources, rollup: Rollup) -> bool:
    """Whether labels must be checked against the predictions' ids: a labels source is given,
    and the SLOs that read labels counted predictions but not one labelled (what the scan
    already counted; when its statistics do not say, check)."""
    if sources.labels is None or sources.allow_unmatched_labels:
        return False
    columns = set(rollup.table.column_names)

    def total(slo: str, stat: str) -> float | None:
        name = stat_column(slo, stat)
        if name not in columns:
            return None
        return float(pc.sum(rollup.table[name]).as_py() or 0.0)

    predictions = labelled = 0.0
    for slo in spec.slos:
        if not (
            isinstance(slo, AccuracySLO) or (isinstance(slo, FairnessSLO) and slo.sli.needs_labels)
        ):
            continue
        count = total(slo.name, "labelled")
        cells = [total(slo.name, stat) for stat in ("tp", "fp", "fn", "tn")]
        if count is None and None in cells:
            return True
        labelled += count if count is not None else sum(c or 0.0 for c in cells)
        predictions += total(slo.name, "predictions") or 0.0
    return predictions > 0 and labelled == 0


def _refuse_unmatched(
    spec: Spec,
    sources: Sources,
    predictions: Any,
    labels: Any,
    start: datetime,
    end: datetime,
) -> None:
    from mlslo.scan.prepare import unmatched_labels

    error = unmatched_labels(
        spec,
        predictions,
        labels,
        start=start,
        end=end,
        source=name_of(sources.labels) if sources.labels else "labels",
    )
    if error is not None:
        raise error


def _scan_compiled(
    spec: Spec,
    sources: Sources,
    raw: Any,
    reach: _Reach,
) -> Rollup:
    """Run the scan's SQL from the cache, compiling it (with ibis, loaded only then) on a
    miss; when a record fails a value check, name it."""
    locations = _given(sources)
    start, end = reach.start, reach.end
    histogram_edges, count_edges = reach.histogram_edges, reach.count_edges
    offsets = edge_offsets(histogram_edges)[1] if histogram_edges else None
    counted = edge_offsets(count_edges)[1] if count_edges else None
    views = Views(
        {role: VIEWS[role] for role in locations},
        {role: name_of(location) for role, location in locations.items()},
        reach.slice_columns,
        sources.dedupe,
        offsets,
        counted,
        tuple(reach.histogram_slices),
        fuses(histogram_edges, count_edges),
    )
    rows = None if sources.dedupe else RowFilter(spec.columns.ts, start, end)
    schemas = open_views(raw, locations, rows=rows)
    key = cache_key(
        spec.model_dump_json(),
        schemas,
        slices=list(reach.slice_columns),
        dedupe=sources.dedupe,
        histogram_offsets=offsets,
        count_offsets=counted,
        histogram_slices=list(reach.histogram_slices),
        fuse=views.fuse,
    )
    compiled = load(key)
    if compiled is None:
        from mlslo.scan.queries import compile_scan

        set_window(raw, start, end)
        compiled, cacheable = compile_scan(spec, connect_duckdb(raw), views)
        if cacheable:
            store(key, compiled)
    rollup = compiled.run(
        raw,
        start,
        end,
        source=name_of(sources.predictions),
        histogram_edges=histogram_edges,
        count_edges=count_edges,
    )
    if rollup is not None:
        return rollup
    from mlslo.scan.queries import name_failure

    raise name_failure(spec, connect_duckdb(raw), views)
