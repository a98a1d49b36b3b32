"""``GET /api/v1/gate``, its audit log and the overrides."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mlslo.moments import parse_duration
from mlslo.render.documents import override_json
from mlslo.render.format import iso
from mlslo.server.auth import caller, require
from mlslo.server.errors import ERRORS, ApiError, moment_param
from mlslo.server.service import Service
from mlslo.server.store import Token


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)
    expires: str = Field(description="how long it lasts, e.g. 24h (at most 30d)")


def router(service: Service) -> APIRouter:
    routes = APIRouter(tags=["gate"])
    reader = Depends(require(service, "read"))
    admin = Depends(require(service, "admin"))

    @routes.get("/api/v1/gate", responses=ERRORS)
    async def get_gate(
        token: Annotated[Token | None, reader],
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
        moment = None if at is None else moment_param(at, service.clock)
        return await run_in_threadpool(
            service.gate, policy=policy, candidate=candidate, caller=caller(token), at=moment
        )

    @routes.get("/api/v1/gate/history", responses=ERRORS)
    async def get_gate_history(
        _: Annotated[Token | None, reader],
        limit: Annotated[int, Query(ge=1, le=1000, description="newest first")] = 100,
    ) -> list[dict[str, Any]]:
        """The audit log of gate decisions: time, policy, candidate, outcome, caller."""
        rows = service.store.audit.recent(limit)
        return [{**r, "at": iso(r["at"])} for r in rows]

    @routes.post("/api/v1/gate/overrides", responses=ERRORS, status_code=201)
    async def post_override(
        body: OverrideRequest, token: Annotated[Token | None, admin]
    ) -> dict[str, Any]:
        """Turn blocks into warnings until the override expires (admin only)."""
        try:
            expires = parse_duration(body.expires)
        except ValueError as exc:
            raise ApiError(422, str(exc), "expires") from None
        created = service.add_override(body.reason, expires, caller(token))
        return override_json(created) or {}

    @routes.get("/api/v1/gate/overrides", responses=ERRORS)
    async def get_overrides(_: Annotated[Token | None, reader]) -> list[dict[str, Any]]:
        """Every override, active or expired."""
        return [override_json(o) or {} for o in service.store.overrides.all()]

    return routes
