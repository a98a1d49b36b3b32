"""The value types every part of the spec is built from: durations, UTC times, names, and
the strict base model (unknown fields are errors, models are frozen)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)

from mlslo.moments import format_duration, parse_duration

SPEC_VERSION = 1


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, timedelta):
        return value
    raise ValueError(f"expected a duration such as 15m, 6h or 30d, found {value!r}")


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
]


def _duration_or_off(value: Any) -> Any:
    """A duration, or ``off`` / null for a setting turned off (YAML 1.1 reads a bare ``off``
    as false, which means the same)."""
    if value is None or value is False:
        return None
    if isinstance(value, str) and value.strip().lower() == "off":
        return None
    if isinstance(value, timedelta) and value > timedelta(0):
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"{exc}; or off to turn it off") from None
    raise ValueError(f"expected a duration longer than zero such as 1h, or off; found {value!r}")


OptionalDuration = Annotated[
    timedelta | None,
    BeforeValidator(_duration_or_off),
    PlainSerializer(lambda v: None if v is None else format_duration(v), return_type=str | None),
]
"""A duration that ``off`` (or null) turns off."""


def _utc(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    raise ValueError(f"expected an ISO-8601 time such as 2026-01-31T12:00:00Z, found {value!r}")


UtcDatetime = Annotated[datetime, BeforeValidator(_utc)]
Scalar = Union[bool, int, float, str]  # noqa: UP007 - pydantic reads the order
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)]


class AtPath(ValueError):
    """A cross-field error that knows which part of the spec it is about."""

    def __init__(self, message: str, *path: Any) -> None:
        super().__init__(message)
        self.path = path


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def closest(word: str, options: Sequence[str]) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def reserved_column(name: str) -> str | None:
    """Why an attribute column cannot be named ``name`` (None when it can): the rollups key
    their rows by ``bucket``, and the scan names its working columns ``__...``."""
    if name == "bucket" or name.startswith("__"):
        return (
            f"'{name}' is a name mlslo's scan uses for its own columns ('bucket' and names "
            "starting with '__'); rename that column of the records"
        )
    return None
