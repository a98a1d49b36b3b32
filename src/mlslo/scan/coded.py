"""The compiled scan as one GROUP BY on DuckDB: every count a bit of a row's code, and the
percentiles' histograms grouping sets of the same read.

A dozen conditional counts cost DuckDB a dozen scattered updates per row; grouping the rows
also by the code of the conditions they meet (a few dozen values in practice) costs one count,
and each statistic is then a sum over the codes that have its bit, taken from a few thousand
groups. A percentile's histogram groups the same rows by (span, bin) in another grouping set of
the same aggregate: the records are read once, and its groups stay spans x bins however many
slices the counts have."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.operations as ops

from mlslo.scan.expressions import Expr
from mlslo.scan.plan import Plan
from mlslo.stats.fused import BINNED, ROWS, bin_column
from mlslo.stats.rollup import BUCKET, CHECKS

MAX_BITS = 30
"""More conditions than this (a multiclass SLO with many classes) keep one aggregate each:
the codes could then be too many to group by."""

CODE, MINUTE, COUNT, LAST = "__code", "__minute", "__n", "__last"


@dataclass(frozen=True)
class Coded:
    """One row per record (``projection``: the keys, the code, the minute, a bin per binned
    percentile SLO, a value per summed statistic) and how each statistic's alias is read back:
    ``(alias, kind, mask of the bits its rows have, or the summed column)``."""

    projection: Expr
    keys: tuple[str, ...]
    parts: tuple[tuple[str, str, int | str | None], ...]
    binned: tuple[str, ...]


def coded_projection(
    table: Expr, plan: Plan, keys: Sequence[Expr], binned: Sequence[tuple[str, Expr]]
) -> Coded | None:
    """The records as the coded GROUP BY reads them, or None when the plan has too many
    conditions (or a largest value of something other than one column)."""
    assert plan.tallies is not None
    bits: dict[tuple[Any, bool], int] = {}
    parts: list[tuple[str, str, int | str | None]] = []
    summed: dict[str, Expr] = {}
    largest: Expr | None = None
    for alias, tally in plan.tallies.items():
        if tally.kind == "sum":
            assert tally.value is not None
            name = f"__s{len(summed)}"
            value = tally.value
            if tally.condition is not None:
                value = ibis.ifelse(tally.condition, value, ibis.null(value.type()))
            summed[name] = value
            parts.append((alias, "sum", name))
            continue
        if tally.kind == "max":
            assert tally.value is not None
            if largest is not None and largest.op() != tally.value.op():
                return None
            largest = tally.value
        mask = None
        if tally.condition is not None:
            mask = 0
            for literal in _literals(tally.condition.op()):
                mask |= 1 << bits.setdefault(literal, len(bits))
        parts.append((alias, tally.kind, mask))
    if len(bits) > MAX_BITS:
        return None
    columns: dict[str, Expr] = {key.get_name(): key for key in keys}
    columns[CODE] = _code(bits)
    if largest is not None:
        columns[MINUTE] = largest
    for index, (_, bin_) in enumerate(binned):
        columns[bin_column(index)] = bin_
    columns.update(summed)
    return Coded(
        table.select(**columns),
        tuple(key.get_name() for key in keys),
        tuple(parts),
        tuple(name for name, _ in binned),
    )


def _literals(node: Any) -> list[tuple[Any, bool]]:
    """A condition as the conjunction of its parts, each (part, whether it must be true or
    false): ``a AND NOT b`` is true exactly when ``a`` is true and ``b`` false, so it is
    one bit for ``a`` true and one for ``b`` false, however many conditions share them."""
    if isinstance(node, ops.And):
        return [*_literals(node.left), *_literals(node.right)]
    if isinstance(node, ops.Not):
        return [(node.arg, False)]
    return [(node, True)]


def _code(bits: dict[tuple[Any, bool], int]) -> Expr:
    """The sum of the bits a row's parts set: per part its "true" bit, and its "false" bit
    when a condition needs it false (a part that is null sets neither)."""
    code: Expr = ibis.literal(0, type="int64")
    for node in dict.fromkeys(node for node, _ in bits):
        part = node.to_expr()
        yes, no = bits.get((node, True)), bits.get((node, False))
        flag = ibis.literal(0, type="int64")
        if no is not None:
            flag = ibis.ifelse(~part, ibis.literal(1 << no, type="int64"), flag)
        if yes is not None:
            flag = ibis.ifelse(part, ibis.literal(1 << yes, type="int64"), flag)
        code = code + flag
    return code


def coded_sql(projection: str, coded: Coded) -> str:
    """The GROUP BY over the compiled ``projection``: per (keys, code) a count, the largest
    minute and the partial sums, with a grouping set (span, bin) per binned percentile; then
    per key every statistic under its alias, and per (span, bin) the rows (``__rows``, marked
    ``__binned``)."""
    keys = [_quoted(k) for k in coded.keys]
    bins = [bin_column(i) for i in range(len(coded.binned))]
    summed = [str(what) for _, kind, what in coded.parts if kind == "sum"]
    has_last = any(kind == "max" for _, kind, _ in coded.parts)
    inner = [*keys, CODE, *bins, f"COUNT(*) AS {COUNT}"]
    if has_last:
        inner.append(f"MAX({MINUTE}) AS {LAST}")
    inner += [f"SUM({s}) AS {s}" for s in summed]
    grouped = ", ".join([*keys, CODE])
    if bins:
        sets = [f"({grouped})", *(f"({_quoted(BUCKET)}, {b})" for b in bins)]
        grouped = f"GROUPING SETS ({', '.join(sets)})"
    read = f"SELECT {', '.join(inner)} FROM ({projection}) AS __records GROUP BY {grouped}"
    outer = [*keys, *(_decoded(alias, kind, what) for alias, kind, what in coded.parts)]
    by = list(keys)
    where = ""
    if bins:
        outer += [f"{CODE} IS NULL AS {BINNED}", *bins, f"SUM({COUNT}) AS {ROWS}"]
        by += [BINNED, *bins]
        where = " WHERE " + " OR ".join(
            [f"{CODE} IS NOT NULL", *(f"{b} IS NOT NULL" for b in bins)]
        )
    return f"SELECT {', '.join(outer)} FROM ({read}) AS __coded{where} GROUP BY {', '.join(by)}"


def _decoded(alias: str, kind: str, what: int | str | None) -> str:
    if kind == "sum":
        return f"CAST(SUM({what}) AS DOUBLE) AS {_quoted(alias)}"
    column = COUNT if kind == "count" else LAST
    value = column if what is None else f"CASE WHEN ({CODE} & {what}) = {what} THEN {column} END"
    if kind == "max":
        return f"CAST(MAX({value}) AS DOUBLE) AS {_quoted(alias)}"
    total = f"COALESCE(SUM({value}), 0)"
    return f"CAST({total} AS {'BIGINT' if alias == CHECKS else 'DOUBLE'}) AS {_quoted(alias)}"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
