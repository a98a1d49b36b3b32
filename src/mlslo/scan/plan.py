"""The plan of a scan: the aggregates of every SLO's sufficient statistics (identical
statistics of different SLOs share one aggregate) and a counter of rows failing a value
check."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import ibis

from mlslo.inputs.checks import binary_fields, missing_message, not_binary_message
from mlslo.inputs.fields import column_for
from mlslo.scan.expressions import (
    Expr,
    both,
    count,
    count_if,
    is_positive,
    lag_micros,
    literal,
    not_binary,
    skewed,
    slo_filter,
    sum_where,
)
from mlslo.scan.prepare import Check
from mlslo.spec import (
    AccuracySLO,
    AnySLO,
    AvailabilitySLO,
    FairnessSLO,
    FreshnessSLO,
    LatencySLO,
    Spec,
)
from mlslo.stats.rollup import (
    CHECKS,
    LAST,
    stat_column,
)


@dataclass(frozen=True)
class Tally:
    """What one aggregate computes, in parts a scan can rearrange: the rows meeting
    ``condition`` (every row when None), the sum of ``value`` over them, or its largest
    value (``kind`` ``count``, ``sum``, ``max``)."""

    kind: Literal["count", "sum", "max"]
    condition: Expr | None
    value: Expr | None = None

    def key(self) -> tuple[Any, ...]:
        return (
            self.kind,
            None if self.condition is None else self.condition.op(),
            None if self.value is None else self.value.op(),
        )

    def aggregate(self, t: Expr) -> Expr:
        if self.kind == "count":
            return count(t, self.condition)
        assert self.value is not None
        if self.kind == "sum":
            return sum_where(self.value, self.condition)
        return last_where(self.value, self.condition)


@dataclass
class Plan:
    """``aggregates`` by alias, and what each computes (``tallies``); ``names`` maps each
    statistic column to the alias that computes it (identical statistics of different SLOs
    share one aggregate). The ``x`` aggregate counts rows failing any of ``checks``."""

    aggregates: dict[str, Expr]
    names: dict[str, str]
    checks: list[Check]
    tallies: dict[str, Tally] | None = None
    shared: dict[tuple[Any, ...], str] = dataclasses.field(default_factory=dict, repr=False)

    def add(self, t: Expr, stat: str, tally: Tally) -> None:
        """Count ``stat`` with ``tally``, sharing the aggregate of an identical one."""
        assert self.tallies is not None
        alias = self.shared.get(tally.key())
        if alias is None:
            alias = self.shared[tally.key()] = f"c{len(self.aggregates)}"
            self.aggregates[alias] = tally.aggregate(t).cast("float64")
            self.tallies[alias] = tally
        self.names[stat] = alias


# --- the plan: aggregates per SLO -------------------------------------------------------------


def classes_of(spec: Spec, table: Expr) -> dict[str, list[Any]]:
    """The classes of multiclass SLOs (from the spec, or the values seen in the window)."""
    out: dict[str, list[Any]] = {}
    for slo in spec.slos:
        if isinstance(slo, AccuracySLO) and slo.sli.multiclass:
            if slo.sli.classes is not None:
                out[slo.name] = list(slo.sli.classes)
                continue
            seen = table.filter(table.ts.notnull())
            values = (
                seen.select(v=seen.prediction)
                .union(seen.filter(seen.label.notnull()).select(v=seen.label))
                .distinct()
            )
            found = values.to_pyarrow()["v"].to_pylist()
            out[slo.name] = sorted((v for v in found if v is not None), key=str)
    return out


def build_plan(
    spec: Spec,
    table: Expr,
    classes: Mapping[str, list[Any]],
    checks: list[Check],
    *,
    with_checks: bool = True,
) -> Plan:
    """The aggregates of every SLO's statistics, and (``with_checks``) a count ``x<i>`` of the
    rows failing each value check."""
    plan = Plan({}, {}, [], {})
    plan_checks = list(checks)
    for slo in spec.slos:
        where = slo_filter(table, slo)
        for stat, tally in _statistics(slo, table, where, classes.get(slo.name)):
            plan.add(table, stat_column(slo.name, stat), tally)
        if with_checks:
            plan_checks.extend(value_checks(slo, table))
            plan_checks.extend(class_checks(spec, slo, table))
    if not with_checks:
        return plan
    unique_checks: dict[str, Check] = {}
    for check in plan_checks:
        unique_checks.setdefault(f"{check.column}:{check.message}", check)
    plan.checks = list(unique_checks.values())
    counted = failing_rows(table, plan.checks)
    if counted is not None:
        plan.aggregates[CHECKS] = count_if(counted)
        assert plan.tallies is not None
        plan.tallies[CHECKS] = Tally("count", counted)
    return plan


def last_events(spec: Spec, table: Expr, minute: Expr) -> dict[str, Tally]:
    """Per SLO, the last bucket in which its events were counted, as ``last:<stat>`` of the
    statistic counting them: a scan that sums counts between edges keeps this instead of a
    row per bucket (how long ago the last event came decides whether an SLO is absent)."""
    out: dict[str, Expr] = {}
    for slo in spec.slos:
        found = _event(slo, table)
        if found is None:
            continue
        stat, value = found
        condition = both(slo_filter(table, slo), value.notnull())
        out[stat_column(slo.name, LAST + stat)] = Tally("max", condition, minute)
    return out


def last_where(minute: Expr, condition: Expr | None) -> Expr:
    """The largest ``minute`` of the rows meeting ``condition``: a CASE inside the max, which
    DuckDB computes several times faster than a filtered aggregate."""
    if condition is None:
        return minute.max().cast("float64")
    return ibis.ifelse(condition, minute, ibis.null(minute.type())).max().cast("float64")


def _event(slo: AnySLO, t: Expr) -> tuple[str, Expr] | None:
    """The statistic that counts an SLO's events and the value it counts when known."""
    if isinstance(slo, AvailabilitySLO):
        return ("total", t.status) if "status" in t.columns else None
    if isinstance(slo, LatencySLO):
        return "total", t.latency_ms
    if isinstance(slo, FreshnessSLO):
        return "total", lag_micros(t)
    return "predictions", t.prediction


def failing_rows(table: Expr, checks: Sequence[Check]) -> Expr | None:
    """Rows failing any check that the null bucket does not already show."""
    failing = None
    for check in checks:
        if not check.in_bucket:
            condition = check.predicate(table)
            failing = condition if failing is None else failing | condition
    return failing


def _count(*conditions: Expr | None) -> Tally:
    return Tally("count", both(*conditions))


def _known(value: Expr, where: Expr | None) -> Tally:
    return Tally("count", both(where, value.notnull()))


def _sum(value: Expr, *conditions: Expr | None) -> Tally:
    return Tally("sum", both(*conditions), value)


def _statistics(
    slo: AnySLO, t: Expr, where: Expr | None, classes: Sequence[Any] | None
) -> list[tuple[str, Tally]]:
    if isinstance(slo, AvailabilitySLO):
        if "status" not in t.columns:
            return []
        ok = t.status if t.status.type().is_boolean() else t.status == "ok"
        return [("total", _known(t.status, where)), ("ok", _count(where, ok))]
    if isinstance(slo, LatencySLO):
        total = ("total", _known(t.latency_ms, where))
        if slo.sli.latency_threshold is None:
            return [total]
        limit = slo.sli.latency_threshold.total_seconds() * 1000
        return [total, ("good", _count(where, t.latency_ms <= limit))]
    if isinstance(slo, FreshnessSLO):
        lag = lag_micros(t)
        skew = skewed(lag, round(slo.sli.skew_tolerance.total_seconds() * 1_000_000))
        out = [("total", _known(lag, where)), ("clock_skew", _count(where, skew))]
        if slo.sli.lag_threshold is None:
            return out
        limit = round(slo.sli.lag_threshold.total_seconds() * 1_000_000)
        return [*out, ("good", _count(where, lag <= limit, ~skew))]
    if isinstance(slo, AccuracySLO):
        return _accuracy(slo, t, where, classes)
    if isinstance(slo, FairnessSLO):
        return _fairness(slo, t, where)
    raise TypeError(type(slo).__name__)


def _confusion(where: Expr | None, positive: Expr, actual: Expr) -> list[tuple[str, Tally]]:
    return [
        ("tp", _count(where, positive, actual)),
        ("fp", _count(where, positive, ~actual)),
        ("fn", _count(where, ~positive, actual)),
        ("tn", _count(where, ~positive, ~actual)),
    ]


def _accuracy(
    slo: AccuracySLO, t: Expr, where: Expr | None, classes: Sequence[Any] | None
) -> list[tuple[str, Tally]]:
    sli = slo.sli
    labelled = t.label.notnull()
    out = [("predictions", _known(t.prediction, where))]
    if sli.regression or sli.multiclass:
        out.append(("labelled", _count(where, t.prediction.notnull(), labelled)))
    if sli.regression:
        actual = t.label.cast("float64")
        error = t.prediction.cast("float64") - actual
        nonzero = both(where, actual != 0, t.prediction.notnull())
        ape = error.abs() / actual.abs()
        return [
            *out,
            ("sae", _sum(error.abs(), where)),
            ("sse", _sum(error * error, where)),
            ("sse2", _sum(error * error * error * error, where)),
            ("n_ape", _count(nonzero)),
            ("sape", _sum(ape, nonzero)),
            ("sape2", _sum(ape * ape, nonzero)),
        ]
    if sli.multiclass:
        assert classes is not None
        out.append(("correct", _count(where, t.prediction == t.label)))
        for index, value in enumerate(classes):
            lp = t.prediction == literal(t.prediction.type(), value)
            ll = t.label == literal(t.label.type(), value)
            out += [
                (f"tp.{index}", _count(where, lp, ll)),
                (f"pred.{index}", _count(where, lp, labelled)),
                (f"true.{index}", _count(where, t.prediction.notnull(), ll)),
            ]
        return out
    positive = is_positive(t.prediction, sli.positive_label)
    if sli.metric == "accuracy":  # exact matches, on any label type
        out += [
            ("labelled", _count(where, t.prediction.notnull(), labelled)),
            ("correct", _count(where, t.prediction == t.label)),
        ]
    else:
        out += _confusion(where, positive, is_positive(t.label, sli.positive_label))
    if sli.estimate == "cbpe":
        pending = both(where, t.prediction.notnull(), t.label.isnull(), t.score.notnull())
        out += [
            ("unlabelled", _count(pending)),
            ("etp", _sum(t.score, pending, positive)),
            ("efp", _sum(1 - t.score, pending, positive)),
            ("efn", _sum(t.score, pending, ~positive)),
            ("etn", _sum(1 - t.score, pending, ~positive)),
        ]
    return out


def _fairness(slo: FairnessSLO, t: Expr, where: Expr | None) -> list[tuple[str, Tally]]:
    sli = slo.sli
    positive = is_positive(t.prediction, sli.positive_label)
    out = [("predictions", _known(t.prediction, where))]
    if not sli.needs_labels:
        out.append(("selected", _count(where, positive)))
    if "label" not in t.columns:
        return out
    return [*out, *_confusion(where, positive, is_positive(t.label, sli.positive_label))]


def value_checks(slo: AnySLO, t: Expr) -> list[Check]:
    out = []
    if isinstance(slo, AvailabilitySLO) and "status" in t.columns and t.status.type().is_string():
        out.append(
            Check(
                "status",
                lambda x: x.status.isnull() | ~x.status.isin(["ok", "error"]),
                "'{value}' is not a status; use 'ok' or 'error'",
                "status",
            )
        )
    if isinstance(slo, LatencySLO):
        out.append(
            Check(
                "latency_ms",
                lambda x: x.latency_ms.isnan() | (x.latency_ms < 0),
                "{value} is not a latency; use milliseconds >= 0 (or leave it empty when unknown)",
                "latency_ms",
            )
        )
    if isinstance(slo, AccuracySLO) and slo.sli.estimate == "cbpe":
        out.append(
            Check(
                "score",
                lambda x: x.score.isnan() | (x.score < 0) | (x.score > 1),
                "{value} is not a probability; scores must lie in [0, 1]",
                "score",
            )
        )
    if isinstance(slo, AccuracySLO) and slo.sli.regression:
        for field in ("prediction", "label"):
            out.append(Check(field, _not_finite(field), "{value} is not a finite number", field))
    return out


def class_checks(spec: Spec, slo: AnySLO, t: Expr) -> list[Check]:
    """Checks of the values an SLO's classes and groups rest on: without ``positive_label``
    every class must be 0/1; with ``missing: error`` every record needs its attributes."""
    out = []
    fields = binary_fields(slo, has_label="label" in t.columns)
    for field in fields:
        if not_binary(t[field]) is None:
            continue
        out.append(
            Check(
                column_for(spec, field),
                _under(slo, _outside_binary(field)),
                not_binary_message(slo, "{value}", "{classes}"),
                field,
                listing=_classes_seen(slo, fields),
                field=field,
            )
        )
    if isinstance(slo, FairnessSLO) and slo.sli.missing == "error":
        for attribute in slo.sli.attributes:
            message = missing_message(slo, attribute).replace("{", "{{").replace("}", "}}")
            out.append(Check(attribute, _under(slo, _empty(attribute)), message, field=attribute))
    return out


def _under(slo: AnySLO, predicate: Callable[[Expr], Expr]) -> Callable[[Expr], Expr]:
    """``predicate`` on the rows the SLO reads (its ``filter:``)."""

    def check(t: Expr) -> Expr:
        return both(predicate(t), slo_filter(t, slo))

    return check


def _outside_binary(field: str) -> Callable[[Expr], Expr]:
    def predicate(t: Expr) -> Expr:
        return not_binary(t[field])

    return predicate


def _empty(field: str) -> Callable[[Expr], Expr]:
    def predicate(t: Expr) -> Expr:
        column = t[field]
        return (column.isnull() | (column == "")) if column.type().is_string() else column.isnull()

    return predicate


def _classes_seen(slo: AnySLO, fields: Sequence[str]) -> Callable[[Expr], Expr]:
    """The distinct classes of ``fields`` among the rows the SLO reads, as column ``v``."""

    def listing(t: Expr) -> Expr:
        where = slo_filter(t, slo)
        rows = t if where is None else t.filter(where)
        parts = [rows.filter(rows[f].notnull()).select(v=rows[f]) for f in fields]
        union = parts[0]
        for part in parts[1:]:
            union = union.union(part)
        return union.distinct()

    return listing


def _not_finite(field: str) -> Callable[[Expr], Expr]:
    def predicate(t: Expr) -> Expr:
        value = t[field].cast("float64")
        return value.isnan() | value.isinf()

    return predicate
