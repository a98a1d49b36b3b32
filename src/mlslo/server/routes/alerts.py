"""``GET /api/v1/alerts``: the alert loop's current alerts and their history."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from mlslo.render.format import iso
from mlslo.server.auth import require
from mlslo.server.errors import FINDING_ERRORS, ApiError
from mlslo.server.service import Service
from mlslo.server.store import Token


def router(service: Service) -> APIRouter:
    routes = APIRouter(tags=["alerts"])
    reader = Depends(require(service, "read"))

    @routes.get("/api/v1/alerts", responses=FINDING_ERRORS)
    async def get_alerts(
        _: Annotated[Token | None, reader],
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

    return routes
