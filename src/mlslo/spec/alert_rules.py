"""Alert rules: the multi-window, multi-burn-rate scheme of the SRE Workbook, per SLO.

For a 30-day window: page when the 1h and 5m burn rates both exceed 14.4 (2 % of the budget
in an hour) or the 6h and 30m rates exceed 6 (5 % in six hours); open a ticket when the 1d and
2h rates exceed 3 or the 3d and 6h rates exceed 1. Windows scale with the SLO window; a spec
can replace the scheme per SLO. Plus one rule for a budget that is exhausted, and one for an
SLO whose events stopped for longer than its ``absent_after`` (a page where requests are
counted, a ticket elsewhere: a stalled feature pipeline rarely needs someone at night). The
rules are
part of the spec: evaluation computes the burn rates they read, and :mod:`mlslo.decide.alerts`
checks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from mlslo.moments import format_duration
from mlslo.spec.composites import Composite
from mlslo.spec.document import Spec
from mlslo.spec.slos import AnySLO, BurnAlert, Window

Severity = Literal["page", "ticket"]
BURN_ALERT = "MlsloErrorBudgetBurn"
EXHAUSTED_ALERT = "MlsloErrorBudgetExhausted"
ABSENT_ALERT = "MlsloEventsAbsent"
ABSENT_SEVERITY: dict[str, Severity] = {"availability": "page", "latency": "page"}
"""The absent rule's severity per dimension; every other dimension opens a ticket."""
WORKBOOK: tuple[tuple[timedelta, timedelta, float, Severity], ...] = (
    (timedelta(hours=1), timedelta(minutes=5), 14.4, "page"),
    (timedelta(hours=6), timedelta(minutes=30), 6.0, "page"),
    (timedelta(days=1), timedelta(hours=2), 3.0, "ticket"),
    (timedelta(days=3), timedelta(hours=6), 1.0, "ticket"),
)


@dataclass(frozen=True)
class AlertRule:
    """Fire when both windows burn faster than ``burn_rate`` (for ``exhausted``, when the
    budget is gone; for ``absent``, when the SLO has had no event for ``absent_after``)."""

    slo: str
    kind: Literal["burn", "exhausted", "absent"]
    severity: Severity
    long: timedelta | None = None
    short: timedelta | None = None
    burn_rate: float | None = None
    for_: timedelta = timedelta(0)

    @property
    def name(self) -> str:
        if self.kind != "burn":
            return self.kind
        assert self.long is not None and self.short is not None
        return f"{self.severity}-{format_duration(self.long)}-{format_duration(self.short)}"

    @property
    def key(self) -> str:
        return f"{self.slo}/{self.name}"

    @property
    def alertname(self) -> str:
        """The alert's name in notifications and in Prometheus rules."""
        return {"exhausted": EXHAUSTED_ALERT, "absent": ABSENT_ALERT}.get(self.kind, BURN_ALERT)


def slo_rules(slo: AnySLO | Composite, bucket: timedelta) -> list[AlertRule]:
    """The SLO's rules: its own ``alerts:``, or the Workbook scheme scaled to its window.

    When scaling makes two rules read the same windows with the same severity (a short SLO
    window, a coarse bucket), only the one with the lower threshold is kept: it fires
    whenever the other would. A composite has the burn and exhausted rules (its components
    have their own absent rules)."""
    rules = [*burn_rules(slo.name, slo.alerts, slo.window, bucket)]
    rules.append(AlertRule(slo.name, "exhausted", "ticket"))
    if slo.absent_after is not None:
        rules.append(AlertRule(slo.name, "absent", ABSENT_SEVERITY.get(slo.dimension, "ticket")))
    return rules


def burn_rules(
    name: str, alerts: list[BurnAlert] | None, window: Window, bucket: timedelta
) -> list[AlertRule]:
    """The burn-rate rules of ``alerts``, or of the Workbook scheme scaled to ``window``."""
    if alerts is not None:
        candidates = [
            AlertRule(
                name, "burn", a.severity, a.long, a.short, a.burn_rate, a.for_ or timedelta(0)
            )
            for a in alerts
        ]
    else:
        candidates = [
            AlertRule(
                name,
                "burn",
                severity,
                window.scale(long, bucket),
                window.scale(short, bucket),
                rate,
            )
            for long, short, rate, severity in WORKBOOK
        ]
    kept: dict[str, AlertRule] = {}
    for rule in candidates:
        other = kept.get(rule.name)
        if other is None or (rule.burn_rate or 0.0) < (other.burn_rate or 0.0):
            kept[rule.name] = rule
    return list(kept.values())


def spec_rules(spec: Spec) -> list[AlertRule]:
    judged: list[AnySLO | Composite] = [*spec.slos, *spec.composites]
    return [rule for slo in judged for rule in slo_rules(slo, spec.bucket)]


def rule_windows(slo: AnySLO | Composite, bucket: timedelta) -> set[timedelta]:
    """Every window the SLO's rules read (so the evaluation computes their burn rates)."""
    return {w for r in slo_rules(slo, bucket) for w in (r.long, r.short) if w is not None}
