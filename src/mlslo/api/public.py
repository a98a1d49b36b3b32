"""The Python API: load a spec, evaluate records (files or tables in memory), gate a
deployment. The same scan and the same ``evaluate``/``gate`` compositions as the CLI, so a
result's ``to_dict()`` is what ``mlslo evaluate --format json`` prints for the same data."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

from mlslo.api import read_sources
from mlslo.api.results import EvaluationResult, GateResult, _Basis
from mlslo.decide.gate import gate as gate_rollup
from mlslo.errors import UsageError
from mlslo.inputs.frames import ArrowStreamExportable, as_location
from mlslo.measure.candidate import Selector, parse_selector
from mlslo.measure.evaluate import evaluate as evaluate_rollup
from mlslo.moments import parse_duration, parse_moment
from mlslo.scan.files import Sources
from mlslo.spec import Spec, spec_from_dict
from mlslo.spec import load_spec as load_spec_file

Records: TypeAlias = str | os.PathLike[str] | ArrowStreamExportable
"""Records: a file, glob or folder (Parquet, CSV, NDJSON/JSON, Arrow), a pandas or Polars
DataFrame, a pyarrow Table or RecordBatchReader, a DuckDB relation, or any object with
``__arrow_c_stream__``."""


def load_spec(source: str | os.PathLike[str] | Mapping[str, Any]) -> Spec:
    """A validated spec from a YAML (or JSON) file, or from a mapping shaped like one.

    Raises :class:`~mlslo.errors.SpecError` naming the file, line, YAML path and fix."""
    if isinstance(source, Mapping):
        return spec_from_dict(source)
    if isinstance(source, str | os.PathLike):
        return load_spec_file(Path(source))
    raise UsageError(
        f"expected a path or a mapping, found {type(source).__name__}", parameter="source"
    )


def evaluate(
    spec: Spec | str | os.PathLike[str],
    predictions: Records,
    *,
    labels: Records | None = None,
    outcomes: Records | None = None,
    at: datetime | str | None = None,
    series: timedelta | str | None = None,
    dedupe: bool = False,
    allow_unmatched_labels: bool = False,
) -> EvaluationResult:
    """Evaluate every SLO of ``spec`` at ``at`` (default: now) from the records given.

    ``series`` (a step such as ``"1d"``) adds the SLI per step and the budget burn-down
    across each window; ``dedupe`` counts a repeated prediction id once;
    ``allow_unmatched_labels`` accepts labels none of whose ids is a prediction's."""
    loaded = _spec(spec)
    moment = _moment(at)
    step = _step(series)
    sources = Sources(
        as_location(predictions, role="predictions"),
        None if labels is None else as_location(labels, role="labels"),
        None if outcomes is None else as_location(outcomes, role="outcomes"),
        dedupe,
        allow_unmatched_labels,
    )
    rollup, unavailable = read_sources(loaded, sources, moment, series_step=step)
    evaluation = evaluate_rollup(loaded, rollup, moment, series_step=step, unavailable=unavailable)
    return EvaluationResult(evaluation, _Basis(loaded, sources, rollup))


def gate(
    spec: Spec | str | os.PathLike[str],
    result: EvaluationResult,
    *,
    policy: str | None = None,
    candidate: str | Mapping[str, str] | None = None,
) -> GateResult:
    """Allow, warn or block a deployment on the budgets of ``result``, by ``policy`` (default:
    the spec's default or only policy), at the moment ``result`` was evaluated.

    ``candidate`` (``"model_version=v2"`` or ``{"model_version": "v2"}``) also checks that
    version's own accuracy and fairness budgets. A candidate, or a spec other than the one
    evaluated, re-reads the same records; otherwise the evaluation's rollups are reused."""
    loaded = _spec(spec)
    if not isinstance(result, EvaluationResult):
        raise UsageError(
            f"expected the result of mlslo.evaluate, found {type(result).__name__}",
            parameter="result",
        )
    basis = result._basis
    selector = _selector(candidate)
    at = result.evaluated_at
    if selector is None and loaded == basis.spec:
        run = gate_rollup(loaded, basis.rollup, at, policy=policy, evaluation=result._evaluation)
        return GateResult(run.decision, result, None)
    slices = [selector[0]] if selector else []
    rollup, unavailable = read_sources(loaded, basis.sources, at, slice_columns=slices)
    evaluation = evaluate_rollup(loaded, rollup, at, unavailable=unavailable)
    run = gate_rollup(loaded, rollup, at, policy=policy, candidate=selector, evaluation=evaluation)
    evaluated = EvaluationResult(run.evaluation, _Basis(loaded, basis.sources, rollup))
    return GateResult(run.decision, evaluated, run.candidate)


def _spec(spec: Spec | str | os.PathLike[str]) -> Spec:
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, str | os.PathLike):
        return load_spec_file(Path(spec))
    raise UsageError(
        f"expected a Spec or the path of a spec file, found {type(spec).__name__}",
        parameter="spec",
    )


def _moment(at: datetime | str | None) -> datetime:
    if isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise UsageError(
                f"{at.isoformat()} has no time zone; pass an aware datetime "
                "(datetime(..., tzinfo=UTC)) or an ISO-8601 string",
                parameter="at",
            )
        at = at.isoformat()
    if at is not None and not isinstance(at, str):
        raise UsageError(
            f"expected a datetime or an ISO-8601 string, found {type(at).__name__}",
            parameter="at",
        )
    try:
        return parse_moment(at, lambda: datetime.now(UTC))
    except ValueError as exc:
        raise UsageError(str(exc), parameter="at") from None


def _step(series: timedelta | str | None) -> timedelta | None:
    if series is None or isinstance(series, timedelta):
        if series is not None and series <= timedelta(0):
            raise UsageError("the step must be longer than zero", parameter="series")
        return series
    if not isinstance(series, str):
        raise UsageError(
            f"expected a duration such as '1d', found {type(series).__name__}",
            parameter="series",
        )
    try:
        return parse_duration(series)
    except ValueError as exc:
        raise UsageError(str(exc), parameter="series") from None


def _selector(candidate: str | Mapping[str, str] | None) -> Selector | None:
    if candidate is None:
        return None
    if isinstance(candidate, str):
        return parse_selector(candidate)
    if isinstance(candidate, Mapping) and len(candidate) == 1:
        key, value = next(iter(candidate.items()))
        return parse_selector(f"{key}={value}")
    raise UsageError(
        "name one attribute and its value, e.g. 'model_version=v2' or {'model_version': 'v2'}",
        parameter="candidate",
    )
