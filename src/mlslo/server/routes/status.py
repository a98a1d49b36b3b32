"""``GET /api/v1/slos``, ``/metrics``, ``/healthz`` and ``/readyz``."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mlslo.render.attribution import attribution_json
from mlslo.render.documents import evaluation_json
from mlslo.server.auth import require
from mlslo.server.errors import ERRORS, ErrorBody, moment_param, step_param
from mlslo.server.metrics import Metrics
from mlslo.server.service import Service
from mlslo.server.store import Token


def router(service: Service, metrics: Metrics) -> APIRouter:
    routes = APIRouter()
    reader = Depends(require(service, "read"))

    @routes.get("/api/v1/slos", responses=ERRORS, tags=["status"])
    async def get_slos(
        _: Annotated[Token | None, reader],
        at: Annotated[
            str | None, Query(description="evaluate as of this ISO-8601 time (default: now)")
        ] = None,
        series: Annotated[str | None, Query(description="add the SLI per step, e.g. 1d")] = None,
    ) -> dict[str, Any]:
        """Every SLO: SLI, budget, burn rates: the JSON of mlslo evaluate --format json."""
        moment = moment_param(at, service.clock)
        step = step_param(series)
        evaluation = await run_in_threadpool(service.evaluate, moment, series_step=step)
        return evaluation_json(evaluation)

    @routes.get(
        "/api/v1/slos/{name}/attribution",
        responses={**ERRORS, 404: {"model": ErrorBody, "description": "no SLO of that name"}},
        tags=["status"],
    )
    async def get_attribution(
        _: Annotated[Token | None, reader],
        name: str,
        by: Annotated[
            str,
            Query(
                description="columns to slice by, comma-separated: those the spec lists under "
                "attribution, and hour"
            ),
        ],
        at: Annotated[
            str | None, Query(description="as of this ISO-8601 time (default: now)")
        ] = None,
        step: Annotated[
            str | None, Query(description="the step of the burning periods, e.g. 1h")
        ] = None,
    ) -> dict[str, Any]:
        """Where an SLO's budget went: its slices worst first and its burning periods; the
        JSON of mlslo explain --format json."""
        moment = moment_param(at, service.clock)
        span = step_param(step, "step")
        columns = [c.strip() for c in by.split(",") if c.strip()]
        result = await run_in_threadpool(service.explain, name, columns, moment, step=span)
        return attribution_json(result)

    @routes.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @routes.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        """Readiness: the store is open and the rollups are current; in pull mode, also the
        pull's state (a failing source does not make the server unready)."""
        ready = service.store.ready and not service.rebuild.running
        body: dict[str, Any] = {
            "status": "ready" if ready else "rebuilding",
            "service": service.spec.service,
        }
        if service.rebuild.running:
            body["rebuild"] = {"done": service.rebuild.done, "total": service.rebuild.total}
        if service.puller is not None:
            body["pull"] = service.puller.status.json()
        return JSONResponse(body, status_code=200 if ready else 503)

    @routes.get("/metrics", tags=["status"], response_class=Response, responses=ERRORS)
    async def get_metrics(_: Annotated[Token | None, reader]) -> Response:
        """SLIs, targets, budgets, burn rates and the server's own counters, in the
        Prometheus text format."""
        body, content_type = await run_in_threadpool(metrics.render)
        return Response(body, media_type=content_type)

    return routes
