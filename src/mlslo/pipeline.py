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

from mlslo.errors import UsageError
from mlslo.evaluate import Evaluation, evaluate, scan_range
from mlslo.policy import CANDIDATE_DIMENSIONS, CandidateCheck, GateDecision, gate
from mlslo.rollup import Rollup
from mlslo.scan import scan
from mlslo.sources import connect_duckdb, open_table
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
    """Scan the records between ``start`` and ``end`` into a rollup."""
    con = con if con is not None else connect_duckdb()
    predictions = open_table(con, sources.predictions, role="predictions")
    labels = open_table(con, sources.labels, role="labels") if sources.labels else None
    outcomes = open_table(con, sources.outcomes, role="outcomes") if sources.outcomes else None
    return scan(
        spec,
        predictions,
        start=start,
        end=end,
        labels=labels,
        outcomes=outcomes,
        slice_columns=slice_columns,
        source=sources.predictions,
        labels_source=sources.labels or "labels",
        outcomes_source=sources.outcomes or "outcomes",
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
