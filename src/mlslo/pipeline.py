"""From files on disk to an evaluation: open the sources, scan once, evaluate.

This module does the I/O; the formulas live in :mod:`mlslo.sli`, :mod:`mlslo.budget` and
:mod:`mlslo.evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mlslo.evaluate import Evaluation, evaluate, scan_range
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
