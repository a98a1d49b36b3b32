"""Where an SLO's events come from when they are not prediction records: counters kept by
Prometheus. Such an SLO is read by queries instead of the record scan; everything after the
rollup (windows, budgets, burn rates, alerts, the gate) treats it like any other."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import field_validator, model_validator

from mlslo.moments import format_duration
from mlslo.spec.types import Duration, Strict

WINDOW_PLACEHOLDER = re.compile(r"\$window\b|\[window\]")
"""``$window`` (mlslo) or ``[window]`` (Google's slo-generator): the length of one bucket."""


class PrometheusSource(Strict):
    """Good and total events counted by Prometheus.

    A query with a window placeholder (``increase(x[$window])``) gives the events of the
    bucket ending at each step; a query without one is a cumulative counter, and the events
    of a bucket are the increase of each of its series between the bucket's bounds (exact:
    no extrapolation), summed over the series."""

    url: str
    good: str | None = None
    bad: str | None = None
    total: str
    timeout: Duration = timedelta(seconds=10)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"expected the http(s) URL of Prometheus, found {value!r}")
        return value.rstrip("/")

    @field_validator("good", "bad", "total")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("expected a PromQL query, found an empty string")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(minutes=10):
            raise ValueError(f"expected a timeout from 1ms to 10m, found {format_duration(value)}")
        return value

    @model_validator(mode="after")
    def _good_or_bad(self) -> PrometheusSource:
        if (self.good is None) == (self.bad is None):
            raise ValueError(
                "give either good (the query counting good events) or bad (bad events), with total"
            )
        return self

    def queries(self) -> dict[str, str]:
        """The queries by the role of their result: ``good`` or ``bad``, and ``total``."""
        out = {"total": self.total}
        if self.good is not None:
            out["good"] = self.good
        if self.bad is not None:
            out["bad"] = self.bad
        return out


def windowed(query: str) -> bool:
    """Whether ``query`` counts the events of one window (it has a window placeholder)
    rather than reading a cumulative counter."""
    return WINDOW_PLACEHOLDER.search(query) is not None


def with_window(query: str, length: timedelta) -> str:
    """``query`` with its window placeholders replaced by ``length`` as PromQL writes it."""
    millis = round(length.total_seconds() * 1000)
    text = f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"
    return WINDOW_PLACEHOLDER.sub(lambda m: text if m.group(0) == "$window" else f"[{text}]", query)


class EventSource(Strict):
    """An SLO's external source of events (today: Prometheus)."""

    prometheus: PrometheusSource
