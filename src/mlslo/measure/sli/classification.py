"""Classification quality: accuracy as the share of exact matches on any label type; binary
metrics from the confusion counts of one positive class; multiclass (macro or micro averaged)
from per-class counts. A metric whose denominator is empty is undefined, never 0 — except a
class's value inside a macro average, which counts as 0 as in scikit-learn."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlslo.measure.sli.base import Measurement, divide
from mlslo.spec import AccuracySLI
from mlslo.stats.confidence import Interval, clamp, delta_ratio, wilson, z_value
from mlslo.stats.timeline import WindowStats


@dataclass(frozen=True)
class Confusion:
    tp: float
    fp: float
    fn: float
    tn: float

    @property
    def total(self) -> float:
        return self.tp + self.fp + self.fn + self.tn


_UNDEFINED = {
    "precision": "no positive predictions, so precision is undefined",
    "recall": "no positive labels, so recall is undefined",
    "f1": "no positive predictions or labels, so F1 is undefined",
    "specificity": "no negative labels, so specificity is undefined",
    "balanced_accuracy": "labels of only one class, so balanced accuracy is undefined",
    "accuracy": "no labelled predictions",
}


def binary_value(metric: str, c: Confusion) -> float | None:
    """The metric from confusion counts, or None when its denominator is empty."""
    recall = divide(c.tp, c.tp + c.fn)
    specificity = divide(c.tn, c.tn + c.fp)
    if metric == "accuracy":
        return divide(c.tp + c.tn, c.total)
    if metric == "precision":
        return divide(c.tp, c.tp + c.fp)
    if metric == "recall":
        return recall
    if metric == "f1":
        return divide(2 * c.tp, 2 * c.tp + c.fp + c.fn)
    if metric == "specificity":
        return specificity
    if metric == "balanced_accuracy":
        return None if recall is None or specificity is None else (recall + specificity) / 2
    raise ValueError(f"unknown classification metric {metric!r}")


def binary_interval(metric: str, c: Confusion) -> Interval | None:
    if metric == "accuracy":
        return wilson(c.tp + c.tn, c.total)
    if metric == "precision":
        return wilson(c.tp, c.tp + c.fp)
    if metric == "recall":
        return wilson(c.tp, c.tp + c.fn)
    if metric == "specificity":
        return wilson(c.tn, c.tn + c.fp)
    if metric == "f1":
        interval = delta_ratio((2, 0, 0, 0), (2, 1, 1, 0), (c.tp, c.fp, c.fn, c.tn))
        if interval is None or interval[1] - interval[0] <= 0:
            return wilson(2 * c.tp, 2 * c.tp + c.fp + c.fn)
        return clamp(interval)
    if metric == "balanced_accuracy":
        positives, negatives = c.tp + c.fn, c.tn + c.fp
        if positives <= 0 or negatives <= 0:
            return None
        r, s = c.tp / positives, c.tn / negatives
        half = z_value() * math.sqrt(r * (1 - r) / positives + s * (1 - s) / negatives) / 2
        value = (r + s) / 2
        return clamp((value - half, value + half))
    return None


def _variance(metric: str, c: Confusion) -> float | None:
    """Approximate variance of a per-class metric (for the macro-average interval)."""
    interval = binary_interval(metric, c)
    if interval is None:
        return None
    return ((interval[1] - interval[0]) / (2 * z_value())) ** 2


def measure(sli: AccuracySLI, stats: WindowStats) -> Measurement:
    predictions = stats.get("predictions")
    c = Confusion(stats.get("tp"), stats.get("fp"), stats.get("fn"), stats.get("tn"))
    # A binary SLO's labelled predictions are exactly its four confusion cells.
    exact = sli.multiclass or sli.metric == "accuracy"
    labelled = stats.get("labelled") if exact else c.total
    coverage = divide(labelled, predictions)
    detail: dict[str, object] = {}
    if labelled <= 0:
        return Measurement(
            None,
            0,
            label_coverage=coverage,
            detail=detail,
            reason="no labelled predictions in the window yet",
        )
    if exact:
        return _multiclass(sli, stats, labelled, coverage, detail)
    value = binary_value(sli.metric, c)
    return Measurement(
        value,
        int(labelled),
        binary_interval(sli.metric, c) if value is not None else None,
        label_coverage=coverage,
        reason=None if value is not None else _UNDEFINED[sli.metric],
        detail=detail,
    )


def class_count(stats: WindowStats) -> int:
    return sum(1 for name in stats.sums if name.startswith("tp."))


def _multiclass(
    sli: AccuracySLI,
    stats: WindowStats,
    labelled: float,
    coverage: float | None,
    detail: dict[str, object],
) -> Measurement:
    """Accuracy (exact matches), and micro or macro averages over the classes that occur in
    the window, as scikit-learn's ``precision_recall_fscore_support(zero_division=0)``."""
    correct = stats.get("correct")
    metric = sli.metric
    if metric == "accuracy":
        return Measurement(
            correct / labelled,
            int(labelled),
            wilson(correct, labelled),
            correct,
            labelled,
            coverage,
            detail=detail,
        )
    per_class = []
    for index in range(class_count(stats)):
        tp = stats.get(f"tp.{index}")
        fp = stats.get(f"pred.{index}") - tp
        fn = stats.get(f"true.{index}") - tp
        per_class.append(Confusion(tp, fp, fn, labelled - tp - fp - fn))
    present = [c for c in per_class if c.tp + c.fp + c.fn > 0]
    if sli.average == "micro":
        return _micro(metric, per_class, labelled, coverage, detail)
    # balanced accuracy is scikit-learn's balanced_accuracy_score: the mean recall of the
    # classes with labels; every other macro average counts an undefined class as 0.
    base = "recall" if metric == "balanced_accuracy" else metric
    values = [binary_value(base, c) for c in present]
    undefined = sum(1 for v in values if v is None)
    counted = [
        (v or 0.0, c)
        for v, c in zip(values, present, strict=True)
        if v is not None or metric != "balanced_accuracy"
    ]
    if not counted or undefined == len(values):
        return Measurement(
            None,
            int(labelled),
            label_coverage=coverage,
            detail=detail,
            reason=f"{base} is undefined for every class in the window",
        )
    value = sum(v for v, _ in counted) / len(counted)
    variances = [_variance(base, c) or 0.0 for _, c in counted]
    half = z_value() * math.sqrt(sum(variances)) / len(counted)
    interval = clamp((value - half, value + half))
    if undefined:
        detail = {**detail, "classes_without_a_defined_value": undefined}
    return Measurement(value, int(labelled), interval, label_coverage=coverage, detail=detail)


def _micro(
    metric: str,
    per_class: list[Confusion],
    labelled: float,
    coverage: float | None,
    detail: dict[str, object],
) -> Measurement:
    """Counts pooled over the classes. Precision, recall and F1 are shares of the pooled true
    positives (with every class counted, all three are the accuracy)."""
    summed = Confusion(*(sum(getattr(c, f) for c in per_class) for f in ("tp", "fp", "fn", "tn")))
    value = binary_value(metric, summed)
    reason = None if value is not None else _UNDEFINED[metric]
    denominators = {
        "precision": summed.tp + summed.fp,
        "recall": summed.tp + summed.fn,
        "f1": summed.tp + (summed.fp + summed.fn) / 2,
    }
    if metric not in denominators:
        interval = binary_interval(metric, summed) if value is not None else None
        return Measurement(
            value, int(labelled), interval, label_coverage=coverage, reason=reason, detail=detail
        )
    valid = denominators[metric]
    return Measurement(
        value,
        int(labelled),
        wilson(summed.tp, valid) if value is not None else None,
        summed.tp,
        valid,
        coverage,
        reason,
        detail,
    )
