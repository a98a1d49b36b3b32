"""The fields of a prediction record and which of them each SLO reads; checking a source's
columns before any scan, so a missing or mistyped column fails fast with the column, the SLO
that needs it and the fix.

Prediction records are flat tables; the spec's ``columns:`` maps our field names to the
user's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mlslo.errors import DataError
from mlslo.spec import (
    AccuracySLO,
    AnySLO,
    AvailabilitySLO,
    FairnessSLO,
    FreshnessSLO,
    LatencySLO,
    Spec,
)

PREDICTION_FIELDS = (
    "id",
    "ts",
    "model",
    "model_version",
    "status",
    "latency_ms",
    "event_ts",
    "prediction",
    "score",
    "label",
)
Kind = Literal["timestamp", "number", "status", "value", "id"]
_KIND_WORDS = {
    "timestamp": "timestamps (a timestamp type, or ISO-8601 text)",
    "number": "numbers",
    "status": "'ok'/'error' text or booleans",
    "value": "class labels or numbers",
    "id": "ids (text or integers)",
}


@dataclass(frozen=True)
class Need:
    """A field (ours, or a user attribute) that an SLO reads, and what it must hold."""

    field: str
    kind: Kind
    slo: str | None
    why: str


def needs(spec: Spec, *, labels_separate: bool, outcomes: bool) -> list[Need]:
    """Every field the spec's SLOs read from prediction records."""
    out = [Need("ts", "timestamp", None, "every record is placed in time by it")]
    for slo in spec.slos:
        out.extend(_slo_needs(slo, labels_separate=labels_separate, outcomes=outcomes))
    if labels_separate and any(n.field == "label" for n in out):
        out.append(Need("id", "id", None, "labels are joined to predictions by it"))
    return out


def _slo_needs(slo: AnySLO, *, labels_separate: bool, outcomes: bool) -> Iterable[Need]:
    for column in slo.filter:
        yield Need(column, "value", slo.name, "the SLO's filter reads it")
    if isinstance(slo, AvailabilitySLO) and not outcomes:
        yield Need("status", "status", slo.name, "availability counts ok vs error responses")
    elif isinstance(slo, LatencySLO):
        yield Need("latency_ms", "number", slo.name, "latency is measured in milliseconds")
    elif isinstance(slo, FreshnessSLO):
        yield Need("event_ts", "timestamp", slo.name, "lag is ts - event_ts")
    elif isinstance(slo, AccuracySLO):
        kind: Kind = "number" if slo.sli.regression else "value"
        yield Need("prediction", kind, slo.name, "quality compares predictions with labels")
        if not labels_separate:
            yield Need(
                "label",
                kind,
                slo.name,
                "quality compares predictions with labels (or give the labels as a separate table)",
            )
        if slo.sli.estimate == "cbpe":
            yield Need(
                "score", "number", slo.name, "CBPE estimates from the positive-class probability"
            )
    elif isinstance(slo, FairnessSLO):
        yield Need("prediction", "value", slo.name, "group rates count positive predictions")
        if slo.sli.needs_labels and not labels_separate:
            yield Need(
                "label",
                "value",
                slo.name,
                "true/false positive rates need labels (or give the labels as a separate table)",
            )
        for attribute in slo.sli.attributes:
            yield Need(attribute, "value", slo.name, "groups are formed from it")


def column_for(spec: Spec, field: str) -> str:
    """The user's column name for one of our fields (attributes keep their own name)."""
    if field in PREDICTION_FIELDS:
        return str(getattr(spec.columns, field))
    return field


def check_kind(dtype: object, kind: Kind) -> bool:
    """Whether an ibis data type can hold a field of ``kind``."""
    d = dtype  # an ibis DataType; typed loosely to keep ibis out of the public signature
    if kind == "timestamp":
        return bool(d.is_timestamp() or d.is_string() or d.is_date())  # type: ignore[attr-defined]
    if kind == "number":
        return bool(d.is_numeric() and not d.is_boolean())  # type: ignore[attr-defined]
    if kind == "status":
        return bool(d.is_string() or d.is_boolean())  # type: ignore[attr-defined]
    if kind == "id":
        return bool(d.is_string() or d.is_integer())  # type: ignore[attr-defined]
    return bool(d.is_string() or d.is_numeric() or d.is_boolean())  # type: ignore[attr-defined]


def missing_column(source: str, spec: Spec, need: Need, available: Iterable[str]) -> DataError:
    column = column_for(spec, need.field)
    who = f"SLO '{need.slo}' needs it: {need.why}" if need.slo else need.why.capitalize()
    mapped = need.field in PREDICTION_FIELDS
    fix = (
        f"; if your table names it differently, map it in the spec with "
        f"columns: {{{need.field}: <your column>}}"
        if mapped
        else ""
    )
    columns = ", ".join(sorted(available))
    return DataError(
        f"is missing. {who}{fix}. Columns found: {columns}", source=source, column=column
    )


def not_a_number(need: Need) -> str:
    """What to say of a text value where ``need`` wants a number (the scan fills in
    ``{value}``)."""
    who = f"SLO '{need.slo}' needs" if need.slo else "mlslo needs"
    return f"'{{value}}' is not a number; {who} numbers ({need.why})"


def wrong_kind(source: str, spec: Spec, need: Need, dtype: object) -> DataError:
    who = f"SLO '{need.slo}' needs" if need.slo else "mlslo needs"
    return DataError(
        f"holds {dtype}; {who} {_KIND_WORDS[need.kind]} ({need.why})",
        source=source,
        column=column_for(spec, need.field),
    )
