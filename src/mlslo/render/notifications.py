"""Notifications: what an alert says (summary, description, its JSON) and the payloads for a
generic webhook, Slack and Alertmanager. Pure; :mod:`mlslo.server.notifiers` delivers them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from mlslo.decide.alerts import AlertState, Check
from mlslo.moments import format_duration
from mlslo.render.documents import check_fields
from mlslo.render.format import hours_text, iso, rate_text, share_text, slo_title, threshold_text
from mlslo.spec.alert_rules import AlertRule
from mlslo.spec.composites import Judged

Kind = Literal["firing", "resolved", "repeat"]


@dataclass(frozen=True)
class Alert:
    """A rule of an SLO with its latest check and state: what notifications describe."""

    service: str
    slo: Judged
    rule: AlertRule
    check: Check
    state: AlertState
    at: datetime
    dashboard_url: str | None = None

    @property
    def alertname(self) -> str:
        return self.rule.alertname

    @property
    def link(self) -> str | None:
        if not self.dashboard_url:
            return None
        return f"{self.dashboard_url.rstrip('/')}/slo/{self.slo.name}"

    def summary(self) -> str:
        resolved = self.state.status == "resolved"
        name = f"{self.service}: {self.slo.name}"
        if self.rule.kind == "exhausted":
            return f"{name} error budget is {'no longer ' if resolved else ''}exhausted"
        if self.rule.kind == "absent":
            if resolved:
                return f"{name} has events again"
            return f"{name} has had no events {self._since()}"
        if resolved:
            limit = threshold_text(self.rule.burn_rate)
            return f"{name} no longer burns its error budget faster than {limit}"
        return f"{name} is burning its error budget {rate_text(self.check.long_rate)}"

    def _since(self) -> str:
        last = self.check.last_event
        return f"in its {self.slo.window} window" if last is None else f"since {iso(last)}"

    def _absent_text(self, resolved: bool) -> str:
        if resolved:
            return "receives events again; its budget is judged again"
        limit = self.slo.absent_after
        return (
            f"has had no events {self._since()}, longer than its absent_after"
            f"{'' if limit is None else ' of ' + format_duration(limit)}: records stopped "
            "arriving (the model server or its logging may be down), so its budget is not judged"
        )

    def _links(self) -> str:
        text = ""
        if self.slo.runbook_url:
            text += f"Runbook: {self.slo.runbook_url}."
        if self.link:
            text += f" Dashboard: {self.link}."
        return text.strip()

    def description(self) -> str:
        slo = self.slo
        resolved = self.state.status == "resolved"
        parts = [slo_title(slo)]
        if self.rule.kind == "absent":
            text = f"{parts[0]} {self._absent_text(resolved)}."
            links = self._links()
            return f"{text} {links}" if links else text
        if self.rule.kind == "burn":
            assert self.rule.long is not None and self.rule.short is not None
            rates = (
                f"{rate_text(self.check.long_rate)} over the last "
                f"{format_duration(self.rule.long)} and {rate_text(self.check.short_rate)} over "
                f"the last {format_duration(self.rule.short)} (threshold "
                f"{threshold_text(self.rule.burn_rate)}"
            )
            if resolved:
                parts.append(f"has recovered: its burn rate is now {rates})")
            else:
                parts.append(
                    f"is burning its error budget {rates}; 1× spends the budget in exactly one "
                    "window)"
                )
        else:
            parts.append(
                "has budget left again" if resolved else "has spent its whole error budget"
            )
        remaining = self.check.remaining
        if remaining is not None and remaining >= 0:
            parts.append(f"{share_text(remaining)} of the budget is left")
        elif remaining is not None:
            parts.append(f"the budget is overspent by {share_text(-remaining)}")
        if (
            not resolved
            and self.check.hours_left is not None
            and remaining is not None
            and remaining > 0
        ):
            parts.append(f"at the recent rate it is gone in {hours_text(self.check.hours_left)}")
        text = f"{parts[0]} {parts[1]}"
        if len(parts) > 2:
            text += "; " + "; ".join(parts[2:])
        text += "."
        links = self._links()
        return f"{text} {links}" if links else text

    def as_dict(self) -> dict[str, Any]:
        def optional_iso(moment: datetime | None) -> str | None:
            return None if moment is None else iso(moment)

        rule = self.rule
        return {
            "key": rule.key,
            "alertname": self.alertname,
            "service": self.service,
            "slo": self.slo.name,
            "dimension": self.slo.dimension,
            "rule": rule.name,
            "severity": rule.severity,
            "status": self.state.status,
            "since": optional_iso(self.state.since),
            "fired_at": optional_iso(self.state.fired_at),
            "resolved_at": optional_iso(self.state.resolved_at),
            **check_fields(rule, self.check),
            "summary": self.summary(),
            "description": self.description(),
            "runbook_url": self.slo.runbook_url,
            "dashboard_url": self.link,
        }


# --- payloads --------------------------------------------------------------------------------


def webhook_payload(
    service: str, notifications: Sequence[tuple[Kind, Alert]], at: datetime
) -> dict[str, Any]:
    """mlslo's own JSON: one POST per evaluation with every notification due."""
    return {
        "version": "1",
        "service": service,
        "sent_at": iso(at),
        "alerts": [{"event": kind, **alert.as_dict()} for kind, alert in notifications],
    }


def slack_payload(
    service: str, notifications: Sequence[tuple[Kind, Alert]], at: datetime
) -> dict[str, Any]:
    """Slack's incoming-webhook message: a fallback text and one section per alert."""
    blocks: list[dict[str, Any]] = []
    lines = []
    for kind, alert in notifications:
        icon = (
            ":white_check_mark:"
            if kind == "resolved"
            else (":rotating_light:" if alert.rule.severity == "page" else ":warning:")
        )
        title = (
            "RESOLVED" if kind == "resolved" else ("STILL FIRING" if kind == "repeat" else "FIRING")
        )
        header = f"{icon} *{title}* · {alert.rule.severity} · {alert.summary()}"
        link = f"\n<{alert.link}|Open the dashboard>" if alert.link else ""
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"{header}\n{alert.description()}{link}"},
            }
        )
        lines.append(f"{title}: {alert.summary()}")
    return {"text": "\n".join(lines) or f"{service}: no alerts", "blocks": blocks}


def alertmanager_payload(alerts: Sequence[tuple[Kind, Alert]]) -> list[dict[str, Any]]:
    """Alertmanager's v2 API body: labels, annotations, startsAt/endsAt, generatorURL."""
    out = []
    for kind, alert in alerts:
        labels = {
            "alertname": alert.alertname,
            "service": alert.service,
            "slo": alert.slo.name,
            "dimension": alert.slo.dimension,
            "severity": alert.rule.severity,
            "rule": alert.rule.name,
            "window": str(alert.slo.window),
        }
        annotations = {"summary": alert.summary(), "description": alert.description()}
        if alert.slo.runbook_url:
            annotations["runbook_url"] = alert.slo.runbook_url
        if alert.check.long_rate is not None:
            annotations["burn_rate_long"] = f"{alert.check.long_rate:.3f}"
        if alert.check.short_rate is not None:
            annotations["burn_rate_short"] = f"{alert.check.short_rate:.3f}"
        if alert.check.remaining is not None:
            annotations["budget_remaining"] = f"{alert.check.remaining:.4f}"
        if alert.check.hours_left is not None:
            annotations["time_to_exhaustion"] = hours_text(alert.check.hours_left)
        if alert.rule.kind == "absent" and alert.check.last_event is not None:
            annotations["last_event"] = iso(alert.check.last_event)
        entry: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations,
            "startsAt": iso(alert.state.fired_at or alert.at),
        }
        if kind == "resolved" and alert.state.resolved_at is not None:
            entry["endsAt"] = iso(alert.state.resolved_at)
        if alert.link:
            entry["generatorURL"] = alert.link
        out.append(entry)
    return out
