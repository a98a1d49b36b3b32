"""``POST /api/v1/predictions``, ``/labels`` and ``/outcomes``: records in, all or nothing."""

import asyncio
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mlslo.inputs.bodies import CONTENT_TYPES, body_format, parse_body
from mlslo.inputs.normalize import NORMALIZERS
from mlslo.server.auth import require
from mlslo.server.errors import INGEST_ERRORS, ApiError
from mlslo.server.service import Service
from mlslo.server.store import Kind, Token

INLINE_BODY = 16_384
"""Bodies up to this size are parsed on the event loop: a thread hop costs more than the
work, and many small parses racing in the thread pool slow each other down."""


class IngestResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accepted: int = Field(description="records written")
    duplicates: int = Field(description="records already present (same id), not counted twice")
    folded: int = Field(
        default=0,
        description="records whose attribute value was past the service's cap on distinct "
        "values and is counted as '(other)' (only when the service folds)",
    )


BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}} for media in CONTENT_TYPES
        },
    }
}


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            413,
            f"the body is {int(declared):,} bytes; the limit is {limit:,} (split the batch)",
            "body",
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413, f"the body is over the limit of {limit:,} bytes (split the batch)", "body"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def router(service: Service) -> APIRouter:
    routes = APIRouter(tags=["ingest"])
    writer = Depends(require(service, "ingest"))

    async def ingest(kind: Kind, request: Request, token: Token | None) -> IngestResponse:
        fmt = body_format(request.headers.get("content-type"))
        body = await read_body(request, service.max_body)
        now = service.clock()
        normalize = NORMALIZERS[kind]

        def prepare() -> Any:
            return normalize(
                parse_body(body, fmt),
                service.spec,
                now=now,
                max_skew=service.max_skew,
                max_age=service.store.writer.max_age,
            )

        batch = prepare() if len(body) <= INLINE_BODY else await run_in_threadpool(prepare)
        batch, folded = service.store.writer.admit(kind, batch)
        key = request.headers.get("idempotency-key")
        fingerprint = None
        if key is not None:
            caller = "anonymous" if token is None else str(token.id)
            fingerprint = hashlib.sha256(f"{kind}\0{caller}\0".encode() + body).hexdigest()
        submitted = service.store.writer.submit(kind, batch, key, fingerprint, folded)
        result = await asyncio.wrap_future(submitted)
        return IngestResponse(
            accepted=result.accepted, duplicates=result.duplicates, folded=result.folded
        )

    @routes.post(
        "/api/v1/predictions",
        response_model=IngestResponse,
        responses=INGEST_ERRORS,
        openapi_extra=BODY,
    )
    async def post_predictions(
        request: Request, token: Annotated[Token | None, writer]
    ) -> IngestResponse:
        """Prediction records (id, ts, model, model_version, status, latency_ms, event_ts,
        prediction, score, label, attributes). All-or-nothing; repeated ids count once."""
        return await ingest("predictions", request, token)

    @routes.post(
        "/api/v1/labels", response_model=IngestResponse, responses=INGEST_ERRORS, openapi_extra=BODY
    )
    async def post_labels(
        request: Request, token: Annotated[Token | None, writer]
    ) -> IngestResponse:
        """Label records (id of the prediction, ts, label); applied to the prediction's
        bucket, or held until the prediction arrives."""
        return await ingest("labels", request, token)

    @routes.post(
        "/api/v1/outcomes",
        response_model=IngestResponse,
        responses=INGEST_ERRORS,
        openapi_extra=BODY,
    )
    async def post_outcomes(
        request: Request, token: Annotated[Token | None, writer]
    ) -> IngestResponse:
        """Outcome counts (ts, total, ok) for traffic that is not logged one by one."""
        return await ingest("outcomes", request, token)

    return routes
