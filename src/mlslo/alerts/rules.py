"""Alert rules: the multi-window, multi-burn-rate scheme of the SRE Workbook, per SLO.

For a 30-day window: page when the 1h and 5m burn rates both exceed 14.4 (2 % of the budget
in an hour) or the 6h and 30m rates exceed 6 (5 % in six hours); open a ticket when the 1d and
2h rates exceed 3 or the 3d and 6h rates exceed 1. Windows scale with the SLO window; a spec
can replace the scheme per SLO. Plus one rule for a budget that is exhausted. A window with
fewer samples than the SLO's ``min_samples`` never fires (ML metrics are noisy on thin data).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from mlslo.budget import scaled
from mlslo.durations import format_duration
from mlslo.spec import AnySLO, Spec

if TYPE_CHECKING:
    from mlslo.evaluate import Evaluation, SLOEvaluation

Severity = Literal["page", "ticket"]
BURN_ALERT = "MlsloErrorBudgetBurn"
EXHAUSTED_ALERT = "MlsloErrorBudgetExhausted"
WORKBOOK: tuple[tuple[timedelta, timedelta, float, Severity], ...] = (
    (timedelta(hours=1), timedelta(minutes=5), 14.4, "page"),
    (timedelta(hours=6), timedelta(minutes=30), 6.0, "page"),
    (timedelta(days=1), timedelta(hours=2), 3.0, "ticket"),
    (timedelta(days=3), timedelta(hours=6), 1.0, "ticket"),
)


@dataclass(frozen=True)
class AlertRule:
    """Fire when both windows burn faster than ``burn_rate`` (or, for ``exhausted``, when the
    budget is gone)."""

    slo: str
    kind: Literal["burn", "exhausted"]
    severity: Severity
    long: timedelta | None = None
    short: timedelta | None = None
    burn_rate: float | None = None
    for_: timedelta = timedelta(0)

    @property
    def name(self) -> str:
        if self.kind == "exhausted":
            return "exhausted"
        assert self.long is not None and self.short is not None
        return f"{self.severity}-{format_duration(self.long)}-{format_duration(self.short)}"

    @property
    def key(self) -> str:
        return f"{self.slo}/{self.name}"

    @property
    def alertname(self) -> str:
        """The alert's name in notifications and in Prometheus rules."""
        return EXHAUSTED_ALERT if self.kind == "exhausted" else BURN_ALERT


def slo_title(slo: AnySLO) -> str:
    """``SLO name (dimension: metric objective over window)``: how alerts name their SLO."""
    from mlslo.render import format_target  # render imports this module

    return f"SLO {slo.name} ({slo.dimension}: {slo.metric} {format_target(slo)} over {slo.window})"


def slo_rules(slo: AnySLO, bucket: timedelta) -> list[AlertRule]:
    """The SLO's rules: its own ``alerts:``, or the Workbook scheme scaled to its window.

    When scaling makes two rules read the same windows with the same severity (a short SLO
    window, a coarse bucket), only the one with the lower threshold is kept: it fires
    whenever the other would."""
    if slo.alerts is not None:
        candidates = [
            AlertRule(
                slo.name, "burn", a.severity, a.long, a.short, a.burn_rate, a.for_ or timedelta(0)
            )
            for a in slo.alerts
        ]
    else:
        candidates = [
            AlertRule(
                slo.name,
                "burn",
                severity,
                scaled(long, slo.window, bucket),
                scaled(short, slo.window, bucket),
                rate,
            )
            for long, short, rate, severity in WORKBOOK
        ]
    kept: dict[str, AlertRule] = {}
    for rule in candidates:
        other = kept.get(rule.name)
        if other is None or (rule.burn_rate or 0.0) < (other.burn_rate or 0.0):
            kept[rule.name] = rule
    return [*kept.values(), AlertRule(slo.name, "exhausted", "ticket")]


def spec_rules(spec: Spec) -> list[AlertRule]:
    return [rule for slo in spec.slos for rule in slo_rules(slo, spec.bucket)]


def rule_windows(slo: AnySLO, bucket: timedelta) -> set[timedelta]:
    """Every window the SLO's rules read (so the evaluation computes their burn rates)."""
    return {w for r in slo_rules(slo, bucket) for w in (r.long, r.short) if w is not None}


@dataclass(frozen=True)
class Check:
    """A rule's condition at one moment, with what a person needs to judge it."""

    rule: AlertRule
    active: bool
    suppressed: str | None
    long_rate: float | None
    short_rate: float | None
    long_samples: int
    short_samples: int
    remaining: float | None
    hours_left: float | None


def check(rule: AlertRule, result: SLOEvaluation, min_samples: int) -> Check:
    """Whether ``rule`` holds for the evaluated SLO ``result``."""
    remaining = result.budget.remaining
    hours = result.time_to_exhaustion.get("1h")
    if rule.kind == "exhausted":
        status = result.budget.status
        suppressed = None
        if status in ("no_data", "insufficient_data"):
            suppressed = f"budget status is {status}"
        return Check(rule, status == "exhausted", suppressed, None, None, 0, 0, remaining, hours)
    assert rule.long is not None and rule.short is not None and rule.burn_rate is not None
    long = result.burn_rate(rule.long)
    short = result.burn_rate(rule.short)
    long_rate = long.value if long else None
    short_rate = short.value if short else None
    long_n = long.n if long else 0
    short_n = short.n if short else 0
    suppressed = None
    for label, n in (("long", long_n), ("short", short_n)):
        if n < min_samples:
            window = rule.long if label == "long" else rule.short
            suppressed = (
                f"the {format_duration(window)} window has {n} samples, fewer than "
                f"min_samples {min_samples}: too few to fire"
            )
            break
    burning = (
        long_rate is not None
        and short_rate is not None
        and long_rate > rule.burn_rate
        and short_rate > rule.burn_rate
    )
    return Check(
        rule,
        burning and suppressed is None,
        suppressed,
        long_rate,
        short_rate,
        long_n,
        short_n,
        remaining,
        hours,
    )


def checks(spec: Spec, evaluation: Evaluation) -> list[tuple[AnySLO, AlertRule, Check]]:
    """Every rule of every SLO checked against one evaluation."""
    out = []
    for result in evaluation.slos:
        for rule in slo_rules(result.slo, spec.bucket):
            out.append((result.slo, rule, check(rule, result, result.slo.min_samples)))
    return out


def check_fields(rule: AlertRule, check: Check) -> dict[str, Any]:
    """The rule's windows and threshold with the check's numbers, as the alert JSON lists
    them (in this order)."""
    return {
        "long_window": format_duration(rule.long) if rule.long else None,
        "short_window": format_duration(rule.short) if rule.short else None,
        "threshold": rule.burn_rate,
        "long_burn_rate": check.long_rate,
        "short_burn_rate": check.short_rate,
        "long_samples": check.long_samples,
        "short_samples": check.short_samples,
        "suppressed": check.suppressed,
        "budget_remaining": check.remaining,
        "time_to_exhaustion_hours": check.hours_left,
    }
