"""API tokens: created with a scope, stored as hashes, checked in constant time, revoked."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from mlslo.errors import NotFoundError, UsageError
from mlslo.server.store.database import Database, aware, naive

Scope = Literal["ingest", "read", "admin"]
SCOPES: tuple[Scope, ...] = ("ingest", "read", "admin")


@dataclass(frozen=True)
class Token:
    id: int
    name: str | None
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None

    def allows(self, needed: Scope) -> bool:
        return self.revoked_at is None and (self.scope == needed or self.scope == "admin")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Tokens:
    """The tokens of one store. Kept in memory too, so checking a request never waits for
    the writer."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        self._cached: list[tuple[str, Token]] = self._load()

    def create(self, scope: Scope, name: str | None = None) -> tuple[Token, str]:
        """A new bearer token; the secret is returned once and only its hash is stored."""
        if scope not in SCOPES:
            raise UsageError(f"scope must be one of {', '.join(SCOPES)}, found '{scope}'")
        secret = "mlslo_" + secrets.token_urlsafe(32)
        now = naive(self.clock())
        with self.db.lock:
            row = self.db.one(
                "INSERT INTO tokens VALUES (nextval('token_ids'), ?, ?, ?, ?, NULL) RETURNING id",
                [name, scope, _hash(secret), now],
            )
            self._cached = self._load()
        assert row is not None
        return Token(int(row[0]), name, scope, now.replace(tzinfo=UTC), None), secret

    def revoke(self, token_id: int) -> Token:
        with self.db.lock:
            row = self.db.one(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? "
                "RETURNING id, name, scope, created_at, revoked_at",
                [naive(self.clock()), token_id],
            )
            self._cached = self._load()
        if row is None:
            raise NotFoundError(f"no token with id {token_id}; list the tokens to see their ids")
        return Token(int(row[0]), row[1], row[2], row[3].replace(tzinfo=UTC), aware(row[4]))

    def all(self) -> list[Token]:
        return sorted((token for _, token in self._cached), key=lambda t: t.id)

    def verify(self, secret: str) -> Token | None:
        """The token for ``secret`` if it exists (revoked tokens are returned, to tell 401
        from 403 honestly: a revoked token is not valid). Every stored hash is compared in
        constant time."""
        digest = _hash(secret)
        found = None
        for stored, token in self._cached:
            if hmac.compare_digest(stored, digest):
                found = token
        return found

    def any_active(self) -> bool:
        return any(t.revoked_at is None for _, t in self._cached)

    def _load(self) -> list[tuple[str, Token]]:
        rows = self.db.run("SELECT hash, id, name, scope, created_at, revoked_at FROM tokens")
        return [
            (r[0], Token(int(r[1]), r[2], r[3], r[4].replace(tzinfo=UTC), aware(r[5])))
            for r in rows
        ]
