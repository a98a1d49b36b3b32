"""Batches for the store: records validated column-wise and brought to the store's canonical
types. Every failing row of every check is reported (the first :data:`MAX_ERRORS` in row
order, and how many in all); a batch with any problem is refused as a whole."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from mlslo.inputs.bodies import FieldError
from mlslo.inputs.checks import batch_problems
from mlslo.inputs.columns import (
    Problems,
    absent,
    ids,
    in_range,
    number,
    status,
    text,
    timestamps,
    value,
)
from mlslo.inputs.fields import PREDICTION_FIELDS
from mlslo.spec import (
    AccuracySLO,
    FairnessSLO,
    Spec,
)

# --- batches for the store: column-wise validation and normalisation ------------------------

CANONICAL_TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "ts": pa.timestamp("us"),
    "model": pa.string(),
    "model_version": pa.string(),
    "status": pa.string(),
    "latency_ms": pa.float64(),
    "event_ts": pa.timestamp("us"),
    "prediction": pa.string(),
    "score": pa.float64(),
    "label": pa.string(),
}
LABEL_TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "ts": pa.timestamp("us"),
    "label": pa.string(),
}
OUTCOME_TYPES: dict[str, pa.DataType] = {
    "ts": pa.timestamp("us"),
    "total": pa.int64(),
    "ok": pa.int64(),
    "model": pa.string(),
    "model_version": pa.string(),
}


def attribute_columns(spec: Spec) -> list[str]:
    """Attribute columns a batch may carry: those the spec slices or filters by."""
    declared = dict.fromkeys([*spec.attributes, *spec.attribution])
    out: list[str] = [a for a in declared if a not in PREDICTION_FIELDS]
    for slo in spec.slos:
        names = list(slo.filter)
        if isinstance(slo, FairnessSLO):
            names += list(slo.sli.attributes)
        out += [n for n in names if n not in PREDICTION_FIELDS and n not in out]
    return out


def regression_slo(spec: Spec) -> AccuracySLO | None:
    """The first regression SLO: with one, predictions and labels must be numbers."""
    for slo in spec.slos:
        if isinstance(slo, AccuracySLO) and slo.sli.regression:
            return slo
    return None


def normalize_predictions(
    table: pa.Table,
    spec: Spec,
    *,
    now: datetime,
    max_skew: timedelta,
    max_age: timedelta | None = None,
) -> pa.Table:
    """Validate a batch of prediction records and return it in the store's canonical types.

    Columns are checked as wholes; every row that fails a check is reported.
    """
    errors = Problems()
    attributes = attribute_columns(spec)
    table = _rename(table, spec.columns.model_dump(), attributes, errors)
    out: dict[str, pa.Array] = {}
    n = table.num_rows
    _require(table, ("id", "ts"), "prediction", errors)
    out["id"] = ids(table["id"], errors)
    out["ts"] = timestamps(table["ts"], "ts", errors, required=True)
    in_range(out["ts"], "ts", now, max_skew, max_age, errors)
    for field in ("model", "model_version"):
        out[field] = text(table, field, errors)
    out["status"] = status(table, errors)
    out["latency_ms"] = number(table, "latency_ms", errors, low=0.0)
    out["event_ts"] = (
        timestamps(table["event_ts"], "event_ts", errors, required=False)
        if "event_ts" in table.column_names
        else pa.nulls(n, pa.timestamp("us"))
    )
    regression = regression_slo(spec)
    out["prediction"] = value(table, "prediction", errors, regression)
    out["score"] = number(table, "score", errors, low=0.0, high=1.0)
    out["label"] = value(table, "label", errors, regression)
    for attribute in attributes:
        out[attribute] = text(table, attribute, errors)
    errors.raise_if_any()
    _refuse(batch_problems(pa.table(out), spec), errors)
    return pa.table(out)


def normalize_labels(
    table: pa.Table,
    spec: Spec,
    *,
    now: datetime,
    max_skew: timedelta,
    max_age: timedelta | None = None,
) -> pa.Table:
    """Validate a batch of label records (id, ts, label)."""
    errors = Problems()
    table = _rename(table, spec.label_columns.model_dump(), [], errors)
    _require(table, ("id", "ts", "label"), "label", errors)
    errors.rows(absent(table["label"]), "label", "is empty; a label record needs the label")
    labels = value(table, "label", errors, regression_slo(spec))
    out = {
        "id": ids(table["id"], errors),
        "ts": timestamps(table["ts"], "ts", errors, required=True),
        "label": labels,
    }
    in_range(out["ts"], "ts", now, max_skew, max_age, errors)
    errors.raise_if_any()
    _refuse(batch_problems(pa.table(out), spec), errors)
    return pa.table(out)


def _refuse(problems: Sequence[FieldError], errors: Problems) -> None:
    """Refuse the batch for values its SLOs' classes or groups cannot take."""
    for problem in problems:
        errors.add(problem.row, problem.field, problem.message)
    errors.raise_if_any()


MAX_COUNT = 1e15
"""The most requests one outcome record may count (far beyond any real minute's traffic,
and exact as a float)."""


def normalize_outcomes(
    table: pa.Table,
    spec: Spec,
    *,
    now: datetime,
    max_skew: timedelta,
    max_age: timedelta | None = None,
) -> pa.Table:
    """Validate a batch of outcome counts (ts, total, ok)."""
    errors = Problems()
    attributes = attribute_columns(spec)
    mapping = {
        **spec.outcome_columns.model_dump(),
        "model": "model",
        "model_version": "model_version",
    }
    table = _rename(table, mapping, attributes, errors)
    _require(table, ("ts", "total", "ok"), "outcome", errors)
    out: dict[str, pa.Array] = {"ts": timestamps(table["ts"], "ts", errors, required=True)}
    in_range(out["ts"], "ts", now, max_skew, max_age, errors)
    counts: dict[str, pa.Array] = {}
    for field in ("total", "ok"):
        values = number(table, field, errors, low=0.0, high=MAX_COUNT)
        errors.rows(absent(table[field]), field, "is required")
        finite = pc.fill_null(
            pc.and_(pc.is_finite(values), pc.less_equal(values, MAX_COUNT)), False
        )
        whole = pc.equal(pc.floor(values), values)
        errors.rows(pc.and_(finite, pc.invert(whole)), field, "must be a whole number of requests")
        counts[field] = pc.if_else(finite, values, None)
        out[field] = pc.cast(pc.fill_null(pc.floor(counts[field]), 0.0), pa.int64())
    errors.rows(pc.greater(counts["ok"], counts["total"]), "ok", "is greater than total")
    for field in ("model", "model_version", *attributes):
        out[field] = text(table, field, errors)
    errors.raise_if_any()
    return pa.table(out)


class Normalizer(Protocol):
    def __call__(
        self,
        table: pa.Table,
        spec: Spec,
        *,
        now: datetime,
        max_skew: timedelta,
        max_age: timedelta | None = None,
    ) -> pa.Table: ...


NORMALIZERS: dict[str, Normalizer] = {
    "predictions": normalize_predictions,
    "labels": normalize_labels,
    "outcomes": normalize_outcomes,
}
"""The normalizer of each kind of batch."""


def _require(table: pa.Table, fields: Sequence[str], kind: str, errors: Problems) -> None:
    """Refuse the batch, naming every field it lacks."""
    for field in fields:
        if field not in table.column_names:
            errors.add(None, field, f"is required in every {kind} record")
    errors.raise_if_any()


def _rename(
    table: pa.Table, mapping: dict[str, str], attributes: Sequence[str], errors: Problems
) -> pa.Table:
    """User column names to ours; any column we do not know is an error (it would be lost)."""
    reverse = {user: ours for ours, user in mapping.items()}
    names = []
    for name in table.column_names:
        ours = reverse.get(name, name)
        if ours not in mapping and ours not in attributes:
            known = sorted(set(mapping) | set(attributes))
            errors.add(
                None,
                name,
                f"is not a known field ({', '.join(known)}); declare extra "
                "attributes under attributes: in the spec",
            )
        names.append(ours)
    return table.rename_columns(names)
