"""SLOs, one model per dimension around its SLI (``slis``), with the objective, the window
and the burn-rate alerts each may override. Every derived setting (the metric's direction, how the
budget is counted, the target as a number) is a property, so it is decided in one place."""

from __future__ import annotations

import typing
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    model_validator,
)

from mlslo.moments import format_duration
from mlslo.spec.slis import (
    AccuracySLI,
    AvailabilitySLI,
    FairnessSLI,
    FreshnessSLI,
    LatencySLI,
)
from mlslo.spec.sources import EventSource, PrometheusSource
from mlslo.spec.types import AtPath, Duration, Name, OptionalDuration, Scalar, Strict

# --- objectives and windows -------------------------------------------------------------------

Op = Literal[">=", "<="]
REFERENCE_WINDOW = timedelta(days=30)
"""The window the SRE Workbook's burn-rate scheme is written for; other windows scale it."""


class Objective(Strict):
    """The bound an SLI must meet. ``target`` is a share (0.95), a value (MAE 3) or a duration
    (p95 lag 15m) depending on the SLI; ``op`` is implied by the metric, and one that runs
    against it (accuracy <= 0.99, to catch leaking labels) needs ``allow_reverse_op``."""

    target: float | Duration
    op: Op | None = None
    timeslice_target: float | Duration | None = None
    allow_reverse_op: bool = False


class Window(Strict):
    """``30d`` (rolling, ending at evaluation time) or ``{calendar: month}``."""

    rolling: Duration | None = None
    calendar: Literal["week", "month"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value in ("week", "month"):
                return {"calendar": value}
            return {"rolling": value}
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Window:
        if (self.rolling is None) == (self.calendar is None):
            raise ValueError("give either a rolling length (30d) or {calendar: week|month}")
        if self.rolling is not None and not (
            timedelta(minutes=5) <= self.rolling <= timedelta(days=90)
        ):
            raise ValueError(
                "a rolling window must be between 5m and 90d, found "
                f"{format_duration(self.rolling)}"
            )
        return self

    def scale(self, duration: timedelta, bucket: timedelta) -> timedelta:
        """One duration of the 30-day burn-rate scheme scaled to this window, in whole buckets
        (at least one)."""
        buckets = max(1, round(duration * (self.nominal_length / REFERENCE_WINDOW) / bucket))
        return buckets * bucket

    @property
    def nominal_length(self) -> timedelta:
        """The length used to scale burn-rate windows (a calendar month counts as 30 days)."""
        if self.rolling is not None:
            return self.rolling
        return timedelta(days=7) if self.calendar == "week" else timedelta(days=30)

    def __str__(self) -> str:
        if self.rolling is not None:
            return format_duration(self.rolling)
        return f"calendar {self.calendar}"


class BurnAlert(Strict):
    """One multi-window burn-rate rule: fire when both windows burn faster than ``burn_rate``."""

    long: Duration
    short: Duration
    burn_rate: float = Field(gt=0)
    severity: Literal["page", "ticket"] = "page"
    for_: Duration | None = Field(default=None, alias="for")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _short_within_long(self) -> BurnAlert:
        if self.short >= self.long:
            raise ValueError("the short window must be shorter than the long window")
        return self


# --- SLOs -------------------------------------------------------------------------------------

Budgeting = Literal["occurrences", "aggregate", "timeslices"]
Dimension = Literal["availability", "latency", "freshness", "accuracy", "fairness"]
DIMENSIONS: tuple[str, ...] = typing.get_args(Dimension)


class _SLOBase(Strict):
    name: Name
    description: str | None = None
    objective: Objective
    window: Window = Window(rolling=timedelta(days=30))
    budgeting: Budgeting | None = None
    slice: Duration | None = None
    min_samples: int = Field(default=1, ge=1)
    max_ci_width: float | None = Field(default=None, gt=0)
    filter: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)
    alerts: list[BurnAlert] | None = None
    runbook_url: str | None = None
    absent_after: OptionalDuration = timedelta(hours=1)
    """With no event for longer than this the budget is not judged (``no_data``) and the
    ``absent`` alert rule fires; off by default where labels are late by nature."""

    # Filled in by each dimension.
    @property
    def metric(self) -> str:
        raise AttributeError

    @property
    def natural_op(self) -> Op:
        return "<=" if self._lower_is_better() else ">="

    def _lower_is_better(self) -> bool:
        return False

    def _is_event_ratio(self) -> bool:
        return False

    def _duration_unit(self) -> str | None:
        """``'s'`` or ``'ms'`` when the SLI value is a duration, else None."""
        return None

    # Derived, validated settings --------------------------------------------------------
    @property
    def op(self) -> Op:
        if self.effective_budgeting == "timeslices":
            return ">="
        return self.objective.op or self.natural_op

    @property
    def slice_op(self) -> Op:
        return self.objective.op or self.natural_op

    @property
    def effective_budgeting(self) -> Budgeting:
        if self.budgeting is not None:
            return self.budgeting
        return "occurrences" if self._is_event_ratio() else "aggregate"

    @property
    def unit(self) -> str | None:
        return self._duration_unit()

    @property
    def counts_events(self) -> bool:
        """Whether the SLI is a share of good events (so ``occurrences`` budgeting applies and
        the target is a share), rather than one value over the window."""
        return self._is_event_ratio()

    @property
    def target(self) -> float:
        """The objective's target as a number (durations in the SLI's unit)."""
        return self._as_number(self.objective.target)

    @property
    def timeslice_target(self) -> float | None:
        value = self.objective.timeslice_target
        return None if value is None else self._as_number(value)

    def _as_number(self, value: float | timedelta) -> float:
        if isinstance(value, timedelta):
            seconds = value.total_seconds()
            return seconds * 1000.0 if self._duration_unit() == "ms" else seconds
        return float(value)

    @model_validator(mode="after")
    def _check_objective(self) -> _SLOBase:
        budgeting = self.effective_budgeting
        if budgeting == "occurrences" and not self._is_event_ratio():
            raise AtPath(
                f"occurrences counts good and bad events, which '{self.metric}' is not; use "
                "aggregate (the default) or timeslices",
                "budgeting",
            )
        if budgeting == "timeslices":
            if self.slice is None or self.objective.timeslice_target is None:
                raise AtPath(
                    "timeslices needs slice (e.g. 1h) and objective.timeslice_target "
                    "(the bound each slice must meet)",
                    "budgeting",
                )
            self._check_bound(self.objective.timeslice_target, self.slice_op, "timeslice_target")
            share = self.objective.target
            if isinstance(share, timedelta) or not 0 < share < 1:
                raise AtPath(
                    "with budgeting: timeslices, the target is the share of good "
                    "slices, between 0 and 1 (e.g. 0.99)",
                    "objective",
                    "target",
                )
        else:
            if self.slice is not None or self.objective.timeslice_target is not None:
                raise AtPath(
                    "slice and objective.timeslice_target are only used with budgeting: timeslices",
                    "budgeting",
                )
            self._check_bound(self.objective.target, self.op, "target")
        if (
            self.objective.op is not None
            and self.objective.op != self.natural_op
            and not self.objective.allow_reverse_op
        ):
            direction = "lower" if self.natural_op == "<=" else "higher"
            raise AtPath(
                f"'{self.metric}' is {direction}-is-better, so its op is "
                f"{self.natural_op}; leave op out, or set allow_reverse_op: true if "
                f"{self.objective.op} is really meant",
                "objective",
                "op",
            )
        return self

    def _check_bound(self, value: float | timedelta, op: Op, field: str) -> None:
        if self._duration_unit() is not None:
            if not isinstance(value, timedelta):
                raise AtPath(
                    f"'{self.metric}' is a duration; write the bound with a unit, "
                    "e.g. 15m or 250ms",
                    "objective",
                    field,
                )
            return
        if isinstance(value, timedelta):
            raise AtPath(f"'{self.metric}' is a number, not a duration", "objective", field)
        if op == ">=" and not 0 < value < 1:
            raise AtPath(
                f"must be between 0 and 1 (exclusive) for a >= objective whose ideal is 1, "
                f"found {value}; e.g. 0.995 for 99.5 %",
                "objective",
                field,
            )
        if op == "<=" and value <= 0:
            raise AtPath(
                f"must be greater than 0 for a <= objective whose ideal is 0, found {value}",
                "objective",
                field,
            )


class _Sourced(_SLOBase):
    """An SLO whose events may be counted by Prometheus instead of read from records."""

    source: EventSource | None = None

    @model_validator(mode="after")
    def _source_fits(self) -> _Sourced:
        if self.source is not None and self.filter:
            raise AtPath(
                "filter selects prediction records; with a source, select the events in "
                "its queries instead",
                "filter",
            )
        return self


class AvailabilitySLO(_Sourced):
    dimension: Literal["availability"]
    sli: AvailabilitySLI = AvailabilitySLI()

    @property
    def metric(self) -> str:
        return "availability"

    def _is_event_ratio(self) -> bool:
        return True


class LatencySLO(_Sourced):
    dimension: Literal["latency"]
    sli: LatencySLI

    @model_validator(mode="after")
    def _threshold_from_source(self) -> LatencySLO:
        if self.source is not None and self.sli.percentile is not None:
            raise AtPath(
                "a percentile needs the latency of each response; with a source, give "
                "latency_threshold and count the responses within it in the good query "
                '(a histogram bucket, le="0.25")',
                "sli",
                "percentile",
            )
        return self

    @property
    def metric(self) -> str:
        if self.sli.percentile is not None:
            return f"latency_p{self.sli.percentile:g}"
        return "fast_share"

    def _lower_is_better(self) -> bool:
        return self.sli.percentile is not None

    def _is_event_ratio(self) -> bool:
        return self.sli.percentile is None

    def _duration_unit(self) -> str | None:
        return "ms" if self.sli.percentile is not None else None


class FreshnessSLO(_SLOBase):
    dimension: Literal["freshness"]
    sli: FreshnessSLI

    @property
    def metric(self) -> str:
        if self.sli.percentile is not None:
            return f"lag_p{self.sli.percentile:g}"
        return "fresh_share"

    def _lower_is_better(self) -> bool:
        return self.sli.percentile is not None

    def _is_event_ratio(self) -> bool:
        return self.sli.percentile is None

    def _duration_unit(self) -> str | None:
        return "s" if self.sli.percentile is not None else None


class AccuracySLO(_SLOBase):
    dimension: Literal["accuracy"]
    sli: AccuracySLI
    absent_after: OptionalDuration = None

    @property
    def metric(self) -> str:
        return self.sli.metric

    def _lower_is_better(self) -> bool:
        return self.sli.regression

    def _is_event_ratio(self) -> bool:
        return self.sli.metric == "accuracy"


class FairnessSLO(_SLOBase):
    dimension: Literal["fairness"]
    sli: FairnessSLI
    absent_after: OptionalDuration = None

    @property
    def metric(self) -> str:
        return self.sli.metric

    def _lower_is_better(self) -> bool:
        return self.sli.metric != "disparate_impact_ratio"


SLO = Annotated[
    AvailabilitySLO | LatencySLO | FreshnessSLO | AccuracySLO | FairnessSLO,
    Field(discriminator="dimension"),
]
AnySLO = AvailabilitySLO | LatencySLO | FreshnessSLO | AccuracySLO | FairnessSLO


def prometheus_source(slo: AnySLO) -> PrometheusSource | None:
    """The Prometheus queries that count ``slo``'s events (None: prediction records do)."""
    source = getattr(slo, "source", None)
    return None if source is None else source.prometheus


def is_percentile(slo: AnySLO) -> bool:
    """Whether ``slo`` is a percentile SLO, read from a histogram of its measured quantity."""
    return isinstance(slo, LatencySLO | FreshnessSLO) and slo.sli.percentile is not None


def calibrates(slo: AnySLO) -> bool:
    """Whether ``slo`` calibrates CBPE scores, from a histogram of scores per bin."""
    return isinstance(slo, AccuracySLO) and slo.sli.calibration_method is not None


def needs_histogram(slo: AnySLO) -> bool:
    """Whether the scan builds a histogram for ``slo`` and its timeline keeps one: a
    percentile SLO's, or the score bins of a calibrated CBPE estimate."""
    return is_percentile(slo) or calibrates(slo)
