"""The dashboard's overview in Debian's Chromium (Playwright) against the real service: the
composite SLO at the top, with the numbers the API serves, and a burn-down per SLO."""

from __future__ import annotations

import math
import urllib.parse
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from playwright.sync_api import sync_playwright

from mlslo.client import arrow_bytes
from test_composites import AT, STREAM, records, spec_text

pytestmark = [pytest.mark.browser, pytest.mark.system("chromium")]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_the_overview_opens_with_the_composite_and_shows_a_burn_down_per_slo(live_server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    table = records(5)
    live = live_server(spec_text({"accuracy": 2, "uptime": 1, "freshness": 1}), now=AT)
    labels = pa.table(
        {
            "id": table["id"],
            "ts": pc.add(table["ts"], pa.scalar(timedelta(seconds=1))),
            "label": table["label"],
        }
    )
    with live.client() as http:
        for kind, body in (("predictions", table.drop_columns(["label"])), ("labels", labels)):
            response = http.post(f"/api/v1/{kind}", content=arrow_bytes(body), headers=STREAM)
            assert response.status_code == 200, response.text
        # The overview reads burn-downs at the step of the shortest window (7 days / 30).
        api = http.get("/api/v1/slos", params={"series": "5h36m"}).json()
    reader = live.token("read")
    errors: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "request",
                lambda r: (
                    foreign.append(r.url)
                    if urllib.parse.urlsplit(r.url).hostname != "127.0.0.1"
                    else None
                ),
            )
            response = page.goto(f"{live.url}/?token={reader}")
            assert response is not None and response.status == 200

            # The composite is the first thing on the page, before the gate and the SLOs.
            first = page.locator("main article.card").first
            assert "composite" in (first.get_attribute("class") or "")
            order = page.evaluate(
                "() => Array.from(document.querySelectorAll("
                "'main section.composites, main section.panel, main div.grid'))"
                ".map(e => e.className)"
            )
            assert order[0] == "composites"
            composite = api["composites"][0]
            value = first.locator("[data-composite]")
            assert value.get_attribute("data-composite") == "fraud-model"
            assert math.isclose(
                float(value.get_attribute("data-value") or "nan"),
                composite["sli"]["value"],
                rel_tol=1e-9,
            )
            assert value.inner_text() == f"{composite['sli']['value'] * 100:.2f}%"
            left = first.locator("[data-remaining]")
            assert left.inner_text() == f"{composite['budget']['remaining'] * 100:.1f}%"
            assert "reliability >= 95%" in first.inner_text()
            rows = first.locator("tr[data-component]")
            assert rows.count() == 3
            for index, part in enumerate(composite["components"]):
                cells = rows.nth(index).locator("td").all_inner_texts()
                assert cells[0] == part["slo"]
                assert cells[1] == f"{part['weight'] * 100:.1f}%"
                assert cells[2] == f"{part['consumed'] * 100:.1f}%"

            # Each SLO card carries its burn-down, ending at the budget the API reports.
            for entry in api["slos"]:
                chart = page.locator(f"svg#burndown-{entry['name']}")
                assert chart.count() == 1, entry["name"]
                known = [p for p in entry["burndown"] if p["remaining"] is not None]
                points = chart.locator("circle.point")
                assert points.count() == len(known), entry["name"]
                last = points.nth(points.count() - 1).locator("title").text_content() or ""
                assert last.endswith(f"{known[-1]['remaining'] * 100:.0f}%"), last
                assert math.isclose(
                    known[-1]["remaining"], entry["budget"]["remaining"], abs_tol=1e-9
                )
                assert chart.bounding_box() is not None

            # A composite's link from an alert lands on its card.
            page.goto(f"{live.url}/slo/fraud-model")
            assert page.url.endswith("/#composite-fraud-model")
            assert page.locator("#composite-fraud-model").is_visible()
        finally:
            browser.close()
    assert not errors, errors
    assert not foreign, foreign
