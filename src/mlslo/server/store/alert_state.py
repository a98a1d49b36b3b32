"""Alert states and their history, kept as JSON documents so a restart neither loses nor
re-sends a notification."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mlslo.server.store.database import Database, naive


class AlertStates:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self) -> dict[str, dict[str, Any]]:
        rows = self.db.run("SELECT key, document FROM alert_state")
        return {r[0]: json.loads(r[1]) for r in rows}

    def save(
        self,
        states: Mapping[str, dict[str, Any]],
        events: Sequence[tuple[datetime, str, dict[str, Any]]],
    ) -> None:
        """Changed states and new events, in one transaction."""
        with self.db.transaction():
            for key, document in states.items():
                self.db.run(
                    "INSERT OR REPLACE INTO alert_state VALUES (?, ?)", [key, json.dumps(document)]
                )
            for at, key, document in events:
                self.db.run(
                    "INSERT INTO alert_events VALUES (nextval('alert_event_ids'), ?, ?, ?)",
                    [naive(at), key, json.dumps(document)],
                )

    def events(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.db.run(
            'SELECT id, "at", key, document FROM alert_events ORDER BY id DESC LIMIT ?', [limit]
        )
        return [
            {"id": r[0], "at": r[1].replace(tzinfo=UTC), "key": r[2], **json.loads(r[3])}
            for r in rows
        ]
