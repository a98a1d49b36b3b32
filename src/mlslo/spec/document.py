"""The spec document: the service, its SLOs, where each record field lives, corrections,
policies and notifiers, with the cross-field checks that need the whole document."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from mlslo.moments import format_duration
from mlslo.spec.composites import Composite
from mlslo.spec.resolve import Resolved, resolve
from mlslo.spec.slos import SLO, AnySLO, prometheus_source
from mlslo.spec.types import (
    AtPath,
    Duration,
    Name,
    Strict,
    UtcDatetime,
    closest,
    reserved_column,
)

HOUR = "hour"
"""The slice attribution derives from the buckets themselves: the hour each one falls in."""
NOT_SLICES = ("id", "ts", "event_ts", "latency_ms", "score", "prediction", "label")
"""Record fields whose values are measurements or ids, never slices."""

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


def _no_password(value: str | None) -> str | None:
    """A URL in a spec must not hold a password: specs are committed and shared."""
    if value is None:
        return None
    from urllib.parse import parse_qsl, urlsplit

    if "://" in value:
        parts = urlsplit(value)
        if parts.password is not None or any(
            key.lower() == "password" for key, _ in parse_qsl(parts.query)
        ):
            raise ValueError(
                "a password in the URL is refused; set it in the environment "
                "(MLSLO_PG_PASSWORD, ...) or pass password_file=<path>"
            )
    return value


SourceText = Annotated[str, AfterValidator(_no_password)]


class Source(Strict):
    """Where the records are when the command line does not say: a file, glob or folder
    (relative to the spec's folder), or a table's URL."""

    predictions: SourceText
    labels: SourceText | None = None
    outcomes: SourceText | None = None


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


def _share(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"must be a share from 0 to 1 (0.75 for 75 %), found {value:g}")
    return value


Share = Annotated[float, AfterValidator(_share)]
"""A share of a budget, from 0 to 1 (0.5 is half)."""


class RiskScore(Strict):
    """Consumed budgets weighted into one number in [0, 1]; above ``max`` blocks.

    A weight on a dimension is shared equally by its SLOs; weights are normalised to sum 1;
    each term is ``weight x consumed`` with ``consumed`` clipped to [0, 1]. ``undefined``
    says what an SLO whose budget cannot be computed adds: all of its weight (``consumed``,
    the default: it never passes silently) or nothing, its weight shared by the others
    (``ignore``)."""

    weights: dict[str, float]
    max: float = Field(gt=0, le=1)
    undefined: Literal["consumed", "ignore"] = "consumed"

    @field_validator("weights")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("give at least one weight")
        bad = [k for k, w in value.items() if not w >= 0]
        if bad:
            raise ValueError(f"weights must be >= 0 (see {', '.join(bad)})")
        if not sum(value.values()) > 0:
            raise ValueError("at least one weight must be above 0")
        return value


class MaxBurnRate(Strict):
    """Block while the burn rate over ``window`` is above ``rate``."""

    window: Duration
    rate: float = Field(gt=0)


class Policy(Strict):
    """How budgets gate a deployment.

    A reference names an SLO, or ``dimension:<name>`` for every SLO of a dimension (a bare
    dimension name still works when no SLO has that name, with a deprecation warning)."""

    hard_stop: list[str] = Field(default_factory=list)
    soft_stop: list[str] = Field(default_factory=list)
    min_remaining: dict[str, Share] = Field(default_factory=dict)
    max_burn_rate: dict[str, MaxBurnRate] = Field(default_factory=dict)
    block_on_alert: Literal["page", "ticket"] | None = None
    risk_score: RiskScore | None = None
    on_insufficient_data: Effect = "warn"
    on_no_data: Effect | None = None

    @property
    def no_data_effect(self) -> Effect:
        """What an SLO without data does (``on_no_data``, else ``on_insufficient_data``)."""
        return self.on_no_data or self.on_insufficient_data

    def references(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Every reference with its path inside the policy."""
        out: list[tuple[str, tuple[Any, ...]]] = [
            *((r, ("hard_stop", i)) for i, r in enumerate(self.hard_stop)),
            *((r, ("soft_stop", i)) for i, r in enumerate(self.soft_stop)),
            *((r, ("min_remaining", r)) for r in self.min_remaining),
            *((r, ("max_burn_rate", r)) for r in self.max_burn_rate),
        ]
        if self.risk_score is not None:
            out += [(r, ("risk_score", "weights", r)) for r in self.risk_score.weights]
        return out


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
    source: Source | None = None
    attributes: list[str] = Field(default_factory=list)
    attribution: list[str] = Field(default_factory=list)
    slos: list[SLO] = Field(min_length=1)
    composites: list[Composite] = Field(default_factory=list)
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

    @field_validator("attribution")
    @classmethod
    def _attribution(cls, value: list[str]) -> list[str]:
        for index, name in enumerate(value):
            if name in value[:index]:
                raise ValueError(f"'{name}' is listed twice")
            if name == HOUR:
                raise ValueError(
                    f"'{HOUR}' is always available to attribution (the hour of each bucket); "
                    "leave it out of the list"
                )
            if name in NOT_SLICES:
                raise ValueError(
                    f"'{name}' takes a different value on nearly every record, so slicing by "
                    "it would keep one slice per record; list attribute columns such as "
                    "model_version or region"
                )
            if not name.strip():
                raise ValueError("an empty name is not a column; list attribute columns")
            reason = reserved_column(name)
            if reason is not None:
                raise ValueError(reason)
        return value

    @model_validator(mode="after")
    def _references(self) -> Spec:
        names = [slo.name for slo in self.slos]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise AtPath(
                    f"SLO name '{name}' is used twice; names must be unique", "slos", index, "name"
                )
        step = self.bucket
        for index, slo in enumerate(self.slos):
            for what, length in (("window", slo.window.rolling), ("slice", slo.slice)):
                if length is not None and length % step:
                    raise AtPath(
                        f"{format_duration(length)} is not a multiple of bucket "
                        f"{format_duration(step)}",
                        "slos",
                        index,
                        what,
                    )
        self._check_composites(names)
        for index, correction in enumerate(self.corrections):
            for name in correction.slos or []:
                if name not in names:
                    raise AtPath(
                        f"names SLO '{name}', which is not in slos{closest(name, names)}",
                        "corrections",
                        index,
                        "slos",
                    )
        if self.policy is not None and "default" in self.policies:
            raise AtPath(
                "use either policy (one policy, named 'default') or a policy named "
                "'default' under policies, not both",
                "policies",
                "default",
            )
        for policy_name, policy in self.all_policies().items():
            where: tuple[Any, ...] = (
                ("policy",) if policy is self.policy else ("policies", policy_name)
            )
            for ref, sub in policy.references():
                try:
                    self.resolve(ref)
                except ValueError as exc:
                    raise AtPath(str(exc), *where, *sub) from None
            for ref, limit in policy.max_burn_rate.items():
                if limit.window % step:
                    raise AtPath(
                        f"{format_duration(limit.window)} is not a multiple of bucket "
                        f"{format_duration(step)}",
                        *where,
                        "max_burn_rate",
                        ref,
                        "window",
                    )
        if self.default_policy is not None and self.default_policy not in self.all_policies():
            raise AtPath(f"'{self.default_policy}' is not defined under policies", "default_policy")
        return self

    def _check_composites(self, names: list[str]) -> None:
        seen: list[str] = []
        for index, composite in enumerate(self.composites):
            if composite.name in names:
                raise AtPath(
                    f"'{composite.name}' is already the name of an SLO; a composite needs a "
                    "name of its own",
                    "composites",
                    index,
                    "name",
                )
            if composite.name in seen:
                raise AtPath(
                    f"composite name '{composite.name}' is used twice; names must be unique",
                    "composites",
                    index,
                    "name",
                )
            seen.append(composite.name)
            if composite.window.rolling is not None and composite.window.rolling % self.bucket:
                raise AtPath(
                    f"{format_duration(composite.window.rolling)} is not a multiple of bucket "
                    f"{format_duration(self.bucket)}",
                    "composites",
                    index,
                    "window",
                )
            parts: list[str] = []
            for position, component in enumerate(composite.components):
                if component.slo not in names:
                    other = (
                        " (a component is an SLO, not a composite)" if component.slo in seen else ""
                    )
                    raise AtPath(
                        f"names SLO '{component.slo}', which is not in slos"
                        f"{closest(component.slo, names)}{other}",
                        "composites",
                        index,
                        "components",
                        position,
                        "slo",
                    )
                if component.slo in parts:
                    raise AtPath(
                        f"'{component.slo}' is a component twice; give it one weight",
                        "composites",
                        index,
                        "components",
                        position,
                        "slo",
                    )
                parts.append(component.slo)

    def resolve(self, ref: str) -> Resolved:
        """The SLOs (or the composite) a policy reference covers."""
        return resolve(self.slos, ref, [c.name for c in self.composites])

    def composite(self, name: str) -> Composite:
        """The composite SLO named ``name`` (KeyError when there is none)."""
        for composite in self.composites:
            if composite.name == name:
                return composite
        raise KeyError(name)

    def records_only(self) -> Spec:
        """This spec with only the SLOs read from prediction records (not from Prometheus),
        for the record scan; it may have no SLO at all."""
        kept = [slo for slo in self.slos if prometheus_source(slo) is None]
        if len(kept) == len(self.slos):
            return self
        return self.model_copy(update={"slos": kept})

    def all_policies(self) -> dict[str, Policy]:
        """Every policy by name; a lone ``policy:`` is named ``default``."""
        out = dict(self.policies)
        if self.policy is not None:
            out = {"default": self.policy, **out}
        return out

    def slo(self, name: str) -> AnySLO:
        """The SLO named ``name`` (KeyError if none is)."""
        for slo in self.slos:
            if slo.name == name:
                return slo
        raise KeyError(name)
