"""The alert policies of an OpenSLO SLO as mlslo burn-rate rules: each ``burnrate``
AlertCondition becomes an ``alerts`` entry (its lookback window the long window; the short
window from mlslo's annotation, or long/12 as in the SRE Workbook); severities become page or
ticket. An SLO exported with mlslo's standard scheme gets it back (no ``alerts``)."""

from __future__ import annotations

from typing import Any

from mlslo.moments import format_duration
from mlslo.spec.openslo import format as fmt
from mlslo.spec.openslo.documents import Doc, Path, Reader, mapping, sequence

_PAGE = {"page", "critical", "high", "urgent", "emergency", "error", "sev0", "sev1", "p0", "p1"}
_TICKET = {"ticket", "warning", "warn", "medium", "low", "info", "sev2", "sev3", "sev4", "p2", "p3"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class AlertReader(Reader):
    """The burn-rate rules of one SLO document."""

    def alerts(self) -> list[dict[str, Any]] | None:
        entries: Any = self.doc.spec.get("alertPolicies") or []
        standard = self.annotations.get(fmt.ALERTS) == fmt.STANDARD_ALERTS
        alerts: list[dict[str, Any]] = []
        if not isinstance(entries, list):
            self.note("alertPolicies is not a list; ignored", "spec", "alertPolicies")
            entries = []
        for index, entry in enumerate(entries):
            policy = self._policy(entry, index)
            if policy is None:
                continue
            self._targets(policy)
            for number, condition in enumerate(sequence(policy.spec.get("conditions"))):
                found = self._condition(policy, mapping(condition), number)
                if found is not None and not standard:
                    alert = self._burn(found)
                    if alert is not None:
                        alerts.append(alert)
        if standard:
            return None
        if not entries and fmt.ALERTS not in self.annotations:
            self.note(
                "has no alertPolicies: mlslo's standard burn-rate alerts apply (alerts: [] "
                "turns them off)",
                "spec",
            )
            return None
        return alerts

    def _targets(self, policy: Doc) -> None:
        """Notification targets become notifiers only when mlslo wrote them (see
        :mod:`mlslo.spec.openslo`); one that is not there, or written inline, is reported."""
        for number, target in enumerate(sequence(policy.spec.get("notificationTargets"))):
            target = mapping(target)
            where = ("spec", "notificationTargets", number)
            if "targetRef" not in target:
                self.note("an inline notification target is not imported", *where, doc=policy)
            elif self.library.find("AlertNotificationTarget", str(target["targetRef"])) is None:
                self.note(
                    f"AlertNotificationTarget '{target['targetRef']}' is not among the documents "
                    "read; mlslo's notifiers are set under notifiers in the spec",
                    *where,
                    doc=policy,
                )

    def _policy(self, entry: Any, index: int) -> Doc | None:
        path: Path = ("spec", "alertPolicies", index)
        if isinstance(entry, dict) and isinstance(entry.get("spec"), dict):
            return self.doc.inline(entry, *path)
        name = entry.get("alertPolicyRef") if isinstance(entry, dict) else entry
        found = self.library.find("AlertPolicy", str(name))
        if found is None:
            self.note(
                f"AlertPolicy '{name}' is not among the documents read; its alerts are not "
                "imported",
                *path,
            )
        return found

    def _condition(self, policy: Doc, condition: dict[str, Any], number: int) -> Doc | None:
        if isinstance(condition.get("spec"), dict):
            return policy.inline(condition, "spec", "conditions", number)
        name = condition.get("conditionRef")
        found = self.library.find("AlertCondition", str(name))
        if found is None:
            self.note(
                f"AlertCondition '{name}' is not among the documents read; not imported",
                "spec",
                "conditions",
                number,
                doc=policy,
            )
        return found

    def _burn(self, condition: Doc) -> dict[str, Any] | None:
        spec = condition.spec
        rule = mapping(spec.get("condition"))
        notes = condition.annotations
        if rule.get("kind", "burnrate") != "burnrate":
            self.note(
                f"condition kind {rule.get('kind')} is not a burn rate; not imported",
                "spec",
                "condition",
                doc=condition,
            )
            return None
        threshold = _number(rule.get("threshold"))
        op = rule.get("op", "gt")
        if threshold is None or threshold <= 0 or op not in ("gt", "gte"):
            self.note(
                "mlslo alerts when the burn rate is above a threshold > 0; not imported",
                "spec",
                "condition",
                doc=condition,
            )
            return None
        long = fmt.parse_shorthand(notes.get(fmt.LONG_WINDOW, rule.get("lookbackWindow")))
        if long is None:
            self.note("lookbackWindow is not a duration; not imported", "spec", doc=condition)
            return None
        alert: dict[str, Any] = {"long": format_duration(long[0])}
        if fmt.SHORT_WINDOW in notes:
            alert["short"] = notes[fmt.SHORT_WINDOW]
        else:
            alert["short"] = format_duration(long[0] / 12)
            self.note(
                f"OpenSLO has one window; mlslo also checks a short one, long/12 as in the "
                f"SRE Workbook: {alert['short']}",
                "spec",
                "condition",
                "lookbackWindow",
                doc=condition,
            )
        alert["burn_rate"] = threshold
        alert["severity"] = self._severity(condition)
        after = notes.get(fmt.FOR, rule.get("alertAfter"))
        if after != fmt.NO_FOR and (parsed := fmt.parse_shorthand(after)) is not None:
            alert["for"] = format_duration(parsed[0])
        return alert

    def _severity(self, condition: Doc) -> str:
        severity = str(condition.spec.get("severity", "")).strip()
        if severity in ("page", "ticket"):
            return severity
        chosen = "ticket" if severity.lower() in _TICKET else "page"
        if severity.lower() not in _PAGE | _TICKET:
            self.note(
                f"severity {severity!r} is read as page (mlslo has page and ticket)",
                "spec",
                "severity",
                doc=condition,
            )
        else:
            self.note(
                f"severity {severity!r} is read as {chosen}", "spec", "severity", doc=condition
            )
        return chosen
