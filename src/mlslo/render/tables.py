"""Evaluations, gate decisions and alert checks as tables for a terminal (rich) and as
Markdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mlslo.decide.alerts import Check
from mlslo.decide.policy import risk_weights
from mlslo.measure.evaluate import Evaluation
from mlslo.moments import format_duration
from mlslo.render.documents import evaluation_json
from mlslo.render.format import (
    NONE,
    Shape,
    headline_rates,
    hours_text,
    iso,
    met_text,
    objective_text,
    rate_text,
    share_text,
    status_text,
    threshold_text,
    value_text,
)
from mlslo.render.views import skew_note
from mlslo.spec import AnySLO, Policy, Window
from mlslo.spec.alert_rules import AlertRule
from mlslo.spec.composites import Judged
from mlslo.spec.document import Spec
from mlslo.spec.references import coverage

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text


STATUS_STYLE = {
    "healthy": "green",
    "low": "yellow",
    "exhausted": "bold red",
    "no_data": "dim",
    "insufficient_data": "magenta",
}
COLUMNS = (
    ("SLO", "left"),
    ("dimension", "left"),
    ("SLI", "right"),
    ("objective", "left"),
    ("met", "center"),
    ("remaining", "right"),
    ("status", "left"),
    ("burn rates", "left"),
    ("exhausted in", "right"),
)


def _cells(entry: Mapping[str, Any], slo: AnySLO, bucket: timedelta, gap: str) -> list[str]:
    """One SLO's row of the table and of the Markdown (``gap`` before the sample count)."""
    sli = entry["sli"]
    value = value_text(Shape.of_entry(entry), sli["value"])
    return [
        entry["name"],
        entry["dimension"],
        value + (f"{gap}(n={sli['n']:,})" if sli["n"] else ""),
        objective_text(entry),
        met_text(entry["met"]),
        share_text(entry["budget"]["remaining"]),
        status_text(entry["budget"]["status"]),
        headline_rates(entry, slo.window, bucket),
        hours_text(entry["time_to_exhaustion_hours"]),
    ]


def _composite_cells(entry: Mapping[str, Any], window: Window, bucket: timedelta) -> list[str]:
    """A composite's row: its reliability against its objective, then its budget."""
    value = entry["sli"]["value"]
    return [
        entry["name"],
        entry["dimension"],
        NONE if value is None else f"{value * 100:.2f}%",
        f">= {entry['objective']['target'] * 100:g}%",
        met_text(entry["met"]),
        share_text(entry["budget"]["remaining"]),
        status_text(entry["budget"]["status"]),
        headline_rates(entry, window, bucket),
        hours_text(entry["time_to_exhaustion_hours"]),
    ]


def _rows(evaluation: Evaluation, gap: str) -> list[tuple[str, list[str]]]:
    document = evaluation_json(evaluation)
    rows = [
        (entry["budget"]["status"], _cells(entry, result.slo, evaluation.bucket, gap))
        for entry, result in zip(document["slos"], evaluation.slos, strict=True)
    ]
    for entry, composite in zip(document.get("composites", []), evaluation.composites, strict=True):
        cells = _composite_cells(entry, composite.composite.window, evaluation.bucket)
        rows.append((entry["budget"]["status"], cells))
    return rows


def evaluation_rows(evaluation: Evaluation) -> list[tuple[str, list[str]]]:
    """Each SLO's budget status and the cells of its row, as the terminal table has them."""
    return _rows(evaluation, " ")


def evaluation_table(evaluation: Evaluation) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"{evaluation.service} — SLOs at {iso(evaluation.evaluated_at)}", title_justify="left"
    )
    for header, justify in COLUMNS:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for status, cells in _rows(evaluation, "  "):
        cells[6] = Text(cells[6], style=STATUS_STYLE[status])  # type: ignore[call-overload]
        table.add_row(*cells)
    return table


def reasons(document: Mapping[str, Any]) -> list[str]:
    """Why SLIs have no value, and notes such as label coverage, one line each (from the
    evaluation's JSON)."""
    out = []
    repeated = document.get("records", {}).get("repeated_ids")
    if repeated:
        out.append(f"{repeated:,} repeated prediction ids were counted once")
    for entry in document["slos"]:
        name, sli = entry["name"], entry["sli"]
        if sli.get("reason"):
            out.append(f"{name}: {sli['reason']}")
        if entry["budget"].get("reason"):
            out.append(f"{name}: {entry['budget']['reason']}")
        skew = skew_note(entry)
        if skew:
            out.append(f"{name}: {skew}")
        coverage = sli.get("label_coverage")
        if coverage is not None and coverage < 1:
            out.append(f"{name}: {coverage * 100:.1f}% of predictions labelled")
        estimate = sli.get("estimated")
        if isinstance(estimate, Mapping) and estimate.get("value") is not None:
            out.append(
                f"{name}: estimated {entry['metric']} of {estimate['n']:,} unlabelled "
                f"predictions: {estimate['value']:.4f} (CBPE)"
            )
        if entry["dimension"] == "fairness" and "between" in sli:
            pair = " vs ".join(",".join(f"{k}={v}" for k, v in g.items()) for g in sli["between"])
            what = "lowest ratio" if entry["metric"] == "disparate_impact_ratio" else "widest gap"
            out.append(f"{name}: {what} between {pair}")
    for entry in document.get("composites", []):
        for part in entry["components"]:
            if part["undefined"]:
                counted = "counted as fully consumed" if part["counted"] else "left out"
                out.append(
                    f"{entry['name']}: component {part['slo']} is not judged "
                    f"({status_text(part['status'])}); {counted}"
                )
    return out


def _series_rows(entry: Mapping[str, Any]) -> list[list[str]]:
    shape = Shape.of_entry(entry)
    return [
        [
            p["start"][:16].replace("T", " "),
            p["end"][:16].replace("T", " "),
            value_text(shape, p["value"]),
            f"{p['n']:,}",
        ]
        for p in entry.get("series") or []
    ]


SERIES_COLUMNS = ("from (UTC)", "to (UTC)", "SLI", "n")


def series_tables(evaluation: Evaluation) -> list[Table]:
    """With ``--series``, one table per SLO: its SLI per step across the window."""
    from rich.table import Table

    out = []
    for entry in evaluation_json(evaluation)["slos"]:
        rows = _series_rows(entry)
        if not rows:
            continue
        table = Table(title=f"{entry['name']}: {entry['metric']} per step", title_justify="left")
        for header in SERIES_COLUMNS:
            table.add_column(header, justify="right" if header in ("SLI", "n") else "left")
        for row in rows:
            table.add_row(*row)
        out.append(table)
    return out


def evaluation_markdown(evaluation: Evaluation) -> str:
    lines = [
        f"# {evaluation.service} — SLOs at {iso(evaluation.evaluated_at)}",
        "",
        "| " + " | ".join(header for header, _ in COLUMNS) + " |",
        "|---|---|---:|---|:-:|---:|---|---|---:|",
    ]
    for _, cells in _rows(evaluation, " "):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    document = evaluation_json(evaluation)
    notes = reasons(document)
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    for entry in document["slos"]:
        rows = _series_rows(entry)
        if rows:
            lines += ["", f"## {entry['name']}: {entry['metric']} per step", ""]
            lines += ["| " + " | ".join(SERIES_COLUMNS) + " |", "|---|---|---:|---:|"]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
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
            f"{t['slo']} {t['weight']:.3g} × {share_text(t['consumed'])}"
            + (" (undefined)" if t.get("undefined") else "")
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
                value_text(Shape.of_entry(now), now["sli"]["value"]),
                share_text(now["budget"]["remaining"]),
                value_text(Shape.of_entry(entry), entry["sli"]["value"]),
                share_text(entry["budget"]["remaining"]),
                Text(status_text(status), style=STATUS_STYLE[status]),
            )
        out.append(table)
    return out


def alerts_table(
    evaluation: Evaluation,
    results: Sequence[tuple[Judged, AlertRule, Check]],
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
        if not show_all and status != "firing":
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
            threshold_text(rule.burn_rate),
            result.suppressed or absent_note(rule, result),
        )
    if not shown:
        table.caption = "no alert would fire (--all shows every rule)"
    return table


def absent_note(rule: AlertRule, result: Check) -> str:
    """For an absent rule, since when the SLO has had no events."""
    if rule.kind != "absent":
        return ""
    if result.last_event is None:
        return "no events in the window"
    return f"last event {iso(result.last_event)}"


def print_evaluation(console: Console, evaluation: Evaluation) -> None:
    """The evaluation table, then a bullet for each reason."""
    console.print(evaluation_table(evaluation))
    for line in reasons(evaluation_json(evaluation)):
        console.print(f"  • {line}", markup=False, highlight=False)
    for table in series_tables(evaluation):
        console.print(table)


def validation_summary(file: str, spec: Spec) -> str:
    """What ``mlslo validate`` says of a valid spec: its SLOs, then which SLOs each rule of
    each policy covers."""
    names = ", ".join(f"{s.name} ({s.dimension})" for s in spec.slos)
    policies = spec.all_policies()
    extra = f"; policies: {', '.join(policies)}" if policies else ""
    lines = [f"{file}: valid — service {spec.service}, {len(spec.slos)} SLOs: {names}{extra}"]
    for composite in spec.composites:
        parts = ", ".join(f"{n} {share_text(w)}" for n, w in composite.weights.items())
        lines.append(
            f"composite {composite.name}: reliability >= {composite.objective * 100:g}% "
            f"from {parts}"
        )
    for name, policy in policies.items():
        lines.append(f"policy {name}:")
        lines += [f"  {rule:<15} {text}" for rule, text in _rule_texts(spec, policy)]
    return "\n".join(lines)


def _rule_texts(spec: Spec, policy: Policy) -> list[tuple[str, str]]:
    """Each rule with the SLOs it covers, as ``mlslo validate`` lists them."""
    out: list[tuple[str, str]] = []
    covering = coverage(spec, policy)
    for rule in ("hard_stop", "soft_stop"):
        if rule in covering:
            out.append((rule, ", ".join(covering[rule])))
    minimums = [
        f"{slo} ≥ {share_text(minimum)}"
        for ref, minimum in policy.min_remaining.items()
        for slo in spec.resolve(ref).names
    ]
    if minimums:
        out.append(("min_remaining", ", ".join(minimums)))
    rates = [
        f"{slo} ≤ {threshold_text(limit.rate)} over {format_duration(limit.window)}"
        for ref, limit in policy.max_burn_rate.items()
        for slo in spec.resolve(ref).names
    ]
    if rates:
        out.append(("max_burn_rate", ", ".join(rates)))
    if policy.block_on_alert is not None:
        out.append(("block_on_alert", f"{policy.block_on_alert} alerts on covered SLOs"))
    if policy.risk_score is not None:
        weights = risk_weights(spec, policy)
        total = sum(weights.values())
        terms = ", ".join(f"{slo} {share_text(w / total)}" for slo, w in weights.items())
        out.append(("risk_score", f"{terms} (max {policy.risk_score.max:g})"))
    return out
