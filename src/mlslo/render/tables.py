"""Evaluations, gate decisions and alert checks as tables for a terminal (rich) and as
Markdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mlslo.decide.alerts import Check
from mlslo.measure.evaluate import Evaluation, SLOEvaluation
from mlslo.measure.windows import headline_windows
from mlslo.render.format import (
    STATUS_STYLE,
    format_json_value,
    format_target,
    format_value,
    hours_short,
    iso,
    met_text,
    rate_text,
    share_text,
)
from mlslo.spec import AnySLO, FairnessSLO
from mlslo.spec.alert_rules import AlertRule
from mlslo.spec.document import Spec

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text


def _headline_rates(result: SLOEvaluation, bucket: timedelta) -> list[str]:
    """The burn rates over the SLO window's equivalents of 1h, 6h and 1d."""
    rates = (result.burn_rate(w) for w in headline_windows(result.slo.window, bucket))
    return [f"{rate.key} {rate_text(rate.value)}" for rate in rates if rate is not None]


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
        met_text(result.met),
        share_text(result.budget.remaining),
        result.budget.status,
        ", ".join(_headline_rates(result, bucket)),
        hours_short(result.time_to_exhaustion.get("1h")),
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


DECISION_STYLE = {"allow": "bold green", "warn": "bold yellow", "block": "bold red"}


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
            f"{t['slo']} {t['weight']:g}×{share_text(t['consumed'])}"
            for t in document["risk_terms"]
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
                share_text(now["budget"]["remaining"]),
                format_json_value(entry),
                share_text(entry["budget"]["remaining"]),
                Text(status, style=STATUS_STYLE[status]),
            )
        out.append(table)
    return out


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
            rate_text(result.long_rate),
            rate_text(result.short_rate),
            "—" if rule.burn_rate is None else f"{rule.burn_rate:g}",
            result.suppressed or "",
        )
    if not shown:
        table.caption = "no alert would fire (use --all to see every rule)"
    return table


def print_evaluation(console: Console, evaluation: Evaluation) -> None:
    """The evaluation table, then a bullet for each reason."""
    console.print(evaluation_table(evaluation))
    for line in reasons(evaluation):
        console.print(f"  • {line}", markup=False, highlight=False)


def validation_summary(file: str, spec: Spec) -> str:
    """What ``mlslo validate`` says of a valid spec."""
    names = ", ".join(f"{s.name} ({s.dimension})" for s in spec.slos)
    policies = spec.all_policies()
    extra = f"; policies: {', '.join(policies)}" if policies else ""
    return f"{file}: valid — service {spec.service}, {len(spec.slos)} SLOs: {names}{extra}"
