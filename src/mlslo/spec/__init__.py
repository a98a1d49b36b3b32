"""The SLO spec: the contract between a team and mlslo.

It is validated strictly (unknown fields are errors) so that a typo never silently turns an
SLO off, and every error names the file, the line, the YAML path and the fix. This package
holds the models (:mod:`.slos`, :mod:`.document`), the loader (:mod:`.loader`), and the
resolved views of a spec that later stages share: which SLOs a policy rule covers
(:mod:`.references`) and which burn-rate rules each SLO has (:mod:`.alert_rules`).
"""

from mlslo.spec.document import (
    HOUR,
    Columns,
    Correction,
    Effect,
    LabelColumns,
    Notifier,
    OutcomeColumns,
    Policy,
    RiskScore,
    Source,
    Spec,
)
from mlslo.spec.loader import load_spec, parse_spec, spec_from_dict
from mlslo.spec.slis import (
    REGRESSION_METRICS,
    AccuracySLI,
    AvailabilitySLI,
    FairnessSLI,
    FreshnessSLI,
    LatencySLI,
)
from mlslo.spec.slos import (
    DIMENSIONS,
    SLO,
    AccuracySLO,
    AnySLO,
    AvailabilitySLO,
    BurnAlert,
    FairnessSLO,
    FreshnessSLO,
    LatencySLO,
    Objective,
    Op,
    Window,
    calibrates,
    is_percentile,
    needs_histogram,
    prometheus_source,
)
from mlslo.spec.sources import EventSource, PrometheusSource
from mlslo.spec.types import SPEC_VERSION, Duration, Scalar, UtcDatetime

__all__ = [
    "DIMENSIONS",
    "HOUR",
    "REGRESSION_METRICS",
    "SLO",
    "SPEC_VERSION",
    "AccuracySLI",
    "AccuracySLO",
    "AnySLO",
    "AvailabilitySLI",
    "AvailabilitySLO",
    "BurnAlert",
    "Columns",
    "Correction",
    "Duration",
    "Effect",
    "EventSource",
    "FairnessSLI",
    "FairnessSLO",
    "FreshnessSLI",
    "FreshnessSLO",
    "LabelColumns",
    "LatencySLI",
    "LatencySLO",
    "Notifier",
    "Objective",
    "Op",
    "OutcomeColumns",
    "Policy",
    "PrometheusSource",
    "RiskScore",
    "Scalar",
    "Source",
    "Spec",
    "UtcDatetime",
    "Window",
    "calibrates",
    "is_percentile",
    "load_spec",
    "needs_histogram",
    "parse_spec",
    "prometheus_source",
    "spec_from_dict",
]
