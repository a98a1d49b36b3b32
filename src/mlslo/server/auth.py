"""Bearer tokens on requests: the dependency each route declares with the scope it needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from mlslo.server.errors import ApiError
from mlslo.server.service import Service
from mlslo.server.store import Scope, Token

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mlslo"'}


def require(service: Service, scope: Scope) -> Callable[[Request], Awaitable[Token | None]]:
    """A dependency that answers 401 without a valid token and 403 without ``scope``
    (None when the service runs without authentication)."""

    async def check(request: Request) -> Token | None:
        if not service.auth:
            return None
        kind, _, secret = request.headers.get("authorization", "").partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise ApiError(
                401,
                "send Authorization: Bearer <token> (create one with mlslo token create)",
                "Authorization",
                headers=CHALLENGE,
            )
        token = service.store.tokens.verify(secret.strip())
        if token is None or token.revoked_at is not None:
            raise ApiError(401, "unknown or revoked token", "Authorization", headers=CHALLENGE)
        if not token.allows(scope):
            raise ApiError(
                403,
                f"this token has scope '{token.scope}'; this request needs '{scope}'",
                "Authorization",
            )
        return token

    return check


def caller(token: Token | None) -> str:
    """Who made a request, for the audit log."""
    if token is None:
        return "anonymous (--no-auth)"
    return f"token {token.id}" + (f" ({token.name})" if token.name else "")
