"""The deployment gate: a policy turns evaluated budgets into allow, warn or block. Pure.

:func:`gate` is the one composition every caller uses (the CLI over files, the service over
its store, the report and the dashboard): evaluate, check a candidate, apply the policy's
rules (:mod:`mlslo.decide.policy`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from mlslo.decide.alerts import checks
from mlslo.decide.policy import BudgetState, Firing, GateDecision, Override, decide
from mlslo.errors import UsageError
from mlslo.measure.candidate import CandidateCheck, Selector, candidate_check
from mlslo.measure.composite import CompositeEvaluation, evaluate_composite
from mlslo.measure.evaluate import Evaluation, SLOEvaluation, evaluate
from mlslo.spec import Policy, Spec
from mlslo.spec.references import composite_windows
from mlslo.stats.rollup import Rollup
from mlslo.stats.timeline import Timeline


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


def state_of(result: SLOEvaluation | CompositeEvaluation, scope: str | None = None) -> BudgetState:
    return BudgetState(
        result.name,
        result.slo.dimension,
        result.budget.status,
        result.budget.consumed,
        result.budget.remaining,
        scope,
        {rate.key: rate.value for rate in result.burn_rates},
    )


def firing_now(spec: Spec, evaluation: Evaluation) -> list[Firing]:
    """The alerts whose condition holds in ``evaluation`` (a stateless check: what would
    fire, for files and past moments)."""
    return [
        Firing(slo.name, rule.name, rule.severity)
        for slo, rule, result in checks(spec, evaluation)
        if result.active
    ]


def judge(
    spec: Spec,
    evaluation: Evaluation,
    *,
    policy: str | None = None,
    candidate: CandidateCheck | None = None,
    override: Override | None = None,
    firing: Sequence[Firing] | None = None,
) -> GateDecision:
    """The policy applied to evaluated budgets; with a candidate, its accuracy and fairness
    budgets stand in for the live ones, so the question is "may this version go live?".
    ``firing`` are the alerts firing now (the service's alert loop knows); without them, the
    alerts whose condition holds in ``evaluation``."""
    name, chosen = choose_policy(spec, policy)
    judged: list[SLOEvaluation | CompositeEvaluation] = [
        *evaluation.slos,
        *evaluation.composites,
    ]
    states = {r.name: state_of(r) for r in judged}
    if candidate is not None:
        for result in candidate.candidate.slos:
            states[result.name] = state_of(result, candidate.scope)
        for composite in candidate_composites(spec, evaluation, candidate):
            states[composite.name] = state_of(composite, candidate.scope)
    if firing is None:
        firing = firing_now(spec, evaluation) if chosen.block_on_alert else []
    return decide(
        spec,
        chosen,
        name,
        list(states.values()),
        firing=firing,
        override=override,
        at=evaluation.evaluated_at,
    )


def candidate_composites(
    spec: Spec, evaluation: Evaluation, candidate: CandidateCheck
) -> list[CompositeEvaluation]:
    """The composites with a component the candidate is judged on, from the candidate's
    budgets for those components and the live ones for the others."""
    results = {r.name: r for r in evaluation.slos}
    own = {r.name: r for r in candidate.candidate.slos}
    return [
        evaluate_composite(
            composite,
            {**results, **own},
            composite_windows(spec, composite),
            spec.bucket,
            spec.budget_low,
        )
        for composite in spec.composites
        if any(part.slo in own for part in composite.components)
        and all(part.slo in results or part.slo in own for part in composite.components)
    ]


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
    firing: Sequence[Firing] | None = None,
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
    decision = judge(
        spec, evaluation, policy=policy, candidate=check, override=override, firing=firing
    )
    return GateRun(evaluation, decision, check)
