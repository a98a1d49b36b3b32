"""The HTTP error type and the parsing of query values, shared by the API and the dashboard."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mlslo.inputs.bodies import FieldError
from mlslo.moments import parse_duration

_OFFSET_AS_SPACE = re.compile(r" (\d{2}:?\d{2})$")


class ApiError(Exception):
    """An error answered as ``{"errors": [{"row", "field", "message"}]}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors = [FieldError(None, field, message)]
        self.headers = headers


def parse_moment(text: str | None, clock: Callable[[], datetime], field: str = "at") -> datetime:
    """``?at=``: ISO-8601 (naive means UTC). An unencoded ``+00:00`` arrives as `` 00:00``
    and is read as meant."""
    if text is None:
        return clock()
    cleaned = _OFFSET_AS_SPACE.sub(r"+\1", text.strip()).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ApiError(
            422, f"'{text}' is not an ISO-8601 time; e.g. 2026-11-30T00:00:00Z", field
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_step(text: str | None, field: str = "series") -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ApiError(422, str(exc), field) from None
