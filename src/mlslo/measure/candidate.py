"""A candidate model's own predictions judged beside the current ones: the accuracy and
fairness SLOs evaluated on the candidate's slices and on the others. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mlslo.decide.gate import CANDIDATE_DIMENSIONS, CandidateCheck
from mlslo.errors import UsageError
from mlslo.measure.evaluate import evaluate
from mlslo.spec import Spec
from mlslo.stats.rollup import Rollup


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
