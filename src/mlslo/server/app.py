"""The HTTP API (FastAPI). Thin: every route parses, checks scope and calls the service.

Every error is one JSON envelope, ``{"errors": [{"row", "field", "message"}]}``, with the
status that fits: 400 unreadable body, 401 no or bad token, 403 wrong scope, 413 too large,
415 unknown content type, 422 records that fail validation, 503 not ready.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope

from mlslo import __version__
from mlslo.errors import MlsloError, NotFoundError
from mlslo.inputs.bodies import CONTENT_TYPES, BatchError, FieldError, body_format, parse_body
from mlslo.inputs.normalize import NORMALIZERS
from mlslo.moments import parse_duration
from mlslo.render.documents import evaluation_json, override_json
from mlslo.render.format import iso
from mlslo.server.dashboard import add_dashboard
from mlslo.server.errors import ApiError, parse_moment, parse_step
from mlslo.server.metrics import Metrics
from mlslo.server.service import Service
from mlslo.server.store import Kind, Scope, Token

INLINE_BODY = 16_384
"""Bodies up to this size are parsed on the event loop: a thread hop costs more than the
work, and many small parses racing in the thread pool slow each other down."""


class ErrorItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    row: int | None = Field(description="1-based record number, when one record is at fault")
    field: str | None = Field(description="the field (or header / parameter) at fault")
    message: str


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    errors: list[ErrorItem]


class IngestResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accepted: int = Field(description="records written")
    duplicates: int = Field(description="records already present (same id), not counted twice")


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)
    expires: str = Field(description="how long it lasts, e.g. 24h (at most 30d)")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Scope
    name: str | None = Field(default=None, max_length=200)


def token_json(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "scope": token.scope,
        "created_at": iso(token.created_at),
        "revoked_at": None if token.revoked_at is None else iso(token.revoked_at),
    }


def _envelope(
    status: int, errors: list[FieldError], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"errors": [e.as_dict() for e in errors]}, status_code=status, headers=headers
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "unreadable request"),
        (401, "missing, unknown or revoked token"),
        (403, "the token lacks the needed scope"),
        (422, "invalid parameters or records"),
    )
}
INGEST_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    413: {"model": ErrorBody, "description": "body larger than the server's limit"},
    415: {"model": ErrorBody, "description": "unsupported Content-Type"},
}


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
        return _envelope(exc.status, exc.errors, exc.headers)

    @app.exception_handler(BatchError)
    async def _batch_error(request: Request, exc: BatchError) -> JSONResponse:
        return _envelope(exc.status, exc.errors)

    @app.exception_handler(MlsloError)
    async def _user_error(request: Request, exc: MlsloError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFoundError) else 422
        return _envelope(status, [FieldError(None, None, str(exc))])

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            FieldError(None, ".".join(str(p) for p in e["loc"][1:]) or None, e["msg"])
            for e in exc.errors()
        ]
        return _envelope(422, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _envelope(exc.status_code, [FieldError(None, None, str(exc.detail))])

    app.add_middleware(RequestTiming, metrics=metrics)

    def require(scope: Scope) -> Callable[[Request], Awaitable[Token | None]]:
        async def check(request: Request) -> Token | None:
            if not service.auth:
                return None
            header = request.headers.get("authorization", "")
            kind, _, secret = header.partition(" ")
            challenge = {"WWW-Authenticate": 'Bearer realm="mlslo"'}
            if kind.lower() != "bearer" or not secret.strip():
                raise ApiError(
                    401,
                    "send Authorization: Bearer <token> (create one with mlslo token create)",
                    "Authorization",
                    headers=challenge,
                )
            token = service.store.verify(secret.strip())
            if token is None or token.revoked_at is not None:
                raise ApiError(401, "unknown or revoked token", "Authorization", headers=challenge)
            if not token.allows(scope):
                raise ApiError(
                    403,
                    f"this token has scope '{token.scope}'; this request needs '{scope}'",
                    "Authorization",
                )
            return token

        return check

    ingest_body = {
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}} for media in CONTENT_TYPES
            },
        }
    }

    async def _ingest(kind: Kind, request: Request) -> IngestResponse:
        fmt = body_format(request.headers.get("content-type"))
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > service.max_body:
            raise ApiError(
                413,
                f"the body is {int(declared):,} bytes; the limit is "
                f"{service.max_body:,} (split the batch)",
                "body",
            )
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > service.max_body:
                raise ApiError(
                    413,
                    f"the body is over the limit of {service.max_body:,} bytes (split the batch)",
                    "body",
                )
            chunks.append(chunk)
        body = b"".join(chunks)
        now = service.clock()
        normalize = NORMALIZERS[kind]

        def prepare() -> Any:
            return normalize(
                parse_body(body, fmt), service.spec, now=now, max_skew=service.max_skew
            )

        batch = prepare() if len(body) <= INLINE_BODY else await run_in_threadpool(prepare)
        key = request.headers.get("idempotency-key")
        result = await asyncio.wrap_future(service.store.submit(kind, batch, key))
        return IngestResponse(accepted=result.accepted, duplicates=result.duplicates)

    @app.post(
        "/api/v1/predictions",
        response_model=IngestResponse,
        responses=INGEST_ERRORS,
        openapi_extra=ingest_body,
        tags=["ingest"],
    )
    async def post_predictions(
        request: Request, _: Annotated[Token | None, Depends(require("ingest"))]
    ) -> IngestResponse:
        """Prediction records (id, ts, model, model_version, status, latency_ms, event_ts,
        prediction, score, label, attributes). All-or-nothing; repeated ids count once."""
        return await _ingest("predictions", request)

    @app.post(
        "/api/v1/labels",
        response_model=IngestResponse,
        responses=INGEST_ERRORS,
        openapi_extra=ingest_body,
        tags=["ingest"],
    )
    async def post_labels(
        request: Request, _: Annotated[Token | None, Depends(require("ingest"))]
    ) -> IngestResponse:
        """Label records (id of the prediction, ts, label); applied to the prediction's
        bucket, or held until the prediction arrives."""
        return await _ingest("labels", request)

    @app.post(
        "/api/v1/outcomes",
        response_model=IngestResponse,
        responses=INGEST_ERRORS,
        openapi_extra=ingest_body,
        tags=["ingest"],
    )
    async def post_outcomes(
        request: Request, _: Annotated[Token | None, Depends(require("ingest"))]
    ) -> IngestResponse:
        """Outcome counts (ts, total, ok) for traffic that is not logged one by one."""
        return await _ingest("outcomes", request)

    @app.get("/api/v1/slos", responses=ERRORS, tags=["status"])
    async def get_slos(
        _: Annotated[Token | None, Depends(require("read"))],
        at: Annotated[
            str | None, Query(description="evaluate as of this ISO-8601 time (default: now)")
        ] = None,
        series: Annotated[str | None, Query(description="add the SLI per step, e.g. 1d")] = None,
    ) -> dict[str, Any]:
        """Every SLO: SLI, budget, burn rates: the JSON of mlslo evaluate --format json."""
        moment = parse_moment(at, service.clock)
        step = parse_step(series)
        evaluation = await run_in_threadpool(service.store.evaluate, moment, series_step=step)
        return evaluation_json(evaluation)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        """Readiness: the store is open and the rollups are current."""
        ready = service.store.ready and not service.rebuild.running
        body: dict[str, Any] = {
            "status": "ready" if ready else "rebuilding",
            "service": service.spec.service,
        }
        if service.rebuild.running:
            body["rebuild"] = {"done": service.rebuild.done, "total": service.rebuild.total}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["status"], response_class=Response, responses=ERRORS)
    async def get_metrics(_: Annotated[Token | None, Depends(require("read"))]) -> Response:
        """SLIs, targets, budgets, burn rates and the server's own counters, in the
        Prometheus text format."""
        body, content_type = await run_in_threadpool(metrics.render)
        return Response(body, media_type=content_type)

    @app.post("/api/v1/reload", tags=["admin"], responses=ERRORS)
    async def post_reload(_: Annotated[Token | None, Depends(require("admin"))]) -> dict[str, Any]:
        """Re-read the spec file (also on SIGHUP); rebuilds rollups if their inputs changed."""
        return await run_in_threadpool(service.reload)

    @app.post("/api/v1/tokens", tags=["admin"], responses=ERRORS, status_code=201)
    async def post_token(
        body: TokenRequest, _: Annotated[Token | None, Depends(require("admin"))]
    ) -> dict[str, Any]:
        """Create a token; the secret is in this response only."""
        token, secret = service.store.create_token(body.scope, body.name)
        return {**token_json(token), "token": secret}

    @app.get("/api/v1/tokens", tags=["admin"], responses=ERRORS)
    async def get_tokens(
        _: Annotated[Token | None, Depends(require("admin"))],
    ) -> list[dict[str, Any]]:
        """Every token (never the secrets)."""
        return [token_json(t) for t in service.store.tokens()]

    @app.delete("/api/v1/tokens/{token_id}", tags=["admin"], responses=ERRORS)
    async def delete_token(
        token_id: int, _: Annotated[Token | None, Depends(require("admin"))]
    ) -> dict[str, Any]:
        """Revoke a token (it stops working at once)."""
        return token_json(service.store.revoke_token(token_id))

    def caller(token: Token | None) -> str:
        if token is None:
            return "anonymous (--no-auth)"
        return f"token {token.id}" + (f" ({token.name})" if token.name else "")

    @app.get("/api/v1/gate", responses=ERRORS, tags=["gate"])
    async def get_gate(
        token: Annotated[Token | None, Depends(require("read"))],
        policy: Annotated[
            str | None, Query(description="policy name (default: the spec's)")
        ] = None,
        candidate: Annotated[
            str | None,
            Query(description="also check a candidate's own predictions, e.g. model_version=v2"),
        ] = None,
        at: Annotated[str | None, Query(description="decide as of this ISO-8601 time")] = None,
    ) -> dict[str, Any]:
        """allow / warn / block with every reason: the JSON of mlslo gate --format json.
        Every decision is recorded in the audit log."""
        moment = parse_moment(at, service.clock)
        return await run_in_threadpool(
            service.gate, policy=policy, candidate=candidate, caller=caller(token), at=moment
        )

    @app.get("/api/v1/gate/history", responses=ERRORS, tags=["gate"])
    async def get_gate_history(
        _: Annotated[Token | None, Depends(require("read"))],
        limit: Annotated[int, Query(ge=1, le=1000, description="newest first")] = 100,
    ) -> list[dict[str, Any]]:
        """The audit log of gate decisions: time, policy, candidate, outcome, caller."""
        rows = service.store.decisions(limit)
        return [{**r, "at": iso(r["at"])} for r in rows]

    @app.post("/api/v1/gate/overrides", responses=ERRORS, tags=["gate"], status_code=201)
    async def post_override(
        body: OverrideRequest, token: Annotated[Token | None, Depends(require("admin"))]
    ) -> dict[str, Any]:
        """Turn blocks into warnings until the override expires (admin only)."""
        try:
            expires = parse_duration(body.expires)
        except ValueError as exc:
            raise ApiError(422, str(exc), "expires") from None
        created = service.add_override(body.reason, expires, caller(token))
        return override_json(created) or {}

    @app.get("/api/v1/gate/overrides", responses=ERRORS, tags=["gate"])
    async def get_overrides(
        _: Annotated[Token | None, Depends(require("read"))],
    ) -> list[dict[str, Any]]:
        """Every override, active or expired."""
        return [override_json(o) or {} for o in service.store.overrides()]

    @app.get("/api/v1/alerts", responses=ERRORS, tags=["alerts"])
    async def get_alerts(
        _: Annotated[Token | None, Depends(require("read"))],
        all_rules: Annotated[
            bool, Query(alias="all", description="include inactive rules")
        ] = False,
        history: Annotated[int, Query(ge=0, le=1000, description="how many past events")] = 50,
    ) -> dict[str, Any]:
        """Current alerts (pending, firing, recently resolved) and their history."""
        engine = service.alerts
        if engine is None:
            raise ApiError(404, "alerting is not enabled on this server", "alerts")
        current = [a.as_dict() for a in engine.current if all_rules or a.state.status != "inactive"]
        evaluated = engine.evaluated_at
        return {
            "evaluated_at": None if evaluated is None else iso(evaluated),
            "alerts": current,
            "history": engine.history(history) if history else [],
        }

    add_dashboard(app, service)
    return app
