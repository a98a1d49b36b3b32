"""Evaluations and gate decisions as HTML for Jupyter (``_repr_html_``): the terminal table's
cells and the gate's reasons, so a notebook reads like ``mlslo evaluate`` and ``mlslo gate``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from mlslo.measure.evaluate import Evaluation, SLOEvaluation
from mlslo.render.format import iso
from mlslo.render.tables import COLUMNS, evaluation_rows
from mlslo.render.views import slo_charts

STATUS_COLOUR = {
    "healthy": "#009E73",
    "low": "#E69F00",
    "exhausted": "#D55E00",
    "no_data": "#767676",
    "insufficient_data": "#CC79A7",
}
DECISION_COLOUR = {"allow": "#009E73", "warn": "#E69F00", "block": "#D55E00"}


def _table(caption: str, rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    head = "".join(
        f'<th style="text-align:{justify}">{escape(header)}</th>' for header, justify in COLUMNS
    )
    body = []
    for status, cells in rows:
        tds = []
        for (header, justify), cell in zip(COLUMNS, cells, strict=True):
            style = f"text-align:{justify}"
            if header == "status":
                style += f";color:{STATUS_COLOUR.get(status, 'inherit')};font-weight:bold"
            tds.append(f'<td style="{style}">{escape(cell)}</td>')
        body.append(f'<tr class="mlslo-{escape(status)}">{"".join(tds)}</tr>')
    return (
        f'<table class="mlslo-evaluation"><caption style="text-align:left">{escape(caption)}'
        f"</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def evaluation_html(evaluation: Evaluation) -> str:
    """Every SLO as a row: SLI, objective, met, budget left, status, burn rates."""
    caption = f"{evaluation.service} — SLOs at {iso(evaluation.evaluated_at)}"
    return _table(caption, evaluation_rows(evaluation))


def slo_html(evaluation: Evaluation, name: str) -> str:
    """One SLO's row of :func:`evaluation_html`."""
    rows = [
        row
        for row, result in zip(evaluation_rows(evaluation), evaluation.slos, strict=True)
        if result.name == name
    ]
    return _table(f"{evaluation.service} — {name} at {iso(evaluation.evaluated_at)}", rows)


def gate_html(document: Mapping[str, Any], evaluation: Evaluation) -> str:
    """The decision, every reason, the risk score, then the evaluation it was made from."""
    decision = document["decision"]
    colour = DECISION_COLOUR[decision]
    parts = [
        f'<p><strong style="color:{colour}">{escape(decision.upper())}</strong> policy '
        f"{escape(document['policy'])} for {escape(document['service'])} at "
        f"{escape(document['evaluated_at'])}</p>"
    ]
    reasons = [
        f"<li><strong>{escape(r['effect'])}</strong> "
        + (f"[{escape(r['scope'])}] " if r.get("scope") else "")
        + f"{escape(r['rule'])}: {escape(r['message'])}</li>"
        for r in document["reasons"]
    ]
    parts.append(
        f"<ul>{''.join(reasons)}</ul>" if reasons else "<p>every budget is within the policy</p>"
    )
    if document["risk_score"] is not None:
        parts.append(f"<p>risk score {document['risk_score']:.3f}</p>")
    parts.append(evaluation_html(evaluation))
    return f'<div class="mlslo-gate">{"".join(parts)}</div>'


def burndown_svg(entry: Mapping[str, Any], result: SLOEvaluation, evaluation: Evaluation) -> str:
    """The SLO's error budget left across its window, as the dashboard draws it (an SVG with
    a text alternative); ``entry`` is the SLO's JSON and must hold a burn-down."""
    charts = slo_charts(entry, result.slo, evaluation.bucket, prefix=f"nb-{result.name}")
    return charts[0].svg
