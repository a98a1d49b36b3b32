"""Scanning record files into a rollup: the compiled SQL on DuckDB (cached per spec and
schema), or the ibis expressions on another engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlslo.inputs.files import VIEWS, connect_duckdb, connect_raw, open_table, open_views
from mlslo.scan.compiled import Views, cache_key, load, set_window, store
from mlslo.spec import Spec
from mlslo.stats.rollup import Rollup


@dataclass(frozen=True)
class Sources:
    """Where the records are: predictions, and optionally labels and outcome counts."""

    predictions: str
    labels: str | None = None
    outcomes: str | None = None
    dedupe: bool = False


def scan_files(
    spec: Spec,
    sources: Sources,
    *,
    start: datetime,
    end: datetime,
    con: Any | None = None,
    slice_columns: Sequence[str] = (),
) -> Rollup:
    """Scan the records between ``start`` and ``end`` into a rollup.

    ``con`` is an ibis backend; without one (or with an ibis DuckDB backend) the scan runs as
    compiled SQL on DuckDB, cached per spec and schema (:mod:`mlslo.scan.compiled`).
    """
    if con is None or getattr(con, "name", None) == "duckdb":
        raw = con.con if con is not None else connect_raw()
        return _scan_compiled(spec, sources, raw, start, end, slice_columns)
    from mlslo.scan.queries import scan

    return scan(
        spec,
        open_table(con, sources.predictions, role="predictions"),
        start=start,
        end=end,
        labels=open_table(con, sources.labels, role="labels") if sources.labels else None,
        outcomes=(open_table(con, sources.outcomes, role="outcomes") if sources.outcomes else None),
        slice_columns=slice_columns,
        source=sources.predictions,
        labels_source=sources.labels or "labels",
        outcomes_source=sources.outcomes or "outcomes",
        dedupe=sources.dedupe,
    )


def _scan_compiled(
    spec: Spec,
    sources: Sources,
    raw: Any,
    start: datetime,
    end: datetime,
    slice_columns: Sequence[str],
) -> Rollup:
    """Run the scan's SQL from the cache, compiling it (with ibis, loaded only then) on a
    miss; when a record fails a value check, name it."""
    locations = {
        role: location
        for role, location in (
            ("predictions", sources.predictions),
            ("labels", sources.labels),
            ("outcomes", sources.outcomes),
        )
        if location
    }
    views = Views(
        {role: VIEWS[role] for role in locations}, locations, slice_columns, sources.dedupe
    )
    schemas = open_views(raw, locations)
    key = cache_key(
        spec.model_dump_json(), schemas, slices=list(slice_columns), dedupe=sources.dedupe
    )
    compiled = load(key)
    if compiled is None:
        from mlslo.scan.queries import compile_scan

        set_window(raw, start, end)
        compiled, cacheable = compile_scan(spec, connect_duckdb(raw), views)
        if cacheable:
            store(key, compiled)
    rollup = compiled.run(raw, start, end, source=sources.predictions)
    if rollup is not None:
        return rollup
    from mlslo.scan.queries import name_failure

    raise name_failure(spec, connect_duckdb(raw), views)
