"""One render function per output shape: an evaluation, a gate decision or the alert checks
as the JSON document that is the contract. The CLI's ``--format json``, the REST API and the
dashboard all render through these, so they can never disagree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlslo.decide.alerts import Check
from mlslo.decide.policy import GateDecision, Override, Reason
from mlslo.measure.candidate import CandidateCheck
from mlslo.measure.composite import CompositeEvaluation
from mlslo.measure.evaluate import Evaluation, SLOEvaluation
from mlslo.moments import format_duration
from mlslo.render.format import iso, json_number
from mlslo.spec import AnySLO
from mlslo.spec.alert_rules import AlertRule
from mlslo.spec.composites import Judged

if TYPE_CHECKING:
    pass


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return json_number(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    return value


def _json_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _jsonable(v) for k, v in value.items()}


def objective_json(slo: AnySLO) -> dict[str, Any]:
    out: dict[str, Any] = {"op": slo.op, "target": slo.target}
    if slo.timeslice_target is not None:
        out["timeslice_target"] = slo.timeslice_target
        out["timeslice_op"] = slo.slice_op
        out["slice"] = format_duration(slo.slice) if slo.slice else None
    if slo.unit:
        out["unit"] = slo.unit
    return out


def slo_json(result: SLOEvaluation) -> dict[str, Any]:
    slo = result.slo
    m = result.measurement
    sli: dict[str, Any] = {
        "value": m.value,
        "n": m.n,
        "ci": list(m.ci) if m.ci is not None else None,
        "label_coverage": m.label_coverage,
    }
    if slo.unit and slo.effective_budgeting != "timeslices":
        sli["unit"] = slo.unit
    if m.good is not None:
        sli["good"] = m.good
        sli["valid"] = m.valid
    sli["reason"] = m.reason
    sli["last_event"] = result.last_event
    sli.update(m.detail)
    out: dict[str, Any] = {
        "name": slo.name,
        "dimension": slo.dimension,
        "metric": slo.metric,
        "description": slo.description,
        "window": str(slo.window),
        "window_start": result.start,
        "window_end": result.end,
        "budgeting": slo.effective_budgeting,
        "objective": objective_json(slo),
        "sli": sli,
        "met": result.met,
        "budget": {
            "consumed": result.budget.consumed,
            "remaining": result.budget.remaining,
            "status": result.budget.status,
            "reason": result.budget.reason,
        },
        "burn_rates": {r.key: r.value for r in result.burn_rates},
        "burn_rate_samples": {r.key: r.n for r in result.burn_rates},
        "time_to_exhaustion_hours": result.time_to_exhaustion.get("1h"),
        "time_to_exhaustion": dict(result.time_to_exhaustion),
    }
    if slo.filter:
        out["filter"] = dict(slo.filter)
    if result.series is not None:
        out["series"] = [
            {
                "start": p.start,
                "end": p.end,
                "value": p.value,
                "n": p.n,
                "label_coverage": p.label_coverage,
            }
            for p in result.series
        ]
    if result.burndown is not None:
        out["burndown"] = [{"t": t, "remaining": r} for t, r in result.burndown]
    return _json_dict(out)


def composite_json(result: CompositeEvaluation) -> dict[str, Any]:
    """A composite SLO: its reliability against its objective, its budget (the weighted
    consumption of its components'), burn rates, and each component's part."""
    composite = result.composite
    return _json_dict(
        {
            "name": composite.name,
            "dimension": composite.dimension,
            "metric": composite.metric,
            "description": composite.description,
            "window": str(composite.window),
            "undefined": composite.undefined,
            "objective": {"op": ">=", "target": composite.objective},
            "sli": {"value": result.value},
            "met": result.met,
            "budget": {
                "consumed": result.budget.consumed,
                "remaining": result.budget.remaining,
                "status": result.budget.status,
                "reason": result.budget.reason,
            },
            "components": [
                {
                    "slo": part.slo,
                    "weight": part.weight,
                    "status": part.status,
                    "consumed": part.consumed,
                    "counted": part.counted,
                    "undefined": part.undefined,
                }
                for part in result.components
            ],
            "burn_rates": {r.key: r.value for r in result.burn_rates},
            "burn_rate_samples": {r.key: r.n for r in result.burn_rates},
            "time_to_exhaustion_hours": result.time_to_exhaustion.get("1h"),
            "time_to_exhaustion": dict(result.time_to_exhaustion),
        }
    )


def evaluation_json(evaluation: Evaluation) -> dict[str, Any]:
    """The evaluation as the JSON document of ``mlslo evaluate --format json`` (with
    ``composites`` when the spec has any)."""
    out: dict[str, Any] = {
        "service": evaluation.service,
        "evaluated_at": iso(evaluation.evaluated_at),
        "records": records_json(evaluation),
        "slos": [slo_json(s) for s in evaluation.slos],
    }
    if evaluation.composites:
        out["composites"] = [composite_json(c) for c in evaluation.composites]
    return out


def records_json(evaluation: Evaluation) -> dict[str, Any]:
    """How records were counted: whether a repeated prediction id counted once, and how many
    repeats were left out (null: not checked)."""
    return {"deduplicated": evaluation.deduplicated, "repeated_ids": evaluation.repeated_ids}


def reason_json(reason: Reason) -> dict[str, Any]:
    out = {
        "slo": reason.slo,
        "rule": reason.rule,
        "effect": reason.effect,
        "message": reason.message,
        "value": reason.value,
        "threshold": reason.threshold,
    }
    if reason.scope is not None:
        out["scope"] = reason.scope
    return _json_dict(out)


def override_json(override: Override | None) -> dict[str, Any] | None:
    if override is None:
        return None
    return _json_dict(
        {
            "id": override.id,
            "reason": override.reason,
            "created_at": override.created_at,
            "expires_at": override.expires_at,
            "created_by": override.created_by,
        }
    )


def gate_json(
    evaluation: Evaluation, decision: GateDecision, candidate: CandidateCheck | None = None
) -> dict[str, Any]:
    """The gate decision as the JSON of ``mlslo gate --format json`` and the REST API."""
    out: dict[str, Any] = {
        "decision": decision.decision,
        "policy": decision.policy,
        "service": evaluation.service,
        "evaluated_at": iso(evaluation.evaluated_at),
        "records": records_json(evaluation),
        "risk_score": json_number(decision.risk_score),
        "risk_terms": [
            _json_dict(
                {
                    "slo": t.slo,
                    "weight": t.weight,
                    "consumed": t.consumed,
                    "contribution": t.contribution,
                    "undefined": t.undefined,
                }
            )
            for t in decision.risk_terms
        ],
        "reasons": [reason_json(r) for r in decision.reasons],
        "override": override_json(decision.override),
        "slos": [slo_json(s) for s in evaluation.slos],
    }
    if evaluation.composites:
        out["composites"] = [composite_json(c) for c in evaluation.composites]
    if candidate is not None:
        key, value = candidate.selector
        out["candidate"] = {
            "selector": {key: value},
            "slos": [slo_json(s) for s in candidate.candidate.slos],
            "current": [slo_json(s) for s in candidate.current.slos],
        }
    return out


def alerts_json(
    evaluation: Evaluation, results: Sequence[tuple[Judged, AlertRule, Check]]
) -> dict[str, Any]:
    """Each rule's check at one moment (no state: what would fire)."""
    rows = []
    for slo, rule, result in results:
        rows.append(
            _json_dict(
                {
                    "slo": slo.name,
                    "dimension": slo.dimension,
                    "rule": rule.name,
                    "severity": rule.severity,
                    "status": "firing"
                    if result.active
                    else ("suppressed" if result.suppressed else "ok"),
                    **check_fields(rule, result),
                }
            )
        )
    return {
        "service": evaluation.service,
        "evaluated_at": iso(evaluation.evaluated_at),
        "alerts": rows,
    }


def check_fields(rule: AlertRule, check: Check) -> dict[str, Any]:
    """The rule's windows and threshold with the check's numbers, as the alert JSON lists
    them (in this order)."""
    return {
        "long_window": format_duration(rule.long) if rule.long else None,
        "short_window": format_duration(rule.short) if rule.short else None,
        "threshold": rule.burn_rate,
        "long_burn_rate": check.long_rate,
        "short_burn_rate": check.short_rate,
        "long_samples": check.long_samples,
        "short_samples": check.short_samples,
        "suppressed": check.suppressed,
        "budget_remaining": check.remaining,
        "time_to_exhaustion_hours": check.hours_left,
        "last_event": None if check.last_event is None else iso(check.last_event),
    }
