"""The SLO spec: pydantic models, their defaults, and a YAML loader with located errors.

The spec is the contract between a team and mlslo. It is validated strictly (unknown fields are
errors) so that a typo never silently turns an SLO off, and every error names the file, the
line, the YAML path and the fix.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from mlslo.durations import format_duration, parse_duration
from mlslo.errors import SpecError

SPEC_VERSION = 1


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, timedelta):
        return value
    raise ValueError(f"expected a duration such as 15m, 6h or 30d, found {value!r}")


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
]


def _utc(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    raise ValueError(f"expected an ISO-8601 time such as 2026-01-31T12:00:00Z, found {value!r}")


UtcDatetime = Annotated[datetime, BeforeValidator(_utc)]
Scalar = Union[bool, int, float, str]  # noqa: UP007 - pydantic reads the order
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)]


class _AtPath(ValueError):
    """A cross-field error that knows which part of the spec it is about."""

    def __init__(self, message: str, *path: Any) -> None:
        super().__init__(message)
        self.path = path


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- objectives and windows -------------------------------------------------------------------

Op = Literal[">=", "<="]


class Objective(Strict):
    """The bound an SLI must meet. ``target`` is a share (0.95), a value (MAE 3) or a duration
    (p95 lag 15m) depending on the SLI; ``op`` is implied by the metric."""

    target: float | Duration
    op: Op | None = None
    timeslice_target: float | Duration | None = None


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


# --- SLIs per dimension -----------------------------------------------------------------------


class AvailabilitySLI(Strict):
    """Successful responses over all responses (from ``status`` and/or outcome counts)."""


class _DistributionSLI(Strict):
    percentile: float | None = Field(default=None, gt=0, lt=100)

    def _check_one(self, threshold: timedelta | None, name: str) -> None:
        if (threshold is None) == (self.percentile is None):
            raise ValueError(
                f"give either {name} (share of events within it) or percentile (e.g. 95)"
            )


class LatencySLI(_DistributionSLI):
    latency_threshold: Duration | None = None

    @model_validator(mode="after")
    def _one(self) -> LatencySLI:
        self._check_one(self.latency_threshold, "latency_threshold")
        return self


class FreshnessSLI(_DistributionSLI):
    lag_threshold: Duration | None = None

    @model_validator(mode="after")
    def _one(self) -> FreshnessSLI:
        self._check_one(self.lag_threshold, "lag_threshold")
        return self


REGRESSION_METRICS = ("mae", "rmse", "mape")


class AccuracySLI(Strict):
    """Model quality from predictions joined to (possibly late) labels."""

    metric: Literal[
        "accuracy",
        "precision",
        "recall",
        "f1",
        "specificity",
        "balanced_accuracy",
        "mae",
        "rmse",
        "mape",
    ]
    positive_label: Scalar = 1
    average: Literal["macro", "micro"] | None = None
    classes: list[Scalar] | None = None
    label_delay: Duration | None = None
    estimate: Literal["cbpe"] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> AccuracySLI:
        regression = self.metric in REGRESSION_METRICS
        if regression and (self.average or self.classes):
            raise ValueError(
                f"'{self.metric}' is a regression metric: average and classes "
                "apply to classification only"
            )
        if self.classes is not None and self.average is None:
            raise ValueError("classes are for multiclass SLIs: add average: macro or micro")
        if self.estimate and (regression or self.average):
            raise ValueError(
                "estimate: cbpe needs a binary classification metric and a score "
                "column (the positive-class probability)"
            )
        return self

    @property
    def multiclass(self) -> bool:
        return self.average is not None

    @property
    def regression(self) -> bool:
        return self.metric in REGRESSION_METRICS


class FairnessSLI(Strict):
    """A gap or ratio of a per-group rate, between groups or against a reference group."""

    metric: Literal[
        "true_positive_rate_difference",
        "false_positive_rate_difference",
        "equalized_odds_difference",
        "demographic_parity_difference",
        "disparate_impact_ratio",
    ]
    attribute: str | list[str]
    method: Literal["between_groups", "reference"] = "between_groups"
    reference_group: Scalar | list[Scalar] | None = None
    positive_label: Scalar = 1
    min_group_size: int = Field(default=1, ge=1)
    label_delay: Duration | None = None

    @field_validator("attribute")
    @classmethod
    def _attributes(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("list one or more distinct attribute columns")
        return value

    @model_validator(mode="after")
    def _reference(self) -> FairnessSLI:
        if self.method == "reference" and self.reference_group is None:
            raise ValueError("method: reference needs reference_group (e.g. reference_group: A)")
        if self.method == "between_groups" and self.reference_group is not None:
            raise ValueError("reference_group is only used with method: reference")
        if self.reference is not None and len(self.reference) != len(self.attributes):
            raise ValueError(
                f"reference_group needs one value per attribute "
                f"{self.attributes}, found {self.reference_group!r}"
            )
        return self

    @property
    def attributes(self) -> tuple[str, ...]:
        return (self.attribute,) if isinstance(self.attribute, str) else tuple(self.attribute)

    @property
    def reference(self) -> tuple[Scalar, ...] | None:
        if self.reference_group is None:
            return None
        if isinstance(self.reference_group, list):
            return tuple(self.reference_group)
        return (self.reference_group,)

    @property
    def needs_labels(self) -> bool:
        """Whether the metric compares rates that need labels (true/false positive rates);
        selection rates (demographic parity, disparate impact) need predictions only."""
        return self.metric not in ("demographic_parity_difference", "disparate_impact_ratio")


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
            raise _AtPath(
                f"occurrences counts good and bad events, which '{self.metric}' is not; use "
                "aggregate (the default) or timeslices",
                "budgeting",
            )
        if budgeting == "timeslices":
            if self.slice is None or self.objective.timeslice_target is None:
                raise _AtPath(
                    "timeslices needs slice (e.g. 1h) and objective.timeslice_target "
                    "(the bound each slice must meet)",
                    "budgeting",
                )
            self._check_bound(self.objective.timeslice_target, self.slice_op, "timeslice_target")
            share = self.objective.target
            if isinstance(share, timedelta) or not 0 < share < 1:
                raise _AtPath(
                    "with budgeting: timeslices, the target is the share of good "
                    "slices, between 0 and 1 (e.g. 0.99)",
                    "objective",
                    "target",
                )
        else:
            if self.slice is not None or self.objective.timeslice_target is not None:
                raise _AtPath(
                    "slice and objective.timeslice_target are only used with budgeting: timeslices",
                    "budgeting",
                )
            self._check_bound(self.objective.target, self.op, "target")
        if (
            self.objective.op is not None
            and self.objective.op != self.natural_op
            and (self._duration_unit() is not None or self.metric in REGRESSION_METRICS)
        ):
            raise _AtPath(
                f"'{self.metric}' is lower-is-better without an upper limit; its op must be <=",
                "objective",
                "op",
            )
        return self

    def _check_bound(self, value: float | timedelta, op: Op, field: str) -> None:
        if self._duration_unit() is not None:
            if not isinstance(value, timedelta):
                raise _AtPath(
                    f"'{self.metric}' is a duration; write the bound with a unit, "
                    "e.g. 15m or 250ms",
                    "objective",
                    field,
                )
            return
        if isinstance(value, timedelta):
            raise _AtPath(f"'{self.metric}' is a number, not a duration", "objective", field)
        if op == ">=" and not 0 < value < 1:
            raise _AtPath(
                f"must be between 0 and 1 (exclusive) for a >= objective whose ideal is 1, "
                f"found {value}; e.g. 0.995 for 99.5 %",
                "objective",
                field,
            )
        if op == "<=" and value <= 0:
            raise _AtPath(
                f"must be greater than 0 for a <= objective whose ideal is 0, found {value}",
                "objective",
                field,
            )


class AvailabilitySLO(_SLOBase):
    dimension: Literal["availability"]
    sli: AvailabilitySLI = AvailabilitySLI()

    @property
    def metric(self) -> str:
        return "availability"

    def _is_event_ratio(self) -> bool:
        return True


class LatencySLO(_SLOBase):
    dimension: Literal["latency"]
    sli: LatencySLI

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


def needs_histogram(slo: AnySLO) -> bool:
    """Whether ``slo`` is a percentile SLO, read from a histogram (the scan builds one for it
    and its timeline keeps one)."""
    return isinstance(slo, LatencySLO | FreshnessSLO) and slo.sli.percentile is not None


# --- data mapping, corrections, policy --------------------------------------------------------


class Columns(Strict):
    """Where each field of a prediction record lives in the user's table."""

    id: str = "id"
    ts: str = "ts"
    model: str = "model"
    model_version: str = "model_version"
    status: str = "status"
    latency_ms: str = "latency_ms"
    event_ts: str = "event_ts"
    prediction: str = "prediction"
    score: str = "score"
    label: str = "label"


class LabelColumns(Strict):
    """Where each field of a label record lives (the separate labels table)."""

    id: str = "id"
    ts: str = "ts"
    label: str = "label"


class OutcomeColumns(Strict):
    """Where each field of an outcome-count record lives."""

    ts: str = "ts"
    total: str = "total"
    ok: str = "ok"


class Correction(Strict):
    """A period excluded from every window (a known label outage, a planned migration)."""

    start: UtcDatetime
    end: UtcDatetime
    reason: str
    slos: list[str] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Correction:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


Effect = Literal["allow", "warn", "block"]


class RiskScore(Strict):
    """Weighted sum of consumed budgets (each clamped to [0, 1]); above ``max`` blocks."""

    weights: dict[str, float]
    max: float = Field(gt=0)

    @field_validator("weights")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("give at least one weight")
        bad = [k for k, w in value.items() if w < 0]
        if bad:
            raise ValueError(f"weights must be >= 0 (see {', '.join(bad)})")
        return value


class Policy(Strict):
    """How budgets gate a deployment. Names are SLO names or dimensions."""

    hard_stop: list[str] = Field(default_factory=list)
    soft_stop: list[str] = Field(default_factory=list)
    min_remaining: dict[str, float] = Field(default_factory=dict)
    risk_score: RiskScore | None = None
    on_insufficient_data: Effect = "warn"
    on_no_data: Effect = "warn"


class Notifier(Strict):
    """Where alert notifications go."""

    name: Name
    type: Literal["webhook", "slack", "alertmanager"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    severities: list[Literal["page", "ticket"]] | None = None
    repeat_interval: Duration = timedelta(hours=4)
    send_resolved: bool = True

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError(f"expected an http(s) URL, found {value!r}")
        return value


class Spec(Strict):
    """A service's SLOs, how to read its records, and how budgets gate its deployments."""

    version: Literal[1] = 1
    service: Name
    description: str | None = None
    bucket: Duration = timedelta(minutes=1)
    budget_low: float = Field(default=0.25, gt=0, lt=1)
    columns: Columns = Columns()
    label_columns: LabelColumns = LabelColumns()
    outcome_columns: OutcomeColumns = OutcomeColumns()
    attributes: list[str] = Field(default_factory=list)
    slos: list[SLO] = Field(min_length=1)
    corrections: list[Correction] = Field(default_factory=list)
    policy: Policy | None = None
    policies: dict[Name, Policy] = Field(default_factory=dict)
    default_policy: str | None = None
    notifiers: list[Notifier] = Field(default_factory=list)
    dashboard_url: str | None = None

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: timedelta) -> timedelta:
        seconds = value.total_seconds()
        if seconds < 1 or seconds > 3600 or seconds != int(seconds) or 86400 % int(seconds):
            raise ValueError(
                "bucket must be a whole number of seconds from 1s to 1h that "
                f"divides a day (1m, 5m, ...), found {format_duration(value)}"
            )
        return value

    @model_validator(mode="after")
    def _references(self) -> Spec:
        names = [slo.name for slo in self.slos]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise _AtPath(
                    f"SLO name '{name}' is used twice; names must be unique", "slos", index, "name"
                )
        step = self.bucket
        for index, slo in enumerate(self.slos):
            for what, length in (("window", slo.window.rolling), ("slice", slo.slice)):
                if length is not None and length % step:
                    raise _AtPath(
                        f"{format_duration(length)} is not a multiple of bucket "
                        f"{format_duration(step)}",
                        "slos",
                        index,
                        what,
                    )
        known = set(names) | set(DIMENSIONS)
        for index, correction in enumerate(self.corrections):
            for name in correction.slos or []:
                if name not in names:
                    raise _AtPath(
                        f"names SLO '{name}', which is not in slos{_closest(name, names)}",
                        "corrections",
                        index,
                        "slos",
                    )
        if self.policy is not None and "default" in self.policies:
            raise _AtPath(
                "use either policy (one policy, named 'default') or a policy named "
                "'default' under policies, not both",
                "policies",
                "default",
            )
        for policy_name, policy in self.all_policies().items():
            where: tuple[Any, ...] = (
                ("policy",) if policy is self.policy else ("policies", policy_name)
            )
            refs: list[tuple[str, tuple[Any, ...]]] = [
                *((r, ("hard_stop", i)) for i, r in enumerate(policy.hard_stop)),
                *((r, ("soft_stop", i)) for i, r in enumerate(policy.soft_stop)),
                *((r, ("min_remaining", r)) for r in policy.min_remaining),
            ]
            if policy.risk_score is not None:
                refs += [(r, ("risk_score", "weights", r)) for r in policy.risk_score.weights]
            for ref, sub in refs:
                if ref not in known:
                    raise _AtPath(
                        f"'{ref}' is neither an SLO nor a dimension{_closest(ref, sorted(known))}",
                        *where,
                        *sub,
                    )
        if self.default_policy is not None and self.default_policy not in self.all_policies():
            raise _AtPath(
                f"'{self.default_policy}' is not defined under policies", "default_policy"
            )
        return self

    def all_policies(self) -> dict[str, Policy]:
        out = dict(self.policies)
        if self.policy is not None:
            out = {"default": self.policy, **out}
        return out

    def slo(self, name: str) -> AnySLO:
        for slo in self.slos:
            if slo.name == name:
                return slo
        raise KeyError(name)


# --- loading ----------------------------------------------------------------------------------


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec; raise SpecError naming file, line, path and fix."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            "file not found; pass the path of your SLO spec (YAML)", file=file
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}", file=file) from None
    return parse_spec(text, file=file)


def parse_spec(text: str, *, file: str = "spec") -> Spec:
    """Validate spec text (YAML or JSON)."""
    data, lines = _load_yaml(text, file)
    if not isinstance(data, dict):
        raise SpecError(
            "expected a mapping with 'service' and 'slos' at the top", file=file, line=1
        )
    version = data.get("version", SPEC_VERSION)
    if version != SPEC_VERSION:
        raise SpecError(
            f"spec version {version!r} is not supported; this mlslo reads version {SPEC_VERSION}",
            file=file,
            path="version",
            line=lines.get(("version",)),
        )
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise _located(exc, data, lines, file) from None


def spec_from_dict(data: Mapping[str, Any], *, file: str = "spec") -> Spec:
    try:
        return Spec.model_validate(dict(data))
    except ValidationError as exc:
        raise _located(exc, data, {}, file) from None


def _load_yaml(text: str, file: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise SpecError(f"not valid YAML: {exc.problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}", file=file) from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _index_lines(node, (), lines, file)
    return data, lines


def _index_lines(
    node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int], file: str
) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise SpecError(
                    f"key '{key}' appears twice; keep one",
                    file=file,
                    path=_render_path((*path, key)),
                    line=key_node.start_mark.line + 1,
                )
            seen.add(key)
            _index_lines(value_node, (*path, key), lines, file)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines, file)


def _render_path(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_FRIENDLY = {
    "missing": "is required",
    "literal_error": "must be one of {expected}",
    "union_tag_invalid": "must be one of {expected_tags}",
    "union_tag_not_found": "is required (one of availability, latency, freshness, accuracy, "
    "fairness)",
}


def _located(
    exc: ValidationError, data: Any, lines: dict[tuple[Any, ...], int], file: str
) -> SpecError:
    """Turn pydantic's first error into one located, actionable message."""
    errors = exc.errors(include_url=False)
    error = min(errors, key=lambda e: e["type"] != "extra_forbidden")
    path = _data_path(error["loc"], data)
    kind = error["type"]
    message = str(error["msg"])
    if kind == "extra_forbidden":
        field = str(path[-1])
        allowed = _allowed_fields(path[:-1], data)
        hint = _closest(field, allowed)
        expected = f"; expected one of: {', '.join(allowed)}" if allowed and not hint else ""
        message = f"unknown field '{field}'{hint}{expected}"
    elif kind in _FRIENDLY:
        ctx = error.get("ctx", {})
        message = _FRIENDLY[kind].format(**{k: str(v) for k, v in ctx.items()})
        if kind == "union_tag_invalid":
            path.append("dimension")
            message += f", found {ctx.get('tag')!r}"
    elif kind == "value_error":
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, _AtPath):
            path = [*path, *cause.path]
        message = message.removeprefix("Value error, ")
    else:
        found = error.get("input")
        message = f"{message[0].lower()}{message[1:]}"
        if not isinstance(found, dict | list):
            message += f", found {found!r}"
    line = None
    for cut in range(len(path), -1, -1):
        if tuple(path[:cut]) in lines:
            line = lines[tuple(path[:cut])]
            break
    return SpecError(message, file=file, path=_render_path(path) or None, line=line)


def _data_path(loc: Sequence[Any], data: Any) -> list[Any]:
    """Drop the discriminator tags pydantic inserts so the path matches the YAML."""
    out: list[Any] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if (
            isinstance(node, dict)
            and part not in node
            and part in DIMENSIONS
            and (not last or "dimension" in node)
        ):
            continue
        if isinstance(part, str) and part.startswith("function-"):
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return out


def _allowed_fields(path: Sequence[Any], data: Any) -> list[str]:
    model: Any = Spec
    node = data
    for part in path:
        node = (
            node.get(part)
            if isinstance(node, dict)
            else (node[part] if isinstance(node, list) and isinstance(part, int) else None)
        )
        model = _child_type(model, part, node)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _child_type(model: Any, part: Any, node: Any) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel) and isinstance(part, str):
        field = model.model_fields.get(part)
        return None if field is None else _unwrap(field.annotation, node)
    origin = typing.get_origin(model)
    args = typing.get_args(model)
    if origin is list and args:
        return _unwrap(args[0], node)
    if origin is dict and len(args) == 2:
        return _unwrap(args[1], node)
    return None


def _unwrap(annotation: Any, node: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0], node)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
        if isinstance(node, dict) and "dimension" in node:
            for m in models:
                if m.model_fields.get("dimension") is not None and node[
                    "dimension"
                ] in typing.get_args(m.model_fields["dimension"].annotation):
                    return m
        if len(models) == 1:
            return models[0]
        containers = [a for a in options if typing.get_origin(a) in (list, dict)]
        return containers[0] if len(containers) == 1 else None
    return annotation


def _closest(word: str, options: Sequence[str]) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""
