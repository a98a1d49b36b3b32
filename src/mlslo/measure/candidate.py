"""A candidate model's own predictions judged beside the current ones: the accuracy and
fairness SLOs evaluated on the candidate's slices and on the others. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mlslo.errors import UsageError
from mlslo.measure.evaluate import Evaluation, evaluate
from mlslo.spec import Spec
from mlslo.stats.rollup import Rollup

CANDIDATE_DIMENSIONS = ("accuracy", "fairness")
Selector = tuple[str, str]
"""An attribute and its value that pick the candidate's predictions: ``("model_version",
"v2")``."""


@dataclass(frozen=True)
class CandidateCheck:
    """A candidate's accuracy and fairness SLOs evaluated on its own (shadow or canary)
    predictions, beside the same SLOs on the current version's predictions."""

    selector: tuple[str, object]
    candidate: Evaluation
    current: Evaluation

    @property
    def scope(self) -> str:
        return f"candidate {self.selector[0]}={self.selector[1]}"


def parse_selector(text: str) -> Selector:
    """``model_version=v2`` -> ("model_version", "v2")."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip() or "=" in value:
        raise UsageError(
            f"'{text}' is not ATTRIBUTE=VALUE; e.g. model_version=v2", parameter="candidate"
        )
    return key.strip(), value.strip()


def candidate_check(spec: Spec, rollup: Rollup, at: datetime, selector: Selector) -> CandidateCheck:
    """Evaluate accuracy and fairness SLOs on the candidate's slices and on the others."""
    key, raw_value = selector
    if key not in rollup.slice_columns:
        raise UsageError(
            f"the records are not sliced by '{key}'; a candidate is picked by an attribute "
            f"the rollups keep ({', '.join(rollup.slice_columns) or 'none'})",
            parameter="candidate",
        )
    column = rollup.table[key]
    values = [v for v in pc.unique(column).to_pylist() if v is not None]
    value: Any = raw_value
    try:
        if pa.types.is_integer(column.type):
            value = int(raw_value)
        elif pa.types.is_floating(column.type):
            value = float(raw_value)
        elif pa.types.is_boolean(column.type):
            value = raw_value.lower() in ("1", "true", "yes")
    except ValueError:
        value = raw_value
    if value not in values:
        seen = ", ".join(str(v) for v in values) or "none"
        raise UsageError(
            f"no predictions with {key}={raw_value} in the window (values seen: {seen})",
            parameter="candidate",
        )
    names = [s.name for s in spec.slos if s.dimension in CANDIDATE_DIMENSIONS]
    if not names:
        raise UsageError(
            "a candidate is judged by its accuracy and fairness SLOs, and the spec has none",
            parameter="candidate",
        )
    others = [v for v in values if v != value]
    candidate = evaluate(spec, rollup, at, where={key: [value]}, slos=names)
    current = evaluate(spec, rollup, at, where={key: others}, slos=names)
    return CandidateCheck((key, value), candidate, current)
