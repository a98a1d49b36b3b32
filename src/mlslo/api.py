"""Evaluating and gating from record files: scan once, then the same evaluation and gate the
service runs over its store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mlslo.decide.gate import CandidateCheck, GateDecision, gate
from mlslo.measure.candidate import candidate_check
from mlslo.measure.evaluate import Evaluation, evaluate
from mlslo.measure.windows import scan_range
from mlslo.scan.files import Sources, scan_files
from mlslo.spec import Spec


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
