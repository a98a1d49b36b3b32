"""Gate overrides: time-limited decisions by a person to let blocked deployments through."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from mlslo.decide.policy import Override
from mlslo.server.store.database import Database, naive


class Overrides:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def add(self, reason: str, expires_at: datetime, created_by: str | None) -> Override:
        now = self.clock()
        row = self.db.one(
            "INSERT INTO overrides VALUES (nextval('override_ids'), ?, ?, ?, ?, NULL) RETURNING id",
            [reason, naive(now), naive(expires_at), created_by],
        )
        assert row is not None
        return Override(reason, now, expires_at, created_by, int(row[0]))

    def active(self, at: datetime) -> Override | None:
        """The newest override in force at ``at``."""
        row = self.db.one(
            "SELECT id, reason, created_at, expires_at, created_by FROM overrides "
            "WHERE revoked_at IS NULL AND created_at <= ? AND expires_at > ? "
            "ORDER BY id DESC LIMIT 1",
            [naive(at), naive(at)],
        )
        return None if row is None else _override(row)

    def all(self) -> list[Override]:
        rows = self.db.run(
            "SELECT id, reason, created_at, expires_at, created_by FROM overrides ORDER BY id"
        )
        return [_override(r) for r in rows]


def _override(row: tuple[object, ...]) -> Override:
    created, expires = row[2], row[3]
    assert isinstance(created, datetime) and isinstance(expires, datetime)
    return Override(
        str(row[1]),
        created.replace(tzinfo=UTC),
        expires.replace(tzinfo=UTC),
        None if row[4] is None else str(row[4]),
        int(str(row[0])),
    )
