"""One render function per output shape: an evaluation as JSON, a rich table, or Markdown.

The JSON document is the contract: the CLI's ``--format json``, the REST API and the
dashboard all render through :func:`evaluation_json`, so they can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlslo.alerts.rules import AlertRule, Check, check_fields
from mlslo.budget import headline_windows
from mlslo.durations import format_duration
from mlslo.evaluate import Evaluation, SLOEvaluation
from mlslo.policy import CandidateCheck, GateDecision, Override, Reason
from mlslo.spec import AnySLO, FairnessSLO

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

SHARE_METRICS = ("availability", "fast_share", "fresh_share")
STATUS_STYLE = {
    "healthy": "green",
    "low": "yellow",
    "exhausted": "bold red",
    "no_data": "dim",
    "insufficient_data": "magenta",
}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _number(value: float | None) -> float | None:
    """Finite floats to 12 significant digits (0.05 stays 0.05, not 0.050000000000000044)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(f"{value:.12g}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return _number(value)
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


def evaluation_json(evaluation: Evaluation) -> dict[str, Any]:
    """The evaluation as the JSON document of ``mlslo evaluate --format json``."""
    return {
        "service": evaluation.service,
        "evaluated_at": iso(evaluation.evaluated_at),
        "slos": [slo_json(s) for s in evaluation.slos],
    }


# --- human formats ---------------------------------------------------------------------------


def format_value(slo: AnySLO, value: float | None) -> str:
    """An SLI value as a person reads it: 99.968 %, 0.8333, 28.0m, 212 ms."""
    return _format(slo.metric, slo.unit, slo.effective_budgeting, value)


def format_json_value(entry: Mapping[str, Any]) -> str:
    """The same, from an SLO's entry in the JSON document."""
    return _format(
        entry["metric"], entry["sli"].get("unit"), entry["budgeting"], entry["sli"]["value"]
    )


def _format(metric: str, unit: str | None, budgeting: str, value: float | None) -> str:
    if value is None:
        return "—"
    if budgeting == "timeslices":
        return f"{value * 100:.2f}% slices"
    if unit == "s":
        return _seconds(value)
    if unit == "ms":
        return f"{value:.0f} ms" if value >= 10 else f"{value:.2f} ms"
    if metric in SHARE_METRICS:
        return f"{value * 100:.3f}%"
    return f"{value:.4f}"


def format_target(slo: AnySLO) -> str:
    if slo.effective_budgeting == "timeslices":
        length = format_duration(slo.slice) if slo.slice else "?"
        return (
            f">= {slo.target * 100:g}% of {length} slices with "
            f"{slo.slice_op} {_plain(slo, slo.timeslice_target)}"
        )
    if slo.unit is not None:
        return f"{slo.op} {_plain(slo, slo.target)}"
    if slo.metric in SHARE_METRICS:
        return f"{slo.op} {slo.target * 100:g}%"
    return f"{slo.op} {slo.target:g}"


def _plain(slo: AnySLO, value: float | None) -> str:
    if value is None:
        return "—"
    if slo.unit == "s":
        return _seconds(value)
    if slo.unit == "ms":
        return f"{value:g} ms"
    return f"{value:g}"


def _seconds(value: float) -> str:
    if value >= 86400:
        return f"{value / 86400:.1f}d"
    if value >= 3600:
        return f"{value / 3600:.1f}h"
    if value >= 60:
        return f"{value / 60:.1f}m"
    return f"{value:.1f}s"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _hours(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 48:
        return f"{value / 24:.1f}d"
    return f"{value:.1f}h"


def _met(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "NO")


def _headline_rates(result: SLOEvaluation, bucket: timedelta) -> list[str]:
    """The burn rates over the SLO window's equivalents of 1h, 6h and 1d."""
    rates = (result.burn_rate(w) for w in headline_windows(result.slo.window, bucket))
    return [f"{rate.key} {_rate(rate.value)}" for rate in rates if rate is not None]


def _cells(result: SLOEvaluation, bucket: timedelta, gap: str) -> list[str]:
    """One SLO's row of the table and of the Markdown (``gap`` before the sample count);
    the status is the plain word."""
    slo = result.slo
    m = result.measurement
    sli = format_value(slo, m.value) + (f"{gap}(n={m.n:,})" if m.n else "")
    return [
        slo.name,
        slo.dimension,
        sli,
        format_target(slo),
        _met(result.met),
        _share(result.budget.remaining),
        result.budget.status,
        ", ".join(_headline_rates(result, bucket)),
        _hours(result.time_to_exhaustion.get("1h")),
    ]


def evaluation_table(evaluation: Evaluation) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"{evaluation.service} — SLOs at {iso(evaluation.evaluated_at)}", title_justify="left"
    )
    for header, justify in (
        ("SLO", "left"),
        ("dimension", "left"),
        ("SLI", "right"),
        ("objective", "left"),
        ("met", "center"),
        ("remaining", "right"),
        ("status", "left"),
        ("burn rates", "left"),
        ("exhausted in", "right"),
    ):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for result in evaluation.slos:
        *before, status, rates, hours = _cells(result, evaluation.bucket, "  ")
        table.add_row(*before, Text(status, style=STATUS_STYLE[status]), rates, hours)
    return table


def reasons(evaluation: Evaluation) -> list[str]:
    """Why SLIs have no value, and notes such as label coverage, one line each."""
    out = []
    for result in evaluation.slos:
        m = result.measurement
        if m.reason:
            out.append(f"{result.name}: {m.reason}")
        if m.label_coverage is not None and m.label_coverage < 1:
            out.append(f"{result.name}: {m.label_coverage * 100:.1f}% of predictions labelled")
        estimate = m.detail.get("estimated")
        if isinstance(estimate, Mapping) and estimate.get("value") is not None:
            out.append(
                f"{result.name}: estimated {result.slo.metric} of "
                f"{estimate['n']:,} unlabelled predictions: {estimate['value']:.4f} (CBPE)"
            )
        if isinstance(result.slo, FairnessSLO) and "between" in m.detail:
            pair = " vs ".join(
                ",".join(f"{k}={v}" for k, v in g.items()) for g in m.detail["between"]
            )
            what = "lowest ratio" if result.slo.metric == "disparate_impact_ratio" else "widest gap"
            out.append(f"{result.name}: {what} between {pair}")
    return out


def evaluation_markdown(evaluation: Evaluation) -> str:
    lines = [
        f"# {evaluation.service} — SLOs at {iso(evaluation.evaluated_at)}",
        "",
        "| SLO | dimension | SLI | objective | met | remaining | status | "
        "burn rates | exhausted in |",
        "|---|---|---:|---|:-:|---:|---|---|---:|",
    ]
    for result in evaluation.slos:
        cells = _cells(result, evaluation.bucket, " ")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    notes = reasons(evaluation)
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


# --- the gate ---------------------------------------------------------------------------------

DECISION_STYLE = {"allow": "bold green", "warn": "bold yellow", "block": "bold red"}


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
        "risk_score": _number(decision.risk_score),
        "risk_terms": [
            _json_dict(
                {
                    "slo": t.slo,
                    "weight": t.weight,
                    "consumed": t.consumed,
                    "contribution": t.contribution,
                }
            )
            for t in decision.risk_terms
        ],
        "reasons": [reason_json(r) for r in decision.reasons],
        "override": override_json(decision.override),
        "slos": [slo_json(s) for s in evaluation.slos],
    }
    if candidate is not None:
        key, value = candidate.selector
        out["candidate"] = {
            "selector": {key: value},
            "slos": [slo_json(s) for s in candidate.candidate.slos],
            "current": [slo_json(s) for s in candidate.current.slos],
        }
    return out


def gate_lines(document: Mapping[str, Any]) -> list[Text | Table]:
    """The decision for people (from the gate JSON, so local and remote gates print the
    same): verdict, every reason, risk terms, candidate beside current."""
    from rich.table import Table
    from rich.text import Text

    out: list[Text | Table] = []
    decision = document["decision"]
    headline = Text(decision.upper(), style=DECISION_STYLE[decision])
    headline.append(
        f"  policy {document['policy']} for {document['service']} at {document['evaluated_at']}",
        style="default",
    )
    out.append(headline)
    for reason in document["reasons"]:
        line = Text(f"  {reason['effect']:5} ", style=DECISION_STYLE[reason["effect"]])
        scope = f"[{reason['scope']}] " if reason.get("scope") else ""
        line.append(f"{scope}{reason['rule']}: {reason['message']}", style="default")
        out.append(line)
    if not document["reasons"]:
        out.append(Text("  every budget is within the policy"))
    if document["risk_score"] is not None:
        terms = ", ".join(
            f"{t['slo']} {t['weight']:g}×{_share(t['consumed'])}" for t in document["risk_terms"]
        )
        out.append(Text(f"  risk score {document['risk_score']:.3f} ({terms})"))
    candidate = document.get("candidate")
    if candidate is not None:
        selector = ", ".join(f"{k}={v}" for k, v in candidate["selector"].items())
        table = Table(title=f"candidate {selector} vs current", title_justify="left")
        for header in (
            "SLO",
            "current SLI",
            "current remaining",
            "candidate SLI",
            "candidate remaining",
            "candidate status",
        ):
            table.add_column(header)
        current = {s["name"]: s for s in candidate["current"]}
        for entry in candidate["slos"]:
            now = current[entry["name"]]
            status = entry["budget"]["status"]
            table.add_row(
                entry["name"],
                format_json_value(now),
                _share(now["budget"]["remaining"]),
                format_json_value(entry),
                _share(entry["budget"]["remaining"]),
                Text(status, style=STATUS_STYLE[status]),
            )
        out.append(table)
    return out


# --- alerts ----------------------------------------------------------------------------------


def alerts_json(
    evaluation: Evaluation, results: Sequence[tuple[AnySLO, AlertRule, Check]]
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


def alerts_table(
    evaluation: Evaluation,
    results: Sequence[tuple[AnySLO, AlertRule, Check]],
    *,
    show_all: bool = False,
) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"{evaluation.service} — alerts at {iso(evaluation.evaluated_at)}",
        title_justify="left",
    )
    for header in (
        "SLO",
        "rule",
        "severity",
        "status",
        "long burn",
        "short burn",
        "threshold",
        "note",
    ):
        table.add_column(header)
    shown = 0
    for slo, rule, result in results:
        status = "firing" if result.active else ("held back" if result.suppressed else "ok")
        if not show_all and status == "ok":
            continue
        shown += 1
        style = (
            "bold red"
            if status == "firing" and rule.severity == "page"
            else ("yellow" if status == "firing" else "dim")
        )
        table.add_row(
            slo.name,
            rule.name,
            rule.severity,
            Text(status, style=style),
            _rate(result.long_rate),
            _rate(result.short_rate),
            "—" if rule.burn_rate is None else f"{rule.burn_rate:g}",
            result.suppressed or "",
        )
    if not shown:
        table.caption = "no alert would fire (use --all to see every rule)"
    return table
