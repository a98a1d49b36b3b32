"""Which SLOs each rule of a policy covers, for the gate and ``mlslo validate``: one
resolution of references (:func:`mlslo.spec.resolve.resolve`, which the spec's validation
uses too), so the three can never disagree."""

from __future__ import annotations

from datetime import timedelta

from mlslo.spec.document import Policy, Spec
from mlslo.spec.resolve import resolve


def rule_refs(policy: Policy) -> dict[str, list[str]]:
    """The references of each rule of ``policy``, in spec order."""
    return {
        "hard_stop": list(policy.hard_stop),
        "soft_stop": list(policy.soft_stop),
        "min_remaining": list(policy.min_remaining),
        "max_burn_rate": list(policy.max_burn_rate),
        "risk_score": list(policy.risk_score.weights) if policy.risk_score else [],
    }


def coverage(spec: Spec, policy: Policy) -> dict[str, list[str]]:
    """Each rule of ``policy`` and the SLOs it covers (rules without references left out)."""
    out: dict[str, list[str]] = {}
    for rule, refs in rule_refs(policy).items():
        names: list[str] = []
        for ref in refs:
            names += [n for n in resolve(spec.slos, ref).names if n not in names]
        if names:
            out[rule] = names
    return out


def covered(spec: Spec, policy: Policy) -> set[str]:
    """Every SLO some rule of ``policy`` covers (block_on_alert and the data rules apply to
    these)."""
    return {name for names in coverage(spec, policy).values() for name in names}


def policy_windows(spec: Spec, name: str) -> set[timedelta]:
    """The burn windows any policy's ``max_burn_rate`` reads for the SLO ``name`` (so the
    evaluation measures them)."""
    return {
        limit.window
        for policy in spec.all_policies().values()
        for ref, limit in policy.max_burn_rate.items()
        if name in resolve(spec.slos, ref).names
    }


def spec_warnings(spec: Spec) -> list[str]:
    """What is valid but probably not meant: bare dimension names, and SLOs that a policy
    covers with no rule."""
    out = []
    for policy_name, policy in spec.all_policies().items():
        for ref, _ in policy.references():
            if resolve(spec.slos, ref).deprecated:
                out.append(
                    f"policy {policy_name}: '{ref}' names a dimension; write "
                    f"dimension:{ref} (a bare dimension name is deprecated)"
                )
        left_out = [s.name for s in spec.slos if s.name not in covered(spec, policy)]
        if left_out:
            out.append(
                f"policy {policy_name}: {', '.join(left_out)} "
                f"{'is' if len(left_out) == 1 else 'are'} covered by no rule"
            )
    return out
