"""Budget attribution: which slices and which periods spent an SLO's error budget. Pure.

Everything comes from the rollups, which keep each SLO's statistics per bucket and per value
of the columns the spec lists under ``attribution`` (and the hour of each bucket):

* occurrence SLIs (a share of good events): each slice's bad events, its share of all bad
  events, and its *excess* over the bad events its traffic was allowed at the target;
* aggregate SLIs (F1, MAE, fairness gaps): the SLI of the window without the slice
  (leave-one-slice-out, the window's statistics minus the slice's), and the budget the
  slice's presence costs, with the slice's own value, sample count and interval;
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
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlslo.errors import NotFoundError, UsageError
from mlslo.measure import budget as budgeting
from mlslo.measure.sli import Measurement, measure
from mlslo.measure.windows import bucket_ceil, bucket_floor, bucket_start, slo_bounds
from mlslo.moments import format_duration
from mlslo.spec import HOUR, AnySLO, FairnessSLO, Spec, needs_histogram
from mlslo.stats.confidence import Interval
from mlslo.stats.histogram import compact
from mlslo.stats.rollup import BUCKET, SEP, Rollup, numbers
from mlslo.stats.timeline import Histogram, WindowStats

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
    rows, names = _window_rows(rollup, slo.name, a, b, excluded)
    histogram = _histogram_rows(rollup, slo, a, b, excluded)
    groups = tuple(slo.sli.attributes) if isinstance(slo, FairnessSLO) else ()
    whole = _cells(rows, names, (), groups, rollup.bucket_seconds)
    everything = np.ones(len(whole.keys), dtype=bool)
    m = measure(slo, whole.stats(everything, histogram))
    kind: Kind = "occurrences" if slo.effective_budgeting == "occurrences" else "aggregate"
    consumed = _consumed(slo, m)
    slices: tuple[SliceAttribution, ...] = ()
    reason = None
    unattributed = 0.0
    if needs_histogram(slo):
        reason = (
            "a percentile is read from one histogram per bucket, which the rollups do not keep "
            "per slice: only the periods are attributed"
        )
    else:
        cells = _cells(rows, names, columns, groups, rollup.bucket_seconds)
        slices = _rank(kind, [_slice(slo, kind, cells, key, m) for key in cells.distinct()])
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


def check_by(spec: Spec, rollup: Rollup | None, by: Sequence[str]) -> tuple[str, ...]:
    """The columns of ``by``, each listed under the spec's ``attribution`` (or ``hour``)."""
    if not by:
        raise UsageError(
            f"name at least one column to attribute by ({_listed(spec)})", parameter="by"
        )
    seen: list[str] = []
    for column in by:
        if column in seen:
            raise UsageError(f"'{column}' is named twice", parameter="by")
        if column != HOUR and column not in spec.attribution:
            raise UsageError(
                f"'{column}' is not listed under attribution in the spec ({_listed(spec)}); "
                f"add it there so the rollups keep it",
                parameter="by",
            )
        if rollup is not None and column != HOUR and column not in rollup.slice_columns:
            raise UsageError(
                f"the rollups are not sliced by '{column}'; they keep "
                f"({', '.join(rollup.slice_columns) or 'none'})",
                parameter="by",
            )
        seen.append(column)
    return tuple(seen)


def _listed(spec: Spec) -> str:
    return "it lists " + ", ".join([*spec.attribution, HOUR])


def slo_named(spec: Spec, name: str) -> AnySLO:
    for slo in spec.slos:
        if slo.name == name:
            return slo
    names = ", ".join(s.name for s in spec.slos)
    raise NotFoundError(f"there is no SLO named '{name}' (the spec has {names})", parameter="slo")


def _excluded(spec: Spec, name: str) -> list[tuple[int, int]]:
    seconds = int(spec.bucket.total_seconds())
    return [
        (bucket_floor(c.start, seconds), bucket_ceil(c.end, spec.bucket))
        for c in spec.corrections
        if c.slos is None or name in c.slos
    ]


def _kept(
    buckets: npt.NDArray[np.int64], a: int, b: int, excluded: Sequence[tuple[int, int]]
) -> Any:
    keep = (buckets >= a) & (buckets < b)
    for lo, hi in excluded:
        keep &= (buckets < lo) | (buckets >= hi)
    return keep


def _window_rows(
    rollup: Rollup, slo: str, a: int, b: int, excluded: Sequence[tuple[int, int]]
) -> tuple[pa.Table, list[str]]:
    """The rollup's rows of the window (bucket, slice columns, the SLO's statistics) and the
    names of the statistics."""
    table = rollup.table
    prefix = slo + SEP
    stats = [c for c in table.column_names if c.startswith(prefix)]
    table = table.select([BUCKET, *rollup.slice_columns, *stats])
    table = table.rename_columns(
        [BUCKET, *rollup.slice_columns, *(c[len(prefix) :] for c in stats)]
    )
    names = [c[len(prefix) :] for c in stats]
    if not table.num_rows:
        return table, names
    keep = _kept(numbers(table[BUCKET], np.int64), a, b, excluded)
    return table.filter(pa.array(keep)), names


def _histogram_rows(
    rollup: Rollup, slo: AnySLO, a: int, b: int, excluded: Sequence[tuple[int, int]]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]] | None:
    """(bucket, bin, count) arrays of a percentile SLO's histogram in the window."""
    if not needs_histogram(slo):
        return None
    rows = rollup.histograms.get(slo.name)
    if rows is None or not rows.num_rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    buckets = numbers(rows[BUCKET], np.int64)
    keep = _kept(buckets, a, b, excluded)
    return (
        buckets[keep],
        numbers(rows["bin"], np.int64)[keep],
        numbers(rows["count"], np.float64)[keep],
    )


class _Cells:
    """The window's statistics summed per slice key (and fairness group, and bucket when
    asked): small arrays the slices and periods are measured from."""

    def __init__(
        self,
        keys: list[tuple[Any, ...]],
        groups: list[tuple[Any, ...]],
        buckets: npt.NDArray[np.int64],
        names: list[str],
        values: npt.NDArray[np.float64],
        grouped: bool,
    ) -> None:
        self.keys = keys
        self.groups = groups
        self.buckets = buckets
        self.names = names
        self.values = values
        self.grouped = grouped

    def distinct(self) -> list[tuple[Any, ...]]:
        return list(dict.fromkeys(self.keys))

    def mask(self, key: tuple[Any, ...]) -> npt.NDArray[np.bool_]:
        return np.array([k == key for k in self.keys], dtype=bool)

    def stats(
        self,
        mask: npt.NDArray[np.bool_],
        histogram: tuple[Any, Any, Any] | None = None,
        span: tuple[int, int] | None = None,
    ) -> WindowStats:
        """The statistics of the cells in ``mask``, with the ``histogram`` rows (sorted by
        bucket) of the buckets in ``span``."""
        values = self.values[mask] if len(self.values) else np.zeros((0, len(self.names)))
        sums = {n: float(values[:, i].sum()) for i, n in enumerate(self.names)}
        found = None
        if histogram is not None:
            buckets, bins, counts = histogram
            lo, hi = 0, len(buckets)
            if span is not None:
                lo = int(np.searchsorted(buckets, span[0], side="left"))
                hi = int(np.searchsorted(buckets, span[1], side="left"))
            found = Histogram(bins[lo:hi], counts[lo:hi])
        if not self.grouped:
            return WindowStats(sums, histogram=found)
        picked = [g for g, keep in zip(self.groups, mask, strict=True) if keep]
        order = sorted(dict.fromkeys(picked), key=lambda g: tuple(_sort_key(v) for v in g))
        index = {g: i for i, g in enumerate(order)}
        codes = np.array([index[g] for g in picked], dtype=np.int64)
        group_sums = {
            n: np.bincount(codes, weights=values[:, i], minlength=len(order)).astype(np.float64)
            for i, n in enumerate(self.names)
        }
        return WindowStats(sums, group_sums, order, found)


def _sort_key(value: Any) -> tuple[int, str]:
    return (1, "") if value is None else (0, str(value))


def _cells(
    rows: pa.Table,
    names: Sequence[str],
    columns: Sequence[str],
    groups: Sequence[str],
    bucket_seconds: int,
    *,
    by_bucket: bool = False,
) -> _Cells:
    """``rows`` summed per slice key of ``columns`` (``hour``: the hour of the bucket), per
    fairness group of ``groups`` and, with ``by_bucket``, per bucket."""
    table = rows
    if HOUR in columns and table.num_rows:
        hours = numbers(table[BUCKET], np.int64) * bucket_seconds // 3600 * 3600
        table = table.append_column("__hour", pa.array(hours, pa.int64()))
    keys = ["__hour" if c == HOUR else c for c in columns]
    grouping = list(dict.fromkeys([*keys, *groups, *([BUCKET] if by_bucket else [])]))
    if not grouping:
        summed = pa.table(
            {n: pa.array([pc.sum(table[n]).as_py() or 0.0], pa.float64()) for n in names}
        )
        count = 1
    elif table.num_rows:
        summed = table.group_by(grouping, use_threads=False).aggregate([(n, "sum") for n in names])
        summed = summed.rename_columns(
            [c[:-4] if c.endswith("_sum") and c[:-4] in names else c for c in summed.column_names]
        )
        count = summed.num_rows
    else:
        return _Cells(
            [],
            [],
            np.zeros(0, dtype=np.int64),
            list(names),
            np.zeros((0, len(names))),
            bool(groups),
        )
    lists = {c: summed[c].to_pylist() for c in grouping}
    if "__hour" in lists:
        lists["__hour"] = [
            None if h is None else datetime.fromtimestamp(h, UTC) for h in lists["__hour"]
        ]
    slice_keys = [tuple(lists[c][i] for c in keys) for i in range(count)]
    group_keys = [tuple(lists[c][i] for c in groups) for i in range(count)]
    buckets = numbers(summed[BUCKET], np.int64) if by_bucket else np.zeros(count, dtype=np.int64)
    values = (
        np.column_stack([numbers(summed[n], np.float64) for n in names])
        if names
        else np.zeros((count, 0))
    )
    return _Cells(slice_keys, group_keys, buckets, list(names), values, bool(groups))


def _consumed(slo: AnySLO, m: Measurement) -> float | None:
    """The budget ``m`` spends (timeslices: the slice bound's budget of the window's SLI)."""
    if m.value is None:
        return None
    if slo.effective_budgeting == "occurrences" and m.valid is not None:
        return budgeting.consumed_occurrences(m.good or 0.0, m.valid, slo.target)
    if slo.effective_budgeting == "timeslices":
        assert slo.timeslice_target is not None
        return budgeting.consumed_aggregate(m.value, slo.timeslice_target, slo.slice_op)
    return budgeting.consumed_aggregate(m.value, slo.target, slo.op)


def _slice(
    slo: AnySLO, kind: Kind, cells: _Cells, key: tuple[Any, ...], whole: Measurement
) -> SliceAttribution:
    mine = cells.mask(key)
    own = measure(slo, cells.stats(mine))
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
    rest = measure(slo, cells.stats(~mine))
    with_it, without_it = _consumed(slo, whole), _consumed(slo, rest)
    spent = None
    if with_it is not None and without_it is not None:
        spent = budgeting.snap(with_it - without_it)
    change = None
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
        reason=own.reason or (None if rest.value is not None else rest.reason),
    )


def _rank(kind: Kind, slices: list[SliceAttribution]) -> tuple[SliceAttribution, ...]:
    """Worst first: the largest excess (occurrences) or budget spent (aggregates)."""

    def order(s: SliceAttribution) -> tuple[int, float, float]:
        primary = s.excess if kind == "occurrences" else s.spent
        if primary is None or math.isnan(primary):
            return (1, 0.0, -float(s.n))
        return (0, -primary, -float(s.bad if s.bad is not None else s.n))

    return tuple(sorted(slices, key=order))


def _step(slo: AnySLO, bucket: timedelta, a: int, b: int, step: timedelta | None) -> int:
    """The step of the time attribution, in whole buckets."""
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
        table = table.set_column(
            table.column_names.index(BUCKET), BUCKET, pa.array(steps, pa.int64())
        )
    cells = _cells(table, names, (), groups, 0, by_bucket=True)
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
        burn = _consumed(slo, m)
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
                _consumed(slo, merged),
                max(r[2] for r in run),
                bad,
                share,
            )
        )
    return tuple(out)


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
