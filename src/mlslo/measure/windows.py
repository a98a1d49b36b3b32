"""Windows in time and in buckets: where an SLO's window starts and ends at a moment, the
burn-rate windows it is measured over, and moments as bucket indexes. Pure.

Every window is a whole number of buckets (``floor(epoch / bucket)``), so any window's
statistics are a difference of two prefix sums.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from mlslo.moments import format_duration
from mlslo.spec import AccuracySLO, AnySLO, FairnessSLO, Spec, Window, calibrates, needs_histogram
from mlslo.spec.alert_rules import rule_windows
from mlslo.spec.references import extra_windows

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STANDARD_BURN_WINDOWS: tuple[timedelta, ...] = (
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=3),
)
"""The SRE Workbook's burn windows for a 30-day SLO window."""


def to_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def bucket_ceil(moment: datetime, bucket: timedelta) -> int:
    """The first bucket that starts at or after ``moment``."""
    size = int(bucket.total_seconds() * 1_000_000)
    return -(-to_micros(moment) // size)


def bucket_floor(moment: datetime, bucket_seconds: int) -> int:
    """The bucket that holds ``moment`` (the last one starting at or before it)."""
    return to_micros(moment) // 1_000_000 // bucket_seconds


def bucket_start(index: int, bucket: timedelta) -> datetime:
    return EPOCH + index * bucket


def label_delay(slo: AnySLO) -> timedelta:
    if isinstance(slo, AccuracySLO | FairnessSLO) and slo.sli.label_delay is not None:
        return slo.sli.label_delay
    return timedelta(0)


def slo_bounds(slo: AnySLO, at: datetime) -> tuple[datetime, datetime]:
    """The window of ``slo`` evaluated at ``at`` (labelled SLIs end ``label_delay`` earlier)."""
    return window_bounds(slo.window, at - label_delay(slo))


def standard_burn_windows(window: Window, bucket: timedelta) -> list[timedelta]:
    """The SRE Workbook's burn windows (5m .. 3d for 30 days) scaled to ``window`` and
    rounded to whole buckets."""
    return list(dict.fromkeys(window.scale(s, bucket) for s in STANDARD_BURN_WINDOWS))


def burn_windows(
    slo: AnySLO, bucket: timedelta, extra: Iterable[timedelta] = ()
) -> list[timedelta]:
    """Every window an SLO's burn rate is measured over: the standard ones, any window its
    alert rules read, and the ``extra`` ones (a policy's ``max_burn_rate`` windows)."""
    standard = set(standard_burn_windows(slo.window, bucket))
    return sorted(standard | rule_windows(slo, bucket) | set(extra))


def scan_range(spec: Spec, at: datetime) -> tuple[datetime, datetime]:
    """The span of records an evaluation at ``at`` reads: from the earliest window or
    burn-rate window start to ``at`` (early in a calendar month, the 3-day burn window
    reaches back before the month began)."""
    starts = []
    for slo in spec.slos:
        start, end = slo_bounds(slo, at)
        longest = max(burn_windows(slo, spec.bucket, extra_windows(spec, slo.name)))
        starts.append(min(start, end - longest))
    return min(starts), at


HEADLINE_WINDOWS = (timedelta(hours=1), timedelta(hours=6), timedelta(days=1))


def headline_windows(window: Window, bucket: timedelta) -> list[timedelta]:
    """The window's equivalents of 1h, 6h and 1d of a 30-day window: the burn rates worth a
    glance."""
    return list(dict.fromkeys(window.scale(s, bucket) for s in HEADLINE_WINDOWS))


def window_bounds(window: Window, end: datetime) -> tuple[datetime, datetime]:
    """The ``[start, end)`` of ``window`` ending at ``end`` (calendar: the period so far)."""
    if window.rolling is not None:
        return end - window.rolling, end
    day = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if window.calendar == "week":
        start = day - timedelta(days=day.weekday())
    else:
        start = day.replace(day=1)
    return start, end


def burn_key(duration: timedelta) -> str:
    """How a burn window is named in JSON and metrics: ``1h``, ``5m``, ``3d``."""
    return format_duration(duration)


def series_step(window: Window) -> timedelta:
    """A step that gives about 30 points across ``window`` (a calendar window: a day)."""
    if window.rolling is None:
        return timedelta(days=1)
    return timedelta(minutes=max(1, round(window.rolling.total_seconds() / 60 / 30)))


MOST_HISTOGRAM_EDGES = 400
"""Beyond this many edges a percentile SLO's histogram is kept per bucket instead."""


def histogram_edges(
    spec: Spec, at: datetime, step: timedelta | None = None
) -> tuple[int, ...] | None:
    """The buckets where a window of a percentile SLO starts or ends in an evaluation at
    ``at`` (with a series of ``step``): its window, burn-rate windows, series points,
    timeslices and corrections. A scan that sums the histograms between consecutive edges
    instead of per bucket keeps them small, and every window read from them stays exact.

    None when no SLO needs a histogram, or when the windows need more than
    ``MOST_HISTOGRAM_EDGES`` edges (the histograms then stay per bucket)."""
    return window_edges(spec, at, step, [slo for slo in spec.slos if needs_histogram(slo)])


def count_edges(spec: Spec, at: datetime, step: timedelta | None = None) -> tuple[int, ...] | None:
    """The buckets where any window of any SLO starts or ends in an evaluation at ``at``
    (see :func:`histogram_edges`): the counts summed between them serve every window the
    evaluation reads. None when there would be more than ``MOST_HISTOGRAM_EDGES``."""
    return window_edges(spec, at, step, spec.slos)


def window_edges(
    spec: Spec, at: datetime, step: timedelta | None, slos: Iterable[AnySLO]
) -> tuple[int, ...] | None:
    """The edges of every window of ``slos`` an evaluation at ``at`` reads (None: none, or
    more than ``MOST_HISTOGRAM_EDGES``)."""
    bucket = spec.bucket
    edges: set[int] = set()
    for slo in slos:
        start, end = slo_bounds(slo, at)
        a, b = bucket_ceil(start, bucket), bucket_ceil(end, bucket)
        edges.update((a, b))
        spans = [int(w / bucket) for w in burn_windows(slo, bucket, extra_windows(spec, slo.name))]
        edges.update(b - span for span in spans)
        ends = [b]  # where windows end: the evaluation, and each series point (burndown)
        if step is not None:
            width = max(1, math.ceil(step / bucket))
            if (b - a) // width > MOST_HISTOGRAM_EDGES:
                return None
            ends.extend(range(b - width, a, -width))
        edges.update(ends)
        if slo.effective_budgeting == "timeslices" and slo.slice is not None:
            width = max(1, int(slo.slice / bucket))
            oldest = min(a, *(b - span for span in spans))
            for last in ends:  # the slices of a window are laid back from its end
                edges.update(range(last, oldest - 1, -width))
                if len(edges) > MOST_HISTOGRAM_EDGES:
                    return None
        label_delay = getattr(slo.sli, "label_delay", None)
        if label_delay and (calibrates(slo) or getattr(slo.sli, "estimate", None)):
            # the calibration's history and the estimate of the predictions not labelled yet
            edges.update((bucket_ceil(at - label_delay, bucket), bucket_ceil(at, bucket)))
        for correction in spec.corrections:
            if correction.slos is None or slo.name in correction.slos:
                edges.add(bucket_floor(correction.start, int(bucket.total_seconds())))
                edges.add(bucket_ceil(correction.end, bucket))
    if not edges or len(edges) > MOST_HISTOGRAM_EDGES:
        return None
    return tuple(sorted(edges))
