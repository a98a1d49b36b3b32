"""The values an SLO's classes and groups rest on, checked in a batch for the store: without
``positive_label`` every class must be 0/1; with ``missing: error`` every record needs its
group attributes. The scan checks files for the same (``mlslo.scan.plan.class_checks``) with
the same messages, which are written here once."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from mlslo.inputs.bodies import FieldError
from mlslo.spec import AccuracySLO, AnySLO, FairnessSLO, Scalar, Spec

BINARY_TEXT = ("0", "1", "true", "false")
"""The 0/1 classes as text (the store keeps predictions and labels as text)."""
LISTED = 10
"""How many classes, or rows, a message lists."""


def binary_fields(slo: AnySLO, *, has_label: bool) -> list[str]:
    """The fields whose classes must be 0/1 because ``slo`` has no ``positive_label``."""
    if not isinstance(slo, AccuracySLO | FairnessSLO) or not slo.sli.assumes_binary:
        return []
    reads_label = isinstance(slo, AccuracySLO) or slo.sli.needs_labels
    return ["prediction", "label"] if has_label and reads_label else ["prediction"]


def not_binary_message(slo: AnySLO, value: object, classes: str) -> str:
    fix = " or average: macro" if isinstance(slo, AccuracySLO) else ""
    return (
        f"'{value}' is not a 0/1 class: SLO '{slo.name}' has no positive_label, so its "
        f"positive class is 1, which needs 0/1 classes (seen: {classes}); set "
        f"positive_label: <one of them>{fix}"
    )


def missing_message(slo: AnySLO, attribute: str, where: str = "") -> str:
    return (
        f"is empty{where}; SLO '{slo.name}' has missing: error, so every record needs its "
        f"{attribute} (fill it in, or set missing: exclude or group)"
    )


def listed(values: Sequence[object]) -> str:
    """``'a', 'b', 2`` (at most ``LISTED``, then ``...``)."""
    shown = [repr(v) if isinstance(v, str) else str(v) for v in values[:LISTED]]
    return ", ".join(shown) + (", ..." if len(values) > LISTED else "")


def batch_problems(table: pa.Table, spec: Spec) -> list[FieldError]:
    """Records of a batch (canonical columns) that an SLO's classes or groups cannot take,
    one error per SLO and field, naming the first rows. A batch of labels alone is checked
    against every SLO: which prediction, and so which ``filter:``, a label belongs to is
    not known yet."""
    errors: list[FieldError] = []
    has_prediction = "prediction" in table.column_names
    for slo in spec.slos:
        rows = _under_filter(table, slo) if has_prediction else None
        fields = binary_fields(slo, has_label="label" in table.column_names)
        fields = [f for f in fields if f in table.column_names]
        outside = {f: _and(_not_binary(table[f]), rows) for f in fields}
        for field, mask in outside.items():
            if pc.any(mask).as_py():
                seen = pc.unique(pa.chunked_array([_kept(table[f], rows) for f in fields]))
                classes = listed(sorted(v for v in seen.to_pylist() if v is not None))
                first = _rows(mask)[0]
                value = table[field][first - 1].as_py()
                errors.append(FieldError(first, field, not_binary_message(slo, value, classes)))
        if isinstance(slo, FairnessSLO) and slo.sli.missing == "error" and has_prediction:
            for attribute in slo.sli.attributes:
                if attribute not in table.column_names:
                    continue
                column = table[attribute]
                mask = _and(pc.or_kleene(pc.is_null(column), pc.equal(column, "")), rows)
                found = _rows(mask)
                if found:
                    where = ", ".join(str(r) for r in found[:LISTED])
                    more = ", ..." if len(found) > LISTED else ""
                    counted = f" in {len(found)} records (rows {where}{more})"
                    message = missing_message(slo, attribute, counted)
                    errors.append(FieldError(found[0], attribute, message))
    return errors


def _not_binary(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    text = pc.utf8_lower(column.cast(pa.string()))
    other = pc.invert(pc.is_in(text, pa.array(BINARY_TEXT)))
    return pc.fill_null(pc.and_(pc.is_valid(text), other), False)


def _and(mask: pa.ChunkedArray, rows: pa.ChunkedArray | None) -> pa.ChunkedArray:
    mask = pc.fill_null(mask, False)
    return mask if rows is None else pc.and_(mask, rows)


def _kept(column: pa.ChunkedArray, rows: pa.ChunkedArray | None) -> pa.Array:
    values = column.cast(pa.string())
    kept = values if rows is None else values.filter(rows)
    return kept.combine_chunks() if isinstance(kept, pa.ChunkedArray) else kept


def _rows(mask: pa.ChunkedArray) -> list[int]:
    """1-based numbers of the rows where ``mask`` is true."""
    indices = pc.indices_nonzero(pc.fill_null(mask, False).combine_chunks())
    return [i + 1 for i in indices.to_pylist()]


def _under_filter(table: pa.Table, slo: AnySLO) -> pa.ChunkedArray | None:
    """The rows ``slo`` reads (its ``filter:``); None when it reads every row."""
    rows = None
    for column, wanted in slo.filter.items():
        if column not in table.column_names:
            continue
        values = wanted if isinstance(wanted, list) else [wanted]
        match = pc.is_in(table[column], _as_values(table[column].type, values))
        match = pc.fill_null(match, False)
        rows = match if rows is None else pc.and_(rows, match)
    return rows


def _as_values(kind: pa.DataType, values: Sequence[Scalar]) -> pa.Array:
    """Filter values of the column's type (YAML's 1 matches a text column's '1')."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pa.array([str(v).lower() if isinstance(v, bool) else str(v) for v in values])
    try:
        return pa.array(values).cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pa.array([], kind)
