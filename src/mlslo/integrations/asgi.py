"""An ASGI middleware that logs every request of a model server to mlslo.

One line in a FastAPI or Starlette app::

    app.add_middleware(MlsloMiddleware, client=mlslo.Client(url, token), model="fraud",
                       model_version="v2")

Each request becomes a prediction record with its status (5xx and exceptions are errors)
and latency, so uptime and latency SLOs need nothing else.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from mlslo.client import Client

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class MlsloMiddleware:
    def __init__(
        self,
        app: Any,
        client: Client,
        *,
        model: str | None = None,
        model_version: str | None = None,
        exclude_paths: Collection[str] = ("/healthz", "/readyz", "/metrics"),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = app
        self.client = client
        self.model = model
        self.model_version = model_version
        self.exclude_paths = set(exclude_paths)
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("path") in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        served = self.clock()
        status = 500

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message.get("type") == "http.response.start":
                status = int(message.get("status", 500))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            status = 500
            raise
        finally:
            record = {
                "id": _request_id(scope),
                "ts": served,
                "status": "error" if status >= 500 else "ok",
                "latency_ms": (time.perf_counter() - started) * 1000,
            }
            if self.model is not None:
                record["model"] = self.model
            if self.model_version is not None:
                record["model_version"] = self.model_version
            self.client.log_predictions(record)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == b"x-request-id" and value:
            return str(value.decode("latin-1"))
    return uuid.uuid4().hex
