"""A policy's rules applied to budget states: allow, warn or block, with every reason. Pure.

Every rule is checked and every reason kept (not only the first), so a blocked team sees the
whole list of what to fix. Reasons are ordered by SLO name and rule, so the decision and its
explanation do not depend on the order of SLOs in the spec. A budget that cannot be judged
never passes silently: ``on_insufficient_data`` (and ``on_no_data``) say whether it warns,
blocks or allows, and the risk score counts it as fully consumed unless told otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from mlslo.measure.budget import TOLERANCE
from mlslo.measure.windows import burn_key
from mlslo.spec import Policy, Spec
from mlslo.spec.references import coverage

Decision = Literal["allow", "warn", "block"]
Effect = Literal["warn", "block"]
RULE_ORDER = (
    "hard_stop",
    "soft_stop",
    "min_remaining",
    "max_burn_rate",
    "block_on_alert",
    "no_data",
    "insufficient_data",
    "risk_score",
    "override",
)
SEVERITY_RANK = {"ticket": 0, "page": 1}


@dataclass(frozen=True)
class BudgetState:
    """What the gate needs to know of one evaluated SLO."""

    name: str
    dimension: str
    status: str
    consumed: float | None
    remaining: float | None
    scope: str | None = None
    burn_rates: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Firing:
    """An alert firing for an SLO: its rule and severity."""

    slo: str
    rule: str
    severity: str


@dataclass(frozen=True)
class Reason:
    """One rule that warned or blocked: the SLO it judged (None for a rule over several),
    the rule, its effect, a sentence for people, and the value beside its threshold."""

    slo: str | None
    rule: str
    effect: Effect
    message: str
    value: float | None = None
    threshold: float | None = None
    scope: str | None = None


@dataclass(frozen=True)
class RiskTerm:
    """One SLO's part of the risk score: its normalised ``weight``, its ``consumed`` share
    clipped to [0, 1] (1 when ``undefined`` and counted as consumed) and ``weight x
    consumed``."""

    slo: str
    weight: float
    consumed: float | None
    contribution: float
    undefined: bool = False


@dataclass(frozen=True)
class Override:
    """A time-limited decision by a person to let a blocked deployment through."""

    reason: str
    created_at: datetime
    expires_at: datetime
    created_by: str | None = None
    id: int | None = None

    def active(self, at: datetime) -> bool:
        return self.created_at <= at < self.expires_at


@dataclass(frozen=True)
class GateDecision:
    decision: Decision
    policy: str
    risk_score: float | None
    risk_terms: tuple[RiskTerm, ...]
    reasons: tuple[Reason, ...]
    override: Override | None = None
    blocked_before_override: bool = False


def _percent(value: float | None) -> str:
    return "none" if value is None else f"{value * 100:.1f}%"


def _covering(rules: Mapping[str, Sequence[str]], name: str) -> list[str]:
    return [rule for rule, names in rules.items() if name in names]


def decide(
    spec: Spec,
    policy: Policy,
    name: str,
    states: Sequence[BudgetState],
    *,
    firing: Sequence[Firing] = (),
    override: Override | None = None,
    at: datetime | None = None,
) -> GateDecision:
    """Apply ``policy`` (named ``name``) to the budgets in ``states`` and the alerts
    ``firing``; ``override`` (if active at ``at``) turns a block into a warning that names
    it."""
    rules = coverage(spec, policy)
    reasons: list[Reason] = []
    for state in states:
        covering = _covering(rules, state.name)
        if covering:
            reasons += _judge(spec, policy, state, covering)
    reasons += _alerts(policy, rules, firing)
    score, terms = _risk(spec, policy, states)
    limit = None if policy.risk_score is None else policy.risk_score.max
    if limit is not None and score is not None and score > limit + TOLERANCE:
        reasons.append(
            Reason(
                None,
                "risk_score",
                "block",
                f"risk score {score:.3f} is above the policy's maximum {limit:g}",
                score,
                limit,
            )
        )
    reasons.sort(key=lambda r: (r.scope or "", r.slo or "~", RULE_ORDER.index(r.rule)))
    decision: Decision = (
        "block" if any(r.effect == "block" for r in reasons) else ("warn" if reasons else "allow")
    )
    active = override if override is not None and at is not None and override.active(at) else None
    blocked = decision == "block"
    if blocked and active is not None:
        decision = "warn"
        reasons.append(
            Reason(
                None,
                "override",
                "warn",
                f"block overridden until {active.expires_at.isoformat()}: {active.reason}",
            )
        )
    return GateDecision(
        decision, name, score, tuple(terms), tuple(reasons), active, blocked and active is not None
    )


def _judge(spec: Spec, policy: Policy, state: BudgetState, covering: list[str]) -> list[Reason]:
    """The reasons one covered SLO gives."""
    out: list[Reason] = []
    scope = state.scope
    if state.status in ("no_data", "insufficient_data"):
        no_data = state.status == "no_data"
        effect = policy.no_data_effect if no_data else policy.on_insufficient_data
        if effect != "allow":
            what = "has no data" if no_data else "has too little data to judge"
            out.append(
                Reason(
                    state.name,
                    state.status,
                    effect,
                    f"{state.name} {what} in its window (covered by {', '.join(covering)})",
                    scope=scope,
                )
            )
    else:
        if state.status == "exhausted":
            for rule, effect in (("hard_stop", "block"), ("soft_stop", "warn")):
                if rule in covering:
                    out.append(
                        Reason(
                            state.name,
                            rule,
                            effect,  # type: ignore[arg-type]
                            f"{state.name} error budget is exhausted "
                            f"({_percent(state.remaining)} left)",
                            state.remaining,
                            0.0,
                            scope,
                        )
                    )
        for ref, minimum in policy.min_remaining.items():
            if (
                state.name in spec.resolve(ref).names
                and state.remaining is not None
                and state.remaining < minimum - TOLERANCE
            ):
                out.append(
                    Reason(
                        state.name,
                        "min_remaining",
                        "block",
                        f"{state.name} has {_percent(state.remaining)} of its budget left; the "
                        f"policy needs at least {_percent(minimum)}",
                        state.remaining,
                        minimum,
                        scope,
                    )
                )
    for ref, limit in policy.max_burn_rate.items():
        if state.name not in spec.resolve(ref).names:
            continue
        key = burn_key(limit.window)
        rate = state.burn_rates.get(key)
        if rate is not None and rate > limit.rate + TOLERANCE:
            out.append(
                Reason(
                    state.name,
                    "max_burn_rate",
                    "block",
                    f"{state.name} burns its error budget {rate:.2f}× over the last {key}; "
                    f"the policy allows at most {limit.rate:g}×",
                    rate,
                    limit.rate,
                    scope,
                )
            )
    return out


def _alerts(
    policy: Policy, rules: Mapping[str, Sequence[str]], firing: Sequence[Firing]
) -> list[Reason]:
    """With ``block_on_alert``, a block for each alert of that severity or above firing for a
    covered SLO."""
    if policy.block_on_alert is None:
        return []
    least = SEVERITY_RANK[policy.block_on_alert]
    covered = {name for names in rules.values() for name in names}
    return [
        Reason(
            alert.slo,
            "block_on_alert",
            "block",
            f"{alert.slo}: the {alert.severity} alert {alert.rule} is firing",
        )
        for alert in firing
        if alert.slo in covered and SEVERITY_RANK.get(alert.severity, 0) >= least
    ]


def risk_weights(spec: Spec, policy: Policy) -> dict[str, float]:
    """Each SLO's share of the risk weights before normalising: a reference's weight is
    shared equally by the SLOs it covers."""
    assert policy.risk_score is not None
    out: dict[str, float] = {}
    for ref, weight in policy.risk_score.weights.items():
        names = spec.resolve(ref).names
        for slo in names:
            out[slo] = out.get(slo, 0.0) + weight / len(names)
    return out


def _risk(
    spec: Spec, policy: Policy, states: Sequence[BudgetState]
) -> tuple[float | None, list[RiskTerm]]:
    """Σ weight × clip(consumed, 0, 1) with weights normalised to sum 1, so the score is in
    [0, 1]; a budget that cannot be judged (no data, too little data, no value) counts as
    fully consumed unless the policy ignores it. The sums are exactly rounded (fsum), so the
    order of the SLOs cannot move a score across ``max``."""
    if policy.risk_score is None:
        return None, []
    weights = risk_weights(spec, policy)
    counted = []
    for state in states:
        weight = weights.get(state.name)
        if weight is None or weight <= 0:
            continue
        undefined = state.consumed is None or state.status in ("no_data", "insufficient_data")
        if undefined and policy.risk_score.undefined == "ignore":
            continue
        consumed = 1.0 if undefined else min(max(state.consumed or 0.0, 0.0), 1.0)
        counted.append((state.name, weight, consumed, undefined))
    total = math.fsum(weight for _, weight, _, _ in counted)
    if total <= 0:
        return None, []
    terms = [
        RiskTerm(slo, weight / total, consumed, weight / total * consumed, undefined)
        for slo, weight, consumed, undefined in sorted(counted)
    ]
    score = math.fsum(weight * consumed for _, weight, consumed, _ in counted) / total
    return min(score, 1.0), terms
