"""Preparing records for the scan: the user's columns renamed to ours, timestamps parsed,
late labels joined (only those that had arrived by the window's end), and the value checks
each field needs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import ibis
import ibis.expr.datatypes as dt

from mlslo.errors import DataError
from mlslo.inputs.fields import (
    Kind,
    Need,
    check_kind,
    column_for,
    missing_column,
    needs,
    not_a_number,
    wrong_kind,
)
from mlslo.scan.expressions import Bound, Expr, in_window, like_prediction, literal_ts
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
    origin: Origin | None = None
    listing: Callable[[Expr], Expr] | None = None
    field: str | None = None


@dataclass(frozen=True)
class Origin:
    """Where a failing row is named when it is not a prediction record as read: another
    source (the labels), its name, and the check over its own rows."""

    table: Expr
    source: str
    check: Check


class Emptiness:
    """Whether a source has no rows, asked only when one of its columns would otherwise be
    refused: a source with no rows is empty whatever its columns (a header-only CSV reads as
    text, an empty NDJSON file has no columns at all). It remembers whether any source was
    empty, since a scan compiled for such columns must not be cached for other files."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, table: Expr) -> bool:
        try:
            rows = table.limit(1).count().to_pyarrow().as_py()
        except Exception:
            return False
        if rows:
            return False
        self.seen = True
        return True


KIND_TYPES: dict[Kind, dt.DataType] = {
    "timestamp": dt.Timestamp(timezone="UTC"),
    "number": dt.float64,
    "status": dt.string,
    "value": dt.string,
    "id": dt.string,
}
"""The type a missing column of an empty source takes, by the kind of field."""


# --- preparation ------------------------------------------------------------------------------


def slices_of(spec: Spec, extra: Sequence[str]) -> list[str]:
    out: list[str] = []
    for slo in spec.slos:
        if isinstance(slo, FairnessSLO):
            out.extend(a for a in slo.sli.attributes if a not in out)
    out.extend(c for c in [*spec.attribution, *extra] if c not in out)
    return out


def prepare(
    spec: Spec,
    raw: Expr,
    *,
    source: str,
    outcomes: bool,
    slices: Sequence[str],
    labels_separate: bool,
    empty: Emptiness | None = None,
) -> tuple[Expr, list[Check]]:
    """Rename the user's columns to ours and parse timestamps; collect value checks.

    A text column where a number is needed is read as numbers, and each value that is not
    one fails a check that names it. A source with no rows is never refused for its columns.
    """
    empty = empty or Emptiness()
    required = needs(spec, labels_separate=labels_separate, outcomes=outcomes)
    required += [Need(c, "value", None, "the rollup is sliced by it") for c in slices]
    schema = raw.schema()
    seen: dict[str, Need] = {}
    for need in required:
        if need.field not in seen or (need.kind == "number" and seen[need.field].kind != "number"):
            seen[need.field] = need
    substitutes: dict[str, Expr] = {}
    for need in seen.values():
        column = column_for(spec, need.field)
        if column not in schema:
            if not empty(raw):
                raise missing_column(source, spec, need, schema.names)
        elif check_kind(schema[column], need.kind) or (
            need.kind == "number" and schema[column].is_string()
        ):
            continue
        elif not empty(raw):
            raise wrong_kind(source, spec, need, schema[column])
        substitutes[column] = ibis.null(KIND_TYPES[need.kind])
    if substitutes:
        raw = raw.mutate(**substitutes)
        schema = raw.schema()
    optional = [
        f
        for f in ("label", "score", "prediction", "id", "status", "model_version")
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
        elif field in seen and seen[field].kind == "number" and value.type().is_string():
            shown = f"__raw_{field}"
            projection[shown] = value
            value = value.try_cast("float64")
            checks.append(Check(column, not_numeric(field), not_a_number(seen[field]), shown))
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


def not_numeric(field: str) -> Callable[[Expr], Expr]:
    """Rows whose text in ``field`` (kept as ``__raw_<field>``) is not a number."""
    return lambda t: t[f"__raw_{field}"].notnull() & t[field].isnull()


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


def join_labels(
    spec: Spec,
    table: Expr,
    labels: Expr,
    source: str,
    end: Bound,
    empty: Emptiness | None = None,
) -> tuple[Expr, list[Check]]:
    """Each prediction's latest label that had arrived by ``end``; and, when a regression SLO
    reads labels that are text, the check that each is a number (named in the labels)."""
    cols = spec.label_columns
    schema = labels.schema()
    for field, column in (("id", cols.id), ("label", cols.label)):
        if column not in schema:
            if (empty or Emptiness())(labels):
                labels = labels.mutate(**{column: ibis.null(dt.string)})
                continue
            raise DataError(
                f"is missing; a labels table needs the prediction id and the "
                f"label (map them with label_columns: {{{field}: <your column>}})",
                source=source,
                column=column,
            )
    schema = labels.schema()
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
    checks: list[Check] = []
    extra: dict[str, Expr] = {}
    regression = next(
        (s for s in spec.slos if isinstance(s, AccuracySLO) and s.sli.regression), None
    )
    if regression is not None and joined_label.type().is_string():
        need = Need("label", "number", regression.name, "quality compares predictions with labels")
        extra["__bad_label"] = joined_label.notnull() & joined_label.try_cast("float64").isnull()
        in_labels = Check(cols.label, not_numeric("label"), not_a_number(need), "__raw_label")
        numbered = labels.select(
            __raw_label=labels[cols.label], label=labels[cols.label].try_cast("float64")
        )
        checks.append(
            Check(
                cols.label,
                flag("__bad_label"),
                not_a_number(need),
                origin=Origin(numbered, source, in_labels),
            )
        )
    if "prediction" in table.columns:
        joined_label = like_prediction(joined_label, table.prediction.type())
    latest = latest.select(
        id=latest.id.try_cast(table.id.type()), joined_label=joined_label, **extra
    )
    joined = table.left_join(latest, table.id == latest.id)
    own = joined.label if "label" in table.columns else None
    label = joined.joined_label if own is None else joined.joined_label.coalesce(own)
    keep = [c for c in table.columns if c != "label"]
    return joined.select(*keep, label=label, **{k: joined[k] for k in extra}), checks


def unmatched_labels(
    spec: Spec, predictions: Expr, labels: Expr, *, start: datetime, end: datetime, source: str
) -> DataError | None:
    """The error for labels none of which belongs to a prediction: labels had arrived by
    ``end``, predictions fall in [start, end), and not one label's id is a prediction's
    (usually ids mapped to the wrong column). It shows the first ids of each side; None when
    an id matches or a side has none."""
    columns, label_columns = spec.columns, spec.label_columns
    if columns.id not in predictions.columns or label_columns.id not in labels.columns:
        return None
    when, _, _ = as_timestamp(predictions, columns.ts, required_value=False)
    seen = predictions.select(id=predictions[columns.id], ts=when)
    seen = seen.filter(in_window(seen, start, end) & seen.id.notnull())
    label_ts = (
        as_timestamp(labels, label_columns.ts, required_value=False)[0]
        if label_columns.ts in labels.columns
        else ibis.null(dt.Timestamp(timezone="UTC"))
    )
    arrived = labels.select(
        id=labels[label_columns.id],
        key=labels[label_columns.id].try_cast(seen.id.type()),
        ts=label_ts,
    )
    arrived = arrived.filter(
        arrived.id.notnull() & (arrived.ts.isnull() | (arrived.ts < literal_ts(end, arrived.ts)))
    )
    first_labels = _first_ids(arrived)
    first_predictions = _first_ids(seen)
    if not first_labels or not first_predictions:
        return None
    matched = seen.semi_join(arrived, seen.id == arrived.key).limit(1).count()
    if matched.to_pyarrow().as_py():
        return None
    return DataError(
        f"no label matches a prediction by id (labels: {', '.join(first_labels)}; "
        f"predictions: {', '.join(first_predictions)}); check columns.id and label_columns.id",
        source=source,
    )


def _first_ids(table: Expr, count: int = 3) -> list[str]:
    found = table.select("id").limit(50).to_pyarrow()["id"].to_pylist()
    return [str(v) for v in dict.fromkeys(found)][:count]
