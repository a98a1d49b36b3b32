"""The reliability diagram of a calibrated CBPE estimate: observed positive rate against the
mean score, per score bin, for the raw and the calibrated scores (on the diagonal, a score
means what it says)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from mlslo.render.charts import (
    BLUE,
    BOTTOM,
    FONT,
    GREY,
    HEIGHT,
    LEFT,
    ORANGE,
    RIGHT,
    TOP,
    WIDTH,
    _frame,
    _scale,
    _ticks,
)


def reliability(
    chart_id: str, title: str, description: str, rows: Sequence[Mapping[str, Any]]
) -> str:
    """``rows``: per score bin, ``score`` (mean raw), ``calibrated`` (mean calibrated),
    ``observed`` (positive rate) and ``n``."""
    x = _scale(0.0, 1.0, LEFT, WIDTH - RIGHT)
    y = _scale(0.0, 1.0, HEIGHT - BOTTOM, TOP)
    body = []
    for tick in _ticks(0.0, 1.0):
        body.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="#e3e3e3"/><text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
            f'font-size="{FONT}" fill="#444">{tick:g}</text>'
            f'<text x="{x(tick):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="{FONT}" fill="#444">{tick:g}</text>'
        )
    body.append(
        f'<line class="diagonal" x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(1):.1f}" '
        f'y2="{y(1):.1f}" stroke="{GREY}" stroke-dasharray="6 4"/>'
    )
    for key, colour, label, shape in (
        ("score", ORANGE, "raw", "circle"),
        ("calibrated", BLUE, "calibrated", "square"),
    ):
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x(r[key]):.1f},{y(r['observed']):.1f}"
            for i, r in enumerate(rows)
        )
        body.append(f'<path class="{label}" d="{path}" fill="none" stroke="{colour}"/>')
        for r in rows:
            px, py = x(r[key]), y(r["observed"])
            tip = (
                f"{label} score {r[key]:.3f}: observed {r['observed']:.3f} "
                f"of {int(r['n']):,} labelled predictions"
            )
            mark = (
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4"'
                if shape == "circle"
                else f'<rect x="{px - 4:.1f}" y="{py - 4:.1f}" width="8" height="8"'
            )
            body.append(
                f'{mark} class="point {label}" fill="{colour}"><title>{escape(tip)}</title>'
                f"{'</circle>' if shape == 'circle' else '</rect>'}"
            )
    body.append(
        f'<text x="{LEFT + 8}" y="{TOP + 12}" font-size="{FONT}" fill="{ORANGE}">● raw scores'
        f'</text><text x="{LEFT + 8}" y="{TOP + 28}" font-size="{FONT}" fill="{BLUE}">'
        "■ calibrated scores</text>"
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" '
        f'font-size="{FONT}" fill="#444">mean score (x) vs observed positive rate (y)</text>'
    )
    return _frame(title, description, body, chart_id)
