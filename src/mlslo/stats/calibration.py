"""Score calibration from a mergeable histogram: CBPE is only as good as its scores.

The scan keeps, per time bucket, the scores of the scored predictions in ``BINS`` equal-width
bins of ``[0, 1]``: for labelled predictions the count, the positives and the score sum of each
bin; for unlabelled ones the count and score sum of each bin, split by predicted class. These
add up across buckets, so the calibration of any stretch of history is fitted from the sums:
isotonic regression (pool-adjacent-violators over the bins) or Platt scaling (a logistic fit
over the bins by Newton's method). The bins are kept per model version, and each version is
calibrated on its own labelled records (:class:`Calibrations`). A calibrated score is read at
a bin's mean score, by linear interpolation between the fitted bins as scikit-learn's
``IsotonicRegression`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

BINS = 200
"""Score bins of width 0.005: on continuous scores the binned isotonic estimate stays within
2e-3 of scikit-learn's fit on the raw scores; on scores with two decimals it is that fit."""

LABELLED, POSITIVES, LABELLED_SCORE, PENDING_POS, PENDING_NEG, PENDING_POS_SCORE = range(6)
PENDING_NEG_SCORE = 6
KINDS = 7
"""The statistics kept per score bin; the histogram bin of kind ``k``, score bin ``b`` is
``k * BINS + b``."""

VERSION_SPAN = KINDS * BINS
"""With model versions, the histogram bin ``code * VERSION_SPAN + k * BINS + b`` is kind ``k``,
score bin ``b`` of the version numbered ``code``."""

ECE_BINS = 10

Method = Literal["isotonic", "platt"]


@dataclass(frozen=True)
class ScoreBins:
    """The per-bin statistics of one window, each an array of ``BINS`` values."""

    table: Array

    @classmethod
    def from_histogram(cls, bins: npt.ArrayLike, counts: npt.ArrayLike) -> ScoreBins:
        b = np.asarray(bins, dtype=np.int64)
        c = np.asarray(counts, dtype=np.float64)
        keep = (b >= 0) & (b < KINDS * BINS)
        summed = np.bincount(b[keep], weights=c[keep], minlength=KINDS * BINS)
        return cls(np.asarray(summed, dtype=np.float64).reshape(KINDS, BINS))

    @classmethod
    def per_version(
        cls, bins: npt.ArrayLike, counts: npt.ArrayLike, versions: Sequence[Any] | None
    ) -> dict[Any, ScoreBins]:
        """The score bins of each model version (``versions``: the names of the codes in the
        bins; None: one version, None)."""
        b = np.asarray(bins, dtype=np.int64)
        c = np.asarray(counts, dtype=np.float64)
        if versions is None:
            return {None: cls.from_histogram(b, c)} if b.size else {}
        codes = np.floor_divide(b, VERSION_SPAN)
        local = b - codes * VERSION_SPAN
        return {
            versions[code]: cls.from_histogram(local[codes == code], c[codes == code])
            for code in np.unique(codes).tolist()
            if 0 <= code < len(versions)
        }

    def __add__(self, other: ScoreBins) -> ScoreBins:
        return ScoreBins(self.table + other.table)

    def __getitem__(self, kind: int) -> Array:
        row: Array = self.table[kind]
        return row

    @property
    def labelled(self) -> float:
        return float(self.table[LABELLED].sum())

    @property
    def pending(self) -> float:
        return float(self.table[PENDING_POS].sum() + self.table[PENDING_NEG].sum())


def _mean_scores(sums: Array, counts: Array) -> Array:
    centres = (np.arange(BINS) + 0.5) / BINS
    return np.divide(sums, counts, out=centres.copy(), where=counts > 0)


def pool_adjacent_violators(values: Array, weights: Array) -> Array:
    """The non-decreasing sequence closest to ``values`` in weighted least squares."""
    blocks: list[list[float]] = []  # [mean, weight, length]
    for value, weight in zip(values.tolist(), weights.tolist(), strict=True):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, w, n = blocks.pop()
            last = blocks[-1]
            total = last[1] + w
            last[0] = (last[0] * last[1] + mean * w) / total
            last[1], last[2] = total, last[2] + n
    return np.repeat([b[0] for b in blocks], [int(b[2]) for b in blocks]).astype(np.float64)


def platt(x: Array, positives: Array, counts: Array, steps: int = 25) -> tuple[float, float]:
    """``(a, b)`` of ``P(positive | s) = 1 / (1 + exp(-(a s + b)))`` by maximum likelihood on
    binned data (Newton's method; binomial counts per bin)."""
    a, b = 1.0, 0.0
    design = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(a * x + b)))
        gradient = design.T @ (positives - counts * p)
        hessian = (design * (counts * p * (1 - p))[:, None]).T @ design
        hessian += np.eye(2) * 1e-9
        step = np.linalg.solve(hessian, gradient)
        a, b = a + float(step[0]), b + float(step[1])
        if float(np.abs(step).max()) < 1e-10:
            break
    return a, b


@dataclass(frozen=True)
class Calibration:
    """A fitted map from raw to calibrated scores, with the calibration error before and
    after on the labelled records it was fitted on (``None`` when none was fitted)."""

    method: Method
    labelled: int
    knots_x: Array | None = None
    knots_y: Array | None = None
    platt_ab: tuple[float, float] | None = None
    ece_before: float | None = None
    ece_after: float | None = None
    reliability: tuple[tuple[float, float, float, float], ...] = ()
    """Per ECE bin with labelled records: mean raw score, mean calibrated score, observed
    positive rate, count."""

    @property
    def fitted(self) -> bool:
        return self.knots_x is not None or self.platt_ab is not None

    def apply(self, scores: Array) -> Array:
        """Calibrated scores (the raw ones when nothing was fitted)."""
        if self.platt_ab is not None:
            a, b = self.platt_ab
            return np.asarray(1 / (1 + np.exp(-(a * scores + b))), dtype=np.float64)
        if self.knots_x is not None and self.knots_y is not None:
            return np.interp(scores, self.knots_x, self.knots_y)
        return scores


def fit(bins: ScoreBins, method: Method, min_labelled: int) -> Calibration:
    """Calibrate on the labelled records of ``bins``; below ``min_labelled`` of them nothing
    is fitted (the raw scores stand, and the estimate says so)."""
    n, k = bins[LABELLED], bins[POSITIVES]
    labelled = round(float(n.sum()))
    if labelled < max(min_labelled, 1):
        return Calibration(method, labelled)
    x = _mean_scores(bins[LABELLED_SCORE], n)
    seen = n > 0
    xs, ks, ns = x[seen], k[seen], n[seen]
    if method == "platt":
        calibration = Calibration(method, labelled, platt_ab=platt(xs, ks, ns))
    else:
        fitted = pool_adjacent_violators(ks / ns, ns)
        calibration = Calibration(method, labelled, knots_x=xs, knots_y=fitted)
    calibrated = calibration.apply(xs)
    before, after, rows = _ece(xs, calibrated, ks, ns)
    return Calibration(
        method,
        labelled,
        calibration.knots_x,
        calibration.knots_y,
        calibration.platt_ab,
        before,
        after,
        rows,
    )


def _ece(
    scores: Array, calibrated: Array, positives: Array, counts: Array
) -> tuple[float, float, tuple[tuple[float, float, float, float], ...]]:
    """Expected calibration error (``ECE_BINS`` equal-width bins of the raw score) of the raw
    and of the calibrated scores, and the reliability diagram's points."""
    coarse = np.minimum((scores * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    total = float(counts.sum())
    before = after = 0.0
    rows = []
    for b in range(ECE_BINS):
        mine = coarse == b
        n = float(counts[mine].sum())
        if n <= 0:
            continue
        raw = float((scores[mine] * counts[mine]).sum())
        cal = float((calibrated[mine] * counts[mine]).sum())
        observed = float(positives[mine].sum())
        before += abs(raw - observed) / total
        after += abs(cal - observed) / total
        rows.append((raw / n, cal / n, observed / n, n))
    return before, after, tuple(rows)


@dataclass(frozen=True)
class Calibrations:
    """The calibration of each model version on its own labelled records, and one on all
    versions' together (``pooled``). A version with too few labelled records of its own
    falls back to the pooled calibration, or, when that is not fitted either, to its raw
    scores."""

    versions: Mapping[Any, Calibration]
    pooled: Calibration

    def applied(self, version: Any) -> tuple[Calibration, str]:
        """The calibration a version's scores go through, and which: ``own``, ``pooled`` or
        ``raw``."""
        own = self.versions.get(version)
        if own is not None and own.fitted:
            return own, "own"
        if self.pooled.fitted:
            return self.pooled, "pooled"
        return own or self.pooled, "raw"


def fit_versions(bins: Mapping[Any, ScoreBins], method: Method, min_labelled: int) -> Calibrations:
    """Calibrate each version on its own labelled records, and all of them together."""
    pooled = ScoreBins(np.zeros((KINDS, BINS)))
    for found in bins.values():
        pooled = pooled + found
    return Calibrations(
        {version: fit(found, method, min_labelled) for version, found in bins.items()},
        fit(pooled, method, min_labelled),
    )


def expected_confusion(bins: ScoreBins, calibration: Calibration) -> tuple[float, ...]:
    """Expected ``(tp, fp, fn, tn)`` of the unlabelled predictions with calibrated scores."""
    pos_n, neg_n = bins[PENDING_POS], bins[PENDING_NEG]
    pos_p = calibration.apply(_mean_scores(bins[PENDING_POS_SCORE], pos_n))
    neg_p = calibration.apply(_mean_scores(bins[PENDING_NEG_SCORE], neg_n))
    tp = float((pos_n * pos_p).sum())
    fn = float((neg_n * neg_p).sum())
    return tp, float(pos_n.sum()) - tp, fn, float(neg_n.sum()) - fn
