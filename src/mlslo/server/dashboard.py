"""The dashboard: HTML pages rendered on the server from the same JSON the API serves.

No JavaScript framework and no CDN: charts are inline SVG (see :mod:`mlslo.render.charts`), the
stylesheet is a package file, and pages refresh themselves with a meta tag. A browser signs
in once with a read token (kept in an HttpOnly cookie); ``?token=`` does the same for links
printed by ``mlslo demo``.
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from mlslo.decide.alerts import checks
from mlslo.errors import MlsloError
from mlslo.measure.windows import series_step
from mlslo.render import charts
from mlslo.render.attribution import attribution_bars, attribution_json
from mlslo.render.documents import alerts_json, evaluation_json
from mlslo.render.format import (
    Shape,
    headline_rates,
    hours_text,
    objective_text,
    share_text,
    status_icon,
    status_text,
    value_text,
)
from mlslo.render.views import (
    burn_cells,
    burndown_svg,
    by_name,
    facts,
    skew_note,
    slo_charts,
)
from mlslo.server.errors import ApiError, moment_param
from mlslo.server.service import Service
from mlslo.spec import Window

COOKIE = "mlslo_token"
templates = Environment(
    loader=PackageLoader("mlslo", "templates"), autoescape=select_autoescape(["html"])
)
GATE_ICON = {"allow": "✓", "warn": "⚠", "block": "✗"}


def _stylesheet() -> str:
    return resources.files("mlslo").joinpath("static/mlslo.css").read_text("utf-8")


def add_dashboard(app: FastAPI, service: Service) -> None:
    """Register the dashboard's pages on ``app``."""
    stylesheet = _stylesheet()

    def signed_in(request: Request) -> bool:
        if not service.auth:
            return True
        secret = request.cookies.get(COOKIE) or ""
        token = service.store.tokens.verify(secret) if secret else None
        return token is not None and token.allows("read")

    def moment(request: Request) -> tuple[datetime, bool]:
        """``?at=`` (time travel), or now. A malformed time is an error, never silently
        the live page."""
        text = request.query_params.get("at")
        if not text:
            return service.clock(), True
        try:
            return moment_param(text, service.clock), False
        except ApiError as error:
            raise BadMoment(str(error)) from None

    def base(request: Request, at: datetime, live: bool) -> dict[str, Any]:
        query = "" if live else "?" + urllib.parse.urlencode({"at": at.isoformat()})
        refresh = request.query_params.get("refresh", "60")
        return {
            "service": service.spec.service,
            "evaluated_at": at.strftime("%Y-%m-%d %H:%M"),
            "at_input": at.strftime("%Y-%m-%dT%H:%M"),
            "live": live,
            "refresh": int(refresh) if live and refresh.isdigit() and int(refresh) else None,
            "query": query,
        }

    def page(name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        html = templates.get_template(name).render(**context)
        return HTMLResponse(
            html,
            status_code=status,
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'self'; "
                "style-src 'self'; img-src 'self' data:",
            },
        )

    def login_redirect(request: Request) -> Response:
        token = request.query_params.get("token")
        if token:
            found = service.store.tokens.verify(token)
            clean = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + ("?" + urllib.parse.urlencode(clean) if clean else "")
            if found is not None and found.allows("read"):
                response = RedirectResponse(target, status_code=303)
                _set_cookie(response, token)
                return response
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(
            "/login?" + urllib.parse.urlencode({"next": target}), status_code=303
        )

    @app.get("/static/mlslo.css", include_in_schema=False)
    async def css() -> Response:
        return Response(stylesheet, media_type="text/css", headers={"Cache-Control": "max-age=300"})

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> HTMLResponse:
        return page(
            "login.html",
            {
                "service": service.spec.service,
                "next": _safe_next(request.query_params.get("next")),
                "error": None,
            },
        )

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        target = _safe_next((form.get("next") or ["/"])[0])
        found = service.store.tokens.verify(token) if token else None
        if found is None or not found.allows("read"):
            return page(
                "login.html",
                {
                    "service": service.spec.service,
                    "next": target,
                    "error": "That token is unknown, revoked or lacks the read scope.",
                },
                status=401,
            )
        response = RedirectResponse(target, status_code=303)
        _set_cookie(response, token)
        return response

    @app.get("/logout", include_in_schema=False)
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    def bad_moment(request: Request, error: BadMoment) -> HTMLResponse:
        context = {**base(request, service.clock(), True), "refresh": None, "message": str(error)}
        return page("error.html", context, status=400)

    def opening(request: Request) -> Response | tuple[datetime, bool]:
        """What every page checks first: a signed-in reader (else the login page) and a
        readable ``?at=`` (else an error page); then the moment and whether it is live."""
        if not signed_in(request) or request.query_params.get("token"):
            return login_redirect(request)
        try:
            return moment(request)
        except BadMoment as error:
            return bad_moment(request, error)

    @app.get("/", include_in_schema=False)
    async def overview(request: Request) -> Response:
        opened = opening(request)
        if isinstance(opened, Response):
            return opened
        at, live = opened
        context = await run_in_threadpool(_overview, service, at, live)
        return page("overview.html", {**base(request, at, live), **context})

    @app.get("/slo/{name}", include_in_schema=False)
    async def slo_page(request: Request, name: str) -> Response:
        opened = opening(request)
        if isinstance(opened, Response):
            return opened
        at, live = opened
        if name in {c.name for c in service.spec.composites}:
            query = "" if live else "?" + urllib.parse.urlencode({"at": at.isoformat()})
            return RedirectResponse(f"/{query}#composite-{name}", status_code=303)
        if name not in {s.name for s in service.spec.slos}:
            return page(
                "login.html",
                {
                    "service": service.spec.service,
                    "next": "/",
                    "error": f"There is no SLO named {name}.",
                },
                404,
            )
        context = await run_in_threadpool(_slo, service, at, name)
        return page("slo.html", {**base(request, at, live), **context})


def _set_cookie(response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="strict", path="/", max_age=7 * 86400
    )


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect to another host."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


class BadMoment(Exception):
    """``?at=`` could not be read."""


def _overview(service: Service, at: datetime, live: bool) -> dict[str, Any]:
    step = min(series_step(s.window) for s in service.spec.slos)
    evaluation = service.evaluate(at, series_step=step)
    document = evaluation_json(evaluation)
    cards = []
    for entry in document["slos"]:
        status = entry["budget"]["status"]
        remaining = entry["budget"]["remaining"]
        ci = entry["sli"]["ci"]
        hours = entry["time_to_exhaustion_hours"]
        met = entry["met"]
        shape = Shape.of_entry(entry)
        slo = evaluation.get(entry["name"]).slo
        cards.append(
            {
                "name": entry["name"],
                "dimension": entry["dimension"],
                "status": status,
                "icon": status_icon(status),
                "status_text": status_text(status),
                "target": f"{entry['metric']} {objective_text(entry)}",
                "window": entry["window"],
                "value": value_text(shape, entry["sli"]["value"]),
                "raw_value": "" if entry["sli"]["value"] is None else entry["sli"]["value"],
                "interval": None
                if not ci
                else f"{value_text(shape, ci[0])} – {value_text(shape, ci[1])}",
                "n": f"{entry['sli']['n']:,}",
                "met": "objective met"
                if met
                else ("objective NOT met" if met is False else "not judged"),
                "remaining": share_text(remaining),
                "raw_remaining": "" if remaining is None else remaining,
                "gauge": charts.gauge(f"gauge-{entry['name']}", remaining, status),
                "tte": None if hours is None or hours <= 0 else hours_text(hours),
                "rates": headline_rates(entry, slo.window, evaluation.bucket),
                "burndown": burndown_svg(entry, f"burndown-{entry['name']}"),
                "notes": [
                    note
                    for note in (
                        entry["sli"].get("reason"),
                        entry["budget"].get("reason"),
                        skew_note(entry),
                    )
                    if note
                ],
            }
        )
    gate = None
    if service.spec.all_policies():
        try:
            moment = None if live else at
            gate = service.gate(at=moment, record=False, evaluation=evaluation)
        except MlsloError:
            gate = None
    alerts = None
    if service.alerts is not None and live:
        alerts = [
            a.as_dict() for a in service.alerts.current if a.state.status in ("pending", "firing")
        ]
    elif service.alerts is not None:
        alerts = [
            _would_fire(row, document["evaluated_at"])
            for row in alerts_json(evaluation, checks(service.spec, evaluation))["alerts"]
            if row["status"] == "firing"
        ]
    return {
        "composites": [
            _composite_card(entry, result.composite.window, evaluation.bucket)
            for entry, result in zip(
                document.get("composites", []), evaluation.composites, strict=True
            )
        ],
        "cards": cards,
        "gate": gate,
        "gate_icon": GATE_ICON.get(gate["decision"], "") if gate else "",
        "alerts": alerts,
    }


def _composite_card(entry: dict[str, Any], window: Window, bucket: timedelta) -> dict[str, Any]:
    """A composite's card: its reliability and budget, and each component's part."""
    status = entry["budget"]["status"]
    remaining = entry["budget"]["remaining"]
    value = entry["sli"]["value"]
    hours = entry["time_to_exhaustion_hours"]
    met = entry["met"]
    return {
        "name": entry["name"],
        "status": status,
        "icon": status_icon(status),
        "status_text": status_text(status),
        "target": f"reliability >= {entry['objective']['target'] * 100:g}%",
        "window": entry["window"],
        "value": "—" if value is None else f"{value * 100:.2f}%",
        "raw_value": "" if value is None else value,
        "met": "objective met" if met else ("objective NOT met" if met is False else "not judged"),
        "remaining": share_text(remaining),
        "raw_remaining": "" if remaining is None else remaining,
        "gauge": charts.gauge(f"gauge-{entry['name']}", remaining, status),
        "tte": None if hours is None or hours <= 0 else hours_text(hours),
        "rates": headline_rates(entry, window, bucket),
        "components": [
            {
                "slo": part["slo"],
                "weight": share_text(part["weight"]),
                "consumed": share_text(part["consumed"]) if part["counted"] else "left out",
                "status": status_text(part["status"]),
                "undefined": part["undefined"],
            }
            for part in entry["components"]
        ],
    }


def _would_fire(row: dict[str, Any], at: str) -> dict[str, Any]:
    """A stateless check shown in the alerts panel of a past moment."""
    if row["long_window"]:
        summary = (
            f"burning {row['long_burn_rate']:.1f}× over {row['long_window']} and "
            f"{row['short_burn_rate']:.1f}× over {row['short_window']}"
        )
    elif row["rule"] == "absent":
        last = row["last_event"]
        summary = "no events in the window" if last is None else f"no events since {last}"
    else:
        summary = "budget exhausted"
    return {**row, "summary": summary, "fired_at": None, "since": at}


def _slo(service: Service, at: datetime, name: str) -> dict[str, Any]:
    slo = service.spec.slo(name)
    step = series_step(slo.window)
    evaluation = service.evaluate(at, series_step=step, slos=[name])
    entry = by_name(evaluation_json(evaluation))[name]
    status = entry["budget"]["status"]
    icon, words = status_icon(status), status_text(status)
    slo_alerts = []
    if service.alerts is not None:
        for alert in service.alerts.current:
            if alert.slo.name != name:
                continue
            data = alert.as_dict()
            slo_alerts.append(
                {
                    "rule": data["rule"],
                    "severity": data["severity"],
                    "status": data["status"],
                    **burn_cells(data),
                    "suppressed": data["suppressed"],
                }
            )
    return {
        "entry": entry,
        "icon": icon,
        "status_text": words,
        "facts": facts(entry),
        "charts": slo_charts(entry, slo, service.spec.bucket),
        "slo_alerts": slo_alerts,
        "gauge": charts.gauge(f"gauge-{name}", entry["budget"]["remaining"], status),
        "attribution": _attribution(service, at, name),
    }


MOST_PERIODS = 5
"""Burning periods the SLO page lists (the API has them all)."""


def _attribution(service: Service, at: datetime, name: str) -> dict[str, Any]:
    """One bar chart per column the spec attributes budgets to, worst slice on top, and the
    periods that burned most."""
    columns = service.spec.attribution
    out: dict[str, Any] = {"columns": list(columns), "charts": [], "periods": [], "step": None}
    if not columns:
        return out
    document: dict[str, Any] = {}
    for column in columns:
        try:
            document = attribution_json(service.explain(name, [column], at))
        except MlsloError as error:
            out["error"] = str(error)
            return out
        out["charts"].append(
            {
                "column": column,
                "svg": attribution_bars(f"attribution-{column}", document),
                "note": document["slices_reason"],
            }
        )
    periods = sorted(
        document["periods"], key=lambda p: (-(p["share"] or 0.0), -(p["burn_rate"] or 0.0))
    )
    out["periods"] = [
        {**p, "burn": f"{p['burn_rate']:.1f}×" if p["burn_rate"] is not None else "–"}
        for p in periods[:MOST_PERIODS]
    ]
    out["more_periods"] = max(len(document["periods"]) - MOST_PERIODS, 0)
    out["step"] = document["step"]
    return out
