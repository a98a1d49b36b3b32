"""Server-rendered SVG charts for the dashboard and reports: offline, accessible, testable.

Each chart is a pure function from numbers to an SVG string with a ``<title>`` and a
``<desc>`` (the text alternative), and one element per data point (``class="point"``) with a
tooltip. Colours come from the Okabe–Ito palette, which colour-blind readers can tell apart,
and every coloured meaning is also written out in text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

BLUE = "#0072B2"
ORANGE = "#E69F00"
VERMILLION = "#D55E00"
GREEN = "#009E73"
SKY = "#56B4E9"
GREY = "#767676"
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 18, 38
FONT = 13


@dataclass(frozen=True)
class Line:
    """A horizontal reference line (a target, a threshold)."""

    y: float
    label: str
    colour: str = VERMILLION


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000 or magnitude < 0.01:
        return f"{value:.3g}"
    if magnitude >= 10:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _scale(lo: float, hi: float, out_lo: float, out_hi: float) -> Callable[[float], float]:
    span = hi - lo or 1.0
    return lambda v: out_lo + (v - lo) / span * (out_hi - out_lo)


def _ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw), default=raw)
    first = math.ceil(lo / step) * step
    out = []
    value = first
    while value <= hi + step * 1e-9:
        out.append(round(value, 12))
        value += step
    return out


def _frame(title: str, description: str, body: list[str], chart_id: str) -> str:
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-labelledby="{chart_id}-t {chart_id}-d" '
        f'id="{chart_id}"><title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(description)}</desc>' + "".join(body) + "</svg>"
    )


def _axes(
    y_lo: float, y_hi: float, y: Callable[[float], float], y_label: Callable[[float], str]
) -> list[str]:
    out = []
    for tick in _ticks(y_lo, y_hi):
        py = y(tick)
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" stroke="#e3e3e3"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end" font-size="{FONT}" '
            f'fill="#444">{escape(y_label(tick))}</text>'
        )
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#999"/>')
    return out


def _reference(lines: Sequence[Line], y: Callable[[float], float]) -> list[str]:
    out = []
    for line in lines:
        py = y(line.y)
        out.append(
            f'<line class="reference" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" '
            f'y2="{py:.1f}" stroke="{line.colour}" stroke-dasharray="6 4" '
            f'stroke-width="1.5"/>'
        )
        out.append(
            f'<text x="{LEFT + 6}" y="{py - 5:.1f}" text-anchor="start" '
            f'font-size="{FONT}" fill="{line.colour}">{escape(line.label)}</text>'
        )
    return out


def time_series(
    chart_id: str,
    title: str,
    points: Sequence[tuple[datetime, float | None]],
    *,
    lines: Sequence[Line] = (),
    y_label: Callable[[float], str] = _fmt,
    colour: str = BLUE,
    ideal: Sequence[tuple[datetime, float]] | None = None,
    y_range: tuple[float, float] | None = None,
    unit: str = "",
) -> str:
    """A line over time with markers, reference lines, and an optional ideal line."""
    known = [(t, v) for t, v in points if v is not None and math.isfinite(v)]
    if not points:
        return _frame(title, f"{title}: no data.", [_empty()], chart_id)
    values = [v for _, v in known] + [line.y for line in lines]
    if ideal:
        values += [v for _, v in ideal]
    lo, hi = y_range if y_range else (min(values, default=0.0), max(values, default=1.0))
    if hi == lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
    pad = (hi - lo) * 0.08
    lo, hi = (lo, hi) if y_range else (lo - pad, hi + pad)
    t0 = points[0][0].timestamp()
    t1 = max(points[-1][0].timestamp(), t0 + 1)
    x = _scale(t0, t1, LEFT + 8, WIDTH - RIGHT - 8)
    y = _scale(lo, hi, HEIGHT - BOTTOM, TOP)
    body = _axes(lo, hi, y, y_label)
    body += _reference(lines, y)
    if ideal:
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x(t.timestamp()):.1f},{y(v):.1f}"
            for i, (t, v) in enumerate(ideal)
        )
        body.append(
            f'<path class="ideal" d="{path}" fill="none" stroke="{GREY}" '
            f'stroke-dasharray="3 3" stroke-width="1.5"/>'
        )
    segments: list[list[str]] = [[]]
    for t, v in points:
        if v is None or not math.isfinite(v):
            segments.append([])
            continue
        segments[-1].append(f"{x(t.timestamp()):.1f},{y(v):.1f}")
    for segment in segments:
        if len(segment) > 1:
            body.append(
                f'<polyline class="series" points="{" ".join(segment)}" fill="none" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
    for t, v in known:
        label = f"{t:%Y-%m-%d %H:%M} UTC: {y_label(v)}{unit}"
        body.append(
            f'<circle class="point" cx="{x(t.timestamp()):.1f}" cy="{y(v):.1f}" r="3" '
            f'fill="{colour}"><title>{escape(label)}</title></circle>'
        )
    ticks = (
        (points[0][0], "start"),
        (points[len(points) // 2][0], "middle"),
        (points[-1][0], "end"),
    )
    for tick_time, anchor in ticks:
        body.append(
            f'<text x="{x(tick_time.timestamp()):.1f}" y="{HEIGHT - 12}" '
            f'text-anchor="{anchor}" font-size="{FONT}" fill="#444">'
            f"{tick_time:%b %d %H:%M}</text>"
        )
    first, last = (known[0], known[-1]) if known else (None, None)
    if first and last:
        summary = (
            f"{len(known)} points from {first[0]:%Y-%m-%d %H:%M} to "
            f"{last[0]:%Y-%m-%d %H:%M} UTC; first {y_label(first[1])}{unit}, last "
            f"{y_label(last[1])}{unit}, lowest {y_label(min(v for _, v in known))}"
            f"{unit}, highest {y_label(max(v for _, v in known))}{unit}"
        )
    else:
        summary = "no values in this period"
    refs = "; ".join(f"{line.label} at {y_label(line.y)}{unit}" for line in lines)
    description = f"{title}: {summary}." + (f" Reference: {refs}." if refs else "")
    return _frame(title, description, body, chart_id)


def bars(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    errors: Sequence[tuple[float, float] | None] | None = None,
    lines: Sequence[Line] = (),
    y_label: Callable[[float], str] = _fmt,
    colours: Sequence[str] | None = None,
    unit: str = "",
    thresholds: Sequence[float | None] | None = None,
) -> str:
    """Bars with optional error bars (intervals) and per-bar threshold ticks."""
    if not labels:
        return _frame(title, f"{title}: no data.", [_empty()], chart_id)
    candidates = [v for v in values if v is not None] + [line.y for line in lines]
    candidates += [hi for e in (errors or []) if e for hi in e]
    candidates += [t for t in (thresholds or []) if t is not None]
    hi = max([*candidates, 0.0]) * 1.12 or 1.0
    lo = min(0.0, *candidates) if candidates else 0.0
    y = _scale(lo, hi, HEIGHT - BOTTOM, TOP)
    body = _axes(lo, hi, y, y_label)
    slot = (WIDTH - LEFT - RIGHT) / len(labels)
    width = min(48.0, slot * 0.6)
    parts = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        cx = LEFT + slot * (i + 0.5)
        colour = colours[i] if colours else BLUE
        if value is not None:
            top, base = y(max(value, lo)), y(0.0)
            text = f"{label}: {y_label(value)}{unit}"
            interval = errors[i] if errors else None
            if interval is not None:
                text += f" (interval {y_label(interval[0])}–{y_label(interval[1])}{unit})"
            body.append(
                f'<rect class="point" x="{cx - width / 2:.1f}" y="{min(top, base):.1f}" '
                f'width="{width:.1f}" height="{abs(base - top):.1f}" fill="{colour}">'
                f"<title>{escape(text)}</title></rect>"
            )
            if interval is not None:
                y0, y1 = y(interval[0]), y(interval[1])
                body.append(
                    f'<path class="interval" d="M{cx:.1f},{y0:.1f} L{cx:.1f},{y1:.1f} '
                    f"M{cx - 6:.1f},{y0:.1f} L{cx + 6:.1f},{y0:.1f} M{cx - 6:.1f},"
                    f'{y1:.1f} L{cx + 6:.1f},{y1:.1f}" stroke="#222" '
                    f'stroke-width="1.5"/>'
                )
            parts.append(text)
        else:
            parts.append(f"{label}: no value")
        threshold = thresholds[i] if thresholds else None
        if threshold is not None:
            ty = y(threshold)
            body.append(
                f'<line class="threshold" x1="{cx - slot / 2 + 4:.1f}" '
                f'x2="{cx + slot / 2 - 4:.1f}" y1="{ty:.1f}" y2="{ty:.1f}" '
                f'stroke="{VERMILLION}" stroke-width="2" stroke-dasharray="5 3"/>'
            )
            parts[-1] += f" (alert threshold {y_label(threshold)}{unit})"
        every = max(1, math.ceil(len(labels) / 10))
        if i % every == 0:
            body.append(
                f'<text x="{cx:.1f}" y="{HEIGHT - 12}" text-anchor="middle" '
                f'font-size="{FONT}" fill="#444">{escape(label)}</text>'
            )
    body += _reference(lines, y)
    refs = "; ".join(f"{line.label} at {y_label(line.y)}{unit}" for line in lines)
    description = f"{title}: " + "; ".join(parts) + "." + (f" Reference: {refs}." if refs else "")
    return _frame(title, description, body, chart_id)


def gauge(chart_id: str, remaining: float | None, status: str) -> str:
    """A budget-remaining bar: the share left, its number, and the status in words."""
    title = "Error budget remaining"
    width, height = 220, 28
    if remaining is None:
        text = f"{title}: unknown ({status.replace('_', ' ')})."
        return (
            f'<svg class="gauge" role="img" viewBox="0 0 {width} {height}" '
            f'preserveAspectRatio="xMinYMid meet" aria-label="{escape(text)}">'
            f"<title>{escape(text)}</title>"
            f'<rect x="0" y="6" width="{width}" height="16" rx="3" fill="#eee"/></svg>'
        )
    share = max(0.0, min(1.0, remaining))
    colours = {"healthy": GREEN, "low": ORANGE, "no_data": GREY}  # no_data: not judged
    colour = colours.get(status, VERMILLION)
    text = f"{title}: {remaining * 100:.1f}% ({status.replace('_', ' ')})."
    return (
        f'<svg class="gauge" role="img" viewBox="0 0 {width} {height}" id="{chart_id}" '
        f'preserveAspectRatio="xMinYMid meet" aria-label="{escape(text)}">'
        f"<title>{escape(text)}</title>"
        f'<rect x="0" y="6" width="{width}" height="16" rx="3" fill="#eee"/>'
        f'<rect class="point" x="0" y="6" width="{share * width:.1f}" height="16" rx="3" '
        f'fill="{colour}"/></svg>'
    )


def _empty() -> str:
    return (
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="13" '
        f'fill="#666">no data</text>'
    )
