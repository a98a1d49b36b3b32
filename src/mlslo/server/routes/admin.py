"""``POST /api/v1/reload``, the token routes (admin scope), and the pull mode's status and
trigger (``GET`` and ``POST /api/v1/pull``)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mlslo.server.admin import token_json
from mlslo.server.auth import require
from mlslo.server.errors import ERRORS, FINDING_ERRORS, ApiError
from mlslo.server.pull import Puller
from mlslo.server.service import Service
from mlslo.server.store import Scope, Token


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Scope
    name: str | None = Field(default=None, max_length=200)


def router(service: Service) -> APIRouter:
    routes = APIRouter(tags=["admin"])
    admin = Depends(require(service, "admin"))
    reader = Depends(require(service, "read"))

    def puller() -> Puller:
        if service.puller is None:
            raise ApiError(
                404,
                "this server does not pull from a source; start it with mlslo serve --pull",
                None,
            )
        return service.puller

    def tokens_on() -> None:
        """Tokens are managed only by an authenticated server: one made by anybody during a
        run without authentication would outlive it."""
        if not service.auth:
            raise ApiError(
                403,
                "this server runs without authentication (--no-auth), so it manages no "
                "tokens; restart it with tokens on to manage them",
                "Authorization",
            )

    @routes.post("/api/v1/reload", responses=ERRORS)
    async def post_reload(_: Annotated[Token | None, admin]) -> dict[str, Any]:
        """Re-read the spec file (also on SIGHUP); rebuilds rollups if their inputs changed."""
        return await run_in_threadpool(service.reload)

    @routes.post("/api/v1/tokens", responses=ERRORS, status_code=201)
    async def post_token(body: TokenRequest, _: Annotated[Token | None, admin]) -> dict[str, Any]:
        """Create a token; the secret is in this response only. Refused while the server runs
        without authentication: a token made by anyone would outlive the run."""
        tokens_on()
        token, secret = service.store.tokens.create(body.scope, body.name)
        return {**token_json(token), "token": secret}

    @routes.get("/api/v1/tokens", responses=ERRORS)
    async def get_tokens(_: Annotated[Token | None, admin]) -> list[dict[str, Any]]:
        """Every token (never the secrets)."""
        tokens_on()
        return [token_json(t) for t in service.store.tokens.all()]

    @routes.delete("/api/v1/tokens/{token_id}", responses=FINDING_ERRORS)
    async def delete_token(token_id: int, _: Annotated[Token | None, admin]) -> dict[str, Any]:
        """Revoke a token (it stops working at once)."""
        tokens_on()
        return token_json(service.store.tokens.revoke(token_id))

    @routes.get("/api/v1/pull", responses=FINDING_ERRORS)
    async def get_pull(_: Annotated[Token | None, reader]) -> dict[str, Any]:
        """The pull mode's state: pulls and failures, the last pull, the watermark, the rows
        read by the last pull and since the start, and the last error (null after a pull
        that worked)."""
        return puller().status.json()

    @routes.post("/api/v1/pull", responses=FINDING_ERRORS)
    async def post_pull(_: Annotated[Token | None, admin]) -> dict[str, Any]:
        """Pull now, without waiting for the schedule; returns the state after it. A source
        that fails is reported in ``last_error``, not as an error of this request."""
        return (await run_in_threadpool(puller().pull)).json()

    return routes
