"""``mlslo report``: a self-contained SLO review (HTML or Markdown) on the demo's files, whose
numbers are those of ``mlslo evaluate`` and whose gate is that of ``mlslo gate``."""

from __future__ import annotations

import base64
import html
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import Run
from mlslo.cli import app
from mlslo.demo.scenario import Scenario, write_demo

AT = "2026-11-20T12:00:00Z"
END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SLOS = ["accuracy", "freshness", "lag-p95", "uptime", "latency", "fairness"]
SVG_NS = "http://www.w3.org/2000/svg"


def _invoke(*args: Any) -> Run:
    """What the ``cli`` fixture does, usable from a module-scoped fixture."""
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo's files, the reports written from them, and evaluate/gate as JSON."""
    folder = tmp_path_factory.mktemp("report")
    paths = write_demo(folder / "demo", Scenario(end=END, daily_volume=3000))
    common = (
        "--spec",
        paths["spec"],
        "--data",
        paths["predictions"],
        "--labels",
        paths["labels"],
        "--at",
        AT,
    )
    runs = {
        "html": _invoke("report", *common, "--out", folder / "report.html"),
        "md": _invoke("report", *common, "--out", folder / "report.md"),
        "evaluate": _invoke("evaluate", *common, "--format", "json"),
        "gate": _invoke("gate", *common, "--format", "json"),
    }
    for kind in ("html", "md", "evaluate"):
        assert runs[kind].exit_code == 0, (kind, runs[kind].stderr)
    return {
        "paths": paths,
        "common": common,
        "folder": folder,
        "runs": runs,
        "html": (folder / "report.html").read_text(encoding="utf-8"),
        "md": (folder / "report.md").read_text(encoding="utf-8"),
        "slos": {e["name"]: e for e in runs["evaluate"].json()["slos"]},
        "gate": runs["gate"].json(),
    }


# Formatting written out here (not imported from mlslo) so the comparison can fail.
def _value(entry: dict[str, Any]) -> str:
    value = entry["sli"]["value"]
    if entry["sli"].get("unit") == "s":
        return f"{value / 60:.1f} min" if value >= 60 else f"{value:.1f} s"
    if entry["metric"] in ("availability", "fast_share", "fresh_share"):
        return f"{value * 100:.3f}%"
    return f"{value:.4f}"


def _remaining(entry: dict[str, Any]) -> str:
    return f"{entry['budget']['remaining'] * 100:.1f}%"


def _met(entry: dict[str, Any]) -> str:
    return {True: "yes", False: "NO", None: "—"}[entry["met"]]


class _Sections(HTMLParser):
    """Counts charts and points per ``<section id>``, and collects ids and references."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.charts: Counter[str] = Counter()
        self.points: Counter[str] = Counter()
        self.ids: set[str] = set()
        self.references: list[tuple[str, str, str]] = []
        self.tags: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.tags[tag] += 1
        if "id" in found:
            self.ids.add(found["id"])
        for attribute in ("src", "href", "xlink:href", "srcset", "action", "data"):
            if attribute in found:
                self.references.append((tag, attribute, found[attribute]))
        classes = found.get("class", "").split()
        if tag == "section":
            self.section = found.get("id")
        if self.section is None:
            return
        if tag == "svg" and "chart" in classes:
            self.charts[self.section] += 1
        if "point" in classes:
            self.points[self.section] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.section = None


def _summary_rows(page: str) -> dict[str, list[str]]:
    body = page.split('id="summary-h"', 1)[1].split("</table>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, flags=re.S):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in row.split("</td>")]
        cells = [c for c in cells if c]
        if cells and cells[0] in SLOS:
            rows[cells[0]] = cells
    return rows


# --- HTML -----------------------------------------------------------------------------------


def test_html_report_is_self_contained(demo):
    page = demo["html"]
    assert demo["runs"]["html"].stdout.strip().startswith("wrote ")
    parsed = _Sections()
    parsed.feed(page)
    parsed.close()
    outside = [r for r in parsed.references if not r[2].startswith("#")]
    assert outside == [], f"references to other files or hosts: {outside}"
    for _, _, target in parsed.references:
        assert target[1:] in parsed.ids, f"anchor {target} points at nothing"
    assert parsed.tags["script"] == 0 and parsed.tags["link"] == 0 and parsed.tags["img"] == 0
    urls = set(re.findall(r"https?://[^\s\"'<>()]+", page))
    assert urls <= {SVG_NS}, urls
    assert "@import" not in page and not re.search(r"url\(\s*['\"]?(?!data:|#)", page)
    assert parsed.tags["style"] == 1  # the stylesheet is inline


def test_html_report_has_a_section_with_charts_per_slo(demo):
    parsed = _Sections()
    parsed.feed(demo["html"])
    parsed.close()
    for name in SLOS:
        section = f"slo-{name}"
        assert section in parsed.ids, name
        assert parsed.charts[section] >= 2, (name, parsed.charts[section])
        assert parsed.points[section] >= parsed.charts[section], (name, parsed.points[section])
    # each SLO's charts have their own ids (one file, many charts)
    assert len(re.findall(r'<svg class="chart"', demo["html"])) == sum(parsed.charts.values())
    chart_ids = re.findall(r'<svg class="chart"[^>]* id="([^"]+)"', demo["html"])
    assert len(chart_ids) == len(set(chart_ids)) == sum(parsed.charts.values())


def test_html_summary_equals_evaluate_json(demo):
    rows = _summary_rows(demo["html"])
    assert list(rows) == SLOS
    for name, entry in demo["slos"].items():
        _, dimension, value, _, met, remaining, status, *_ = rows[name]
        assert dimension == entry["dimension"]
        assert value == _value(entry), name
        assert remaining == _remaining(entry), name
        assert met == _met(entry), name
        assert entry["budget"]["status"].replace("_", " ") in status, (name, status)
    # spot checks of what the demo planted
    assert rows["uptime"][4] == "NO" and rows["fairness"][4] == "NO"
    assert rows["lag-p95"][2].endswith(" min")
    assert rows["uptime"][2].endswith("%")


def test_html_report_shows_the_gate_decision(demo):
    gate = demo["gate"]
    assert demo["runs"]["gate"].exit_code == {"allow": 0, "block": 1, "warn": 3}[gate["decision"]]
    assert gate["decision"] == "block"
    page = demo["html"]
    decision = re.search(r'<p class="decision (\w+)">\s*(\w+)\s*</p>', page)
    assert decision is not None
    assert decision.groups() == (gate["decision"], gate["decision"].upper())
    assert f"(policy {gate['policy']})" in page
    text = html.unescape(page)
    assert gate["reasons"]
    for reason in gate["reasons"]:
        assert f"{reason['rule']}: {reason['message']}" in text, reason


# --- Markdown -------------------------------------------------------------------------------

IMAGE = re.compile(r"!\[([^\]]*)\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)")


def test_markdown_report_has_the_summary_and_inline_charts(demo):
    text = demo["md"]
    assert text.startswith("# fraud-scoring — SLO review")
    lines = text.splitlines()
    header = lines.index("## Summary")
    table = [line for line in lines[header + 1 : header + 12] if line.startswith("| ")]
    assert table[0].startswith("| SLO | dimension | SLI | objective | met | budget left |")
    rows = {
        cells[0]: cells
        for cells in ([c.strip() for c in r.strip("|").split(" | ")] for r in table[1:])
    }
    assert list(rows) == SLOS
    for name, entry in demo["slos"].items():
        assert rows[name][2] == _value(entry), name
        assert rows[name][5] == _remaining(entry), name
    gate = demo["gate"]
    assert f"## Deployment gate: {gate['decision'].upper()} (policy {gate['policy']})" in text
    for reason in gate["reasons"]:
        assert f"- **{reason['effect']}** {reason['rule']}: {reason['message']}" in lines
    images = IMAGE.findall(text)
    assert len(images) >= 2 * len(SLOS)
    assert text.count("data:image/svg+xml;base64,") == len(images)  # none malformed
    for alt, encoded in images:
        assert alt.strip(), "an image without alt text"
        svg = base64.b64decode(encoded, validate=True).decode("utf-8")
        root = ET.fromstring(svg)  # a data-URI image must be well-formed XML
        assert root.tag == f"{{{SVG_NS}}}svg"
        assert root.get("role") == "img"
        assert (root.findtext(f"{{{SVG_NS}}}title") or "").strip()
        assert (root.findtext(f"{{{SVG_NS}}}desc") or "").strip()
        points = [e for e in root.iter() if "point" in (e.get("class") or "").split()]
        assert points, f"chart {alt!r} draws no point"
    for name in SLOS:
        assert re.search(rf"^## {re.escape(name)} — ", text, flags=re.M), name
    plain = IMAGE.sub("", text)
    assert not re.search(r"https?://", plain)


# --- mistakes -------------------------------------------------------------------------------


def test_report_with_a_bad_suffix_is_a_one_line_error(cli: Callable[..., Run], demo, tmp_path):
    target = tmp_path / "report.pdf"
    run = cli("report", *demo["common"], "--out", target)
    assert run.exit_code == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: --out:") and ".html or .md" in lines[0]
    assert "Traceback" not in run.stderr
    assert not target.exists()


def test_report_html_suffix_is_case_insensitive(cli, demo, tmp_path):
    target = tmp_path / "Review.HTML"
    run = cli("report", *demo["common"], "--out", target)
    assert run.exit_code == 0, run.stderr
    assert target.read_text(encoding="utf-8").startswith("<!doctype html>")


COARSE_SPEC = """
    service: coarse
    bucket: 5m
    slos:
      - {name: uptime, dimension: availability, objective: {target: 0.99}, window: 7d}
      - name: strict
        dimension: availability
        objective: {target: 0.99}
        window: 7d
        alerts: [{long: 2h, short: 10m, burn_rate: 10, severity: page}]
"""


def test_burn_windows_follow_the_bucket_and_the_slos_own_alerts(
    cli, write_spec, write_records, tmp_path
):
    from datetime import timedelta

    stamps = [END - timedelta(minutes=10 * i) for i in range(1, 7 * 144)]
    data = write_records(
        {
            "id": [f"r{i}" for i in range(len(stamps))],
            "ts": stamps,
            "status": ["error" if i % 40 == 0 else "ok" for i in range(len(stamps))],
        }
    )
    spec = write_spec(COARSE_SPEC)
    common = ("--spec", spec, "--data", data, "--at", AT)
    slos = {e["name"]: e for e in cli("evaluate", *common, "--format", "json").json()["slos"]}
    assert cli("report", *common, "--out", tmp_path / "r.md").exit_code == 0
    assert cli("report", *common, "--out", tmp_path / "r.html").exit_code == 0
    markdown = (tmp_path / "r.md").read_text(encoding="utf-8")
    page = html.unescape((tmp_path / "r.html").read_text(encoding="utf-8"))
    # 1h, 6h and 1d of a 30-day window, scaled to 7 days and rounded to 5-minute buckets
    rates = slos["uptime"]["burn_rates"]
    headline = ", ".join(f"{k} {rates[k]:.2f}×" for k in ("15m", "1h25m", "5h35m"))
    summary = next(line for line in markdown.splitlines() if line.startswith("| uptime |"))
    assert summary.endswith(f"| {headline} |")
    strict = slos["strict"]["burn_rates"]
    for window in ("2h", "10m"):
        shown = f"{window}: {strict[window]:.2g}× (alert threshold 10×)"
        assert shown in page, shown
