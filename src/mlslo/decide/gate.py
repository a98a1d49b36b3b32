"""The deployment gate: a policy turns evaluated budgets into allow, warn or block. Pure.

:func:`gate` is the one composition every caller uses (the CLI over files, the service over
its store, the report and the dashboard): evaluate, check a candidate, apply the policy.

Every rule is checked and every reason kept (not only the first), so a blocked team sees the
whole list of what to fix. Reasons are ordered by SLO name and rule, so the decision and its
explanation do not depend on the order of SLOs in the spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mlslo.errors import UsageError
from mlslo.measure.budget import TOLERANCE
from mlslo.measure.candidate import CandidateCheck, Selector, candidate_check
from mlslo.measure.evaluate import Evaluation, SLOEvaluation, evaluate
from mlslo.spec import Policy, Spec
from mlslo.stats.rollup import Rollup
from mlslo.stats.timeline import Timeline

Decision = Literal["allow", "warn", "block"]
Effect = Literal["warn", "block"]
RULE_ORDER = (
    "hard_stop",
    "soft_stop",
    "min_remaining",
    "no_data",
    "insufficient_data",
    "risk_score",
    "override",
)


@dataclass(frozen=True)
class BudgetState:
    """What the gate needs to know of one evaluated SLO."""

    name: str
    dimension: str
    status: str
    consumed: float | None
    remaining: float | None
    scope: str | None = None


@dataclass(frozen=True)
class Reason:
    slo: str | None
    rule: str
    effect: Effect
    message: str
    value: float | None = None
    threshold: float | None = None
    scope: str | None = None


@dataclass(frozen=True)
class RiskTerm:
    slo: str
    weight: float
    consumed: float | None
    contribution: float


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


def choose_policy(spec: Spec, name: str | None) -> tuple[str, Policy]:
    """The named policy, or the spec's default (or only) one; a clear error otherwise."""
    policies = spec.all_policies()
    if not policies:
        raise UsageError(
            "the spec defines no policy; add a policy: section (hard_stop, "
            "soft_stop, min_remaining, risk_score) to gate deployments"
        )
    if name is not None:
        if name not in policies:
            raise UsageError(
                f"no policy named '{name}'; the spec defines {', '.join(policies)}",
                parameter="policy",
            )
        return name, policies[name]
    if spec.default_policy is not None:
        return spec.default_policy, policies[spec.default_policy]
    if len(policies) == 1:
        only = next(iter(policies))
        return only, policies[only]
    raise UsageError(
        f"the spec defines several policies ({', '.join(policies)}); name one, or set "
        "default_policy in the spec",
        parameter="policy",
    )


def _matches(ref: str, state: BudgetState, names: set[str]) -> bool:
    """A reference names one SLO, or (when no SLO has that name) every SLO of a dimension."""
    return ref == state.name or (ref not in names and ref == state.dimension)


def _percent(value: float | None) -> str:
    return "none" if value is None else f"{value * 100:.1f}%"


def decide(
    policy: Policy,
    name: str,
    states: Sequence[BudgetState],
    override: Override | None = None,
    at: datetime | None = None,
) -> GateDecision:
    """Apply ``policy`` to the budgets in ``states``; ``override`` (if active at ``at``)
    turns a block into a warning that names it."""
    reasons: list[Reason] = []
    names = {s.name for s in states}
    referenced = set(policy.hard_stop) | set(policy.soft_stop) | set(policy.min_remaining)
    if policy.risk_score is not None:
        referenced |= set(policy.risk_score.weights)
    for state in states:
        if not any(_matches(ref, state, names) for ref in referenced):
            continue
        judged = state.status not in ("no_data", "insufficient_data")
        if not judged:
            effect = policy.on_no_data if state.status == "no_data" else policy.on_insufficient_data
            if effect != "allow":
                what = (
                    "has no data" if state.status == "no_data" else "has too little data to judge"
                )
                reasons.append(
                    Reason(
                        state.name,
                        state.status,
                        effect,
                        f"{state.name} {what} in its window",
                        scope=state.scope,
                    )
                )
            continue
        if state.status == "exhausted":
            for rule, refs, effect in (
                ("hard_stop", policy.hard_stop, "block"),
                ("soft_stop", policy.soft_stop, "warn"),
            ):
                if any(_matches(ref, state, names) for ref in refs):
                    reasons.append(
                        Reason(
                            state.name,
                            rule,
                            effect,  # type: ignore[arg-type]
                            f"{state.name} error budget is exhausted "
                            f"({_percent(state.remaining)} left)",
                            state.remaining,
                            0.0,
                            state.scope,
                        )
                    )
        for ref, minimum in policy.min_remaining.items():
            if (
                _matches(ref, state, names)
                and state.remaining is not None
                and state.remaining < minimum - TOLERANCE
            ):
                reasons.append(
                    Reason(
                        state.name,
                        "min_remaining",
                        "block",
                        f"{state.name} has {_percent(state.remaining)} of its budget left; the "
                        f"policy needs at least {_percent(minimum)}",
                        state.remaining,
                        minimum,
                        state.scope,
                    )
                )
    score, terms = _risk(policy, states, names)
    if (
        policy.risk_score is not None
        and score is not None
        and score > policy.risk_score.max + TOLERANCE
    ):
        reasons.append(
            Reason(
                None,
                "risk_score",
                "block",
                f"risk score {score:.3f} is above the policy's maximum {policy.risk_score.max:g}",
                score,
                policy.risk_score.max,
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


def _risk(
    policy: Policy, states: Sequence[BudgetState], names: set[str]
) -> tuple[float | None, list[RiskTerm]]:
    """Σ weight × consumed (clamped to [0, 1]); a weight on a dimension covers its SLOs."""
    if policy.risk_score is None:
        return None, []
    terms = []
    for state in states:
        weight = policy.risk_score.weights.get(state.name)
        if weight is None and state.dimension not in names:
            weight = policy.risk_score.weights.get(state.dimension)
        if weight is None:
            continue
        consumed = state.consumed
        clamped = None if consumed is None else min(max(consumed, 0.0), 1.0)
        terms.append(
            RiskTerm(state.name, weight, clamped, 0.0 if clamped is None else weight * clamped)
        )
    terms.sort(key=lambda t: t.slo)
    return sum(t.contribution for t in terms), terms


def state_of(result: SLOEvaluation, scope: str | None = None) -> BudgetState:
    return BudgetState(
        result.name,
        result.slo.dimension,
        result.budget.status,
        result.budget.consumed,
        result.budget.remaining,
        scope,
    )


def judge(
    spec: Spec,
    evaluation: Evaluation,
    *,
    policy: str | None = None,
    candidate: CandidateCheck | None = None,
    override: Override | None = None,
) -> GateDecision:
    """The policy applied to evaluated budgets; with a candidate, its accuracy and fairness
    budgets stand in for the live ones, so the question is "may this version go live?"."""
    name, chosen = choose_policy(spec, policy)
    states = {r.name: state_of(r) for r in evaluation.slos}
    if candidate is not None:
        for result in candidate.candidate.slos:
            states[result.name] = state_of(result, candidate.scope)
    return decide(chosen, name, list(states.values()), override, evaluation.evaluated_at)


@dataclass(frozen=True)
class GateRun:
    """A deployment decision with everything it was made from."""

    evaluation: Evaluation
    decision: GateDecision
    candidate: CandidateCheck | None


def gate(
    spec: Spec,
    rollups: Rollup | Mapping[str, Timeline],
    at: datetime,
    *,
    policy: str | None = None,
    candidate: Selector | None = None,
    override: Override | None = None,
    evaluation: Evaluation | None = None,
    repeated_ids: int | None = None,
) -> GateRun:
    """The deployment gate at ``at``: every SLO evaluated from ``rollups`` (whatever produced
    them: a scan of files, the service's store), the candidate's own predictions checked when
    a ``candidate`` selector is given (``rollups`` must then be a :class:`Rollup` sliced by
    its attribute), and the policy applied. ``evaluation``, when the caller has just
    evaluated at ``at``, is reused so both show the same numbers; ``repeated_ids`` as for
    :func:`~mlslo.measure.evaluate.evaluate`."""
    if evaluation is None:
        evaluation = evaluate(spec, rollups, at, repeated_ids=repeated_ids)
    check = None
    if candidate is not None:
        if not isinstance(rollups, Rollup):
            raise TypeError("a candidate check needs the whole rollup, not timelines")
        check = candidate_check(spec, rollups, at, candidate)
    decision = judge(spec, evaluation, policy=policy, candidate=check, override=override)
    return GateRun(evaluation, decision, check)
