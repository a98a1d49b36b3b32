"""Which SLOs each rule of a policy covers, for the gate and ``mlslo validate``: one
resolution of references (:func:`mlslo.spec.resolve.resolve`, which the spec's validation
uses too), so the three can never disagree."""

from __future__ import annotations

from datetime import timedelta

from mlslo.spec.alert_rules import WORKBOOK, rule_windows
from mlslo.spec.composites import Composite, component_window
from mlslo.spec.document import Policy, Spec


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
            names += [n for n in spec.resolve(ref).names if n not in names]
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
        if name in spec.resolve(ref).names
    }


def composite_windows(spec: Spec, composite: Composite) -> list[timedelta]:
    """Every burn window of a composite: the Workbook's scaled to its window, the ones its
    alert rules read, and any a policy's ``max_burn_rate`` reads for it."""
    standard = {
        composite.window.scale(span, spec.bucket)
        for long, short, _, _ in WORKBOOK
        for span in (long, short)
    }
    rules = rule_windows(composite, spec.bucket)
    return sorted(standard | rules | policy_windows(spec, composite.name))


def extra_windows(spec: Spec, name: str) -> set[timedelta]:
    """The burn windows the SLO ``name`` is measured over beyond its own: those a policy's
    ``max_burn_rate`` reads, and those of the composites it is a component of."""
    out = policy_windows(spec, name)
    slo = spec.slo(name)
    for composite in spec.composites:
        if any(c.slo == name for c in composite.components):
            out |= {
                component_window(span, composite.window, slo.window, spec.bucket)
                for span in composite_windows(spec, composite)
            }
    return out


def spec_warnings(spec: Spec) -> list[str]:
    """What is valid but probably not meant: bare dimension names, and SLOs that a policy
    covers with no rule (neither by name nor as a component of a composite it covers)."""
    out = []
    for policy_name, policy in spec.all_policies().items():
        for ref, _ in policy.references():
            if spec.resolve(ref).deprecated:
                out.append(
                    f"policy {policy_name}: '{ref}' names a dimension; write "
                    f"dimension:{ref} (a bare dimension name is deprecated)"
                )
        judged = covered(spec, policy)
        judged |= {
            c.slo
            for composite in spec.composites
            if composite.name in judged
            for c in composite.components
        }
        left_out = [s.name for s in spec.slos if s.name not in judged]
        if left_out:
            out.append(
                f"policy {policy_name}: {', '.join(left_out)} "
                f"{'is' if len(left_out) == 1 else 'are'} covered by no rule"
            )
    return out
