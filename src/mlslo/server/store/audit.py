"""The gate's audit log: every decision the service answered, with its full document, so
any past decision can be read back (and re-derived with ``?at=``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from mlslo.server.store.database import Database, naive


class GateAudit:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        at: datetime,
        policy: str,
        candidate: str | None,
        decision: str,
        caller: str | None,
        override_id: int | None,
        document: dict[str, Any],
    ) -> int:
        row = self.db.one(
            "INSERT INTO gate_decisions VALUES (nextval('decision_ids'), ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING id",
            [naive(at), policy, candidate, decision, caller, override_id, json.dumps(document)],
        )
        assert row is not None
        return int(row[0])

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.run(
            'SELECT id, "at", policy, candidate, decision, caller, override_id, document '
            "FROM gate_decisions ORDER BY id DESC LIMIT ?",
            [limit],
        )
        return [
            {
                "id": r[0],
                "at": r[1].replace(tzinfo=UTC),
                "policy": r[2],
                "candidate": r[3],
                "decision": r[4],
                "caller": r[5],
                "override_id": r[6],
                "reasons": json.loads(r[7]).get("reasons", []),
            }
            for r in rows
        ]
