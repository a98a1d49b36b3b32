"""From files on disk to an evaluation: open the sources, scan once, evaluate.

This module does the I/O; the formulas live in :mod:`mlslo.sli`, :mod:`mlslo.budget` and
:mod:`mlslo.evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mlslo.compiled import cache_key, load, set_window, store
from mlslo.errors import UsageError
from mlslo.evaluate import Evaluation, evaluate, scan_range
from mlslo.policy import CANDIDATE_DIMENSIONS, CandidateCheck, GateDecision, gate
from mlslo.rollup import Rollup
from mlslo.sources import VIEWS, connect_duckdb, connect_raw, open_table, open_views
from mlslo.spec import Spec


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
    compiled SQL on DuckDB, cached per spec and schema (:mod:`mlslo.compiled`).
    """
    if con is None or getattr(con, "name", None) == "duckdb":
        raw = con.con if con is not None else connect_raw()
        return _scan_compiled(spec, sources, raw, start, end, slice_columns)
    from mlslo.scan import scan

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
    tables = {role: VIEWS[role] for role in locations}
    schemas = open_views(raw, locations)
    key = cache_key(
        spec.model_dump_json(), schemas, slices=list(slice_columns), dedupe=sources.dedupe
    )
    compiled = load(key)
    if compiled is None:
        from mlslo.scan import compile_scan

        set_window(raw, start, end)
        compiled, cacheable = compile_scan(
            spec,
            connect_duckdb(raw),
            tables,
            slice_columns=slice_columns,
            sources=locations,
            dedupe=sources.dedupe,
        )
        if cacheable:
            store(key, compiled)
    rollup = compiled.run(raw, start, end, source=sources.predictions)
    if rollup is not None:
        return rollup
    from mlslo.scan import name_failure

    raise name_failure(
        spec,
        connect_duckdb(raw),
        tables,
        slice_columns=slice_columns,
        sources=locations,
        dedupe=sources.dedupe,
    )


def evaluate_files(
    spec: Spec,
    sources: Sources,
    at: datetime,
    *,
    series_step: timedelta | None = None,
    con: Any | None = None,
    where: Mapping[str, Sequence[Any]] | None = None,
) -> Evaluation:
    """Evaluate every SLO of ``spec`` at ``at`` from the records in ``sources``."""
    start, end = scan_range(spec, at)
    rollup = scan_files(
        spec, sources, start=start, end=end, con=con, slice_columns=list(where or {})
    )
    return evaluate(spec, rollup, at, series_step=series_step, where=where)


@dataclass(frozen=True)
class GateRun:
    evaluation: Evaluation
    decision: GateDecision
    candidate: CandidateCheck | None


def parse_selector(text: str) -> tuple[str, str]:
    """``model_version=v2`` -> ("model_version", "v2")."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise UsageError(f"--candidate: '{text}' is not KEY=VALUE; e.g. model_version=v2")
    return key.strip(), value.strip()


def candidate_check(
    spec: Spec, rollup: Rollup, at: datetime, selector: tuple[str, str]
) -> CandidateCheck:
    """Evaluate accuracy and fairness SLOs on the candidate's slices and on the others."""
    key, raw_value = selector
    column = rollup.table[key]
    values = [v for v in pc.unique(column).to_pylist() if v is not None]
    value: Any = raw_value
    if pa.types.is_integer(column.type):
        value = int(raw_value)
    elif pa.types.is_floating(column.type):
        value = float(raw_value)
    elif pa.types.is_boolean(column.type):
        value = raw_value.lower() in ("1", "true", "yes")
    if value not in values:
        seen = ", ".join(str(v) for v in values) or "none"
        raise UsageError(
            f"--candidate: no predictions with {key}={raw_value} in the window "
            f"(values seen: {seen})"
        )
    names = [s.name for s in spec.slos if s.dimension in CANDIDATE_DIMENSIONS]
    if not names:
        raise UsageError("--candidate checks accuracy and fairness SLOs, and the spec has none")
    others = [v for v in values if v != value]
    candidate = evaluate(spec, rollup, at, where={key: [value]}, slos=names)
    current = evaluate(spec, rollup, at, where={key: others}, slos=names)
    return CandidateCheck((key, value), candidate, current)


def gate_files(
    spec: Spec,
    sources: Sources,
    at: datetime,
    *,
    policy: str | None = None,
    candidate: tuple[str, str] | None = None,
    con: Any | None = None,
) -> GateRun:
    """Evaluate from files and decide; with a candidate, also check its own predictions."""
    start, end = scan_range(spec, at)
    slices = [candidate[0]] if candidate else []
    rollup = scan_files(spec, sources, start=start, end=end, con=con, slice_columns=slices)
    evaluation = evaluate(spec, rollup, at)
    check = candidate_check(spec, rollup, at, candidate) if candidate else None
    decision = gate(spec, evaluation, policy=policy, candidate=check)
    return GateRun(evaluation, decision, check)
