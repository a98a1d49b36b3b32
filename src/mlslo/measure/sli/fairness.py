"""Fairness: the gap (or ratio) of a per-group rate, between groups or against a reference.

Rates per group come from that group's confusion counts: true positive rate (positives in the
denominator), false positive rate (negatives) and selection rate (all predictions). A group
whose denominator is empty has an *undefined* rate: the SLI then has no value and says which
group lacks what, because treating the rate as 0 would fake a large gap from one tiny group.
Groups smaller than ``min_group_size`` are listed but left out of the comparison.

A record whose attribute is null or empty belongs to no group (``missing: exclude``): one such
record would otherwise form a group of its own and decide the gap. It is counted in
``unattributed`` instead; ``missing: group`` gathers those records in the group ``(missing)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mlslo.measure.sli.base import Measurement, divide
from mlslo.spec import FairnessSLI
from mlslo.stats.confidence import Interval, clamp, katz_ratio, newcombe, wilson
from mlslo.stats.timeline import WindowStats

_RATES = {
    "true_positive_rate_difference": ("true_positive_rate",),
    "false_positive_rate_difference": ("false_positive_rate",),
    "equalized_odds_difference": ("true_positive_rate", "false_positive_rate"),
    "demographic_parity_difference": ("selection_rate",),
    "disparate_impact_ratio": ("selection_rate",),
}
_DENOMINATOR_WORD = {
    "true_positive_rate": "positive labels",
    "false_positive_rate": "negative labels",
    "selection_rate": "predictions",
}


MISSING_GROUP = "(missing)"
"""The group of records without an attribute value, with ``missing: group``."""


def attributed(sli: FairnessSLI, stats: WindowStats) -> tuple[WindowStats, float]:
    """The window's groups as the SLI compares them, and the predictions left out because an
    attribute was null or empty (``missing: exclude``; ``error`` refuses such records before
    they are counted, so any left are treated alike). With ``missing: group`` their values
    become ``(missing)``, null and empty together."""
    groups = stats.groups or []
    sums = stats.group_sums or {}
    keys: dict[tuple[Any, ...], int] = {}
    target = np.full(len(groups), -1, dtype=np.int64)
    for index, group in enumerate(groups):
        blank = [value is None or value == "" for value in group]
        if any(blank):
            if sli.missing != "group":
                continue
            group = tuple(MISSING_GROUP if b else v for v, b in zip(group, blank, strict=True))
        target[index] = keys.setdefault(tuple(group), len(keys))
    kept = target >= 0
    left_out = sums.get("predictions")
    unattributed = float(np.sum(left_out[~kept])) if left_out is not None else 0.0
    order = sorted(keys, key=lambda g: tuple((v == MISSING_GROUP, str(v)) for v in g))
    rank = {group: index for index, group in enumerate(order)}
    position = np.array([rank[g] for g in keys], dtype=np.int64)
    merged = {
        name: np.bincount(
            position[target[kept]], weights=values[kept], minlength=len(order)
        ).astype(np.float64)
        for name, values in sums.items()
        if len(values) == len(groups)
    }
    return replace(stats, group_sums=merged, groups=order), unattributed


@dataclass(frozen=True)
class GroupRate:
    """One group's rate: ``hits / size`` (None when ``size`` is 0)."""

    group: tuple[Any, ...]
    hits: float
    size: float

    @property
    def value(self) -> float | None:
        return divide(self.hits, self.size)


def rates(rate: str, stats: WindowStats) -> list[GroupRate]:
    """Per-group counts for one rate, for every group seen in the window."""
    groups = stats.groups or []
    sums = stats.group_sums or {}
    zeros = np.zeros(len(groups))

    def get(name: str) -> Any:
        return sums.get(name, zeros)

    tp, fp, fn, tn = get("tp"), get("fp"), get("fn"), get("tn")
    if rate == "true_positive_rate":
        hits, size = tp, tp + fn
    elif rate == "false_positive_rate":
        hits, size = fp, fp + tn
    else:
        hits, size = get("selected"), get("predictions")
    present = get("predictions") > 0
    return [
        GroupRate(tuple(groups[i]), float(hits[i]), float(size[i]))
        for i in range(len(groups))
        if present[i]
    ]


@dataclass(frozen=True)
class _Comparison:
    value: float | None
    ci: Interval | None
    reason: str | None
    extremes: tuple[GroupRate, GroupRate] | None


def _compare(sli: FairnessSLI, rate: str, group_rates: Sequence[GroupRate]) -> _Comparison:
    ratio = sli.metric == "disparate_impact_ratio"
    undefined = [g for g in group_rates if g.size <= 0]
    if undefined and sli.min_group_size <= 1:
        names = ", ".join(_label(sli, g.group) for g in undefined)
        return _Comparison(
            None,
            None,
            f"{rate.replace('_', ' ')} is undefined for {names} "
            f"(no {_DENOMINATOR_WORD[rate]} in the window)",
            None,
        )
    usable = [g for g in group_rates if g.size >= sli.min_group_size and g.size > 0]
    reference = sli.reference
    if reference is not None:
        ref = next((g for g in usable if g.group == reference), None)
        if ref is None:
            return _Comparison(
                None,
                None,
                f"reference group {_label(sli, reference)} has no "
                f"usable {_DENOMINATOR_WORD[rate]} in the window",
                None,
            )
        others = [g for g in usable if g.group != reference]
        if not others:
            return _Comparison(None, None, "no other group to compare with the reference", None)
        if ratio:
            worst = min(others, key=lambda g: _symmetric_ratio(g, ref))
            low, high = (worst, ref) if _v(worst) <= _v(ref) else (ref, worst)
            return _Comparison(
                _symmetric_ratio(worst, ref), _ratio_ci(low, high), None, (worst, ref)
            )
        worst = max(others, key=lambda g: abs(_v(g) - _v(ref)))
        gap = abs(_v(worst) - _v(ref))
        hi, lo = (worst, ref) if _v(worst) >= _v(ref) else (ref, worst)
        return _Comparison(gap, _gap_ci(hi, lo), None, (hi, lo))
    if len(usable) < 2:
        return _Comparison(
            None, None, f"fewer than two groups with {_DENOMINATOR_WORD[rate]} in the window", None
        )
    ordered = sorted(usable, key=_v)
    low, high = ordered[0], ordered[-1]
    if ratio:
        if _v(high) <= 0:
            return _Comparison(None, None, "no group was selected, so the ratio is undefined", None)
        return _Comparison(_v(low) / _v(high), _ratio_ci(low, high), None, (low, high))
    return _Comparison(_v(high) - _v(low), _gap_ci(high, low), None, (high, low))


def _gap_ci(high: GroupRate, low: GroupRate) -> Interval | None:
    """Newcombe's interval of the difference, floored at 0: a gap is never negative."""
    return clamp(newcombe(high.hits, high.size, low.hits, low.size), 0.0, math.inf)


def _v(g: GroupRate) -> float:
    return g.hits / g.size


def _symmetric_ratio(g: GroupRate, ref: GroupRate) -> float:
    a, b = _v(g), _v(ref)
    if a == b:
        return 1.0
    if a <= 0 or b <= 0:
        return 0.0
    return min(a / b, b / a)


def _ratio_ci(a: GroupRate, b: GroupRate) -> Interval | None:
    return clamp(katz_ratio(a.hits, a.size, b.hits, b.size), 0.0, math.inf)


def _label(sli: FairnessSLI, group: Sequence[Any]) -> str:
    return "group " + ", ".join(f"{a}={v}" for a, v in zip(sli.attributes, group, strict=True))


def measure(sli: FairnessSLI, stats: WindowStats) -> Measurement:
    stats, unattributed = attributed(sli, stats)
    per_rate = {rate: rates(rate, stats) for rate in _RATES[sli.metric]}
    first = next(iter(per_rate.values()))
    predictions = sum(g.size for g in rates("selection_rate", stats))
    labelled = (
        float(sum(float(np.sum(stats.group_sums.get(k, 0))) for k in ("tp", "fp", "fn", "tn")))
        if stats.group_sums
        else 0.0
    )
    coverage = divide(labelled, predictions)
    n = int(labelled if sli.needs_labels else predictions)
    detail = {"groups": _group_detail(sli, per_rate), "unattributed": int(unattributed)}
    if not first:
        reason = "no predictions in the window"
        if unattributed:
            reason = f"no prediction in the window has its {', '.join(sli.attributes)}"
        return Measurement(None, 0, label_coverage=coverage, detail=detail, reason=reason)
    comparisons = {rate: _compare(sli, rate, group_rates) for rate, group_rates in per_rate.items()}
    failed = [c.reason for c in comparisons.values() if c.value is None]
    if failed:
        return Measurement(
            None,
            n,
            label_coverage=coverage,
            reason="; ".join(r for r in failed if r),
            detail=detail,
        )
    worst_rate = max(comparisons, key=lambda r: comparisons[r].value or 0.0)
    chosen = comparisons[worst_rate]
    extra: dict[str, Any] = {"rate": worst_rate}
    if chosen.extremes is not None:
        extra["between"] = [
            _group_dict(sli, chosen.extremes[0].group),
            _group_dict(sli, chosen.extremes[1].group),
        ]
    if len(comparisons) > 1:
        extra["components"] = {r: c.value for r, c in comparisons.items()}
    return Measurement(
        chosen.value, n, chosen.ci, label_coverage=coverage, detail={**detail, **extra}
    )


def _group_dict(sli: FairnessSLI, group: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(sli.attributes, group, strict=True))


def _group_detail(sli: FairnessSLI, per_rate: dict[str, list[GroupRate]]) -> list[dict[str, Any]]:
    by_group: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rate, group_rates in per_rate.items():
        for g in group_rates:
            entry = by_group.setdefault(g.group, {"group": _group_dict(sli, g.group), "rates": {}})
            excluded = None
            if g.size <= 0:
                excluded = f"undefined: no {_DENOMINATOR_WORD[rate]}"
            elif g.size < sli.min_group_size:
                excluded = f"left out: {int(g.size)} {_DENOMINATOR_WORD[rate]} < min_group_size"
            entry["rates"][rate] = {
                "value": g.value,
                "n": int(g.size),
                "ci": wilson(g.hits, g.size),
                "excluded": excluded,
            }
    return list(by_group.values())
