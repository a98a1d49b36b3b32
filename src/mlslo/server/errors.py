"""The HTTP error envelope and the reading of query values, shared by the API and the
dashboard: every error is ``{"errors": [{"row", "field", "message"}]}``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mlslo.errors import MlsloError, NotFoundError, UsageError
from mlslo.inputs.bodies import FieldError
from mlslo.moments import parse_duration, parse_moment


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


class ErrorItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    row: int | None = Field(description="1-based record number, when one record is at fault")
    field: str | None = Field(description="the field (or header / parameter) at fault")
    message: str


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    errors: list[ErrorItem]
    total: int | None = Field(
        None,
        description="for a refused batch: how many problems were found in all (errors lists "
        "the first 100, in row order)",
    )


def envelope(
    status: int,
    errors: list[FieldError],
    headers: dict[str, str] | None = None,
    *,
    total: int | None = None,
) -> JSONResponse:
    """``{"errors": [...]}``, and for a refused batch ``"total"``: every problem found."""
    body: dict[str, Any] = {"errors": [e.as_dict() for e in errors]}
    if total is not None:
        body["total"] = total
    return JSONResponse(body, status_code=status, headers=headers)


def library_error(error: MlsloError) -> JSONResponse:
    """A library error as the API answers it: 404 for a missing thing, else 422; an
    argument at fault is named as the field."""
    status = 404 if isinstance(error, NotFoundError) else 422
    if isinstance(error, UsageError) and error.parameter is not None:
        return envelope(status, [FieldError(None, error.parameter, error.detail)])
    return envelope(status, [FieldError(None, None, str(error))])


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "unreadable request"),
        (401, "missing, unknown or revoked token"),
        (403, "the token lacks the needed scope"),
        (422, "invalid parameters or records"),
    )
}
FINDING_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": ErrorBody, "description": "no such thing (token id, or alerting is off)"},
}
INGEST_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": ErrorBody, "description": "Idempotency-Key reused for another request"},
    413: {"model": ErrorBody, "description": "body larger than the server's limit"},
    415: {"model": ErrorBody, "description": "unsupported Content-Type"},
}


def moment_param(text: str | None, clock: Callable[[], datetime], field: str = "at") -> datetime:
    """``?at=``: ISO-8601 (naive means UTC), default now."""
    try:
        return parse_moment(text, clock)
    except ValueError as exc:
        raise ApiError(422, str(exc), field) from None


def step_param(text: str | None, field: str = "series") -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ApiError(422, str(exc), field) from None
