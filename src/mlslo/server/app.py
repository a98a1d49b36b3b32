"""The HTTP API (FastAPI): the routers of :mod:`mlslo.server.routes`, the dashboard, and one
error envelope for every failure.

Every error is ``{"errors": [{"row", "field", "message"}]}`` (a refused batch adds ``"total"``,
how many problems it has), with the status that fits:
400 unreadable body, 401 no or bad token, 403 wrong scope, 404 unknown thing, 413 too large,
415 unknown content type, 422 records or parameters that fail validation, 503 not ready.
"""

import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope

from mlslo.errors import MlsloError
from mlslo.inputs.bodies import BatchError, FieldError
from mlslo.server.dashboard import add_dashboard
from mlslo.server.errors import ApiError, envelope, library_error
from mlslo.server.metrics import Metrics
from mlslo.server.routes import admin, alerts, gate, ingest, status
from mlslo.server.service import Service
from mlslo.version import __version__

log = logging.getLogger("mlslo.server")


class RequestTiming:
    """Request durations by route template, as a plain ASGI middleware (the decorator form
    costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_request(
                scope["method"], path, status, time.perf_counter() - started
            )


def create_app(service: Service) -> FastAPI:
    """The ASGI app for ``service``."""
    app = FastAPI(
        title="mlslo",
        version=__version__,
        description="SRE error budgets for ML systems: ingest predictions, labels and outcome "
        "counts; read SLO status, gate decisions and alerts.",
    )
    metrics = Metrics(service)
    app.state.service = service
    app.state.metrics = metrics

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return envelope(exc.status, exc.errors, exc.headers)

    @app.exception_handler(BatchError)
    async def _batch_error(request: Request, exc: BatchError) -> JSONResponse:
        return envelope(exc.status, exc.errors, total=exc.total)

    @app.exception_handler(MlsloError)
    async def _user_error(request: Request, exc: MlsloError) -> JSONResponse:
        return library_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            FieldError(None, ".".join(str(p) for p in e["loc"][1:]) or None, e["msg"])
            for e in exc.errors()
        ]
        return envelope(422, errors)

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception) -> JSONResponse:
        """A real fault of the server (a bug, a damaged file): still the JSON envelope."""
        log.exception("%s %s failed", request.method, request.url.path)
        message = f"internal error ({type(exc).__name__}); the server log has the details"
        return envelope(500, [FieldError(None, None, message)])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return envelope(exc.status_code, [FieldError(None, None, str(exc.detail))])

    app.add_middleware(RequestTiming, metrics=metrics)
    app.include_router(ingest.router(service))
    app.include_router(status.router(service, metrics))
    app.include_router(admin.router(service))
    app.include_router(gate.router(service))
    app.include_router(alerts.router(service))
    add_dashboard(app, service)
    return app
