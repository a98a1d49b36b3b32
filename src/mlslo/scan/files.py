"""Scanning record files into a rollup: the compiled SQL on DuckDB (cached per spec and
schema), or the ibis expressions on another engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow.compute as pc

from mlslo.inputs.files import (
    VIEWS,
    connect_duckdb,
    connect_raw,
    flatten_attributes,
    open_table,
    open_views,
)
from mlslo.scan.compiled import Views, cache_key, edge_offsets, load, set_window, store
from mlslo.spec import AccuracySLO, FairnessSLO, Spec
from mlslo.stats.rollup import Rollup, stat_column


@dataclass(frozen=True)
class Sources:
    """Where the records are: predictions, and optionally labels and outcome counts.

    ``allow_unmatched_labels`` lets a labels source none of whose ids is a prediction's
    through (its SLOs then lack labels); otherwise that is an error.
    """

    predictions: str
    labels: str | None = None
    outcomes: str | None = None
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
) -> Rollup:
    """Scan the records between ``start`` and ``end`` into a rollup.

    ``con`` is an ibis backend; without one (or with an ibis DuckDB backend) the scan runs as
    compiled SQL on DuckDB, cached per spec and schema (:mod:`mlslo.scan.compiled`).
    ``histogram_edges`` (ascending bucket indexes, from
    :func:`mlslo.measure.windows.histogram_edges`) sums the percentile SLOs' histograms
    between them instead of per bucket: much faster, and exact for every window that starts
    and ends on an edge.
    """
    if con is None or getattr(con, "name", None) == "duckdb":
        raw = con.con if con is not None else connect_raw()
        rollup = _scan_compiled(spec, sources, raw, start, end, slice_columns, histogram_edges)
        if _check_labels(spec, sources, rollup):
            ibis_con = connect_duckdb(raw)
            predictions = flatten_attributes(ibis_con.table(VIEWS["predictions"]))
            labels = flatten_attributes(ibis_con.table(VIEWS["labels"]))
            _refuse_unmatched(spec, sources, predictions, labels, start, end)
        return rollup
    from mlslo.scan.queries import scan

    predictions = open_table(con, sources.predictions, role="predictions")
    labels = open_table(con, sources.labels, role="labels") if sources.labels else None
    rollup = scan(
        spec,
        predictions,
        start=start,
        end=end,
        labels=labels,
        outcomes=(open_table(con, sources.outcomes, role="outcomes") if sources.outcomes else None),
        slice_columns=slice_columns,
        source=sources.predictions,
        labels_source=sources.labels or "labels",
        outcomes_source=sources.outcomes or "outcomes",
        dedupe=sources.dedupe,
        histogram_edges=histogram_edges,
    )
    if labels is not None and _check_labels(spec, sources, rollup):
        _refuse_unmatched(spec, sources, predictions, labels, start, end)
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
        spec, predictions, labels, start=start, end=end, source=sources.labels or "labels"
    )
    if error is not None:
        raise error


def _scan_compiled(
    spec: Spec,
    sources: Sources,
    raw: Any,
    start: datetime,
    end: datetime,
    slice_columns: Sequence[str],
    histogram_edges: Sequence[int] | None,
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
    offsets = edge_offsets(histogram_edges)[1] if histogram_edges else None
    views = Views(
        {role: VIEWS[role] for role in locations},
        locations,
        slice_columns,
        sources.dedupe,
        offsets,
    )
    schemas = open_views(raw, locations)
    key = cache_key(
        spec.model_dump_json(),
        schemas,
        slices=list(slice_columns),
        dedupe=sources.dedupe,
        histogram_offsets=offsets,
    )
    compiled = load(key)
    if compiled is None:
        from mlslo.scan.queries import compile_scan

        set_window(raw, start, end)
        compiled, cacheable = compile_scan(spec, connect_duckdb(raw), views)
        if cacheable:
            store(key, compiled)
    rollup = compiled.run(
        raw, start, end, source=sources.predictions, histogram_edges=histogram_edges
    )
    if rollup is not None:
        return rollup
    from mlslo.scan.queries import name_failure

    raise name_failure(spec, connect_duckdb(raw), views)
