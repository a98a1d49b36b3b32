"""Budget attribution as its JSON document (the contract of ``mlslo explain --format json``,
the API and the dashboard), as terminal tables, and as horizontal bars for the dashboard."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

from mlslo.measure.attribution import Attribution, Period, SliceAttribution
from mlslo.moments import format_duration
from mlslo.render.charts import BLUE, GREEN, GREY, VERMILLION
from mlslo.render.documents import objective_json
from mlslo.render.format import Shape, iso, json_number, rate_text, share_text, value_text

if TYPE_CHECKING:
    from rich.console import Console

NO_VALUE = "(none)"
"""How a slice of records without the attribute reads."""
SHOWN = 20
"""Rows of slices and periods a table shows (the JSON has them all)."""


def _number(value: float | None) -> float | None:
    return json_number(value)


def slice_label(by: Sequence[str], values: Sequence[Any]) -> str:
    """``model_version=v2, region=eu``."""
    return ", ".join(f"{c}={_value_text(v)}" for c, v in zip(by, values, strict=True))


def _value_text(value: Any) -> str:
    if value is None:
        return NO_VALUE
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def _slice_json(by: Sequence[str], item: SliceAttribution, occurrences: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "values": {
            c: (iso(v) if isinstance(v, datetime) else v)
            for c, v in zip(by, item.values, strict=True)
        },
        "label": slice_label(by, item.values),
        "n": item.n,
        "value": _number(item.value),
        "ci": None if item.ci is None else [_number(item.ci[0]), _number(item.ci[1])],
        "spent": _number(item.spent),
    }
    if occurrences:
        out.update(
            bad=_number(item.bad),
            share=_number(item.share),
            allowed=_number(item.allowed),
            excess=_number(item.excess),
        )
    else:
        out.update(
            without=_number(item.without),
            without_ci=(
                None
                if item.without_ci is None
                else [_number(item.without_ci[0]), _number(item.without_ci[1])]
            ),
            change=_number(item.change),
        )
    out["reason"] = item.reason
    return out


def _period_json(period: Period) -> dict[str, Any]:
    return {
        "start": iso(period.start),
        "end": iso(period.end),
        "n": period.n,
        "burn_rate": _number(period.burn_rate),
        "peak_burn_rate": _number(period.peak_burn_rate),
        "bad": _number(period.bad),
        "share": _number(period.share),
    }


def attribution_json(result: Attribution) -> dict[str, Any]:
    """The attribution document: the SLO over its window, its slices worst first, and its
    burning periods in time order."""
    slo = result.slo
    m = result.measurement
    occurrences = result.kind == "occurrences"
    return {
        "slo": slo.name,
        "dimension": slo.dimension,
        "metric": slo.metric,
        "evaluated_at": iso(result.evaluated_at),
        "window": str(slo.window),
        "window_start": iso(result.start),
        "window_end": iso(result.end),
        "budgeting": slo.effective_budgeting,
        "attribution": result.kind,
        "objective": objective_json(slo),
        "by": list(result.by),
        "sli": {
            "value": _number(m.value),
            "n": m.n,
            "ci": None if m.ci is None else [_number(m.ci[0]), _number(m.ci[1])],
            "good": _number(m.good),
            "valid": _number(m.valid),
            "reason": m.reason,
        },
        "consumed": _number(result.consumed),
        "slices": [_slice_json(result.by, s, occurrences) for s in result.slices],
        "slices_reason": result.slices_reason,
        "unattributed": _number(result.unattributed),
        "step": format_duration(result.step),
        "periods": [_period_json(p) for p in result.periods],
    }


# --- terminal -----------------------------------------------------------------------------------


def _shape(document: Mapping[str, Any]) -> Shape:
    return Shape(document["metric"], document["objective"].get("unit"), "aggregate")


def print_attribution(console: Console, document: Mapping[str, Any]) -> None:
    """The slices table (worst first), then the periods table."""
    from rich.table import Table

    shape = _shape(document)
    occurrences = document["attribution"] == "occurrences"
    sli = document["sli"]
    console.print(
        f"{document['slo']}: {document['metric']} {value_text(shape, sli['value'])} "
        f"(n={sli['n']:,}) over {document['window']} from {document['window_start']} to "
        f"{document['window_end']}; budget consumed {share_text(document['consumed'])}",
        markup=False,
        highlight=False,
    )
    if document["slices_reason"]:
        console.print(f"slices: {document['slices_reason']}", markup=False, highlight=False)
    else:
        table = Table(
            title=f"where the budget went, by {', '.join(document['by'])}", title_justify="left"
        )
        if occurrences:
            headers = ["slice", "events", "SLI", "bad", "share of bad", "allowed", "excess"]
        else:
            headers = ["slice", "n", "SLI", "interval", "without it", "change", "budget spent"]
        headers.append("budget spent" if occurrences else "note")
        for header in headers:
            table.add_column(header, justify="left" if header in ("slice", "note") else "right")
        for row in document["slices"][:SHOWN]:
            table.add_row(*_slice_cells(shape, row, occurrences))
        console.print(table)
        more = len(document["slices"]) - SHOWN
        if more > 0:
            console.print(f"… and {more} more slices (--format json lists them all)")
    periods = document["periods"]
    if not periods:
        console.print(
            f"periods: no {document['step']} step burned faster than the budget allows",
            markup=False,
            highlight=False,
        )
        return
    table = Table(
        title=f"periods burning faster than the budget allows ({document['step']} steps)",
        title_justify="left",
    )
    for header in (
        "start",
        "end",
        "n",
        "burn rate",
        "peak",
        *(("bad", "share of bad") if occurrences else ()),
    ):
        table.add_column(header, justify="left" if header in ("start", "end") else "right")
    for period in periods[:SHOWN]:
        cells = [
            period["start"],
            period["end"],
            f"{period['n']:,}",
            rate_text(period["burn_rate"]),
            rate_text(period["peak_burn_rate"]),
        ]
        if occurrences:
            cells += [_count(period["bad"]), share_text(period["share"])]
        table.add_row(*cells)
    console.print(table)
    if len(periods) > SHOWN:
        console.print(f"… and {len(periods) - SHOWN} more periods (--format json lists them all)")


def _count(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _signed(shape: Shape, value: float | None) -> str:
    if value is None:
        return "–"
    text = value_text(Shape(shape.metric, shape.unit, "aggregate"), abs(value))
    return ("+" if value >= 0 else "−") + text


def _slice_cells(shape: Shape, row: Mapping[str, Any], occurrences: bool) -> list[str]:
    value = value_text(shape, row["value"])
    if occurrences:
        return [
            row["label"],
            f"{row['n']:,}",
            value,
            _count(row["bad"]),
            share_text(row["share"]),
            _count(row["allowed"]),
            _count(row["excess"]),
            share_text(row["spent"]),
        ]
    ci = row["ci"]
    return [
        row["label"],
        f"{row['n']:,}",
        value,
        "–" if ci is None else f"{value_text(shape, ci[0])} – {value_text(shape, ci[1])}",
        value_text(shape, row["without"]),
        _signed(shape, row["change"]),
        share_text(row["spent"]),
        row["reason"] or "",
    ]


# --- dashboard ----------------------------------------------------------------------------------

BAR_WIDTH, LABEL_WIDTH, ROW = 640, 230, 26
MOST_BARS = 10


def attribution_bars(chart_id: str, document: Mapping[str, Any]) -> str:
    """The slices as horizontal bars of the budget each spent, worst at the top (an SVG with a
    text alternative). A slice that spent nothing (or gave budget back) has a bar to the left
    of zero."""
    rows = document["slices"][:MOST_BARS]
    title = f"Budget spent by {', '.join(document['by'])}"
    if not rows:
        reason = document.get("slices_reason") or "no slice has data in the window"
        return _svg(chart_id, title, f"{title}: {reason}.", [], 40)
    values = [r["spent"] or 0.0 for r in rows]
    lo, hi = min(0.0, *values), max(0.0, *values)
    span = (hi - lo) or 1.0
    usable = BAR_WIDTH - LABEL_WIDTH - 80

    def x(v: float) -> float:
        return LABEL_WIDTH + (v - lo) / span * usable

    body = []
    parts = []
    for index, (row, value) in enumerate(zip(rows, values, strict=True)):
        top = 8 + index * ROW
        left, right = sorted((x(0.0), x(value)))
        colour = VERMILLION if value > 0 else GREEN if value < 0 else GREY
        text = f"{row['label']}: {share_text(row['spent'])} of the budget"
        if document["attribution"] == "occurrences":
            text += f" ({_count(row['bad'])} bad of {row['n']:,})"
        else:
            without = value_text(_shape(document), row["without"])
            text += f" (n={row['n']:,}; {document['metric']} without it {without})"
        parts.append(text)
        body.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{top + 16}" text-anchor="end" font-size="13" '
            f'fill="#222" class="bar-label">{escape(row["label"])}</text>'
            f'<rect class="point bar" data-label="{escape(row["label"])}" x="{left:.1f}" '
            f'y="{top + 3}" width="{max(right - left, 1.0):.1f}" height="{ROW - 8}" '
            f'fill="{colour}"><title>{escape(text)}</title></rect>'
            f'<text x="{max(right, x(0.0)) + 6:.1f}" y="{top + 16}" font-size="12" '
            f'fill="#444">{escape(share_text(row["spent"]))}</text>'
        )
    height = 16 + len(rows) * ROW
    zero = x(0.0)
    body.append(
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="4" y2="{height - 4}" stroke="{BLUE}" '
        'stroke-width="1"/>'
    )
    description = f"{title}, worst first: " + "; ".join(parts) + "."
    return _svg(chart_id, title, description, body, height)


def _svg(chart_id: str, title: str, description: str, body: list[str], height: int) -> str:
    return (
        f'<svg class="chart attribution" role="img" viewBox="0 0 {BAR_WIDTH} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'id="{chart_id}"><title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(description)}</desc>' + "".join(body) + "</svg>"
    )
