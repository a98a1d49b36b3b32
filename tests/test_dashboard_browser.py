"""The dashboard in a real browser: Debian's Chromium driven by Playwright against the real
service (uvicorn on 127.0.0.1) over a demo store with its four planted incidents.

The store is built once per module from a smaller demo scenario; Chromium is launched once
per module. Each test opens its own browser context (its own cookies) and watches every page
for console errors, uncaught exceptions and requests that leave 127.0.0.1.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    sync_playwright,
)

from conftest import Clock, ThreadedServer
from mlslo.demo.scenario import DEMO_SPEC, Scenario, generate
from mlslo.server import Service, create_app
from mlslo.server.store import Store
from mlslo.spec import parse_spec

pytestmark = [pytest.mark.browser, pytest.mark.system("chromium")]

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EARLIER = END - timedelta(days=9, hours=3, minutes=30)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# What a reader must be able to read without seeing colour (written out by the test, not
# imported from mlslo, so a change in the words is noticed).
STATUS_TEXT = {
    "healthy": "healthy",
    "low": "budget low",
    "exhausted": "budget exhausted",
    "no_data": "no data",
    "insufficient_data": "too little data",
}


@dataclass
class Site:
    url: str
    reader: str
    service: Service
    names: list[str]
    api: dict[str, Any]

    def path(self, path: str) -> str:
        return self.url + path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The demo scenario in a real store, served by uvicorn on 127.0.0.1."""
    data = generate(Scenario(end=END, daily_volume=3000))
    spec = parse_spec(DEMO_SPEC)
    clock = Clock(END)
    store = Store.open(tmp_path_factory.mktemp("dash") / "demo.duckdb", spec, clock=clock)
    service = Service(store, None, clock=clock)
    try:
        store.writer.bulk_load(data.predictions, data.labels)
        service.enable_alerts()
        assert service.alerts is not None
        service.alerts.evaluate(END)
        reader = store.tokens.create("read", "browser test")[1]
        with ThreadedServer(create_app(service)) as server:
            url = f"http://127.0.0.1:{server.port}"
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {reader}"}, timeout=30
            ) as client:
                response = client.get("/api/v1/slos")
                assert response.status_code == 200, response.text
                api = response.json()
            yield Site(url, reader, service, [s.name for s in spec.slos], api)
    finally:
        service.stop()
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Watch:
    """Everything a page did that a user should never see or that leaks off the machine."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> Page:
        page.on("console", lambda m: self._console(page, m))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror on {page.url}: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("response", lambda r: self._response(r.status, r.url))
        return page

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        if message.type == "error":
            source = message.location.get("url") or ""
            extra = f" (from {source})" if source and source != page.url else ""
            self.errors.append(f"console error on {page.url}{extra}: {message.text}")

    def _response(self, status: int, url: str) -> None:
        if status >= 400:
            self.failed.append(f"{status} {url}")

    def foreign(self) -> list[str]:
        return [u for u in self.requests if urllib.parse.urlsplit(u).hostname != "127.0.0.1"]


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def watch() -> Watch:
    return Watch()


def sign_in(context: BrowserContext, site: Site, watch: Watch) -> Page:
    """A page of ``context`` signed in through the ``?token=`` link."""
    page = watch.attach(context.new_page())
    response = page.goto(site.path(f"/?token={site.reader}"))
    assert response is not None and response.status == 200
    assert page.url == site.path("/"), "the token must not stay in the address bar"
    return page


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in document["slos"]}


# --- (a) the overview agrees with the API --------------------------------------------------


def test_overview_cards_show_the_numbers_the_api_serves(context, site, watch):
    page = sign_in(context, site, watch)
    api = by_name(site.api)
    assert list(api) == site.names
    cards = page.locator("article.card")
    assert cards.count() == len(site.names)
    seen = []
    for i in range(cards.count()):
        card = cards.nth(i)
        value = card.locator("[data-slo]")
        name = value.get_attribute("data-slo")
        seen.append(name)
        entry = api[name]
        raw = value.get_attribute("data-value")
        if entry["sli"]["value"] is None:
            assert raw == ""
        else:
            assert math.isclose(float(raw), entry["sli"]["value"], rel_tol=1e-9), name
        raw_left = card.locator("[data-remaining]").get_attribute("data-remaining")
        remaining = entry["budget"]["remaining"]
        if remaining is None:
            assert raw_left == ""
        else:
            assert math.isclose(float(raw_left), remaining, rel_tol=1e-9, abs_tol=1e-12), name
            assert card.locator("[data-remaining]").inner_text() == f"{remaining * 100:.1f}%"
        status = entry["budget"]["status"]
        badge = card.locator(".badge").inner_text()
        assert STATUS_TEXT[status] in badge, (name, status, badge)
        assert status in (card.get_attribute("class") or "").split()
    assert seen == site.names
    # the planted incidents show: uptime and fairness have spent their budgets
    assert api["uptime"]["budget"]["status"] == "exhausted"
    assert api["fairness"]["budget"]["status"] == "exhausted"
    gate = site.service.gate(at=END, record=False)
    assert gate["decision"] == "block"
    assert "BLOCK" in page.locator("p.decision").inner_text()
    assert site.service.alerts is not None
    firing = {a.slo.name for a in site.service.alerts.current if a.state.status == "firing"}
    assert firing >= {"uptime", "fairness"}
    alert_slos = set(
        page.locator("#alerts-h ~ .scroll table tbody tr td:first-child").all_inner_texts()
    )
    assert alert_slos == firing


# --- (b) a card leads to its SLO ------------------------------------------------------------


def test_clicking_a_card_opens_its_slo_page(context, site, watch):
    page = sign_in(context, site, watch)
    for name in site.names:
        page.locator("article.card h2 a", has_text=re.compile(rf"^{re.escape(name)}$")).click()
        page.wait_for_url(site.path(f"/slo/{name}"))
        heading = page.locator("h2#slo-h")
        assert heading.inner_text().split()[0] == name
        assert page.title().startswith(f"{name} ·")
        page.locator("a", has_text="all SLOs").click()
        page.wait_for_url(site.path("/"))


# --- (c) every chart draws its points and has a text alternative ---------------------------

CHART_FACTS = """() => [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const points = [...svg.querySelectorAll('.point')].map(p => p.getBoundingClientRect());
  const drawn = points.filter(r => r.width > 0 && r.height > 0);
  const outside = drawn.filter(r => r.left < box.left - 1 || r.right > box.right + 1
                                  || r.top < box.top - 1 || r.bottom > box.bottom + 1);
  const own = tag => { const el = svg.querySelector(':scope > ' + tag);
                       return el ? el.textContent.trim() : ''; };
  return {id: svg.id, points: points.length, drawn: drawn.length, outside: outside.length,
          title: own('title'), desc: own('desc'), width: box.width, height: box.height};
})"""


def test_every_chart_on_every_slo_page_is_drawn_and_described(context, site, watch):
    page = sign_in(context, site, watch)
    for name in site.names:
        page.goto(site.path(f"/slo/{name}"))
        found = page.evaluate(CHART_FACTS)
        assert len(found) >= 2, f"{name}: expected at least a burn-down and burn rates"
        for chart in found:
            where = f"{name} {chart['id']}"
            assert chart["width"] > 100 and chart["height"] > 50, where
            assert chart["drawn"] >= 1, f"{where}: no visible point ({chart})"
            assert chart["outside"] == 0, f"{where}: points drawn outside the chart"
            assert chart["title"], f"{where}: empty <title>"
            assert chart["desc"], f"{where}: empty <desc>"
            assert name in chart["title"], where


CLIPPED_LABELS = """() => [...document.querySelectorAll('svg.chart')].flatMap(svg => {
  const box = svg.getBoundingClientRect();
  return [...svg.querySelectorAll('text')].filter(t => {
    const r = t.getBoundingClientRect();
    return r.left < box.left - 1 || r.right > box.right + 1;
  }).map(t => svg.id + ': "' + t.textContent + '"');
})"""


def test_chart_labels_are_not_cut_off(context, site, watch):
    """Axis labels and reference-line labels must fit inside their chart (the SVG clips
    whatever lies outside its viewBox)."""
    page = sign_in(context, site, watch)
    clipped = {}
    for name in site.names:
        page.goto(site.path(f"/slo/{name}"))
        found = page.evaluate(CLIPPED_LABELS)
        if found:
            clipped[name] = found
    assert clipped == {}, f"labels drawn past the edge of their chart: {clipped}"


# --- (d) and (e): no errors, nothing leaves the machine -------------------------------------


def test_no_console_errors_and_no_request_leaves_loopback(context, site, watch):
    page = watch.attach(context.new_page())
    page.goto(site.path("/"))  # -> the sign-in form
    assert "/login" in page.url
    page.goto(site.path(f"/?token={site.reader}"))
    pages = ["/", *(f"/slo/{n}" for n in site.names)]
    at = urllib.parse.quote(EARLIER.isoformat())
    pages += [f"/?at={at}", f"/slo/uptime?at={at}", "/?refresh=5"]
    for path in pages:
        response = page.goto(site.path(path))
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("load")
    assert len(watch.requests) >= len(pages)
    assert watch.foreign() == [], "requests left 127.0.0.1"
    assert watch.failed == [], "pages asked for something the server does not have"
    assert watch.errors == [], "\n".join(watch.errors)


# --- (f) screenshots; nothing overflows a phone ---------------------------------------------

OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')]
    .filter(el => el.getBoundingClientRect().right > width + 1)
    .map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
               (el.className && typeof el.className === 'string' ? '.' + el.className : '') +
               ' right=' + Math.round(el.getBoundingClientRect().right));
  return {scroll: document.documentElement.scrollWidth, wide: wide.slice(0, 8)};
}"""


def test_screenshots_and_no_horizontal_overflow_on_a_phone(browser, site, watch):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, viewport in (("1280", DESKTOP), ("390", PHONE)):
        ctx = browser.new_context(viewport=viewport)
        try:
            page = sign_in(ctx, site, watch)
            page.screenshot(path=SCREENSHOTS / f"overview-{label}.png", full_page=True)
            page.goto(site.path("/slo/fairness"))
            page.screenshot(path=SCREENSHOTS / f"slo-fairness-{label}.png", full_page=True)
            ctx.clear_cookies()
            page.goto(site.path("/login"))
            page.screenshot(path=SCREENSHOTS / f"login-{label}.png", full_page=True)
        finally:
            ctx.close()
    for label in ("1280", "390"):
        for shot in (f"overview-{label}.png", f"slo-fairness-{label}.png"):
            assert (SCREENSHOTS / shot).stat().st_size > 10_000, shot
    ctx = browser.new_context(viewport=PHONE)
    overflowing = {}
    try:
        page = sign_in(ctx, site, watch)
        for path in ["/", *(f"/slo/{n}" for n in site.names)]:
            page.goto(site.path(path))
            facts = page.evaluate(OVERFLOW)
            if facts["scroll"] > PHONE["width"] + 1:
                overflowing[path] = facts
                page.screenshot(
                    path=SCREENSHOTS
                    / f"overflow-390-{path.strip('/').replace('/', '-') or 'overview'}.png",
                    full_page=True,
                )
        page.context.clear_cookies()
        page.goto(site.path("/login"))
        facts = page.evaluate(OVERFLOW)
        if facts["scroll"] > PHONE["width"] + 1:
            overflowing["/login"] = facts
    finally:
        ctx.close()
    assert overflowing == {}, f"pages wider than a 390 px phone: {overflowing}"


# --- (g) signing in -------------------------------------------------------------------------


def test_sign_in_with_the_form_and_with_a_link(browser, site, watch):
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        page = watch.attach(ctx.new_page())
        page.goto(site.path("/"))
        assert urllib.parse.urlsplit(page.url).path == "/login"
        assert page.locator("input#token[type=password]").count() == 1
        # a wrong token: 401 and an error the user can read
        page.fill("#token", "mlslo_not-a-real-token")
        with page.expect_response(
            lambda r: r.url.endswith("/login") and r.request.method == "POST"
        ) as posted:
            page.click("button[type=submit]")
        assert posted.value.status == 401
        alert = page.locator("[role=alert]")
        assert "unknown" in alert.inner_text()
        assert ctx.cookies() == []
        # the right token: the overview, and an HttpOnly cookie holds it
        page.fill("#token", site.reader)
        page.click("button[type=submit]")
        page.wait_for_url(site.path("/"))
        assert page.locator("article.card").count() == len(site.names)
        cookies = ctx.cookies()
        assert [c["name"] for c in cookies] == ["mlslo_token"]
        assert cookies[0]["httpOnly"] is True
        assert page.evaluate("document.cookie") == ""
        # signing in keeps the page that was asked for
        ctx.clear_cookies()
        page.goto(site.path("/slo/uptime"))
        assert urllib.parse.urlsplit(page.url).path == "/login"
        page.fill("#token", site.reader)
        page.click("button[type=submit]")
        page.wait_for_url(site.path("/slo/uptime"))
        assert page.locator("h2#slo-h").inner_text().startswith("uptime")
    finally:
        ctx.close()
    # ?token= in a fresh browser lands on the overview without the token in the address
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        page = sign_in(ctx, site, watch)
        assert page.locator("article.card").count() == len(site.names)
        assert site.reader not in page.url
        # a bad ?token= is sent to the form, not let in
        ctx.clear_cookies()
        page.goto(site.path("/?token=mlslo_wrong"))
        assert urllib.parse.urlsplit(page.url).path == "/login"
        assert page.locator("article.card").count() == 0
    finally:
        ctx.close()
    assert watch.foreign() == []


def test_sign_in_panel_keeps_its_layout(browser, site, watch):
    """The sign-in panel is meant to be a narrow centred box (max-width 34rem) with a
    full-width token field; that layout lives in inline style attributes, which the page's
    own Content-Security-Policy (style-src 'self') blocks."""
    ctx = browser.new_context(viewport=DESKTOP)
    try:
        page = watch.attach(ctx.new_page())
        page.goto(site.path("/login"))
        panel = page.locator("section.panel").bounding_box()
        field = page.locator("input#token").bounding_box()
    finally:
        ctx.close()
    assert panel is not None and field is not None
    assert panel["width"] <= 34 * 16 + 1, f"sign-in panel is {panel['width']:.0f} px wide"
    assert field["width"] >= panel["width"] * 0.8, f"token field is {field['width']:.0f} px"


# --- (h) time travel ------------------------------------------------------------------------


def test_time_travel_shows_that_moment_and_stops_refreshing(context, site, watch):
    page = sign_in(context, site, watch)
    live_refresh = page.locator('meta[http-equiv="refresh"]')
    assert live_refresh.count() == 1
    assert int(live_refresh.get_attribute("content") or "0") > 0
    assert f"as of {END:%Y-%m-%d %H:%M} UTC" in page.locator("header .when").inner_text()

    page.goto(site.path("/?at=" + urllib.parse.quote(EARLIER.isoformat())))
    when = page.locator("header .when").inner_text()
    assert f"as of {EARLIER:%Y-%m-%d %H:%M} UTC" in when
    assert "refreshes" not in when
    assert page.locator('meta[http-equiv="refresh"]').count() == 0
    # the numbers are those of that moment, and links keep it
    with httpx.Client(
        base_url=site.url, headers={"Authorization": f"Bearer {site.reader}"}, timeout=30
    ) as client:
        then = by_name(client.get("/api/v1/slos", params={"at": EARLIER.isoformat()}).json())
    shown = page.locator("[data-slo=uptime]").get_attribute("data-value")
    assert math.isclose(float(shown or "nan"), then["uptime"]["sli"]["value"], rel_tol=1e-9)
    assert then["uptime"]["budget"]["status"] != "exhausted"  # before the outage
    uptime_card = page.locator("article.card").filter(has=page.locator("[data-slo=uptime]"))
    assert STATUS_TEXT[then["uptime"]["budget"]["status"]] in uptime_card.inner_text()
    page.locator("article.card h2 a", has_text="uptime").click()
    page.wait_for_load_state("load")
    assert urllib.parse.urlsplit(page.url).path == "/slo/uptime"
    assert "at=" in page.url
    assert f"as of {EARLIER:%Y-%m-%d %H:%M} UTC" in page.locator("header .when").inner_text()
    assert page.locator('meta[http-equiv="refresh"]').count() == 0
    # the form: pick a moment, press show
    page.goto(site.path("/"))
    page.fill("input#at", "2026-11-15T08:30")
    page.click("header form button[type=submit]")
    page.wait_for_url(re.compile(r".*\?at=2026-11-15T08%3A30$"))
    assert "as of 2026-11-15 08:30 UTC" in page.locator("header .when").inner_text()
    assert page.locator('meta[http-equiv="refresh"]').count() == 0
    page.locator("a", has_text="back to now").click()
    page.wait_for_load_state("load")
    assert f"as of {END:%Y-%m-%d %H:%M} UTC" in page.locator("header .when").inner_text()
    assert page.locator('meta[http-equiv="refresh"]').count() == 1


def test_time_travel_does_not_show_alerts_from_later(context, site, watch):
    """At an earlier moment the overview shows that moment's budgets; the alerts panel must
    not list alerts that only fired later (it would contradict the cards below it)."""
    page = sign_in(context, site, watch)
    page.goto(site.path("/?at=" + urllib.parse.quote(EARLIER.isoformat())))
    uptime = page.locator("article.card").filter(has=page.locator("[data-slo=uptime]"))
    assert "exhausted" not in (uptime.get_attribute("class") or "")
    rows = page.locator("#alerts-h ~ .scroll table tbody tr")
    later = []
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td").all_inner_texts()
        since = datetime.fromisoformat(cells[4]).replace(tzinfo=UTC)
        if since > EARLIER:
            later.append(f"{cells[0]} {cells[1]} {cells[3]} since {cells[4]}")
    assert later == [], f"shown as of {EARLIER:%Y-%m-%d %H:%M}: {later}"


def test_time_travel_with_an_unencoded_utc_offset(context, site, watch):
    """``?at=...+00:00`` typed by hand: the ``+`` arrives as a space. The API accepts it
    (it puts the ``+`` back); the dashboard should show the same moment, not silently go live.
    """
    page = sign_in(context, site, watch)
    page.goto(site.path(f"/?at={EARLIER.isoformat()}"))  # '+' not percent-encoded
    assert f"as of {EARLIER:%Y-%m-%d %H:%M} UTC" in page.locator("header .when").inner_text()
    assert page.locator('meta[http-equiv="refresh"]').count() == 0


# --- (i) accessibility basics ---------------------------------------------------------------

A11Y = """() => {
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  const dupes = ids.filter((id, i) => ids.indexOf(id) !== i);
  const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
    const refs = (svg.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean);
    const targets = refs.map(id => document.getElementById(id));
    return {id: svg.id, role: svg.getAttribute('role'), refs: refs.length,
            resolved: targets.map(t => t ? t.tagName.toLowerCase() + ':' +
                                  (t.textContent.trim() ? 'text' : 'empty') : 'missing')};
  });
  const gauges = [...document.querySelectorAll('svg.gauge')].map(
      g => [g.getAttribute('role'), g.getAttribute('aria-label') || '']);
  const unlabelled = [...document.querySelectorAll('input:not([type=hidden]), select')]
    .filter(i => !(i.id && document.querySelector('label[for="' + i.id + '"]'))
                 && !i.getAttribute('aria-label')).map(i => i.name);
  return {lang: document.documentElement.lang, dupes, charts, gauges, unlabelled,
          h1: document.querySelectorAll('h1').length};
}"""


def test_accessibility_basics(context, site, watch):
    page = sign_in(context, site, watch)
    api = by_name(site.api)
    problems: list[str] = []
    for path in ["/", *(f"/slo/{n}" for n in site.names)]:
        page.goto(site.path(path))
        facts = page.evaluate(A11Y)
        if not facts["lang"]:
            problems.append(f"{path}: <html> has no lang")
        if facts["dupes"]:
            problems.append(f"{path}: duplicate ids {sorted(set(facts['dupes']))}")
        if facts["unlabelled"]:
            problems.append(f"{path}: inputs without a label {facts['unlabelled']}")
        if facts["h1"] != 1:
            problems.append(f"{path}: {facts['h1']} <h1> elements")
        for chart in facts["charts"]:
            if chart["role"] != "img":
                problems.append(f"{path} {chart['id']}: role={chart['role']}")
            if chart["resolved"] != ["title:text", "desc:text"]:
                problems.append(f"{path} {chart['id']}: aria-labelledby -> {chart['resolved']}")
        for role, label in facts["gauges"]:
            if role != "img" or "Error budget remaining" not in label:
                problems.append(f"{path}: gauge without a text alternative ({role}, {label!r})")
        if path.startswith("/slo/"):
            name = path.removeprefix("/slo/")
            assert facts["charts"], path
            status = api[name]["budget"]["status"]
            # the status is in words (badge and the facts list), not only a colour
            assert STATUS_TEXT[status] in page.locator("h2#slo-h .badge").inner_text(), path
            dd = page.locator("dl.facts dt", has_text=re.compile("^status$")).locator(
                "xpath=following-sibling::dd[1]"
            )
            assert dd.inner_text() == STATUS_TEXT[status], path
            gauge = page.locator("svg.gauge").first.get_attribute("aria-label") or ""
            assert status.replace("_", " ") in gauge, (path, gauge)
    page.goto(site.path("/"))
    for name, entry in api.items():
        card = page.locator("article.card").filter(has=page.locator(f'[data-slo="{name}"]'))
        assert STATUS_TEXT[entry["budget"]["status"]] in card.locator(".badge").inner_text()
        met = card.inner_text()
        assert ("objective met" in met) or ("objective NOT met" in met) or ("not judged" in met)
    gate = page.locator("p.decision").inner_text()
    assert re.search(r"\b(ALLOW|WARN|BLOCK)\b", gate), gate
    page.context.clear_cookies()
    page.goto(site.path("/login"))
    facts = page.evaluate(A11Y)
    if not facts["lang"]:
        problems.append("/login: <html> has no lang")
    if facts["unlabelled"]:
        problems.append(f"/login: inputs without a label {facts['unlabelled']}")
    assert problems == [], "\n".join(problems)


# --- (j) clock skew and absent data are visible ---------------------------------------------

SKEW_SPEC = """
service: skewed
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.99}, window: 1d}
  - {name: fresh, dimension: freshness, sli: {lag_threshold: 15m}, objective: {target: 0.5},
     window: 1d, absent_after: 6h}
"""


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Two hours of predictions that stopped two hours ago; every tenth input is stamped
    30 s after the prediction that used it."""
    spec = parse_spec(SKEW_SPEC)
    clock = Clock(END)
    store = Store.open(tmp_path_factory.mktemp("skew") / "skew.duckdb", spec, clock=clock)
    service = Service(store, None, clock=clock)
    start = END - timedelta(hours=4)
    ts = [start + timedelta(minutes=m) for m in range(120)]
    lags = [timedelta(seconds=-30) if m % 10 == 0 else timedelta(minutes=2) for m in range(120)]
    stamp = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "id": [f"p{m}" for m in range(120)],
            "ts": pa.array(ts, stamp),
            "status": ["ok"] * 120,
            "event_ts": pa.array([t - lag for t, lag in zip(ts, lags, strict=True)], stamp),
        }
    )
    try:
        assert store.writer.records("predictions", table).accepted == 120
        reader = store.tokens.create("read", "browser test")[1]
        with ThreadedServer(create_app(service)) as server:
            url = f"http://127.0.0.1:{server.port}"
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {reader}"}, timeout=30
            ) as client:
                api = client.get("/api/v1/slos").json()
            yield Site(url, reader, service, [s.name for s in spec.slos], api)
    finally:
        service.stop()
        store.close()


def fact(page: Page, label: str) -> str:
    dd = page.locator("dl.facts dt", has_text=re.compile(f"^{label}$")).locator(
        "xpath=following-sibling::dd[1]"
    )
    assert dd.is_visible(), label
    return dd.inner_text()


def test_clock_skew_and_absent_data_are_visible(context, skewed, watch):
    api = by_name(skewed.api)
    assert api["fresh"]["sli"]["clock_skew"] == 12
    assert api["uptime"]["budget"]["status"] == "no_data"
    page = sign_in(context, skewed, watch)
    fresh = page.locator("article.card").filter(has=page.locator('[data-slo="fresh"]'))
    note = fresh.locator(".note", has_text="clock skew")
    assert note.is_visible()
    assert note.inner_text() == (
        "clock skew: 12 records have an event_ts later than ts beyond the skew_tolerance, "
        "counted as not fresh"
    )
    uptime = page.locator("article.card").filter(has=page.locator('[data-slo="uptime"]'))
    assert "no data" in uptime.locator(".badge").inner_text()
    # its budget (all of it left) is drawn grey, not judged: neither green nor red
    assert uptime.locator("svg.gauge rect.point").get_attribute("fill") == "#767676"
    assert uptime.locator(".note", has_text="no events since").inner_text() == (
        "no events since 2026-11-20T10:00:00Z (absent_after 1h)"
    )
    page.goto(skewed.path("/slo/fresh"))
    assert fact(page, "clock skew") == (
        "12 records with an event_ts later than ts beyond the skew_tolerance"
    )
    assert fact(page, "last event") == "2026-11-20 10:00 UTC"
    page.goto(skewed.path("/slo/uptime"))
    assert fact(page, "not judged") == "no events since 2026-11-20T10:00:00Z (absent_after 1h)"
    assert page.locator("dl.facts dt", has_text=re.compile("^clock skew$")).count() == 0
    assert watch.errors == [] and watch.failed == [] and watch.foreign() == []


def test_an_estimated_sli_shows_the_calibration_of_its_scores(context, site, watch):
    """The CBPE SLO's page draws one reliability diagram per model version the API's
    calibrations describe: one raw and one calibrated point per score bin, and the ECE
    before and after."""
    estimated = by_name(site.api)["accuracy"]["sli"]["estimated"]
    versions = estimated["calibrations"]
    assert [v["model_version"] for v in versions] == ["v1", "v2"]
    page = sign_in(context, site, watch)
    page.goto(site.path("/slo/accuracy"))
    drawn = 0
    for index, calibration in enumerate(versions):
        chart = page.locator(f"svg#c-calibration-{index}")
        if calibration["status"] != "fitted":
            assert chart.count() == 0
            continue
        rows = calibration["reliability"]
        chart.wait_for()
        drawn += 1
        assert chart.locator(".point.raw").count() == len(rows) > 1
        assert chart.locator(".point.calibrated").count() == len(rows)
        desc = chart.locator("desc").text_content() or ""
        assert f"model_version {calibration['model_version']}" in desc
        assert f"ECE {calibration['ece_before']:.4f} before" in desc
        assert f"{calibration['ece_after']:.4f} after" in desc
        box = chart.bounding_box()
        assert box is not None
        first = chart.locator(".point.raw").first.bounding_box()
        assert first is not None and box["x"] <= first["x"] <= box["x"] + box["width"]
        tip = chart.locator(".point.raw title").first.text_content() or ""
        assert f"observed {rows[0]['observed']:.3f}" in tip
    assert drawn >= 1
    assert not watch.errors and not watch.foreign()
