"""A spec as OpenSLO v1 documents, for SRE tools that keep their SLOs as OpenSLO (Sloth, Nobl9
and others): a ``Service``, a ``DataSource`` for the prediction records, one ``SLO`` per mlslo
SLO with its indicator inline, an ``AlertCondition`` and an ``AlertPolicy`` per burn-rate rule
(the rules mlslo fires: the spec's own, or the Workbook scheme scaled to the window), an
``AlertNotificationTarget`` per notifier, and a ``DataSource`` per Prometheus an SLO reads.

What OpenSLO has a field for is written there; the SLI itself is carried in a
``metricSource`` of type ``mlslo`` with its parameters; what OpenSLO cannot say (policies,
corrections, composite SLOs, aggregate budgeting, the short window of a burn-rate rule, ...)
is kept in ``mlslo.dev/`` annotations, so :func:`mlslo.spec.openslo.import_openslo` gives
the same spec back. docs/openslo.md has the table.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import yaml

from mlslo.moments import format_duration
from mlslo.render.format import slo_objective_text
from mlslo.spec import AnySLO, Notifier, PrometheusSource, Spec, Window, prometheus_source
from mlslo.spec.alert_rules import slo_rules
from mlslo.spec.openslo import format as fmt
from mlslo.spec.slos import AccuracySLO, AvailabilitySLO, FreshnessSLO, LatencySLO
from mlslo.spec.sources import windowed

DESCRIPTION_LIMIT = 1050
OP_WORDS = {">=": "gte", "<=": "lte"}


def _document(
    kind: str,
    name: str,
    spec: dict[str, Any],
    annotations: dict[str, str] | None = None,
    display: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if display is not None:
        metadata["displayName"] = display
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": fmt.API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _name_notes(original: str, name: str) -> tuple[dict[str, str], str | None]:
    """The annotation and display name of a name that changed on the way to OpenSLO."""
    if original == name:
        return {}, None
    return {fmt.NAME: original}, original


def _describe(text: str | None, into: dict[str, Any], annotations: dict[str, str]) -> None:
    """``description`` within OpenSLO's 1050 characters; a longer one whole in an annotation."""
    if text is None:
        return
    if len(text) > DESCRIPTION_LIMIT:
        annotations[fmt.DESCRIPTION] = text
        text = text[: DESCRIPTION_LIMIT - 1] + "…"
    into["description"] = text


class _Names:
    """OpenSLO names for everything a spec exports, unique within their kind."""

    def __init__(self, spec: Spec) -> None:
        self.service = fmt.openslo_name(spec.service)
        self.records = f"{self.service}-records"
        self.prometheus: dict[str, str] = {}
        for slo in spec.slos:
            source = prometheus_source(slo)
            if source is not None and source.url not in self.prometheus:
                taken = {self.records, *self.prometheus.values()}
                name = fmt.unique(f"{self.service}-prometheus", taken)
                self.prometheus[source.url] = name
        self.slos: dict[str, str] = {}
        for slo in spec.slos:
            self.slos[slo.name] = fmt.unique(fmt.openslo_name(slo.name), self.slos.values())
        self.notifiers: dict[int, str] = {}
        for index, notifier in enumerate(spec.notifiers):
            self.notifiers[index] = fmt.unique(
                fmt.openslo_name(notifier.name), self.notifiers.values()
            )
        self.taken: set[str] = set()

    def claim(self, name: str) -> str:
        chosen = fmt.unique(name, self.taken | set(self.notifiers.values()))
        self.taken.add(chosen)
        return chosen


# --- the service and its records ---------------------------------------------------------------


def _service(spec: Spec, names: _Names) -> dict[str, Any]:
    annotations, display = _name_notes(spec.service, names.service)
    body: dict[str, Any] = {}
    _describe(spec.description, body, annotations)
    if spec.budget_low != Spec.model_fields["budget_low"].default:
        annotations[fmt.BUDGET_LOW] = _json(spec.budget_low)
    if spec.corrections:
        annotations[fmt.CORRECTIONS] = _json(
            [c.model_dump(mode="json", exclude_unset=True) for c in spec.corrections]
        )
    if spec.composites:
        annotations[fmt.COMPOSITES] = _json(
            [c.model_dump(mode="json", exclude_unset=True, by_alias=True) for c in spec.composites]
        )
    if spec.policy is not None:
        annotations[fmt.POLICY] = _json(spec.policy.model_dump(mode="json", exclude_unset=True))
    if spec.policies:
        annotations[fmt.POLICIES] = _json(
            {k: p.model_dump(mode="json", exclude_unset=True) for k, p in spec.policies.items()}
        )
    if spec.default_policy is not None:
        annotations[fmt.DEFAULT_POLICY] = spec.default_policy
    if spec.dashboard_url is not None:
        annotations[fmt.DASHBOARD_URL] = spec.dashboard_url
    return _document("Service", names.service, body, annotations, display)


def _records(spec: Spec, names: _Names) -> dict[str, Any]:
    details: dict[str, Any] = {"bucket": format_duration(spec.bucket)}
    for field in ("columns", "label_columns", "outcome_columns"):
        mapping = getattr(spec, field).model_dump(exclude_unset=True)
        if mapping:
            details[field] = mapping
    if spec.attributes:
        details["attributes"] = list(spec.attributes)
    if spec.attribution:
        details["attribution"] = list(spec.attribution)
    body = {
        "description": f"The prediction records mlslo reads for {spec.service}: where each "
        "field lives, and the time resolution (bucket) of their rollups.",
        "type": fmt.MLSLO_TYPE,
        "connectionDetails": details,
    }
    return _document("DataSource", names.records, body)


def _prometheus(names: _Names) -> list[dict[str, Any]]:
    """A ``DataSource`` per Prometheus the SLOs read."""
    return [
        _document(
            "DataSource",
            name,
            {"type": fmt.PROMETHEUS_TYPE, "connectionDetails": {"url": url}},
        )
        for url, name in names.prometheus.items()
    ]


def _prometheus_indicator(source: PrometheusSource, names: _Names) -> dict[str, Any]:
    """A ratio of the source's queries over its ``DataSource`` (``counter``: they read
    cumulative counters, not a count per window)."""
    ratio: dict[str, Any] = {"counter": not windowed(source.total)}
    for part, query in source.queries().items():
        ratio[part] = {
            "metricSource": {
                "metricSourceRef": names.prometheus[source.url],
                "type": fmt.PROMETHEUS_TYPE,
                "spec": {"query": query},
            }
        }
    return {"ratioMetric": ratio}


# --- an SLO: its indicator, window and objective -----------------------------------------------


def _indicator(slo: AnySLO, names: _Names) -> dict[str, Any]:
    """The SLI: ``ratioMetric`` (good/total) for availability and accuracy shares,
    ``thresholdMetric`` for everything compared with a bound; every ``metricSource`` is of
    type ``mlslo`` and says what mlslo measures, or of type ``Prometheus`` with its query."""
    metric_name = {"name": f"{names.slos[slo.name]}-sli"}
    queries = prometheus_source(slo)
    if queries is not None:
        return {"metadata": metric_name, "spec": _prometheus_indicator(queries, names)}
    carried: dict[str, Any] = {"dimension": slo.dimension}
    if isinstance(slo, LatencySLO):
        carried.update(field="latency_ms", unit="ms")
    elif isinstance(slo, FreshnessSLO):
        carried.update(field="lag", unit="s")
    if isinstance(slo, LatencySLO | FreshnessSLO):
        if slo.sli.percentile is not None:
            carried["sli"] = {"percentile": slo.sli.percentile}
    elif not isinstance(slo, AvailabilitySLO):
        carried["sli"] = slo.sli.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if slo.filter:
        carried["filter"] = dict(slo.filter)

    def source(**extra: Any) -> dict[str, Any]:
        return {
            "metricSource": {
                "metricSourceRef": names.records,
                "type": fmt.MLSLO_TYPE,
                "spec": {**carried, **extra},
            }
        }

    if isinstance(slo, AvailabilitySLO) or (
        isinstance(slo, AccuracySLO) and slo.sli.metric == "accuracy"
    ):
        metric = {
            "ratioMetric": {
                "counter": False,
                "good": source(events="good"),
                "total": source(events="total"),
            }
        }
    else:
        metric = {"thresholdMetric": source()}
    return {"metadata": metric_name, "spec": metric}


def _in_unit(slo: AnySLO, value: float | timedelta) -> float:
    """A bound as OpenSLO's ``value``: a duration in the SLI's unit (ms or s), else as is."""
    if isinstance(value, timedelta):
        size = timedelta(milliseconds=1) if slo.unit == "ms" else timedelta(seconds=1)
        return value / size
    return float(value)


def _threshold(slo: AnySLO) -> float | None:
    """The bound an event must meet, for latency and freshness thresholds (else None)."""
    if isinstance(slo, LatencySLO) and slo.sli.latency_threshold is not None:
        return slo.sli.latency_threshold / timedelta(milliseconds=1)
    if isinstance(slo, FreshnessSLO) and slo.sli.lag_threshold is not None:
        return slo.sli.lag_threshold / timedelta(seconds=1)
    return None


def _objective(slo: AnySLO, annotations: dict[str, str]) -> dict[str, Any]:
    objective = slo.objective
    out: dict[str, Any] = {"displayName": f"{slo.metric} {slo_objective_text(slo)}"}
    budgeting = slo.effective_budgeting
    threshold = _threshold(slo)
    if threshold is not None:
        out.update(op="lte", value=threshold)
    if budgeting == "timeslices":
        assert slo.slice is not None and objective.timeslice_target is not None
        if slo.counts_events:
            out["timeSliceTarget"] = _in_unit(slo, objective.timeslice_target)
        else:
            out.update(
                op=OP_WORDS[slo.slice_op],
                value=_in_unit(slo, objective.timeslice_target),
                timeSliceTarget=1.0,
            )
        out["target"] = _in_unit(slo, objective.target)
        minutes = slo.slice / timedelta(minutes=1)
        out["timeSliceWindow"] = fmt.shorthand(slo.slice) or minutes
    elif slo.counts_events:
        out["target"] = _in_unit(slo, objective.target)
    else:
        out.update(op=OP_WORDS[slo.op], value=_in_unit(slo, objective.target))
        out["target"] = fmt.AGGREGATE_TARGET
    if objective.op is not None:
        annotations[fmt.OBJECTIVE_OP] = objective.op
    if objective.allow_reverse_op:
        annotations[fmt.ALLOW_REVERSE_OP] = "true"
    return out


def _time_window(window: Window, annotations: dict[str, str]) -> dict[str, Any]:
    if window.rolling is not None:
        exact = fmt.shorthand(window.rolling)
        if exact is None:
            annotations[fmt.WINDOW] = format_duration(window.rolling)
        return {"duration": exact or fmt.shorthand_at_least(window.rolling), "isRolling": True}
    return {
        "duration": "1M" if window.calendar == "month" else "1w",
        "calendar": {"startTime": fmt.CALENDAR_START, "timeZone": fmt.CALENDAR_ZONE},
        "isRolling": False,
    }


def _slo(spec: Spec, slo: AnySLO, names: _Names, policies: list[str]) -> dict[str, Any]:
    annotations, display = _name_notes(slo.name, names.slos[slo.name])
    body: dict[str, Any] = {}
    _describe(slo.description, body, annotations)
    body["service"] = names.service
    body["indicator"] = _indicator(slo, names)
    body["timeWindow"] = [_time_window(slo.window, annotations)]
    budgeting = slo.effective_budgeting
    body["budgetingMethod"] = "Timeslices" if budgeting == "timeslices" else "Occurrences"
    if slo.budgeting is not None:
        annotations[fmt.BUDGETING] = slo.budgeting
    body["objectives"] = [_objective(slo, annotations)]
    if policies:
        body["alertPolicies"] = policies
    if slo.min_samples != 1:
        annotations[fmt.MIN_SAMPLES] = str(slo.min_samples)
    if slo.max_ci_width is not None:
        annotations[fmt.MAX_CI_WIDTH] = _json(slo.max_ci_width)
    if slo.runbook_url is not None:
        annotations[fmt.RUNBOOK_URL] = slo.runbook_url
    source = prometheus_source(slo)
    if source is not None:
        if source.timeout != PrometheusSource.model_fields["timeout"].default:
            annotations[fmt.PROMETHEUS_TIMEOUT] = format_duration(source.timeout)
        if isinstance(slo, LatencySLO):
            annotations[fmt.DIMENSION] = slo.dimension
    annotations[fmt.ALERTS] = fmt.STANDARD_ALERTS if slo.alerts is None else fmt.CUSTOM_ALERTS
    return _document("SLO", names.slos[slo.name], body, annotations, display)


# --- alerts and where they go ------------------------------------------------------------------

_Rule = tuple[timedelta, timedelta, float, str, timedelta | None]


def _rules(spec: Spec, slo: AnySLO) -> list[_Rule]:
    """The burn-rate rules mlslo fires for ``slo``: its own, or the scaled Workbook scheme."""
    if slo.alerts is not None:
        return [(a.long, a.short, a.burn_rate, a.severity, a.for_) for a in slo.alerts]
    out: list[_Rule] = []
    for rule in slo_rules(slo, spec.bucket):
        if rule.kind == "burn":
            assert rule.long and rule.short and rule.burn_rate is not None
            out.append((rule.long, rule.short, rule.burn_rate, rule.severity, None))
    return out


def _notifier(notifier: Notifier, name: str) -> dict[str, Any]:
    annotations, display = _name_notes(notifier.name, name)
    carried = notifier.model_dump(mode="json", by_alias=True, exclude_unset=True)
    carried.pop("name")
    annotations[fmt.NOTIFIER] = _json(carried)
    body = {
        "description": f"mlslo {notifier.type} notifier {notifier.name}",
        "target": notifier.type,
    }
    return _document("AlertNotificationTarget", name, body, annotations, display)


class _Targets:
    """The notification targets of each severity: the spec's notifiers that take it, or a
    placeholder target (so every AlertPolicy has one, as OpenSLO requires)."""

    def __init__(self, spec: Spec, names: _Names) -> None:
        self.spec = spec
        self.names = names
        self.documents = [
            _notifier(notifier, names.notifiers[index])
            for index, notifier in enumerate(spec.notifiers)
        ]
        self.placeholders: dict[str, str] = {}

    def of(self, severity: str) -> tuple[list[str], bool]:
        """Target names for ``severity`` and whether any of them sends resolutions."""
        chosen = [
            (self.names.notifiers[i], n.send_resolved)
            for i, n in enumerate(self.spec.notifiers)
            if n.severities is None or severity in n.severities
        ]
        if chosen:
            return [name for name, _ in chosen], any(resolved for _, resolved in chosen)
        if severity not in self.placeholders:
            name = self.names.claim(f"{self.names.service}-{severity}")
            self.placeholders[severity] = name
            self.documents.append(
                _document(
                    "AlertNotificationTarget",
                    name,
                    {
                        "description": f"No mlslo notifier takes {severity} alerts of "
                        f"{self.spec.service}; route this target in the tool that reads "
                        "these documents.",
                        "target": severity,
                    },
                    {fmt.PLACEHOLDER: "true"},
                )
            )
        return [self.placeholders[severity]], False


def _alerts(
    spec: Spec, slo: AnySLO, names: _Names, targets: _Targets
) -> tuple[list[str], list[dict[str, Any]]]:
    """The AlertConditions and AlertPolicies of ``slo``'s burn-rate rules: one condition per
    policy, as OpenSLO allows."""
    policies: list[str] = []
    documents: list[dict[str, Any]] = []
    base = names.slos[slo.name]
    for long, short, rate, severity, for_ in _rules(spec, slo):
        rule = f"{severity}-{format_duration(long)}-{format_duration(short)}"
        policy = names.claim(fmt.openslo_name(f"{base}-{rule}"))
        condition = names.claim(f"{policy}-burn")
        annotations = {
            fmt.SHORT_WINDOW: format_duration(short),
            fmt.FOR: fmt.NO_FOR if for_ is None else format_duration(for_),
        }
        lookback = fmt.shorthand(long)
        if lookback is None:
            annotations[fmt.LONG_WINDOW] = format_duration(long)
        # OpenSLO's alertAfter is at least 1m; mlslo's exact `for` is in the annotation.
        after = fmt.shorthand(for_) if for_ is not None else None
        after = after or fmt.shorthand_at_least(for_ or timedelta(0))
        documents.append(
            _document(
                "AlertCondition",
                condition,
                {
                    "description": f"{spec.service}: {slo.name} burns its error budget faster "
                    f"than {rate:g}x over both {format_duration(long)} and "
                    f"{format_duration(short)} (mlslo.dev/short-window).",
                    "severity": severity,
                    "condition": {
                        "kind": "burnrate",
                        "threshold": rate,
                        "lookbackWindow": lookback or fmt.shorthand_at_least(long),
                        "alertAfter": after,
                    },
                },
                annotations,
            )
        )
        receivers, resolved = targets.of(severity)
        documents.append(
            _document(
                "AlertPolicy",
                policy,
                {
                    "description": f"mlslo's {severity} alert on the burn rate of {slo.name}",
                    "alertWhenNoData": False,
                    "alertWhenResolved": resolved,
                    "alertWhenBreaching": True,
                    "conditions": [{"conditionRef": condition}],
                    "notificationTargets": [{"targetRef": name} for name in receivers],
                },
            )
        )
        policies.append(policy)
    return policies, documents


# --- the whole stream --------------------------------------------------------------------------


def openslo_documents(spec: Spec) -> list[dict[str, Any]]:
    """Every OpenSLO v1 document of ``spec``, in the order they are written."""
    names = _Names(spec)
    targets = _Targets(spec, names)
    out = [_service(spec, names), _records(spec, names), *_prometheus(names)]
    for slo in spec.slos:
        policies, alerting = _alerts(spec, slo, names, targets)
        out.append(_slo(spec, slo, names, policies))
        out += alerting
    return out + targets.documents


def openslo_yaml(spec: Spec) -> str:
    """The documents as one YAML stream."""
    header = (
        f"# OpenSLO v1 documents of the SLOs of {spec.service}, written by mlslo openslo export.\n"
        "# mlslo openslo import reads them back into the same spec.\n"
    )
    return header + yaml.dump_all(
        openslo_documents(spec),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        explicit_start=True,
    )


class _Dumper(yaml.SafeDumper):
    """Repeated mappings are written out (anchors are legal YAML, but other tools trip on them)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True
