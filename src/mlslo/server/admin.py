"""Token administration on a store whose server is stopped (DuckDB allows one process per
file; with the server running, go through its API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlslo.render.format import iso
from mlslo.server.store import Store
from mlslo.server.store.tokens import Token


def token_json(token: Token) -> dict[str, Any]:
    """A token as the API lists it (never its secret)."""
    return {
        "id": token.id,
        "name": token.name,
        "scope": token.scope,
        "created_at": iso(token.created_at),
        "revoked_at": None if token.revoked_at is None else iso(token.revoked_at),
    }


def create_token(db: Path, scope: str, name: str | None) -> dict[str, Any]:
    """A new token in the store at ``db``; the secret is in the result only."""
    store = Store.open_admin(db)
    try:
        token, secret = store.tokens.create(scope, name)  # type: ignore[arg-type]
    finally:
        store.close()
    return {**token_json(token), "token": secret}


def list_tokens(db: Path) -> list[dict[str, Any]]:
    store = Store.open_admin(db)
    try:
        return [token_json(t) for t in store.tokens.all()]
    finally:
        store.close()


def revoke_token(db: Path, token_id: int) -> dict[str, Any]:
    store = Store.open_admin(db)
    try:
        return token_json(store.tokens.revoke(token_id))
    finally:
        store.close()
