"""Evaluating and gating from record files: one scan, then the same evaluation and gate the
service runs over its store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mlslo.decide.alerts import checks
from mlslo.decide.gate import GateRun, gate
from mlslo.errors import UsageError
from mlslo.measure.attribution import Attribution, attribute
from mlslo.measure.attribution_checks import check_by, slo_named
from mlslo.measure.candidate import Selector
from mlslo.measure.evaluate import Evaluation, evaluate
from mlslo.measure.windows import (
    bucket_floor,
    bucket_start,
    count_edges,
    histogram_edges,
    scan_range,
    series_step,
)
from mlslo.render.documents import alerts_json, evaluation_json, gate_json
from mlslo.scan.files import Sources, scan_files
from mlslo.scan.incremental import ScanRun, State, load_state, scan_incremental
from mlslo.scan.prometheus import read_prometheus
from mlslo.spec import HOUR, Spec, is_percentile
from mlslo.stats.rollup import Rollup, empty_rollup, merge_all


def read_sources(
    spec: Spec,
    sources: Sources | None,
    at: datetime,
    *,
    con: Any | None = None,
    slice_columns: Sequence[str] = (),
    series_step: timedelta | None = None,
) -> tuple[Rollup, dict[str, str]]:
    """The rollup an evaluation at ``at`` (with a series of ``series_step``) reads: the record
    files scanned for the SLOs read from records, and Prometheus queried for the others; and
    the SLOs whose source had nothing to say (no series), with the reason."""
    start, end = scan_range(spec, at)
    records = spec.records_only()
    parts = []
    if records.slos:
        if sources is None:
            names = ", ".join(slo.name for slo in records.slos)
            which = f"SLOs {names} read" if len(records.slos) > 1 else f"SLO {names} reads"
            raise UsageError(
                f"the {which} prediction records: give the records (or source: "
                "{predictions: ...} in the spec)",
                parameter="data",
            )
        parts.append(
            scan_files(
                records,
                sources,
                start=start,
                end=end,
                con=con,
                slice_columns=slice_columns,
                histogram_edges=histogram_edges(spec, at, series_step),
                count_edges=(
                    count_edges(spec, at, series_step)
                    if records is spec and not slice_columns
                    else None
                ),
            )
        )
    reading = read_prometheus(spec, start, end, slice_columns=slice_columns)
    if reading.rollup is not None:
        parts.append(reading.rollup)
    if not parts:
        parts.append(empty_rollup(int(spec.bucket.total_seconds()), slice_columns))
    return merge_all(parts), dict(reading.unavailable)


def evaluate_files(
    spec: Spec,
    sources: Sources | None,
    at: datetime,
    *,
    series_step: timedelta | None = None,
    con: Any | None = None,
) -> Evaluation:
    """Evaluate every SLO of ``spec`` at ``at`` from the records in ``sources`` (None: every
    SLO reads Prometheus)."""
    rollup, unavailable = read_sources(spec, sources, at, con=con, series_step=series_step)
    return evaluate(spec, rollup, at, series_step=series_step, unavailable=unavailable)


def explain_files(
    spec: Spec,
    sources: Sources,
    at: datetime,
    slo: str,
    by: list[str],
    *,
    step: timedelta | None = None,
    con: Any | None = None,
) -> Attribution:
    """Where the budget of ``slo`` went: its slices by ``by`` and its burning periods."""
    chosen = slo_named(spec, slo)
    columns = check_by(spec, None, by)
    start, end = scan_range(spec, at)
    sliced = [c for c in columns if c != HOUR] if is_percentile(chosen) else []
    rollup = scan_files(spec, sources, start=start, end=end, con=con, histogram_slices=sliced)
    return attribute(spec, rollup, at, slo, by, step=step)


def gate_files(
    spec: Spec,
    sources: Sources | None,
    at: datetime,
    *,
    policy: str | None = None,
    candidate: Selector | None = None,
    con: Any | None = None,
) -> GateRun:
    """Decide from files; with a candidate, also check its own predictions."""
    slices = [candidate[0]] if candidate else []
    rollup, unavailable = read_sources(spec, sources, at, con=con, slice_columns=slices)
    evaluation = evaluate(spec, rollup, at, unavailable=unavailable)
    return gate(spec, rollup, at, policy=policy, candidate=candidate, evaluation=evaluation)


def report_files(
    spec: Spec,
    sources: Sources | None,
    at: datetime,
    out: Path,
    *,
    policy: str | None = None,
    con: Any | None = None,
) -> None:
    """Write the SLO review report (``.html``, self-contained, or ``.md``) from files: every
    SLO with its charts, the gate's decision when the spec has a policy, and the alert rules
    that would fire."""
    step = _report_step(spec, out)
    rollup, unavailable = read_sources(spec, sources, at, con=con, series_step=step)
    _write_report(spec, rollup, at, out, step, policy=policy, unavailable=unavailable)


def _report_step(spec: Spec, out: Path) -> timedelta:
    """The series step of a report's charts, after checking it can be written as ``out``."""
    if out.suffix.lower() not in (".html", ".htm", ".md", ".markdown"):
        raise UsageError(f"'{out}' should end in .html or .md", parameter="out")
    return min(series_step(s.window) for s in spec.slos)


def _write_report(
    spec: Spec,
    rollup: Rollup,
    at: datetime,
    out: Path,
    step: timedelta,
    *,
    policy: str | None,
    unavailable: dict[str, str] | None = None,
) -> None:
    from mlslo.render.report import report_html, report_markdown

    evaluation = evaluate(spec, rollup, at, series_step=step, unavailable=unavailable)
    gate_document = None
    if spec.all_policies():
        run = gate(spec, rollup, at, policy=policy, evaluation=evaluation)
        gate_document = gate_json(run.evaluation, run.decision)
    alerts_document = alerts_json(evaluation, checks(spec, evaluation))
    render = report_html if out.suffix.lower() in (".html", ".htm") else report_markdown
    text = render(evaluation_json(evaluation), spec, gate_document, alerts_document)
    out.write_text(text, encoding="utf-8")


def scan_to_state(
    spec: Spec,
    sources: Sources,
    directory: Path,
    at: datetime,
    *,
    lateness: timedelta = timedelta(hours=1),
) -> ScanRun:
    """Bring the rollups stored in ``directory`` up to ``at`` (floored to a whole bucket),
    scanning only what records newer than the last watermark less ``lateness``, and labels
    that arrived since, can change."""
    watermark = bucket_start(bucket_floor(at, int(spec.bucket.total_seconds())), spec.bucket)
    start, end = scan_range(spec, watermark)
    return scan_incremental(spec, sources, directory, start=start, end=end, lateness=lateness)


def stored_state(spec: Spec, directory: Path, at: datetime | None = None) -> State:
    """The rollups stored in ``directory`` by :func:`scan_to_state`, checked to be those of
    ``spec`` and, when ``at`` is given, of that moment (their watermark)."""
    from mlslo.scan.incremental import spec_fingerprint

    state = load_state(directory)
    if at is not None and at != state.watermark:
        raise UsageError(
            f"the stored rollups are as of {state.watermark.isoformat()}; evaluate at that "
            "moment or scan to a later one first",
            parameter="at",
        )
    if state.spec_fingerprint != spec_fingerprint(spec):
        raise UsageError(
            "the stored rollups were scanned with another spec; scan again with this one",
            parameter="spec",
        )
    return state


def evaluate_state(
    spec: Spec,
    directory: Path,
    at: datetime | None = None,
    *,
    series_step: timedelta | None = None,
) -> Evaluation:
    """Evaluate from the rollups stored in ``directory``, at their watermark: the same as
    evaluating the sources at that moment."""
    state = stored_state(spec, directory, at)
    return evaluate(spec, state.rollup, state.watermark, series_step=series_step)


def gate_state(
    spec: Spec, directory: Path, at: datetime | None = None, *, policy: str | None = None
) -> GateRun:
    """Decide from the rollups stored in ``directory``, at their watermark."""
    state = stored_state(spec, directory, at)
    return gate(spec, state.rollup, state.watermark, policy=policy)


def report_state(
    spec: Spec,
    directory: Path,
    out: Path,
    at: datetime | None = None,
    *,
    policy: str | None = None,
) -> None:
    """Write the SLO review report from the rollups stored in ``directory``, at their
    watermark."""
    step = _report_step(spec, out)
    state = stored_state(spec, directory, at)
    _write_report(spec, state.rollup, state.watermark, out, step, policy=policy)
