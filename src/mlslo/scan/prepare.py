"""Preparing records for the scan: the user's columns renamed to ours, timestamps parsed,
late labels joined (only those that had arrived by the window's end), and the value checks
each field needs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ibis.expr.datatypes as dt

from mlslo.errors import DataError
from mlslo.inputs.fields import Need, check_kind, column_for, missing_column, needs, wrong_kind
from mlslo.scan.expressions import Bound, Expr, like_prediction, literal_ts
from mlslo.spec import (
    AccuracySLO,
    FairnessSLO,
    Spec,
)


@dataclass(frozen=True)
class Check:
    """Marks invalid rows (``predicate`` builds the test over a prepared table), and what to
    tell the user about them. ``shown`` is the prepared column whose value the message quotes.
    ``in_bucket``: a failing row has no timestamp, so it shows as the null bucket and needs
    no count of its own. ``listing`` selects the distinct values (column ``v``) a message's
    ``{classes}`` lists; ``field`` is the prepared field checked (a joined label is named in
    its labels table)."""

    column: str
    predicate: Callable[[Expr], Expr]
    message: str
    shown: str | None = None
    in_bucket: bool = False
    listing: Callable[[Expr], Expr] | None = None
    field: str | None = None


# --- preparation ------------------------------------------------------------------------------


def slices_of(spec: Spec, extra: Sequence[str]) -> list[str]:
    out: list[str] = []
    for slo in spec.slos:
        if isinstance(slo, FairnessSLO):
            out.extend(a for a in slo.sli.attributes if a not in out)
    out.extend(c for c in extra if c not in out)
    return out


def prepare(
    spec: Spec,
    raw: Expr,
    *,
    source: str,
    outcomes: bool,
    slices: Sequence[str],
    labels_separate: bool,
) -> tuple[Expr, list[Check]]:
    """Rename the user's columns to ours and parse timestamps; collect value checks."""
    required = needs(spec, labels_separate=labels_separate, outcomes=outcomes)
    required += [Need(c, "value", None, "the rollup is sliced by it") for c in slices]
    schema = raw.schema()
    seen: dict[str, Need] = {}
    for need in required:
        if need.field in seen:
            continue
        seen[need.field] = need
        column = column_for(spec, need.field)
        if column not in schema:
            raise missing_column(source, spec, need, schema.names)
        if not check_kind(schema[column], need.kind):
            raise wrong_kind(source, spec, need, schema[column])
    optional = [
        f
        for f in ("label", "score", "prediction", "id", "status")
        if f not in seen and column_for(spec, f) in schema
    ]
    checks: list[Check] = []
    projection: dict[str, Expr] = {}
    for field in [*seen, *optional]:
        column = column_for(spec, field)
        value = raw[column]
        if field in ("ts", "event_ts"):
            value, invalid, message = as_timestamp(raw, column, required_value=field == "ts")
            if invalid is not None:
                name = f"__bad_{field}"
                projection[name] = invalid
                shown = None
                if raw[column].type().is_string():
                    shown = f"__raw_{field}"
                    projection[shown] = raw[column]
                checks.append(Check(column, flag(name), message, shown, field == "ts"))
        elif field in ("latency_ms", "score"):
            value = value.cast("float64")
        projection[field] = value
    if "label" in projection and "prediction" in projection:
        kind = projection["prediction"].type()
        label = like_prediction(projection["label"], kind)
        if label is not projection["label"]:
            projection["__raw_label"] = projection["label"]
            projection["label"] = label
            checks.append(
                Check(
                    column_for(spec, "label"),
                    lambda t: t.__raw_label.notnull() & t.label.isnull(),
                    f"'{{value}}' cannot be compared with the predictions, which are {kind}; "
                    "write labels of the same type as the predictions",
                    "__raw_label",
                )
            )
    return raw.select(**projection), checks


def uses_labels(spec: Spec) -> bool:
    return any(
        isinstance(slo, AccuracySLO) or (isinstance(slo, FairnessSLO) and slo.sli.needs_labels)
        for slo in spec.slos
    )


def flag(name: str) -> Callable[[Expr], Expr]:
    return lambda t: t[name]


def as_timestamp(raw: Expr, column: str, *, required_value: bool) -> tuple[Expr, Expr | None, str]:
    """The column as a timestamp, and which rows are invalid (None when none can be)."""
    value = raw[column]
    dtype = value.type()
    invalid: Expr | None = None
    message = ""
    if dtype.is_string():
        parsed = value.try_cast(dt.Timestamp(timezone="UTC"))
        invalid = value.notnull() & parsed.isnull()
        message = "'{value}' is not a timestamp; write ISO-8601 such as 2026-01-31T12:00:00Z"
    elif dtype.is_date():
        parsed = value.cast(dt.Timestamp())
    else:
        parsed = value
    if required_value:
        invalid = value.isnull() if invalid is None else invalid | value.isnull()
        message = message or "is empty; every record needs a timestamp"
        if dtype.is_string():
            message = (
                "'{value}' is not a timestamp (or is empty); write ISO-8601 such as "
                "2026-01-31T12:00:00Z"
            )
    return parsed, invalid, message


def join_labels(spec: Spec, table: Expr, labels: Expr, source: str, end: Bound) -> Expr:
    cols = spec.label_columns
    schema = labels.schema()
    for field, column in (("id", cols.id), ("label", cols.label)):
        if column not in schema:
            raise DataError(
                f"is missing; a labels table needs the prediction id and the "
                f"label (map them with label_columns: {{{field}: <your column>}})",
                source=source,
                column=column,
            )
    prepared: dict[str, Expr] = {"id": labels[cols.id], "label": labels[cols.label]}
    if cols.ts in schema:
        label_ts, _, _ = as_timestamp(labels, cols.ts, required_value=False)
        prepared["label_ts"] = label_ts
    lab = labels.select(**prepared)
    if "label_ts" in prepared:
        lab = lab.filter(lab.label_ts.isnull() | (lab.label_ts < literal_ts(end, lab.label_ts)))
        latest = lab.group_by("id").aggregate(joined_label=lab.label.argmax(lab.label_ts))
    else:
        latest = lab.group_by("id").aggregate(joined_label=lab.label.max())
    joined_label = latest.joined_label
    if "prediction" in table.columns:
        joined_label = like_prediction(joined_label, table.prediction.type())
    latest = latest.select(id=latest.id.cast(table.id.type()), joined_label=joined_label)
    joined = table.left_join(latest, table.id == latest.id)
    own = joined.label if "label" in table.columns else None
    label = joined.joined_label if own is None else joined.joined_label.coalesce(own)
    keep = [c for c in table.columns if c != "label"]
    return joined.select(*keep, label=label)
