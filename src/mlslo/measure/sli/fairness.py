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
import numpy.typing as npt

from mlslo.measure.sli.base import Measurement, divide
from mlslo.spec import FairnessSLI
from mlslo.stats.confidence import Interval, clamp, katz_ratio, newcombe, wilson_arrays
from mlslo.stats.rollup import Array
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
    target, order = _regrouping(groups, sli.missing == "group")
    kept = target >= 0
    left_out = sums.get("predictions")
    unattributed = float(np.sum(left_out[~kept])) if left_out is not None else 0.0
    merged = {
        name: np.bincount(target[kept], weights=values[kept], minlength=len(order)).astype(
            np.float64
        )
        for name, values in sums.items()
        if len(values) == len(groups)
    }
    return replace(stats, group_sums=merged, groups=order), unattributed


_Regrouping = tuple[npt.NDArray[np.int64], list[tuple[Any, ...]]]
_recent: list[tuple[Sequence[tuple[Any, ...]], int, bool, _Regrouping]] = []
RECENT_REGROUPINGS = 8


def _regrouping(groups: Sequence[tuple[Any, ...]], gather_missing: bool) -> _Regrouping:
    """Where each group's sums go (-1: left out) and the groups compared, in their order.
    Every window of a timeline shares one list of groups, so this is worked out once per
    list (recognised by identity, not by comparing thousands of tuples)."""
    for known, size, gather, found in list(_recent):
        if known is groups and size == len(groups) and gather == gather_missing:
            return found
    found = _regroup(groups, gather_missing)
    _recent.insert(0, (groups, len(groups), gather_missing, found))
    del _recent[RECENT_REGROUPINGS:]
    return found


def _regroup(groups: Sequence[tuple[Any, ...]], gather_missing: bool) -> _Regrouping:
    keys: dict[tuple[Any, ...], int] = {}
    first = np.full(len(groups), -1, dtype=np.int64)
    for index, group in enumerate(groups):
        blank = [value is None or value == "" for value in group]
        if any(blank):
            if not gather_missing:
                continue
            group = tuple(MISSING_GROUP if b else v for v, b in zip(group, blank, strict=True))
        first[index] = keys.setdefault(tuple(group), len(keys))
    order = sorted(keys, key=lambda g: tuple((v == MISSING_GROUP, str(v)) for v in g))
    rank = {group: index for index, group in enumerate(order)}
    position = np.array([rank[g] for g in keys], dtype=np.int64)
    target = np.where(first >= 0, position[np.maximum(first, 0)] if len(keys) else -1, -1)
    target.setflags(write=False)
    return target, order


@dataclass(frozen=True)
class GroupRate:
    """One group's rate: ``hits / size`` (None when ``size`` is 0)."""

    group: tuple[Any, ...]
    hits: float
    size: float

    @property
    def value(self) -> float | None:
        return divide(self.hits, self.size)


@dataclass(frozen=True)
class _Rates:
    """One rate for every group seen in the window (``predictions > 0``), as arrays."""

    groups: Sequence[tuple[Any, ...]]
    index: npt.NDArray[np.int64]
    hits: Array
    size: Array

    def __len__(self) -> int:
        return int(self.index.size)

    def at(self, i: int) -> GroupRate:
        return GroupRate(
            tuple(self.groups[int(self.index[i])]), float(self.hits[i]), float(self.size[i])
        )


def rates(rate: str, stats: WindowStats) -> _Rates:
    """Per-group counts for one rate, for every group seen in the window."""
    hits, size = _counts(rate, stats)
    sums = stats.group_sums or {}
    predictions = sums.get("predictions")
    if predictions is None:
        present = np.zeros(0, dtype=np.int64)
    else:
        present = np.flatnonzero(np.asarray(predictions) > 0)
    return _Rates(stats.groups or [], present, hits[present], size[present])


@dataclass(frozen=True)
class _Comparison:
    value: float | None
    ci: Interval | None
    reason: str | None
    extremes: tuple[GroupRate, GroupRate] | None


def _compare(sli: FairnessSLI, rate: str, group_rates: _Rates) -> _Comparison:
    """The gap (or ratio) between the extreme groups (or the worst group and the reference),
    found with array operations; the same groups a comparison one by one would pick (the
    first of equal values, the last of equal maxima for the highest rate)."""
    ratio = sli.metric == "disparate_impact_ratio"
    size, hits = group_rates.size, group_rates.hits
    undefined = np.flatnonzero(size <= 0)
    if undefined.size and sli.min_group_size <= 1:
        names = ", ".join(_label(sli, group_rates.at(int(i)).group) for i in undefined)
        return _Comparison(
            None,
            None,
            f"{rate.replace('_', ' ')} is undefined for {names} "
            f"(no {_DENOMINATOR_WORD[rate]} in the window)",
            None,
        )
    usable = np.flatnonzero((size >= sli.min_group_size) & (size > 0))
    values = hits[usable] / size[usable]
    reference = sli.reference
    if reference is not None:
        found = [
            k
            for k, i in enumerate(usable.tolist())
            if tuple(group_rates.groups[int(group_rates.index[i])]) == tuple(reference)
        ]
        if not found:
            return _Comparison(
                None,
                None,
                f"reference group {_label(sli, reference)} has no "
                f"usable {_DENOMINATOR_WORD[rate]} in the window",
                None,
            )
        ref_at = found[0]
        ref = group_rates.at(int(usable[ref_at]))
        others = np.delete(np.arange(usable.size), ref_at)
        if not others.size:
            return _Comparison(None, None, "no other group to compare with the reference", None)
        ref_value = float(values[ref_at])
        if ratio:
            scores = _symmetric_ratios(values[others], ref_value)
            worst = group_rates.at(int(usable[others[int(np.argmin(scores))]]))
            low, high = (worst, ref) if _v(worst) <= _v(ref) else (ref, worst)
            return _Comparison(
                _symmetric_ratio(worst, ref), _ratio_ci(low, high), None, (worst, ref)
            )
        distance = np.abs(values[others] - ref_value)
        worst = group_rates.at(int(usable[others[int(np.argmax(distance))]]))
        gap = abs(_v(worst) - _v(ref))
        hi, lo = (worst, ref) if _v(worst) >= _v(ref) else (ref, worst)
        return _Comparison(gap, _gap_ci(hi, lo), None, (hi, lo))
    if usable.size < 2:
        return _Comparison(
            None, None, f"fewer than two groups with {_DENOMINATOR_WORD[rate]} in the window", None
        )
    low = group_rates.at(int(usable[int(np.argmin(values))]))
    high = group_rates.at(int(usable[values.size - 1 - int(np.argmax(values[::-1]))]))
    if ratio:
        if _v(high) <= 0:
            return _Comparison(None, None, "no group was selected, so the ratio is undefined", None)
        return _Comparison(_v(low) / _v(high), _ratio_ci(low, high), None, (low, high))
    return _Comparison(_v(high) - _v(low), _gap_ci(high, low), None, (high, low))


def _symmetric_ratios(values: Array, ref: float) -> Array:
    """:func:`_symmetric_ratio` of many rates against one."""
    with np.errstate(divide="ignore", invalid="ignore"):
        smaller = np.minimum(values / ref, ref / values)
    out = np.where((values <= 0) | (ref <= 0), 0.0, smaller)
    return np.where(values == ref, 1.0, out)


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


def measure(sli: FairnessSLI, stats: WindowStats, *, detail: bool = True) -> Measurement:
    """The gap (or ratio) of the SLI's rate over one window; with ``detail``, every group's
    rate, size and interval in ``detail["groups"]``."""
    stats, unattributed = attributed(sli, stats)
    per_rate = {rate: rates(rate, stats) for rate in _RATES[sli.metric]}
    first = next(iter(per_rate.values()))
    predictions = float(np.sum(rates("selection_rate", stats).size))
    labelled = (
        float(sum(float(np.sum(stats.group_sums.get(k, 0))) for k in ("tp", "fp", "fn", "tn")))
        if stats.group_sums
        else 0.0
    )
    coverage = divide(labelled, predictions)
    n = int(labelled if sli.needs_labels else predictions)
    shown: dict[str, Any] = {"unattributed": int(unattributed)}
    if detail:
        shown = {"groups": _group_detail(sli, stats), **shown}
    detail_of = shown
    if not first:
        reason = "no predictions in the window"
        if unattributed:
            reason = f"no prediction in the window has its {', '.join(sli.attributes)}"
        return Measurement(None, 0, label_coverage=coverage, detail=detail_of, reason=reason)
    comparisons = {rate: _compare(sli, rate, group_rates) for rate, group_rates in per_rate.items()}
    failed = [c.reason for c in comparisons.values() if c.value is None]
    if failed:
        return Measurement(
            None,
            n,
            label_coverage=coverage,
            reason="; ".join(r for r in failed if r),
            detail=detail_of,
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
        chosen.value, n, chosen.ci, label_coverage=coverage, detail={**detail_of, **extra}
    )


def _group_dict(sli: FairnessSLI, group: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(sli.attributes, group, strict=True))


def _counts(rate: str, stats: WindowStats) -> tuple[Array, Array]:
    """Every group's hits and size for one rate, as arrays in the order of ``stats.groups``."""
    sums = stats.group_sums or {}
    zeros = np.zeros(len(stats.groups or []))

    def get(name: str) -> Array:
        return np.asarray(sums.get(name, zeros), dtype=np.float64)

    if rate == "true_positive_rate":
        return get("tp"), get("tp") + get("fn")
    if rate == "false_positive_rate":
        return get("fp"), get("fp") + get("tn")
    return get("selected"), get("predictions")


def _group_detail(sli: FairnessSLI, stats: WindowStats) -> list[dict[str, Any]]:
    """Each group seen in the window with its rates: value, size, Wilson interval and why it
    is left out of the comparison (if it is), computed for all groups at once."""
    groups = stats.groups or []
    predictions = (stats.group_sums or {}).get("predictions")
    if predictions is None or not len(groups):
        return []
    present = np.flatnonzero(np.asarray(predictions) > 0)
    entries = [{"group": _group_dict(sli, groups[i]), "rates": {}} for i in present.tolist()]
    for rate in _RATES[sli.metric]:
        hits, size = (values[present] for values in _counts(rate, stats))
        low, high = wilson_arrays(hits, size)
        word = _DENOMINATOR_WORD[rate]
        for entry, h, s, lo, hi in zip(
            entries, hits.tolist(), size.tolist(), low.tolist(), high.tolist(), strict=True
        ):
            excluded = None
            if s <= 0:
                excluded = f"undefined: no {word}"
            elif s < sli.min_group_size:
                excluded = f"left out: {int(s)} {word} < min_group_size"
            entry["rates"][rate] = {
                "value": h / s if s > 0 else None,
                "n": int(s),
                "ci": (lo, hi) if s > 0 else None,
                "excluded": excluded,
            }
    return entries
