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
SLICED = "__sliced"
MANY_GROUPS = 1000
"""Distinct slice values in the sample from which the sliced statistics get their own grouping
set: measured at 10M rows and 36 spans, 40 groups read 0.22 s faster in one GROUP BY, 400 groups
0.08 s, 4,000 groups 0.37 s slower."""


@dataclass(frozen=True)
class Coded:
    """One row per record (``projection``: the keys, the code, the minute, a bin per binned
    percentile SLO, a value per summed statistic) and how each statistic's alias is read back:
    ``(alias, kind, mask of the bits its rows have, or the summed column)``; ``names`` maps
    each statistic to its alias. Parts of kind ``sliced`` are counted in the (span, ``slices``)
    grouping set (none: every statistic is counted per slice and code)."""

    projection: Expr
    keys: tuple[str, ...]
    parts: tuple[tuple[str, str, int | str | None], ...]
    binned: tuple[str, ...]
    names: dict[str, str]
    slices: tuple[str, ...] = ()


def coded_projection(
    table: Expr,
    plan: Plan,
    keys: Sequence[Expr],
    binned: Sequence[tuple[str, Expr]],
    sliced: Sequence[str] = (),
) -> Coded | None:
    """The records as the coded GROUP BY reads them, or None when the plan has too many
    conditions (or a largest value of something other than one column). The statistics
    ``sliced`` (counts) are counted per slice apart from the others (:func:`split_slices`)."""
    assert plan.tallies is not None
    if any(plan.tallies[plan.names[stat]].kind != "count" for stat in sliced):
        sliced = ()
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
    names = dict(plan.names)
    slices: tuple[str, ...] = ()
    if sliced:
        masks = {alias: mask for alias, kind, mask in parts if kind == "count"}
        twins = {plan.names[stat]: f"s{plan.names[stat]}" for stat in sliced}
        names.update({stat: twins[plan.names[stat]] for stat in sliced})
        used = {*names.values(), CHECKS}
        parts = [part for part in parts if part[0] in used]
        parts += [(twin, "sliced", masks[alias]) for alias, twin in twins.items()]
        slices = tuple(key.get_name() for key in keys[1:])
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
        names,
        slices,
    )


def split_slices(sample: int) -> bool:
    """Whether ``sample`` distinct slice values are enough groups to count the sliced
    statistics in a grouping set of their own."""
    return sample >= MANY_GROUPS


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
    ``__binned``). Split (``coded.slices``): the code's set has no slices, and a (span,
    slices) set counts the rows with each sliced statistic's bits, marked ``__sliced``."""
    bins = [bin_column(i) for i in range(len(coded.binned))]
    slices = [_quoted(s) for s in coded.slices]
    keys = [_quoted(k) for k in coded.keys]
    summed = [str(what) for _, kind, what in coded.parts if kind == "sum"]
    flags = [(alias, what) for alias, kind, what in coded.parts if kind == "sliced"]
    inner = [*keys, CODE, *bins, f"COUNT(*) AS {COUNT}"]
    if any(kind == "max" for _, kind, _ in coded.parts):
        inner.append(f"MAX({MINUTE}) AS {LAST}")
    inner += [f"SUM({s}) AS {s}" for s in summed]
    inner += [f"{_counted(what)} AS {_quoted('__f' + alias)}" for alias, what in flags]
    counted = [k for k in keys if k not in slices] if slices else keys
    sets = [f"({', '.join([*counted, CODE])})"]
    if slices:
        sets.append(f"({', '.join(keys)})")
        inner.append(f"GROUPING({slices[0]}) = 0 AS {SLICED}")
    sets += [f"({_quoted(BUCKET)}, {b})" for b in bins]
    grouped = f"GROUPING SETS ({', '.join(sets)})" if len(sets) > 1 else sets[0][1:-1]
    read = f"SELECT {', '.join(inner)} FROM ({projection}) AS __records GROUP BY {grouped}"
    split = bool(slices)
    outer = [*keys, *(_decoded(alias, kind, what, split) for alias, kind, what in coded.parts)]
    by = list(keys)
    kept = []
    if bins:
        binned = f"{CODE} IS NULL" + (f" AND NOT {SLICED}" if split else "")
        outer += [f"{binned} AS {BINNED}", *bins, f"SUM({COUNT}) AS {ROWS}"]
        by += [BINNED, *bins]
        kept = [f"{CODE} IS NOT NULL", *(f"{b} IS NOT NULL" for b in bins)]
        if split:
            kept.append(SLICED)
    where = f" WHERE {' OR '.join(kept)}" if kept else ""
    return f"SELECT {', '.join(outer)} FROM ({read}) AS __coded{where} GROUP BY {', '.join(by)}"


def _counted(mask: int | str | None) -> str:
    """The rows having all of ``mask``'s bits (``count_if`` takes 5 % less of a scan with
    thousands of slices than a sum of casts)."""
    if mask is None:
        return "COUNT(*)"
    return f"count_if(({CODE} & {mask}) = {mask})"


def _decoded(alias: str, kind: str, what: int | str | None, split: bool = False) -> str:
    """One statistic of a key's rows. Split, a (span, slices) row and a (span, code) row of
    records without slice values share their key: each statistic reads its own set's rows."""
    mine = f"CASE WHEN NOT {SLICED} THEN {{}} END" if split else "{}"
    if kind == "sliced":
        total = f"COALESCE(SUM(CASE WHEN {SLICED} THEN {_quoted('__f' + alias)} END), 0)"
        return f"CAST({total} AS DOUBLE) AS {_quoted(alias)}"
    if kind == "sum":
        return f"CAST(COALESCE(SUM({mine.format(what)}), 0) AS DOUBLE) AS {_quoted(alias)}"
    column = COUNT if kind == "count" else LAST
    value = (
        mine.format(column)
        if what is None
        else f"CASE WHEN ({CODE} & {what}) = {what} THEN {column} END"
    )
    if kind == "max":  # 0 where none, as the rollup has it: no null for pyarrow to fill
        return f"CAST(COALESCE(MAX({value}), 0) AS DOUBLE) AS {_quoted(alias)}"
    total = f"COALESCE(SUM({value}), 0)"
    return f"CAST({total} AS {'BIGINT' if alias == CHECKS else 'DOUBLE'}) AS {_quoted(alias)}"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
