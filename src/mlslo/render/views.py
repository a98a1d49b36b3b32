"""What the dashboard and the report show for an SLO: charts and facts built from the JSON
document (the same one the API returns), so every view agrees with the numbers served."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mlslo.measure.windows import burn_key, headline_windows
from mlslo.render import charts
from mlslo.render.format import SHARE_METRICS
from mlslo.spec import AnySLO
from mlslo.spec.alert_rules import slo_rules

STATUS_WORDS = {
    "healthy": ("✓", "healthy"),
    "low": ("⚠", "budget low"),
    "exhausted": ("✗", "budget exhausted"),
    "no_data": ("∅", "no data"),
    "insufficient_data": ("?", "too little data"),
}


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str
    note: str | None = None


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def formatter(entry: Mapping[str, Any]) -> tuple[Any, str]:
    """How to print this SLO's values (and the unit suffix)."""
    unit = entry["sli"].get("unit")
    if entry["budgeting"] == "timeslices":
        return (lambda v: f"{v * 100:.1f}%"), ""
    if unit == "s":
        return (lambda v: f"{v / 60:.1f}" if abs(v) >= 60 else f"{v:.0f}s"), (
            " min" if entry["objective"]["target"] >= 60 else ""
        )
    if unit == "ms":
        return (lambda v: f"{v:.0f}"), " ms"
    if entry["metric"] in SHARE_METRICS:
        return (lambda v: f"{v * 100:.2f}%"), ""
    return (lambda v: f"{v:.3f}"), ""


def value_text(entry: Mapping[str, Any], value: float | None) -> str:
    if value is None:
        return "—"
    unit = entry["sli"].get("unit")
    if entry["budgeting"] == "timeslices":
        return f"{value * 100:.2f}% of slices good"
    if unit == "s":
        return f"{value / 60:.1f} min" if value >= 60 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.0f} ms"
    if entry["metric"] in SHARE_METRICS:
        return f"{value * 100:.3f}%"
    return f"{value:.4f}"


def target_text(entry: Mapping[str, Any]) -> str:
    objective = entry["objective"]
    if entry["budgeting"] == "timeslices":
        inner = dict(entry, budgeting="aggregate")
        return (
            f"{objective['target'] * 100:g}% of {objective.get('slice')} slices with "
            f"{entry['metric']} {objective['timeslice_op']} "
            f"{value_text(inner, objective['timeslice_target'])}"
        )
    return f"{entry['metric']} {objective['op']} {value_text(entry, objective['target'])}"


def headline_rates(entry: Mapping[str, Any], slo: AnySLO, bucket: timedelta) -> str:
    """The burn rates over the window's equivalents of 1h, 6h and 1d."""
    rates = entry["burn_rates"]
    parts = []
    for window in headline_windows(slo.window, bucket):
        key = burn_key(window)
        if key in rates:
            value = rates[key]
            parts.append(f"{key} {'—' if value is None else f'{value:.2f}×'}")
    return ", ".join(parts)


def thresholds(slo: AnySLO, bucket: timedelta) -> dict[str, float]:
    """The lowest alert threshold that reads each burn window (the SLO's own rules)."""
    out: dict[str, float] = {}
    for rule in slo_rules(slo, bucket):
        if rule.burn_rate is None:
            continue
        for span in (rule.long, rule.short):
            if span is not None:
                key = burn_key(span)
                out[key] = min(out.get(key, rule.burn_rate), rule.burn_rate)
    return out


def slo_charts(
    entry: Mapping[str, Any], slo: AnySLO, bucket: timedelta, prefix: str = "c"
) -> list[Chart]:
    """The charts of one SLO's page, in reading order."""
    out: list[Chart] = []
    name = entry["name"]
    fmt, unit = formatter(entry)
    burndown = entry.get("burndown") or []
    if burndown:
        start, end = _moment(entry["window_start"]), _moment(entry["window_end"])
        out.append(
            Chart(
                "Error budget burn-down",
                charts.time_series(
                    f"{prefix}-burndown",
                    f"{name}: error budget left over the window",
                    [(_moment(p["t"]), p["remaining"]) for p in burndown],
                    ideal=[(start, 1.0), (end, 0.0)],
                    y_label=lambda v: f"{v * 100:.0f}%",
                    lines=[charts.Line(0.0, "budget gone")],
                    colour=charts.BLUE,
                ),
                "The dashed grey line spends the budget evenly; above it, the SLO is doing better "
                "than that.",
            )
        )
    series = entry.get("series") or []
    if series:
        objective = entry["objective"]
        target = (
            objective.get("timeslice_target", objective["target"])
            if entry["budgeting"] == "timeslices"
            else objective["target"]
        )
        value_fmt = (
            fmt
            if entry["budgeting"] != "timeslices"
            else formatter(dict(entry, budgeting="aggregate"))[0]
        )
        out.append(
            Chart(
                "SLI over time",
                charts.time_series(
                    f"{prefix}-sli",
                    f"{name}: {entry['metric']} per step",
                    [(_moment(p["end"]), p["value"]) for p in series],
                    lines=[charts.Line(target, "target")],
                    y_label=value_fmt,
                    unit=unit,
                    colour=charts.BLUE,
                ),
            )
        )
        if entry["sli"].get("label_coverage") is not None:
            out.append(
                Chart(
                    "Label coverage",
                    charts.time_series(
                        f"{prefix}-coverage",
                        f"{name}: share of predictions with a label",
                        [(_moment(p["end"]), p.get("label_coverage")) for p in series],
                        y_label=lambda v: f"{v * 100:.0f}%",
                        y_range=(0.0, 1.0),
                        colour=charts.GREEN,
                    ),
                    "Recent predictions wait for their labels; accuracy over them is not known "
                    "yet.",
                )
            )
    rates = entry.get("burn_rates") or {}
    if rates:
        limits = thresholds(slo, bucket)
        keys = list(rates)
        out.append(
            Chart(
                "Burn rate per window",
                charts.bars(
                    f"{prefix}-burn",
                    f"{name}: error budget burn rate per window",
                    keys,
                    [rates[k] for k in keys],
                    thresholds=[limits.get(k) for k in keys],
                    lines=[charts.Line(1.0, "sustainable (1×)", charts.GREY)],
                    y_label=lambda v: f"{v:.2g}×",
                    colours=[
                        charts.VERMILLION
                        if (rates[k] or 0) > (limits.get(k) or float("inf"))
                        else charts.SKY
                        for k in keys
                    ],
                ),
                "Dashed red ticks are the alert thresholds of each window.",
            )
        )
    groups = entry["sli"].get("groups") or []
    if groups:
        rate_name = entry["sli"].get("rate") or next(iter(groups[0]["rates"]))
        labels, values, errors = [], [], []
        for group in groups:
            rate = group["rates"].get(rate_name)
            if rate is None:
                continue
            labels.append(", ".join(f"{k}={v}" for k, v in group["group"].items()))
            values.append(rate["value"])
            ci = rate.get("ci")
            errors.append(tuple(ci) if ci else None)
        out.append(
            Chart(
                f"{rate_name.replace('_', ' ')} per group",
                charts.bars(
                    f"{prefix}-groups",
                    f"{name}: {rate_name.replace('_', ' ')} per group",
                    labels,
                    values,
                    errors=errors,
                    y_label=lambda v: f"{v:.2f}",
                    colours=[
                        charts.BLUE,
                        charts.ORANGE,
                        charts.GREEN,
                        charts.SKY,
                        charts.VERMILLION,
                    ]
                    * (len(labels) // 5 + 1),
                ),
                "Bars are each group's rate; whiskers are 95% Wilson intervals.",
            )
        )
    percentiles = entry["sli"].get("percentiles")
    if percentiles:
        keys = list(percentiles)
        out.append(
            Chart(
                "Percentiles",
                charts.bars(
                    f"{prefix}-percentiles",
                    f"{name}: percentiles over the window",
                    keys,
                    [percentiles[k] for k in keys],
                    y_label=fmt,
                    unit=unit,
                    lines=[charts.Line(entry["objective"]["target"], "target")],
                ),
            )
        )
        histogram = entry["sli"].get("histogram") or []
        if histogram:
            out.append(
                Chart(
                    "Distribution",
                    charts.bars(
                        f"{prefix}-histogram",
                        f"{name}: distribution over the window",
                        [fmt(v) for v, _ in histogram],
                        [c for _, c in histogram],
                        y_label=lambda v: f"{v:.0f}",
                        colours=[charts.SKY] * len(histogram),
                    ),
                    "Counts per log-spaced bin (each bin spans about 2%).",
                )
            )
    return out


def facts(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The numbers of an SLO as label/value pairs for a definition list."""
    sli = entry["sli"]
    budget = entry["budget"]
    out = [
        ("SLI", value_text(entry, sli["value"])),
        ("objective", target_text(entry)),
        (
            "window",
            f"{entry['window']} ({entry['window_start'][:16]} → {entry['window_end'][:16]} UTC)",
        ),
        ("samples", f"{sli['n']:,}"),
    ]
    if sli.get("ci"):
        out.append(
            (
                "95% interval",
                f"{value_text(entry, sli['ci'][0])} – {value_text(entry, sli['ci'][1])}",
            )
        )
    if budget["remaining"] is not None:
        out.append(("budget left", f"{budget['remaining'] * 100:.1f}%"))
    out.append(("status", STATUS_WORDS[budget["status"]][1]))
    met = entry["met"]
    out.append(("met", "—" if met is None else ("yes" if met else "no")))
    hours = entry.get("time_to_exhaustion_hours")
    if hours is not None:
        out.append(("budget gone in", hours_text(hours)))
    if sli.get("label_coverage") is not None:
        out.append(("labelled", f"{sli['label_coverage'] * 100:.1f}% of predictions"))
    estimate = sli.get("estimated")
    if isinstance(estimate, Mapping) and estimate.get("value") is not None:
        out.append(
            (
                "estimated (CBPE)",
                f"{estimate['value']:.4f} over {estimate['n']:,} predictions without labels yet",
            )
        )
    if sli.get("reason"):
        out.append(("note", sli["reason"]))
    return out


def hours_text(hours: float) -> str:
    """A time to exhaustion in words: ``30.0 hours``, ``3.5 days`` (from 48 hours on)."""
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


def burn_cells(alert: Mapping[str, Any]) -> dict[str, str]:
    """An alert's long / short burn rates and threshold as table cells (from its JSON)."""
    if alert["threshold"] is None:
        return {"burn": "—", "threshold": "—"}
    long, short = alert["long_burn_rate"], alert["short_burn_rate"]
    return {
        "burn": f"{'—' if long is None else f'{long:.2f}×'} / "
        f"{'—' if short is None else f'{short:.2f}×'}",
        "threshold": f"{alert['threshold']:g}×",
    }


def by_name(document: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {entry["name"]: entry for entry in document["slos"]}
