"""Prometheus recording and alerting rules over the series mlslo's /metrics exports, for
teams that alert through their own Prometheus: the same rules, the same thresholds.

For each burn-rate rule, recording rules keep the lower of the two windows' burn rates and
sample counts (both windows must burn, and both must have enough samples); the alert fires
when that minimum exceeds the threshold. An SLO with ``absent_after`` gets an alert on the
age of its last event (``mlslo_last_event_timestamp_seconds``). Names follow Prometheus
conventions: recording rules ``level:metric:operations``, alerts in CamelCase.
"""

from __future__ import annotations

from typing import Any

import yaml

from mlslo.moments import format_duration
from mlslo.render.format import slo_title
from mlslo.spec import AnySLO, Spec
from mlslo.spec.alert_rules import AlertRule, slo_rules
from mlslo.spec.composites import Composite, Judged

BURN = "slo:mlslo_burn_rate:min_long_short"
SAMPLES = "slo:mlslo_burn_rate_samples:min_long_short"
BY = "service, slo, dimension, window"


def _selector(labels: dict[str, str]) -> str:
    parts = []
    for key, value in labels.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        operator = "=~" if key == "burn_window" else "="
        parts.append(f'{key}{operator}"{escaped}"')
    return "{" + ", ".join(parts) + "}"


def _burn_rules(service: str, slo: Judged, rule: AlertRule) -> tuple[list[Any], list[Any]]:
    assert rule.long is not None and rule.short is not None and rule.burn_rate is not None
    keys = list(dict.fromkeys([format_duration(rule.long), format_duration(rule.short)]))
    windows = "|".join(keys)
    source = _selector({"service": service, "slo": slo.name, "burn_window": windows})
    extra = {"slo": slo.name, "alert_rule": rule.name}
    recording = [
        {"record": BURN, "expr": f"min by ({BY}) (mlslo_burn_rate{source})", "labels": extra},
        {
            "record": SAMPLES,
            "expr": f"min by ({BY}) (mlslo_burn_rate_samples{source})",
            "labels": extra,
        },
    ]
    match = _selector({"service": service, "slo": slo.name, "alert_rule": rule.name})
    expr = (
        f"{BURN}{match} > {rule.burn_rate:g}\n"
        f"and on ({BY}, alert_rule) {SAMPLES}{match} >= {slo.min_samples}\n"
        f"and on ({BY}) count by ({BY}) (mlslo_burn_rate{source}) == {len(keys)}"
    )
    alert: dict[str, Any] = {
        "alert": rule.alertname,
        "expr": expr,
        "labels": {"slo": slo.name, "severity": rule.severity, "rule": rule.name},
        "annotations": {
            "summary": f"{service}: {slo.name} is burning its error budget "
            '{{ $value | printf "%.1f" }}x (' + rule.severity + ")",
            "description": f"{slo_title(slo)} burns faster than "
            f"{rule.burn_rate:g}x over both {format_duration(rule.long)} and "
            f"{format_duration(rule.short)}.",
        },
    }
    if rule.for_.total_seconds():
        alert["for"] = format_duration(rule.for_)
    if slo.runbook_url:
        alert["annotations"]["runbook_url"] = slo.runbook_url
    return recording, [alert]


def _absent_rule(service: str, slo: AnySLO, rule: AlertRule) -> dict[str, Any]:
    """Fire when the SLO's last event is older than ``absent_after``, or when /metrics has
    no last event for it at all (an empty window, or no scrape)."""
    assert slo.absent_after is not None
    seconds = slo.absent_after.total_seconds()
    limit = str(int(seconds)) if seconds.is_integer() else f"{seconds}"
    series = "mlslo_last_event_timestamp_seconds" + _selector({"service": service, "slo": slo.name})
    after = format_duration(slo.absent_after)
    alert: dict[str, Any] = {
        "alert": rule.alertname,
        "expr": f"absent({series})\nor (time() - {series} > {limit})",
        "labels": {"slo": slo.name, "severity": rule.severity, "rule": rule.name},
        "annotations": {
            "summary": f"{service}: {slo.name} has had no events for more than {after}",
            "description": f"{slo_title(slo)} has had no events for longer than its "
            f"absent_after of {after}: records stopped arriving, so its budget is not judged.",
        },
    }
    if slo.runbook_url:
        alert["annotations"]["runbook_url"] = slo.runbook_url
    return alert


def prometheus_rules(spec: Spec) -> dict[str, Any]:
    """The rule groups for ``spec`` as a YAML-ready document."""
    recording: list[Any] = []
    alerting: list[Any] = []
    judged: list[Judged] = [*spec.slos, *spec.composites]
    for slo in judged:
        for rule in slo_rules(slo, spec.bucket):
            if rule.kind == "burn":
                more_recording, more_alerts = _burn_rules(spec.service, slo, rule)
                recording += more_recording
                alerting += more_alerts
                continue
            if rule.kind == "absent" and not isinstance(slo, Composite):
                alerting.append(_absent_rule(spec.service, slo, rule))
                continue
            selector = _selector({"service": spec.service, "slo": slo.name, "status": "exhausted"})
            exhausted: dict[str, Any] = {
                "alert": rule.alertname,
                "expr": f"max without (status) (mlslo_error_budget_status{selector}) == 1",
                "labels": {"slo": slo.name, "severity": rule.severity, "rule": rule.name},
                "annotations": {
                    "summary": f"{spec.service}: {slo.name} error budget is exhausted",
                    "description": f"SLO {slo.name} ({slo.dimension}) has spent its whole "
                    "error budget.",
                },
            }
            if slo.runbook_url:
                exhausted["annotations"]["runbook_url"] = slo.runbook_url
            alerting.append(exhausted)
    name = spec.service
    return {
        "groups": [
            {"name": f"mlslo-{name}-burn-rates", "rules": recording},
            {"name": f"mlslo-{name}-alerts", "rules": alerting},
        ]
    }


def rules_yaml(spec: Spec) -> str:
    header = (
        f"# Prometheus rules for the SLOs of {spec.service}, generated by mlslo rules.\n"
        "# They read the series mlslo's /metrics exports; load them with rule_files.\n"
    )
    return header + yaml.dump(prometheus_rules(spec), Dumper=_NoAliases, sort_keys=False, width=100)


class _NoAliases(yaml.SafeDumper):
    """Write repeated label maps in full (anchors are legal YAML but hard to read)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_NoAliases.add_representer(str, _text)
