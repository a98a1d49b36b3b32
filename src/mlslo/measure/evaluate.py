"""Evaluate every SLO of a spec from a rollup at a point in time. Pure: no I/O, no clock.

For each SLO: its window (shifted back by the label delay for labelled SLIs), the SLI and its
interval, the budget, burn rates over the scaled SRE windows, time to exhaustion, and
optionally a series of the SLI per step across the window. The end of the last bucket holding
an event says whether the SLO is absent: with no event for longer than its ``absent_after``
its budget is not judged (``no_data``), however healthy the window's old events look.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mlslo.errors import UsageError
from mlslo.measure import budget as budgeting
from mlslo.measure.budget import BurnRate
from mlslo.measure.composite import CompositeEvaluation, evaluate_composite
from mlslo.measure.sli import Measurement, measure
from mlslo.measure.windows import (
    bucket_ceil,
    bucket_floor,
    bucket_start,
    burn_windows,
    scan_range,
    slo_bounds,
)
from mlslo.moments import format_duration
from mlslo.spec import AccuracySLO, AnySLO, FairnessSLO, Spec, calibrates, needs_histogram
from mlslo.spec.references import composite_windows, extra_windows
from mlslo.stats.calibration import Calibrations, ScoreBins, fit_versions
from mlslo.stats.confidence import wilson
from mlslo.stats.rollup import Rollup
from mlslo.stats.timeline import Timeline, WindowStats, build_timeline


@dataclass(frozen=True)
class SeriesPoint:
    start: datetime
    end: datetime
    value: float | None
    n: int
    label_coverage: float | None = None


@dataclass(frozen=True)
class SLOEvaluation:
    slo: AnySLO
    start: datetime
    end: datetime
    measurement: Measurement
    met: bool | None
    budget: budgeting.Budget
    burn_rates: tuple[BurnRate, ...]
    time_to_exhaustion: Mapping[str, float | None]
    series: tuple[SeriesPoint, ...] | None = None
    burndown: tuple[tuple[datetime, float | None], ...] | None = None
    last_event: datetime | None = None
    absent: bool = False
    """No event for longer than the SLO's ``absent_after`` (or none in the window at all)."""

    @property
    def name(self) -> str:
        return self.slo.name

    def burn_rate(self, window: timedelta) -> BurnRate | None:
        for rate in self.burn_rates:
            if rate.window == window:
                return rate
        return None


@dataclass(frozen=True)
class Evaluation:
    """Every SLO evaluated at one moment. ``deduplicated`` and ``repeated_ids`` say whether
    a repeated prediction id was counted once and how many repeats were left out (None: not
    checked, as on files without de-duplication)."""

    service: str
    evaluated_at: datetime
    slos: tuple[SLOEvaluation, ...]
    bucket: timedelta = timedelta(minutes=1)
    deduplicated: bool = False
    repeated_ids: int | None = None
    composites: tuple[CompositeEvaluation, ...] = ()

    def get(self, name: str) -> SLOEvaluation:
        for slo in self.slos:
            if slo.name == name:
                return slo
        raise KeyError(name)

    def composite(self, name: str) -> CompositeEvaluation:
        for composite in self.composites:
            if composite.name == name:
                return composite
        raise KeyError(name)


# --- evaluation ------------------------------------------------------------------------------


def timelines_for(
    spec: Spec,
    rollup: Rollup,
    at: datetime,
    *,
    where: Mapping[str, Sequence[Any]] | None = None,
    slos: Sequence[str] | None = None,
) -> dict[str, Timeline]:
    """Each SLO's timeline over the buckets an evaluation at ``at`` reads."""
    start, end = scan_range(spec, at)
    first = bucket_ceil(start, spec.bucket)
    size = max(bucket_ceil(end, spec.bucket) - first, 0)
    return {
        slo.name: build_timeline(
            rollup,
            slo.name,
            first,
            size,
            group_by=slo.sli.attributes if isinstance(slo, FairnessSLO) else (),
            histogram=needs_histogram(slo),
            versioned=calibrates(slo),
            where=where,
        )
        for slo in spec.slos
        if slos is None or slo.name in slos
    }


def evaluate(
    spec: Spec,
    data: Rollup | Mapping[str, Timeline],
    at: datetime,
    *,
    series_step: timedelta | None = None,
    where: Mapping[str, Sequence[Any]] | None = None,
    slos: Sequence[str] | None = None,
    repeated_ids: int | None = None,
    unavailable: Mapping[str, str] | None = None,
) -> Evaluation:
    """Evaluate the SLOs of ``spec`` at ``at`` from a rollup (or from timelines kept current
    by the store, which passes the ``repeated_ids`` it refused).

    ``unavailable`` names the SLOs whose source could not be read, with the reason: their
    budget is ``no_data`` with that reason, never judged from what little arrived.
    ``where`` restricts every SLO to the slices whose attributes take the listed values (used
    by the candidate check); ``slos`` restricts the evaluation to the named SLOs and
    composites (a composite named is evaluated from all its components).
    """
    at = at.astimezone(UTC)
    needed = _needed(spec, slos)
    deduplicated = repeated_ids is not None
    if isinstance(data, Rollup):
        deduplicated = deduplicated or data.deduplicated
        if repeated_ids is None:
            repeated_ids = data.repeated_ids
        timelines = timelines_for(
            spec, data, at, where=where, slos=None if needed is None else sorted(needed)
        )
    else:
        if where:
            raise ValueError("'where' needs a rollup, not prebuilt timelines")
        timelines = dict(data)
    if series_step is not None:
        _check_series(spec, at, series_step)
    results = {}
    for slo in spec.slos:
        if needed is not None and slo.name not in needed:
            continue
        view = _Corrected(timelines[slo.name], _excluded(spec, slo.name, spec.bucket))
        if isinstance(slo, AccuracySLO) and calibrates(slo):
            view.calibration = _calibration(slo, view, bucket_ceil(at, spec.bucket))
        result = _evaluate_slo(spec, slo, view, at, series_step)
        if unavailable and slo.name in unavailable:
            budget = replace(result.budget, status="no_data", reason=unavailable[slo.name])
            result = replace(result, budget=budget, met=None)
        results[slo.name] = result
    composites = tuple(
        evaluate_composite(c, results, composite_windows(spec, c), spec.bucket, spec.budget_low)
        for c in spec.composites
        if slos is None or c.name in slos
    )
    shown = tuple(r for name, r in results.items() if slos is None or name in slos)
    return Evaluation(spec.service, at, shown, spec.bucket, deduplicated, repeated_ids, composites)


def _needed(spec: Spec, slos: Sequence[str] | None) -> set[str] | None:
    """The SLOs to evaluate for the SLOs and composites named (None: all)."""
    if slos is None:
        return None
    out = set(slos)
    for composite in spec.composites:
        if composite.name in out:
            out |= {c.slo for c in composite.components}
    return out


MOST_SERIES_POINTS = 10_000
"""A series is for people and charts: more points than this is a mistake, and costly."""


def _check_series(spec: Spec, at: datetime, step: timedelta) -> None:
    span = max(1, math.ceil(step / spec.bucket)) * spec.bucket
    for slo in spec.slos:
        start, end = slo_bounds(slo, at)
        points = math.ceil((end - start) / span)
        if points > MOST_SERIES_POINTS:
            shortest = math.ceil((end - start) / MOST_SERIES_POINTS / spec.bucket) * spec.bucket
            raise UsageError(
                f"a step of {format_duration(step)} gives {points:,} points across the "
                f"{slo.window} window of {slo.name}; at most {MOST_SERIES_POINTS:,}: use a step "
                f"of at least {format_duration(shortest)}",
                parameter="series",
            )


def _excluded(spec: Spec, name: str, bucket: timedelta) -> list[tuple[int, int]]:
    """Bucket ranges removed by corrections (a correction covers every bucket it touches)."""
    out = []
    for correction in spec.corrections:
        if correction.slos is None or name in correction.slos:
            lo = bucket_floor(correction.start, int(bucket.total_seconds()))
            out.append((lo, bucket_ceil(correction.end, bucket)))
    return out


class _Corrected:
    """A timeline whose windows leave out the corrected periods."""

    def __init__(self, timeline: Timeline, excluded: Sequence[tuple[int, int]]) -> None:
        self.timeline = timeline
        self.excluded = list(excluded)
        self.calibration: Calibrations | None = None

    def window(self, start: int, end: int) -> WindowStats:
        stats = self.timeline.window(start, end, self.excluded)
        return stats if self.calibration is None else replace(stats, calibration=self.calibration)

    def last_active(self, stat: str, start: int, end: int) -> int | None:
        return self.timeline.last_active(stat, start, end, self.excluded)


def _calibration(slo: AccuracySLO, view: _Corrected, end: int) -> Calibrations:
    """The CBPE score calibrations, one per model version, fitted on every labelled record
    of the timeline up to the evaluation (labels that arrive later cannot count)."""
    method = slo.sli.calibration_method
    assert method is not None
    history = view.window(view.timeline.first, end).histogram
    bins = (
        ScoreBins.per_version(history.bins, history.counts, history.versions)
        if history is not None
        else {}
    )
    return fit_versions(bins, method, slo.sli.calibration_min_labels)


def _evaluate_slo(
    spec: Spec, slo: AnySLO, timeline: _Corrected, at: datetime, series_step: timedelta | None
) -> SLOEvaluation:
    bucket = spec.bucket
    start, end = slo_bounds(slo, at)
    a, b = bucket_ceil(start, bucket), bucket_ceil(end, bucket)
    m = _measure_window(slo, timeline, a, b, bucket, full=True)
    if isinstance(slo, AccuracySLO) and slo.sli.estimate and slo.sli.label_delay:
        m = _estimate_recent(slo, timeline, at, bucket, m)
    consumed = _consumed(slo, m)
    sliced = slo.effective_budgeting == "timeslices"
    result_budget = budgeting.budget(
        consumed,
        n=m.n,
        min_samples=1 if sliced else slo.min_samples,
        defined=m.value is not None and not _too_uncertain(slo, m),
        low_share=spec.budget_low,
        has_data=m.label_coverage is not None,
    )
    last_event = _last_event(slo, timeline, a, b, bucket, end)
    limit = slo.absent_after
    absent = limit is not None and (last_event is None or at - last_event > limit)
    if absent and limit is not None and last_event is not None:
        since = last_event.isoformat().replace("+00:00", "Z")
        reason = f"no events since {since} (absent_after {format_duration(limit)})"
        result_budget = replace(result_budget, status="no_data", reason=reason)
    met = None
    if result_budget.status not in ("no_data", "insufficient_data"):
        met = budgeting.is_met(m.value, slo.target, slo.op)
    rates = []
    for window in burn_windows(slo, bucket, extra_windows(spec, slo.name)):
        span = int(window / bucket)
        wm = _measure_window(slo, timeline, b - span, b, bucket)
        rates.append(BurnRate(window, _consumed(slo, wm), wm.n))
    tte = {}
    for name, duration in (("1h", timedelta(hours=1)), ("1d", timedelta(days=1))):
        window = slo.window.scale(duration, bucket)
        rate = next((r.value for r in rates if r.window == window), None)
        tte[name] = budgeting.time_to_exhaustion(result_budget.remaining, rate, slo.window)
    series = None
    if series_step is not None:
        series = _series(slo, timeline, a, b, bucket, series_step, end)
    burndown = None
    if series is not None:
        burndown = _burndown(slo, timeline, a, series, bucket, m.n)
    return SLOEvaluation(
        slo,
        bucket_start(a, bucket),
        min(bucket_start(b, bucket), end),
        m,
        met,
        result_budget,
        tuple(rates),
        tte,
        series,
        burndown,
        last_event,
        absent,
    )


EVENTS = {"availability": "total", "latency": "total", "freshness": "total"}
"""The statistic that counts an SLO's events, per dimension (else ``predictions``)."""


def _last_event(
    slo: AnySLO, timeline: _Corrected, a: int, b: int, bucket: timedelta, end: datetime
) -> datetime | None:
    """The end of the last bucket of the window holding an event of the SLO (at most the
    window's end), from the timeline's prefix sums."""
    last = timeline.last_active(EVENTS.get(slo.dimension, "predictions"), a, b)
    if last is None:
        return None
    return min(bucket_start(last + 1, bucket), end)


def _measure_window(
    slo: AnySLO, timeline: _Corrected, a: int, b: int, bucket: timedelta, *, full: bool = False
) -> Measurement:
    """The SLI over ``[a, b)`` (by timeslices when the SLO budgets so); ``full`` (every
    group's detail) only for the SLO's own window, the one results show in full."""
    if slo.effective_budgeting != "timeslices":
        return measure(slo, timeline.window(a, b), detail=full)
    assert slo.slice is not None and slo.timeslice_target is not None
    span = int(slo.slice / bucket)
    if b - a < span:
        return Measurement(None, 0, reason="the window is shorter than one slice")
    verdicts = []
    for hi in range(b, a + span - 1, -span):
        sliced = measure(slo, timeline.window(hi - span, hi), detail=False)
        if sliced.value is None or sliced.n < slo.min_samples:
            continue
        verdicts.append(bool(budgeting.is_met(sliced.value, slo.timeslice_target, slo.slice_op)))
    good, total = float(sum(verdicts)), float(len(verdicts))
    whole = measure(slo, timeline.window(a, b), detail=False)
    detail = {"window_value": whole.value, "good_slices": int(good), "slices": int(total)}
    if "clock_skew" in whole.detail:
        detail["clock_skew"] = whole.detail["clock_skew"]
    if total == 0:
        return Measurement(
            None,
            0,
            label_coverage=whole.label_coverage,
            detail=detail,
            reason="no slice with enough data in the window",
        )
    return Measurement(
        good / total,
        int(total),
        wilson(good, total),
        good,
        total,
        whole.label_coverage,
        detail=detail,
    )


def _estimate_recent(
    slo: AccuracySLO, timeline: _Corrected, at: datetime, bucket: timedelta, m: Measurement
) -> Measurement:
    """With a label delay, the CBPE estimate covers the predictions younger than the delay:
    the ones the realized value cannot see yet."""
    assert slo.sli.label_delay is not None
    start = at - slo.sli.label_delay
    recent = measure(slo, timeline.window(bucket_ceil(start, bucket), bucket_ceil(at, bucket)))
    estimate = dict(recent.detail.get("estimated", {}))
    estimate.update({"window_start": start, "window_end": at})
    return replace(m, detail={**m.detail, "estimated": estimate})


def _too_uncertain(slo: AnySLO, m: Measurement) -> bool:
    """With ``max_ci_width`` set, an interval wider than it leaves the budget undecided."""
    if slo.max_ci_width is None or m.value is None:
        return False
    return m.ci is None or m.ci[1] - m.ci[0] > slo.max_ci_width


def _consumed(slo: AnySLO, m: Measurement) -> float | None:
    if m.value is None:
        return None
    if slo.effective_budgeting in ("occurrences", "timeslices") and m.valid is not None:
        return budgeting.consumed_occurrences(m.good or 0.0, m.valid, slo.target)
    return budgeting.consumed_aggregate(m.value, slo.target, slo.op)


def _series(
    slo: AnySLO,
    timeline: _Corrected,
    a: int,
    b: int,
    bucket: timedelta,
    step: timedelta,
    window_end: datetime,
) -> tuple[SeriesPoint, ...]:
    span = max(1, math.ceil(step / bucket))
    points = []
    hi = b
    while hi > a:
        lo = max(a, hi - span)
        m = measure(slo, timeline.window(lo, hi), detail=False)
        end = min(bucket_start(hi, bucket), window_end)
        points.append(SeriesPoint(bucket_start(lo, bucket), end, m.value, m.n, m.label_coverage))
        hi = lo
    return tuple(reversed(points))


def _burndown(
    slo: AnySLO,
    timeline: _Corrected,
    a: int,
    points: Sequence[SeriesPoint],
    bucket: timedelta,
    total: int,
) -> tuple[tuple[datetime, float | None], ...]:
    """The budget left as the window fills up: at each step end, 1 - (the budget consumed
    by the samples so far, as a share of the whole window's samples). It ends at the
    window's ``remaining``; spending evenly follows the straight line from 1 to 0."""
    out: list[tuple[datetime, float | None]] = [(bucket_start(a, bucket), 1.0)]
    for point in points:
        hi = bucket_ceil(point.end, bucket)
        m = _measure_window(slo, timeline, a, hi, bucket)
        consumed = _consumed(slo, m)
        if consumed is None or total <= 0:
            out.append((point.end, None))
        else:
            out.append((point.end, budgeting.snap(1 - consumed * m.n / total)))
    if len(out) > 1 and out[1][1] is None:
        out = out[1:]
    return tuple(out)
