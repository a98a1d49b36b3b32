"""Counting the events of SLOs whose source is Prometheus, into the rollup a record scan
would give (good and total events per bucket), so every later stage treats them alike.

A query with a window placeholder gives the events of the bucket ending at each step. A
query without one reads a cumulative counter at every bucket bound; the events of a bucket
are the increase of each series between its bounds (a drop is a counter reset: the new value
counts), summed over the series. That is exact, where ``increase()`` extrapolates to the
window's edges. A series' first sample is its baseline, so a counter born inside the window
counts from its first scraped value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlslo.errors import SourceError, first_line
from mlslo.moments import format_duration
from mlslo.spec import AnySLO, AvailabilitySLO, PrometheusSource, Spec, prometheus_source
from mlslo.spec.sources import windowed, with_window
from mlslo.stats.rollup import BUCKET, Rollup, stat_column

MOST_POINTS = 10_000
"""Prometheus refuses a range query of more than 11,000 points per series."""


@dataclass(frozen=True)
class PrometheusReading:
    """The statistics of the SLOs read from Prometheus, and why some have none (their
    source failed, or the total query found no series)."""

    rollup: Rollup | None
    unavailable: Mapping[str, str] = field(default_factory=dict)


def prometheus_slos(spec: Spec) -> list[AnySLO]:
    """The SLOs of ``spec`` whose events Prometheus counts."""
    return [slo for slo in spec.slos if prometheus_source(slo) is not None]


def read_prometheus(
    spec: Spec,
    start: datetime,
    end: datetime,
    *,
    slice_columns: Sequence[str] = (),
    strict: bool = True,
    slos: Collection[str] | None = None,
    client: httpx.Client | None = None,
) -> PrometheusReading:
    """Count the events in ``[start, end)`` of every SLO of ``spec`` read from Prometheus.

    ``strict`` raises :class:`SourceError` when a source fails; otherwise the SLO is listed
    in ``unavailable`` with the reason and the others are still read. ``slos`` limits the
    reading to the SLOs named. A long-lived caller passes its ``client`` (connections and
    TLS settings are then kept between readings)."""
    if client is not None or not prometheus_slos(spec):  # no client made for nothing to read
        return _read(client, spec, start, end, slice_columns, strict, slos)
    with httpx.Client() as own:
        return _read(own, spec, start, end, slice_columns, strict, slos)


def _read(
    client: httpx.Client | None,
    spec: Spec,
    start: datetime,
    end: datetime,
    slice_columns: Sequence[str],
    strict: bool,
    slos: Collection[str] | None,
) -> PrometheusReading:
    step = int(spec.bucket.total_seconds())
    tables: list[pa.Table] = []
    unavailable: dict[str, str] = {}
    for index, slo in enumerate(spec.slos):
        source = prometheus_source(slo)
        if source is None or (slos is not None and slo.name not in slos):
            continue
        where = f"slos[{index}].source.prometheus ({slo.name})"
        counts: dict[str, Counts] = {}
        series: dict[str, int] = {}
        try:
            for role, query in source.queries().items():
                assert client is not None
                api = _Api(client, source, slo.name, f"{where}.{role}")
                counts[role], series[role] = _count(api, query, start, end, step)
        except SourceError as error:
            if strict:
                raise
            unavailable[slo.name] = error.detail
            continue
        if not series["total"]:
            unavailable[slo.name] = (
                f"the total query returned no series from Prometheus at {source.url}"
            )
            continue
        tables.append(_statistics(slo, counts, slice_columns))
    if not tables:
        return PrometheusReading(None, unavailable)
    table = pa.concat_tables(tables, promote_options="permissive")
    stats = [c for c in table.column_names if c != BUCKET and c not in slice_columns]
    for name in stats:
        column = table[name]
        if column.null_count:
            filled = pc.fill_null(column, 0.0)
            table = table.set_column(table.column_names.index(name), name, filled)
    return PrometheusReading(Rollup(step, tuple(slice_columns), table), unavailable)


def _statistics(
    slo: AnySLO, counts: Mapping[str, Counts], slice_columns: Sequence[str]
) -> pa.Table:
    """One row per bucket with events: total, and good (``ok`` for availability) clipped to
    ``[0, total]`` (increase() extrapolation can make good exceed total by a little)."""
    first = min((int(b.min()) for b, _ in counts.values() if b.size), default=0)
    last = max((int(b.max()) for b, _ in counts.values() if b.size), default=-1)
    size = last - first + 1

    def dense(role: str) -> Array:
        buckets, values = counts[role]
        summed = np.bincount(buckets - first, weights=values, minlength=size)[:size]
        return summed.astype(np.float64)

    total = dense("total")
    if "good" in counts:
        good = np.clip(dense("good"), 0.0, total)
    else:
        good = total - np.clip(dense("bad"), 0.0, total)
    keep = np.flatnonzero(total > 0)
    columns: dict[str, Any] = {BUCKET: pa.array(keep + first, pa.int64())}
    for column in slice_columns:
        columns[column] = pa.nulls(len(keep))
    good_name = "ok" if isinstance(slo, AvailabilitySLO) else "good"
    columns[stat_column(slo.name, "total")] = pa.array(total[keep], pa.float64())
    columns[stat_column(slo.name, good_name)] = pa.array(good[keep], pa.float64())
    return pa.table(columns)


# --- queries ----------------------------------------------------------------------------------


def _count(api: _Api, query: str, start: datetime, end: datetime, step: int) -> tuple[Counts, int]:
    """Events per bucket index in ``[start, end)``, and how many series the query gave."""
    first = math.floor(start.timestamp() / step)
    last = math.ceil(end.timestamp() / step)  # exclusive
    tail = end.timestamp() - (last - 1) * step  # length of the last, maybe partial, bucket
    partial = tail < step
    if partial and tail < 0.001:  # the last bucket has just begun: nothing to read in it
        last, partial = last - 1, False
    if last <= first:
        return _NONE, 0
    if windowed(query):
        full = with_window(query, timedelta(seconds=step))
        series = api.range(full, range(first + 1, last if partial else last + 1), step)
        if partial:
            last_bucket = with_window(query, timedelta(seconds=tail))
            series = _merge(series, api.instant(last_bucket, end.timestamp()))
        return _windowed_counts(series, step), len(series)
    series = api.range(query, range(first, last if partial else last + 1), step)
    if partial:
        series = _merge(series, api.instant(query, end.timestamp()))
    return _counter_counts(series, step), len(series)


Array = npt.NDArray[np.float64]
Series = dict[str, tuple[Array, Array]]
"""Samples by series (its labels as text): unix times and values, oldest first."""
Counts = tuple[npt.NDArray[np.int64], Array]
"""Events by bucket index: the indexes and the counts (an index may repeat)."""
_NONE: Counts = (np.zeros(0, dtype=np.int64), np.zeros(0))


def _merge(a: Series, b: Series) -> Series:
    out = dict(a)
    for key, (times, values) in b.items():
        if key in out:
            times = np.concatenate([out[key][0], times])
            values = np.concatenate([out[key][1], values])
        out[key] = (times, values)
    return out


def _bucket_of(times: Array, step: int) -> npt.NDArray[np.int64]:
    """The bucket that ends at (or, for a partial one, holds) each time."""
    return (np.ceil(times / step) - 1).astype(np.int64)


def _combined(parts: list[Counts]) -> Counts:
    if not parts:
        return _NONE
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _windowed_counts(series: Series, step: int) -> Counts:
    """Each value counts the events of the bucket that ends at its time (a partial last
    bucket ends at the evaluation time); values that are not finite or below 0 count
    nothing."""
    parts = []
    for times, values in series.values():
        kept = np.isfinite(values) & (values > 0)
        parts.append((_bucket_of(times[kept], step), values[kept]))
    return _combined(parts)


def _counter_counts(series: Series, step: int) -> Counts:
    """Per series, the increase between consecutive bucket bounds (a drop is a reset: the
    new value counts; samples that are not finite are skipped), summed over the series by
    the bucket the increase fell in."""
    parts = []
    for times, values in series.values():
        kept = np.isfinite(values)
        times, values = times[kept], values[kept]
        if values.size < 2:
            continue
        rise = np.diff(values)
        increase = np.where(rise >= 0, rise, values[1:])
        parts.append((_bucket_of(times[1:], step), increase))
    return _combined(parts)


class _Api:
    """Prometheus' HTTP query API, its failures as :class:`SourceError` naming the SLO."""

    def __init__(
        self, client: httpx.Client, source: PrometheusSource, slo: str, where: str
    ) -> None:
        self.client = client
        self.url = source.url
        self.timeout = source.timeout
        self.slo = slo
        self.where = where

    def range(self, query: str, indexes: range, step: int) -> Series:
        """The query at each bucket bound ``index * step`` (in chunks Prometheus accepts)."""
        out: Series = {}
        for lo in range(indexes.start, indexes.stop, MOST_POINTS):
            hi = min(lo + MOST_POINTS, indexes.stop) - 1
            data = self._get(
                "/api/v1/query_range",
                {"query": query, "start": lo * step, "end": hi * step, "step": step},
            )
            out = _merge(out, _series(data, self._fail))
        return out

    def instant(self, query: str, at: float) -> Series:
        return _series(self._get("/api/v1/query", {"query": query, "time": at}), self._fail)

    def _fail(self, message: str) -> SourceError:
        return SourceError(self.slo, self.where, message)

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            response = self.client.get(
                self.url + path, params=params, timeout=self.timeout.total_seconds()
            )
        except httpx.TimeoutException:
            raise self._fail(
                f"Prometheus at {self.url} did not answer within "
                f"{format_duration(self.timeout)}; raise timeout or make the query cheaper"
            ) from None
        except httpx.HTTPError as error:
            raise self._fail(
                f"cannot reach Prometheus at {self.url} ({first_line(error)}); check url"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self._fail(
                f"{self.url} answered HTTP {response.status_code} without Prometheus' JSON; "
                "check that url points at Prometheus (not a page in front of it)"
            )
        if response.status_code != 200 or body.get("status") != "success":
            refusal = body.get("error") or f"HTTP {response.status_code}"
            raise self._fail(f"Prometheus refused the query: {first_line(str(refusal))}")
        return body.get("data")


def _series(data: Any, fail: Callable[[str], SourceError]) -> Series:
    """The samples of a query's result (matrix, vector or scalar)."""
    if not isinstance(data, dict):
        raise fail("Prometheus' answer has no data")
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "matrix":
            return {_key(s["metric"]): _samples(s["values"]) for s in result or []}
        if kind == "vector":
            return {_key(s["metric"]): _samples([s["value"]]) for s in result or []}
        if kind == "scalar":
            return {"": _samples([result or []])}
    except (KeyError, TypeError, ValueError, IndexError):
        raise fail(f"Prometheus' {kind} result is malformed") from None
    raise fail(
        f"the query gives a {kind}, not numbers; write a query over counters (an instant vector)"
    )


def _key(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _samples(pairs: Sequence[Sequence[Any]]) -> tuple[Array, Array]:
    """``[[time, "value"], ...]`` as arrays (Prometheus writes values as text: NaN, +Inf)."""
    if not pairs:
        return np.zeros(0), np.zeros(0)
    times = np.array([p[0] for p in pairs], dtype=np.float64)
    values = np.array([p[1] for p in pairs], dtype=np.float64)
    return times, values
