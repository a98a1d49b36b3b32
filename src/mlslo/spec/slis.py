"""What each dimension's SLI measures and how its records are read: the thresholds, the
metric and its classes, the groups compared. The SLOs in ``slos`` wrap one each."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlslo.spec.types import Duration, Scalar, Strict, reserved_column


class AvailabilitySLI(Strict):
    """Successful responses over all responses (from ``status`` and/or outcome counts)."""


class _DistributionSLI(Strict):
    percentile: float | None = Field(default=None, gt=0, lt=100)

    def _check_one(self, threshold: timedelta | None, name: str) -> None:
        if (threshold is None) == (self.percentile is None):
            raise ValueError(
                f"give either {name} (share of events within it) or percentile (e.g. 95)"
            )


class LatencySLI(_DistributionSLI):
    latency_threshold: Duration | None = None

    @model_validator(mode="after")
    def _one(self) -> LatencySLI:
        self._check_one(self.latency_threshold, "latency_threshold")
        return self


class FreshnessSLI(_DistributionSLI):
    lag_threshold: Duration | None = None
    skew_tolerance: Duration = timedelta(seconds=1)
    """How far ``event_ts`` may lie after ``ts`` (clocks disagree) before the record is not
    fresh: beyond it, a lag-threshold SLI counts the record as a bad event."""

    @model_validator(mode="after")
    def _one(self) -> FreshnessSLI:
        self._check_one(self.lag_threshold, "lag_threshold")
        return self


REGRESSION_METRICS = ("mae", "rmse", "mape")


class AccuracySLI(Strict):
    """Model quality from predictions joined to (possibly late) labels."""

    metric: Literal[
        "accuracy",
        "precision",
        "recall",
        "f1",
        "specificity",
        "balanced_accuracy",
        "mae",
        "rmse",
        "mape",
    ]
    positive_label: Scalar | None = None
    average: Literal["macro", "micro"] | None = None
    classes: list[Scalar] | None = None
    label_delay: Duration | None = None
    estimate: Literal["cbpe"] | None = None
    calibration: Literal["none", "isotonic", "platt"] | None = None
    """How CBPE calibrates scores on the labelled history first (isotonic by default)."""
    calibration_min_labels: int = Field(default=100, ge=1)
    """Fewer labelled scored predictions than this: the raw scores stand, and the estimate
    is flagged ``insufficient_calibration``."""

    @model_validator(mode="after")
    def _coherent(self) -> AccuracySLI:
        regression = self.metric in REGRESSION_METRICS
        if regression and (self.average or self.classes):
            raise ValueError(
                f"'{self.metric}' is a regression metric: average and classes "
                "apply to classification only"
            )
        if self.classes is not None and self.average is None:
            raise ValueError("classes are for multiclass SLIs: add average: macro or micro")
        if self.estimate and (regression or self.average):
            raise ValueError(
                "estimate: cbpe needs a binary classification metric and a score "
                "column (the positive-class probability)"
            )
        if self.calibration is not None and self.estimate is None:
            raise ValueError("calibration applies to estimate: cbpe; add estimate: cbpe")
        return self

    @property
    def calibration_method(self) -> Literal["isotonic", "platt"] | None:
        """The calibration CBPE fits before estimating (None: raw scores)."""
        if self.estimate is None or self.calibration == "none":
            return None
        return self.calibration or "isotonic"

    @property
    def multiclass(self) -> bool:
        return self.average is not None

    @property
    def assumes_binary(self) -> bool:
        """Whether the SLI counts positives without a ``positive_label``: positive is then 1,
        which holds only when every class seen is 0/1 (the scan checks it)."""
        uses_positive = self.metric != "accuracy" or self.estimate is not None
        binary = not (self.multiclass or self.regression)
        return uses_positive and binary and self.positive_label is None

    @property
    def regression(self) -> bool:
        return self.metric in REGRESSION_METRICS


class FairnessSLI(Strict):
    """A gap or ratio of a per-group rate, between groups or against a reference group."""

    metric: Literal[
        "true_positive_rate_difference",
        "false_positive_rate_difference",
        "equalized_odds_difference",
        "demographic_parity_difference",
        "disparate_impact_ratio",
    ]
    attribute: str | list[str]
    method: Literal["between_groups", "reference"] = "between_groups"
    reference_group: Scalar | list[Scalar] | None = None
    positive_label: Scalar | None = None
    min_group_size: int = Field(default=1, ge=1)
    missing: Literal["exclude", "group", "error"] = "exclude"
    label_delay: Duration | None = None

    @field_validator("attribute")
    @classmethod
    def _attributes(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("list one or more distinct attribute columns")
        for name in [value] if isinstance(value, str) else value:
            reason = reserved_column(name)
            if reason is not None:
                raise ValueError(reason)
        return value

    @model_validator(mode="after")
    def _reference(self) -> FairnessSLI:
        if self.method == "reference" and self.reference_group is None:
            raise ValueError("method: reference needs reference_group (e.g. reference_group: A)")
        if self.method == "between_groups" and self.reference_group is not None:
            raise ValueError("reference_group is only used with method: reference")
        if self.reference is not None and len(self.reference) != len(self.attributes):
            raise ValueError(
                f"reference_group needs one value per attribute "
                f"{self.attributes}, found {self.reference_group!r}"
            )
        return self

    @property
    def attributes(self) -> tuple[str, ...]:
        return (self.attribute,) if isinstance(self.attribute, str) else tuple(self.attribute)

    @property
    def reference(self) -> tuple[Scalar, ...] | None:
        if self.reference_group is None:
            return None
        if isinstance(self.reference_group, list):
            return tuple(self.reference_group)
        return (self.reference_group,)

    @property
    def assumes_binary(self) -> bool:
        return self.positive_label is None

    @property
    def needs_labels(self) -> bool:
        """Whether the metric compares rates that need labels (true/false positive rates);
        selection rates (demographic parity, disparate impact) need predictions only."""
        return self.metric not in ("demographic_parity_difference", "disparate_impact_ratio")
