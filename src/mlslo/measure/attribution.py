"""Budget attribution: which slices and which periods spent an SLO's error budget. Pure.

Everything comes from the rollups, which keep each SLO's statistics per bucket and per value
of the columns the spec lists under ``attribution`` (and the hour of each bucket):

* occurrence SLIs (a share of good events): each slice's bad events, its share of all bad
  events, and its *excess* over the bad events its traffic was allowed at the target;
* aggregate SLIs (F1, MAE, fairness gaps, percentiles): the SLI of the window without the
  slice (leave-one-slice-out, the window's statistics minus the slice's; for a percentile,
  the window's histogram minus the slice's, which the scan keeps per slice only when asked),
  and the budget the slice's presence costs, with the slice's own value, sample count and
  interval;
* time: the steps whose burn rate was above 1 (spending faster than the budget allows),
  contiguous steps merged into periods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from mlslo.errors import UsageError
from mlslo.measure import budget as budgeting
from mlslo.measure.attribution_checks import check_by, slo_named
from mlslo.measure.cells import (
    Cells,
    histogram_rows,
    sliced_histogram_rows,
    sum_cells,
    window_rows,
)
from mlslo.measure.sli import Measurement, measure
from mlslo.measure.windows import bucket_ceil, bucket_floor, bucket_start, slo_bounds
from mlslo.moments import format_duration
from mlslo.spec import HOUR, AnySLO, FairnessSLO, Spec, is_percentile, needs_histogram
from mlslo.stats.confidence import Interval, wilson
from mlslo.stats.histogram import Compacted, compact
from mlslo.stats.rollup import BUCKET, Rollup, numbers
from mlslo.stats.timeline import WindowStats

Kind = Literal["occurrences", "aggregate"]
MOST_STEPS = 10_000
"""A finer time attribution than this many steps per window is a mistake, and costly."""
STEPS_PER_WINDOW = 720
"""The default step divides the window into about this many (1 h for 30 days)."""


@dataclass(frozen=True)
class SliceAttribution:
    """One slice's part in the budget.

    ``values`` are the slice's attribute values (None: records without one). ``n`` is its
    samples (valid events, labelled predictions), ``value`` and ``ci`` its own SLI.
    Occurrences: ``bad`` events, ``share`` of the window's bad events, ``allowed`` bad
    events at the target for its traffic and ``excess = bad - allowed``. Aggregates:
    ``without`` is the window's SLI without the slice and ``change = value of the window -
    without``. ``spent`` is the share of the whole budget the slice accounts for: its bad
    events over the allowed ones (occurrences), or the budget consumed with it minus without
    it (aggregates).
    """

    values: tuple[Any, ...]
    n: int
    value: float | None
    ci: Interval | None
    spent: float | None
    bad: float | None = None
    share: float | None = None
    allowed: float | None = None
    excess: float | None = None
    without: float | None = None
    change: float | None = None
    reason: str | None = None
    without_ci: Interval | None = None
    """The interval of ``without`` (percentiles: binomial order statistics)."""


@dataclass(frozen=True)
class Period:
    """Contiguous steps burning faster than the budget allows (burn rate above 1)."""

    start: datetime
    end: datetime
    n: int
    burn_rate: float | None
    peak_burn_rate: float
    bad: float | None = None
    share: float | None = None


@dataclass(frozen=True)
class Attribution:
    """Where one SLO's budget went over its window at ``evaluated_at``."""

    slo: AnySLO
    by: tuple[str, ...]
    evaluated_at: datetime
    start: datetime
    end: datetime
    kind: Kind
    measurement: Measurement
    consumed: float | None
    slices: tuple[SliceAttribution, ...]
    periods: tuple[Period, ...]
    step: timedelta
    slices_reason: str | None = None
    unattributed: float = 0.0
    """Samples of records whose attribute values are all missing (their own slice)."""


def attribute(
    spec: Spec,
    rollup: Rollup,
    at: datetime,
    slo_name: str,
    by: Sequence[str],
    *,
    step: timedelta | None = None,
) -> Attribution:
    """Rank the slices of ``by`` and the periods of the window of ``slo_name`` at ``at`` by
    the budget they spent."""
    slo = slo_named(spec, slo_name)
    columns = check_by(spec, rollup, by)
    at = at.astimezone(UTC)
    start, end = slo_bounds(slo, at)
    a, b = bucket_ceil(start, spec.bucket), bucket_ceil(end, spec.bucket)
    excluded = _excluded(spec, slo.name)
    rows, names = window_rows(rollup, slo.name, a, b, excluded)
    histogram = histogram_rows(rollup, slo, a, b, excluded)
    groups = tuple(slo.sli.attributes) if isinstance(slo, FairnessSLO) else ()
    judge = _Judge(slo, rows, names, groups, rollup.bucket_seconds, a, b, spec.bucket)
    whole = judge.cells(())
    m = judge(whole, np.ones(len(whole.keys), dtype=bool), histogram)
    kind: Kind = "occurrences" if slo.effective_budgeting == "occurrences" else "aggregate"
    consumed = _consumed(slo, m)
    slices: tuple[SliceAttribution, ...] = ()
    reason = None
    unattributed = 0.0
    if is_percentile(slo):
        found, reason = _percentile_slices(slo, rollup, columns, a, b, excluded, m)
        slices = _rank(kind, found)
    elif needs_histogram(slo):
        reason = "an estimate's score bins are not kept per slice: only the periods are attributed"
    else:
        cells = judge.cells(columns)
        slices = _rank(kind, [_slice(slo, kind, judge, cells, key, m) for key in cells.distinct()])
    if slices:
        unattributed = sum(
            float(s.n) for s in slices if s.values and all(v is None for v in s.values)
        )
    span = _step(slo, spec.bucket, a, b, step)
    periods = _periods(slo, kind, rows, names, histogram, groups, a, b, span, spec.bucket, m)
    return Attribution(
        slo,
        tuple(by),
        at,
        bucket_start(a, spec.bucket),
        min(bucket_start(b, spec.bucket), end),
        kind,
        m,
        consumed,
        slices,
        periods,
        span * spec.bucket,
        reason,
        unattributed,
    )


def _excluded(spec: Spec, name: str) -> list[tuple[int, int]]:
    seconds = int(spec.bucket.total_seconds())
    return [
        (bucket_floor(c.start, seconds), bucket_ceil(c.end, spec.bucket))
        for c in spec.corrections
        if c.slos is None or name in c.slos
    ]


def _consumed(slo: AnySLO, m: Measurement) -> float | None:
    """The budget a window's measurement spends (the same formula as the evaluation's)."""
    if m.value is None:
        return None
    if slo.effective_budgeting in ("occurrences", "timeslices") and m.valid is not None:
        return budgeting.consumed_occurrences(m.good or 0.0, m.valid, slo.target)
    return budgeting.consumed_aggregate(m.value, slo.target, slo.op)


def _step_burn(slo: AnySLO, m: Measurement) -> float | None:
    """A step's burn rate: its consumed ratio; for timeslices, the SLI against the slice's
    bound (above 1: a bad slice)."""
    if slo.effective_budgeting != "timeslices":
        return _consumed(slo, m)
    if m.value is None:
        return None
    assert slo.timeslice_target is not None
    return budgeting.consumed_aggregate(m.value, slo.timeslice_target, slo.slice_op)


class _Judge:
    """Measures the window over some cells. With timeslices the window's SLI is the share
    of good slices, so cells are kept per slice of time (aligned to the window's end, whole
    slices only, as the evaluation does) and each is judged against the slice's bound."""

    def __init__(
        self,
        slo: AnySLO,
        rows: pa.Table,
        names: Sequence[str],
        groups: Sequence[str],
        bucket_seconds: int,
        a: int,
        b: int,
        bucket: timedelta,
    ) -> None:
        self.slo = slo
        self.names = names
        self.groups = groups
        self.bucket_seconds = bucket_seconds
        self.sliced = slo.effective_budgeting == "timeslices"
        self.rows = rows
        if self.sliced and rows.num_rows:
            assert slo.slice is not None
            span = int(slo.slice / bucket)
            index = np.floor_divide(numbers(rows[BUCKET], np.int64) - b, span)
            whole = index >= -((b - a) // span)
            self.rows = rows.append_column(TIMESLICE, pa.array(index, pa.int64())).filter(
                pa.array(whole)
            )

    def cells(self, columns: Sequence[str]) -> Cells:
        step = TIMESLICE if self.sliced and self.rows.num_rows else None
        return sum_cells(
            self.rows, self.names, columns, self.groups, self.bucket_seconds, step=step
        )

    def __call__(
        self, cells: Cells, mask: Any, histogram: tuple[Any, Any, Any] | None = None
    ) -> Measurement:
        if not self.sliced:
            return measure(self.slo, cells.stats(mask, histogram))
        slo = self.slo
        assert slo.timeslice_target is not None
        verdicts = []
        for index in sorted(set(cells.buckets[mask].tolist())):
            sliced = measure(slo, cells.stats(mask & (cells.buckets == index)))
            if sliced.value is None or sliced.n < slo.min_samples:
                continue
            verdicts.append(
                bool(budgeting.is_met(sliced.value, slo.timeslice_target, slo.slice_op))
            )
        if not verdicts:
            return Measurement(None, 0, reason="no slice with enough data in the window")
        good, total = float(sum(verdicts)), float(len(verdicts))
        return Measurement(good / total, int(total), wilson(good, total), good, total)


TIMESLICE = "__timeslice"


def _percentile_slices(
    slo: AnySLO,
    rollup: Rollup,
    columns: Sequence[str],
    a: int,
    b: int,
    excluded: Sequence[tuple[int, int]],
    whole: Measurement,
) -> tuple[list[SliceAttribution], str | None]:
    """Leave-one-slice-out of a percentile: the slice's histogram and the window's without
    it, each read as the SLI is (within the histogram's 1 % bound), with order-statistic
    intervals."""
    if slo.effective_budgeting == "timeslices":
        return [], "a percentile's slices are judged over the window, not per timeslice"
    found = sliced_histogram_rows(rollup, slo, columns, a, b, excluded)
    if found is None:
        return [], (
            "the percentile's histogram was not kept per "
            + ", ".join(c for c in columns if c != HOUR)
            + ": only the periods are attributed"
        )
    keys, bins, counts = found
    rows: dict[tuple[Any, ...], list[int]] = {}
    for index, key in enumerate(keys):
        rows.setdefault(key, []).append(index)
    quantile = float(getattr(slo.sli, "percentile", 0.0))
    everything = compact(bins, counts)
    place = np.searchsorted(everything.bins, bins)  # each row's bin in the window's histogram
    out = []
    for key, indexes in rows.items():
        mine = np.bincount(place[indexes], counts[indexes], everything.bins.size).astype(np.float64)
        others = everything.counts - mine  # the window's histogram minus the slice's
        own = _percentile(Compacted(everything.bins[mine > 0], mine[mine > 0]), quantile)
        rest = _percentile(Compacted(everything.bins[others > 0], others[others > 0]), quantile)
        out.append(_left_out(slo, key, own, whole, rest, own.reason or rest.reason, rest.ci))
    return out, None


def _percentile(histogram: Compacted, quantile: float) -> Measurement:
    """A percentile and its order-statistic interval (no chart points: one per slice)."""
    total = float(histogram.counts.sum())
    if total <= 0:
        return Measurement(None, 0, reason="no other slice has samples")
    interval = histogram.percentile_interval(quantile)
    return Measurement(histogram.percentile(quantile), int(total), interval)


def _slice(
    slo: AnySLO,
    kind: Kind,
    judge: _Judge,
    cells: Cells,
    key: tuple[Any, ...],
    whole: Measurement,
) -> SliceAttribution:
    mine = cells.mask(key)
    own = judge(cells, mine)
    if kind == "occurrences":
        valid, good = own.valid or 0.0, own.good or 0.0
        bad = valid - good
        total_bad = (whole.valid or 0.0) - (whole.good or 0.0)
        allowed = (1 - slo.target) * valid
        budget = (1 - slo.target) * (whole.valid or 0.0)
        return SliceAttribution(
            key,
            int(valid),
            own.value,
            own.ci,
            bad / budget if budget > 0 else None,
            bad=bad,
            share=bad / total_bad if total_bad > 0 else None,
            allowed=allowed,
            excess=bad - allowed,
            reason=own.reason,
        )
    rest = judge(cells, ~mine)
    reason = own.reason or (None if rest.value is not None else rest.reason)
    return _left_out(slo, key, own, whole, rest, reason)


def _left_out(
    slo: AnySLO,
    key: tuple[Any, ...],
    own: Measurement,
    whole: Measurement,
    rest: Measurement,
    reason: str | None,
    without_ci: Interval | None = None,
) -> SliceAttribution:
    """An aggregate's slice by leaving it out: the budget consumed with it minus without it,
    and the window's SLI minus the SLI without it."""
    with_it, without_it = _consumed(slo, whole), _consumed(slo, rest)
    spent = change = None
    if with_it is not None and without_it is not None:
        spent = budgeting.snap(with_it - without_it)
    if whole.value is not None and rest.value is not None:
        change = budgeting.snap(whole.value - rest.value)
    return SliceAttribution(
        key,
        own.n,
        own.value,
        own.ci,
        spent,
        without=rest.value,
        change=change,
        reason=reason,
        without_ci=without_ci,
    )


def _rank(kind: Kind, slices: list[SliceAttribution]) -> tuple[SliceAttribution, ...]:
    """Worst first: the largest excess (occurrences) or budget spent (aggregates)."""

    def order(s: SliceAttribution) -> tuple[int, float, float, tuple[tuple[bool, str], ...]]:
        primary = s.excess if kind == "occurrences" else s.spent
        values = tuple((v is None, str(v)) for v in s.values)  # ties: the same order anywhere
        if primary is None or math.isnan(primary):
            return (1, 0.0, -float(s.n), values)
        return (0, -primary, -float(s.bad if s.bad is not None else s.n), values)

    return tuple(sorted(slices, key=order))


def _step(slo: AnySLO, bucket: timedelta, a: int, b: int, step: timedelta | None) -> int:
    """The step of the time attribution, in whole buckets."""
    if step is None and slo.effective_budgeting == "timeslices" and slo.slice is not None:
        return max(1, int(slo.slice / bucket))
    if step is None:
        window = (b - a) * bucket
        return max(1, math.ceil(window / STEPS_PER_WINDOW / bucket))
    span = max(1, math.ceil(step / bucket))
    if (b - a) / span > MOST_STEPS:
        shortest = math.ceil((b - a) / MOST_STEPS) * bucket
        raise UsageError(
            f"a step of {format_duration(step)} gives more than {MOST_STEPS:,} steps across "
            f"the {slo.window} window of {slo.name}; use a step of at least "
            f"{format_duration(shortest)}",
            parameter="step",
        )
    return span


def _periods(
    slo: AnySLO,
    kind: Kind,
    rows: pa.Table,
    names: Sequence[str],
    histogram: tuple[Any, Any, Any] | None,
    groups: Sequence[str],
    a: int,
    b: int,
    span: int,
    bucket: timedelta,
    whole: Measurement,
) -> tuple[Period, ...]:
    """Steps (aligned to the window's end) with a burn rate above 1, merged when adjacent.
    A step with fewer samples than the SLO's ``min_samples`` is not judged."""
    table = rows
    if table.num_rows:
        steps = np.floor_divide(numbers(table[BUCKET], np.int64) - b, span)
        table = table.append_column(STEP, pa.array(steps, pa.int64()))
    cells = sum_cells(table, names, (), groups, 0, step=STEP if table.num_rows else None)
    hist_steps = None
    if histogram is not None:
        steps = np.floor_divide(histogram[0] - b, span)
        order = np.argsort(steps, kind="stable")
        hist_steps = (steps[order], histogram[1][order], histogram[2][order])
    burning: list[tuple[int, Measurement, float]] = []
    for index in sorted(set(cells.buckets.tolist())):
        m = _step_measure(slo, cells.stats(cells.buckets == index, hist_steps, (index, index + 1)))
        if m.n < slo.min_samples:
            continue
        burn = _step_burn(slo, m)
        if burn is not None and burn > 1 + budgeting.TOLERANCE:
            burning.append((index, m, burn))
    runs: list[list[tuple[int, Measurement, float]]] = []
    for item in burning:
        if runs and runs[-1][-1][0] == item[0] - 1:
            runs[-1].append(item)
        else:
            runs.append([item])
    total_bad = (whole.valid or 0.0) - (whole.good or 0.0)
    out = []
    for run in runs:
        first, last = run[0][0], run[-1][0]
        mask = (cells.buckets >= first) & (cells.buckets <= last)
        merged = _step_measure(slo, cells.stats(mask, hist_steps, (first, last + 1)))
        lo = max(a, b + first * span)
        hi = min(b, b + (last + 1) * span)
        bad = None
        share = None
        if kind == "occurrences":
            bad = (merged.valid or 0.0) - (merged.good or 0.0)
            share = bad / total_bad if total_bad > 0 else None
        out.append(
            Period(
                bucket_start(lo, bucket),
                bucket_start(hi, bucket),
                merged.n,
                _step_burn(slo, merged),
                max(r[2] for r in run),
                bad,
                share,
            )
        )
    return tuple(out)


STEP = "__step"


def _step_measure(slo: AnySLO, stats: WindowStats) -> Measurement:
    """The SLI of one step; a percentile without the interval and the histogram's points,
    which a step's burn rate does not need and which cost more than the rest."""
    if not needs_histogram(slo) or stats.histogram is None:
        return measure(slo, stats)
    quantile = getattr(slo.sli, "percentile", None)
    total = stats.histogram.total
    if quantile is None or total <= 0:
        return Measurement(None, 0)
    value = compact(stats.histogram.bins, stats.histogram.counts).percentile(quantile)
    return Measurement(value, int(total))
