"""What the dashboard and the report show for an SLO: charts and facts built from the JSON
document (the same one the API returns), so every view agrees with the numbers served."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mlslo.measure.windows import burn_key
from mlslo.render import charts
from mlslo.render.format import (
    NONE,
    Shape,
    bound_text,
    hours_text,
    met_text,
    objective_text,
    rate_text,
    share_text,
    status_text,
    threshold_text,
    value_text,
)
from mlslo.render.reliability import reliability
from mlslo.spec import AnySLO
from mlslo.spec.alert_rules import slo_rules


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str
    note: str | None = None


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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


def burndown_svg(entry: Mapping[str, Any], chart_id: str) -> str | None:
    """The budget left as the window fills up, against spending it evenly (None without a
    burn-down in the entry: it comes with a series)."""
    burndown = entry.get("burndown") or []
    if not burndown:
        return None
    start, end = _moment(entry["window_start"]), _moment(entry["window_end"])
    return charts.time_series(
        chart_id,
        f"{entry['name']}: error budget left over the window",
        [(_moment(p["t"]), p["remaining"]) for p in burndown],
        ideal=[(start, 1.0), (end, 0.0)],
        y_label=lambda v: f"{v * 100:.0f}%",
        lines=[charts.Line(0.0, "budget gone")],
        colour=charts.BLUE,
    )


def _calibration_chart(
    name: str, chart_id: str, calibration: Mapping[str, Any], version: str | None = None
) -> Chart:
    """The reliability diagram of one calibration (one per model version when there are
    several: each version is calibrated on its own)."""
    before, after = calibration["ece_before"], calibration["ece_after"]
    of = f" of {version}" if version else ""
    return Chart(
        f"Calibration of the CBPE estimate{': ' + version if version else ''}",
        reliability(
            chart_id,
            f"{name}: calibration of the scores{of} (reliability diagram)",
            f"{name}: observed positive rate per score bin of "
            f"{calibration['labelled']:,} labelled predictions{of}, raw and after "
            f"{calibration['method']} calibration; ECE {before:.4f} before, "
            f"{after:.4f} after",
            calibration["reliability"],
        ),
        f"ECE (expected calibration error) {before:.4f} with the raw scores, "
        f"{after:.4f} after {calibration['method']} calibration, on the labelled "
        f"predictions{of} it was fitted on. On the dashed diagonal a score means what it says.",
    )


def slo_charts(
    entry: Mapping[str, Any], slo: AnySLO, bucket: timedelta, prefix: str = "c"
) -> list[Chart]:
    """The charts of one SLO's page, in reading order."""
    out: list[Chart] = []
    name = entry["name"]
    shape = Shape.of_entry(entry)

    def fmt(value: float) -> str:
        return bound_text(shape, value, significant=3)

    estimated = entry["sli"].get("estimated") or {}
    versions = estimated.get("calibrations") or []
    if len(versions) > 1:
        for index, calibration in enumerate(versions):
            if calibration.get("reliability"):
                label = f"model_version {calibration['model_version'] or '(none)'}"
                out.append(
                    _calibration_chart(name, f"{prefix}-calibration-{index}", calibration, label)
                )
    elif (estimated.get("calibration") or {}).get("reliability"):
        out.append(_calibration_chart(name, f"{prefix}-calibration", estimated["calibration"]))
    burndown = burndown_svg(entry, f"{prefix}-burndown")
    if burndown is not None:
        out.append(
            Chart(
                "Error budget burn-down",
                burndown,
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
        inner = shape.inner()

        def value_fmt(value: float) -> str:
            return bound_text(inner, value, significant=3)

        out.append(
            Chart(
                "SLI over time",
                charts.time_series(
                    f"{prefix}-sli",
                    f"{name}: {entry['metric']} per step",
                    [(_moment(p["end"]), p["value"]) for p in series],
                    lines=[charts.Line(target, "target")],
                    y_label=value_fmt,
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
    shape = Shape.of_entry(entry)
    out = [
        ("SLI", value_text(shape, sli["value"])),
        ("objective", f"{entry['metric']} {objective_text(entry)}"),
        (
            "window",
            f"{entry['window']} ({entry['window_start'][:16]} → {entry['window_end'][:16]} UTC)",
        ),
        ("samples", f"{sli['n']:,}"),
    ]
    if sli.get("ci"):
        low, high = sli["ci"]
        out.append(("95% interval", f"{value_text(shape, low)} – {value_text(shape, high)}"))
    if budget["remaining"] is not None:
        out.append(("budget left", share_text(budget["remaining"])))
    out.append(("status", status_text(budget["status"])))
    out.append(("met", met_text(entry["met"])))
    hours = entry.get("time_to_exhaustion_hours")
    if hours is not None:
        out.append(("budget gone in", hours_text(hours)))
    if sli.get("label_coverage") is not None:
        out.append(("labelled", f"{share_text(sli['label_coverage'])} of predictions"))
    estimate = sli.get("estimated")
    if isinstance(estimate, Mapping) and estimate.get("value") is not None:
        out.append(
            (
                "estimated (CBPE)",
                f"{estimate['value']:.4f} over {estimate['n']:,} predictions without labels yet",
            )
        )
    if "clock_skew" in sli:
        out.append(("clock skew", skew_fact(sli["clock_skew"])))
    if sli.get("reason"):
        out.append(("note", sli["reason"]))
    if budget.get("reason"):
        out.append(("not judged", budget["reason"]))
    if sli.get("last_event") is not None:
        out.append(("last event", f"{sli['last_event'][:16].replace('T', ' ')} UTC"))
    return out


def skew_fact(count: int) -> str:
    """A freshness SLO's clock skew count, as the SLO page lists it."""
    if not count:
        return "none: no event_ts later than ts beyond the skew_tolerance"
    records = "record" if count == 1 else "records"
    return f"{count:,} {records} with an event_ts later than ts beyond the skew_tolerance"


def skew_note(entry: Mapping[str, Any]) -> str | None:
    """What a freshness SLO's clock skew means, when it has any."""
    count = entry["sli"].get("clock_skew")
    if not count:
        return None
    counted = "not fresh" if entry["metric"] == "fresh_share" else "at lag 0"
    records = "record has" if count == 1 else "records have"
    return (
        f"clock skew: {count:,} {records} an event_ts later than ts beyond the "
        f"skew_tolerance, counted as {counted}"
    )


def burn_cells(alert: Mapping[str, Any]) -> dict[str, str]:
    """An alert's long / short burn rates and threshold as table cells (from its JSON)."""
    if alert["threshold"] is None:
        return {"burn": NONE, "threshold": NONE}
    return {
        "burn": f"{rate_text(alert['long_burn_rate'])} / {rate_text(alert['short_burn_rate'])}",
        "threshold": threshold_text(alert["threshold"]),
    }


def by_name(document: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {entry["name"]: entry for entry in document["slos"]}
