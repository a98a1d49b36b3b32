"""``mlslo openslo export`` and ``import``: what each mlslo field becomes in OpenSLO v1 (checked
against the OpenSLO v1 JSON Schema in tests/data/openslo/schema), and what the OpenSLO
examples of the specification repository and of Sloth (tests/data/openslo/examples, sources in
SOURCES.md there) become in mlslo — with every part that is not mapped as written reported on
one line, never dropped silently. The round trip over generated specs is in
test_openslo_roundtrip.py."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mlslo.render.openslo import openslo_documents, openslo_yaml
from mlslo.spec import Spec, load_spec, parse_spec, prometheus_source
from mlslo.spec.openslo import OpenSLOImport, import_openslo
from mlslo.spec.openslo import format as fmt
from openslo_schema import assert_valid_openslo, openslo_errors

DATA = Path(__file__).parent / "data"
EXAMPLES = DATA / "openslo" / "examples"
DESIGN = DATA / "design_spec.yaml"


def spec_of(text: str) -> Spec:
    return parse_spec(textwrap.dedent(text))


def documents(spec: Spec) -> list[dict[str, Any]]:
    out = openslo_documents(spec)
    for document in out:
        assert_valid_openslo(document)
    return out


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def read(*names: str) -> OpenSLOImport:
    return import_openslo([(n, (EXAMPLES / n).read_text(encoding="utf-8")) for n in names])


def notes_of(result: OpenSLOImport) -> str:
    return "\n".join(str(note) for note in result.notes)


class _Loader(yaml.SafeLoader):
    """YAML as JSON sees it (timestamps stay text), as the OpenSLO schema tests read it."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in value if tag != "tag:yaml.org,2002:timestamp"]
    for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


# --- the schema --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "openslo/alert-policy-inline-cond.yaml",
        "openslo/slo-no-indicatorref-rolling-alerts.yaml",
    ],
)
def test_the_shipped_schema_accepts_the_specifications_own_examples(name):
    """Two files the specification's own schema tests expect to be valid."""
    document = yaml.load((EXAMPLES / name).read_text(encoding="utf-8"), Loader=_Loader)
    assert_valid_openslo(document)


SLO = {
    "apiVersion": "openslo/v1",
    "kind": "SLO",
    "metadata": {"name": "ok"},
    "spec": {
        "service": "svc",
        "indicatorRef": "sli",
        "budgetingMethod": "Occurrences",
        "objectives": [{"target": 0.99}],
    },
}


def _changed(path: str, value: Any) -> dict[str, Any]:
    document = json.loads(json.dumps(SLO))
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return document


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("metadata.name", "Not_Lowercase"),
        ("spec.budgetingMethod", None),
        ("spec.budgetingMethod", "Aggregate"),
        ("spec.objectives.0.target", 1.0),
        ("spec.budgetingMethod", "Timeslices"),
        ("apiVersion", "openslo/v2alpha"),
        ("spec.timeWindow", [{"duration": "1h30m", "isRolling": True}]),
    ],
)
def test_the_shipped_schema_rejects_what_openslo_v1_does_not_allow(path, value):
    assert openslo_errors(SLO) == []
    assert openslo_errors(_changed(path, value)) != []


# --- export ------------------------------------------------------------------------------------


def test_export_writes_every_kind_and_every_reference_resolves():
    spec = load_spec(DESIGN)
    docs = documents(spec)
    kinds = {d["kind"] for d in docs}
    assert kinds == {
        "Service",
        "DataSource",
        "SLO",
        "AlertCondition",
        "AlertPolicy",
        "AlertNotificationTarget",
    }
    slos = by_kind(docs, "SLO")
    assert sorted(slos) == sorted(s.name for s in spec.slos)
    policies, conditions = by_kind(docs, "AlertPolicy"), by_kind(docs, "AlertCondition")
    targets, sources = by_kind(docs, "AlertNotificationTarget"), by_kind(docs, "DataSource")
    (service,) = by_kind(docs, "Service")
    for slo in slos.values():
        assert slo["spec"]["service"] == service
        assert (
            len(slo["spec"]["alertPolicies"]) == 4
        )  # the Workbook scheme, two pages and two tickets
        for name in slo["spec"]["alertPolicies"]:
            policy = policies[name]["spec"]
            assert [c["conditionRef"] in conditions for c in policy["conditions"]] == [True]
            assert all(t["targetRef"] in targets for t in policy["notificationTargets"])
        indicator = slo["spec"]["indicator"]["spec"]
        for metric in (
            *indicator.get("ratioMetric", {}).values(),
            indicator.get("thresholdMetric"),
        ):
            if isinstance(metric, dict):
                assert metric["metricSource"]["metricSourceRef"] in sources
                assert metric["metricSource"]["type"] == "mlslo"


def test_availability_is_a_ratio_and_latency_a_threshold_metric():
    spec = spec_of("""
        service: api
        slos:
          - {name: uptime, dimension: availability, objective: {target: 0.9995}}
          - name: fast
            dimension: latency
            sli: {latency_threshold: 250ms}
            objective: {target: 0.99}
          - name: p99
            dimension: latency
            sli: {percentile: 99}
            objective: {target: 400ms}
            window: 7d
    """)
    slos = by_kind(documents(spec), "SLO")
    uptime = slos["uptime"]["spec"]
    ratio = uptime["indicator"]["spec"]["ratioMetric"]
    assert ratio["good"]["metricSource"]["spec"] == {"dimension": "availability", "events": "good"}
    assert ratio["total"]["metricSource"]["spec"]["events"] == "total"
    assert uptime["objectives"] == [{"displayName": "availability >= 99.95%", "target": 0.9995}]
    assert uptime["budgetingMethod"] == "Occurrences"
    fast = slos["fast"]["spec"]
    assert fast["indicator"]["spec"]["thresholdMetric"]["metricSource"]["spec"] == {
        "dimension": "latency",
        "field": "latency_ms",
        "unit": "ms",
    }
    objective = fast["objectives"][0]
    assert (objective["op"], objective["value"], objective["target"]) == ("lte", 250.0, 0.99)
    p99 = slos["p99"]["spec"]
    assert p99["indicator"]["spec"]["thresholdMetric"]["metricSource"]["spec"]["sli"] == {
        "percentile": 99.0
    }
    objective = p99["objectives"][0]
    assert (objective["op"], objective["value"]) == ("lte", 400.0)
    assert objective["target"] == fmt.AGGREGATE_TARGET
    assert p99["timeWindow"] == [{"duration": "7d", "isRolling": True}]


def test_ml_slis_carry_their_parameters_in_an_mlslo_metric_source():
    spec = spec_of("""
        service: fraud
        slos:
          - name: f1
            dimension: accuracy
            sli: {metric: f1, positive_label: fraud, label_delay: 7d, estimate: cbpe}
            objective: {target: 0.92}
            filter: {region: eu, model_version: [v7, v7.1]}
          - name: four-fifths
            dimension: fairness
            sli:
              metric: disparate_impact_ratio
              attribute: [group, region]
              method: reference
              reference_group: [A, eu]
              min_group_size: 30
            objective: {target: 0.8}
    """)
    slos = by_kind(documents(spec), "SLO")
    source = slos["f1"]["spec"]["indicator"]["spec"]["thresholdMetric"]["metricSource"]["spec"]
    assert source == {
        "dimension": "accuracy",
        "sli": {"metric": "f1", "positive_label": "fraud", "label_delay": "7d", "estimate": "cbpe"},
        "filter": {"region": "eu", "model_version": ["v7", "v7.1"]},
    }
    fair = slos["four-fifths"]["spec"]["indicator"]["spec"]["thresholdMetric"]["metricSource"]
    assert fair["spec"]["sli"]["reference_group"] == ["A", "eu"]
    assert slos["four-fifths"]["spec"]["objectives"][0]["op"] == "gte"


def test_burn_rate_alerts_are_the_workbook_scheme_scaled_to_the_window():
    """For a 7-day window the 30-day scheme scales by 7/30 and rounds to 1-minute buckets:
    1h -> 14m, 5m -> 1m, 6h -> 84m, 30m -> 7m, 1d -> 336m, 2h -> 28m, 3d -> 1008m, 6h -> 84m."""
    spec = spec_of("""
        service: api
        slos:
          - {name: uptime, dimension: availability, objective: {target: 0.999}, window: 7d}
    """)
    conditions = by_kind(documents(spec), "AlertCondition").values()
    seen = [
        (
            c["spec"]["condition"]["lookbackWindow"],
            c["metadata"]["annotations"][fmt.SHORT_WINDOW],
            c["spec"]["condition"]["threshold"],
            c["spec"]["severity"],
            c["spec"]["condition"]["alertAfter"],
        )
        for c in conditions
    ]
    assert seen == [
        ("14m", "1m", 14.4, "page", "1m"),
        ("84m", "7m", 6.0, "page", "1m"),
        ("336m", "28m", 3.0, "ticket", "1m"),
        ("1008m", "1h24m", 1.0, "ticket", "1m"),
    ]


def test_what_openslo_durations_cannot_say_is_kept_exactly_in_annotations():
    spec = spec_of("""
        service: api
        bucket: 30s
        slos:
          - name: uptime
            dimension: availability
            objective: {target: 0.999}
            window: 5m30s
            alerts:
              - {long: 1h30s, short: 30s, burn_rate: 10, for: 90s}
              - {long: 2h, short: 10m, burn_rate: 2, severity: ticket}
    """)
    docs = documents(spec)
    slo = by_kind(docs, "SLO")["uptime"]
    assert slo["spec"]["timeWindow"][0]["duration"] == "6m"
    assert slo["metadata"]["annotations"][fmt.WINDOW] == "5m30s"
    first, second = by_kind(docs, "AlertCondition").values()
    assert first["spec"]["condition"]["lookbackWindow"] == "61m"
    assert first["spec"]["condition"]["alertAfter"] == "2m"
    assert first["metadata"]["annotations"] == {
        fmt.SHORT_WINDOW: "30s",
        fmt.FOR: "1m30s",
        fmt.LONG_WINDOW: "1h30s",
    }
    assert second["spec"]["condition"]["lookbackWindow"] == "2h"
    assert second["metadata"]["annotations"][fmt.FOR] == fmt.NO_FOR
    assert import_openslo([("x", openslo_yaml(spec))]).spec == spec


def test_calendar_windows_start_at_midnight_utc_on_a_monday_the_first():
    spec = spec_of("""
        service: api
        slos:
          - {name: monthly, dimension: availability, objective: {target: 0.999}, window: month}
          - {name: weekly, dimension: availability, objective: {target: 0.999}, window: week}
    """)
    slos = by_kind(documents(spec), "SLO")
    calendar = {"startTime": "2024-01-01 00:00:00", "timeZone": "Etc/UTC"}
    assert slos["monthly"]["spec"]["timeWindow"] == [
        {"duration": "1M", "calendar": calendar, "isRolling": False}
    ]
    assert slos["weekly"]["spec"]["timeWindow"][0]["duration"] == "1w"


def test_timeslices_map_to_openslo_timeslices():
    spec = spec_of("""
        service: api
        slos:
          - name: good-minutes
            dimension: availability
            budgeting: timeslices
            slice: 1h
            objective: {target: 0.99, timeslice_target: 0.95}
          - name: good-hours
            dimension: latency
            sli: {percentile: 99}
            budgeting: timeslices
            slice: 1h
            objective: {target: 0.99, timeslice_target: 300ms}
    """)
    slos = by_kind(documents(spec), "SLO")
    ratio = slos["good-minutes"]["spec"]
    assert ratio["budgetingMethod"] == "Timeslices"
    assert ratio["objectives"][0] | {"displayName": ""} == {
        "displayName": "",
        "timeSliceTarget": 0.95,
        "target": 0.99,
        "timeSliceWindow": "1h",
    }
    objective = slos["good-hours"]["spec"]["objectives"][0]
    assert (objective["op"], objective["value"], objective["timeSliceTarget"]) == (
        "lte",
        300.0,
        1.0,
    )


def test_names_openslo_cannot_spell_keep_their_original():
    spec = spec_of("""
        service: Fraud_Scoring
        slos:
          - {name: Uptime, dimension: availability, objective: {target: 0.99}}
          - {name: uptime, dimension: availability, objective: {target: 0.999}}
    """)
    docs = documents(spec)
    slos = by_kind(docs, "SLO")
    assert sorted(slos) == ["uptime", "uptime-2"]
    assert slos["uptime"]["metadata"]["annotations"][fmt.NAME] == "Uptime"
    assert slos["uptime"]["metadata"]["displayName"] == "Uptime"
    assert slos["uptime-2"]["metadata"]["annotations"][fmt.NAME] == "uptime"
    assert by_kind(docs, "Service")["fraud-scoring"]["metadata"]["annotations"] == {
        fmt.NAME: "Fraud_Scoring"
    }
    assert import_openslo([("x", openslo_yaml(spec))]).spec == spec


def test_a_description_longer_than_openslo_allows_is_kept_whole():
    text = "word " * 300
    spec = spec_of(f"""
        service: api
        description: short
        slos:
          - name: uptime
            description: {text.strip()}
            dimension: availability
            objective: {{target: 0.99}}
    """)
    slo = by_kind(documents(spec), "SLO")["uptime"]
    assert len(slo["spec"]["description"]) == 1050
    assert slo["metadata"]["annotations"][fmt.DESCRIPTION] == text.strip()
    assert import_openslo([("x", openslo_yaml(spec))]).spec == spec


def test_notifiers_are_targets_and_a_severity_nobody_takes_gets_a_placeholder():
    spec = spec_of("""
        service: api
        slos:
          - {name: uptime, dimension: availability, objective: {target: 0.99}}
        notifiers:
          - {name: On_Call, type: slack, url: "https://hooks.slack.com/x", severities: [page]}
    """)
    docs = documents(spec)
    targets = by_kind(docs, "AlertNotificationTarget")
    assert sorted(targets) == ["api-ticket", "on-call"]
    assert json.loads(targets["on-call"]["metadata"]["annotations"][fmt.NOTIFIER]) == {
        "type": "slack",
        "url": "https://hooks.slack.com/x",
        "severities": ["page"],
    }
    assert targets["api-ticket"]["metadata"]["annotations"] == {fmt.PLACEHOLDER: "true"}
    routes = {
        p["metadata"]["name"]: [t["targetRef"] for t in p["spec"]["notificationTargets"]]
        for p in by_kind(docs, "AlertPolicy").values()
    }
    assert routes == {
        "uptime-page-1h-5m": ["on-call"],
        "uptime-page-6h-30m": ["on-call"],
        "uptime-ticket-1d-2h": ["api-ticket"],
        "uptime-ticket-3d-6h": ["api-ticket"],
    }
    imported = import_openslo([("x", openslo_yaml(spec))])
    assert imported.notes == () and imported.spec == spec


def test_policies_and_corrections_ride_in_service_annotations():
    spec = load_spec(DESIGN)
    service = by_kind(documents(spec), "Service")["fraud-scoring"]
    carried = json.loads(service["metadata"]["annotations"][fmt.POLICY])
    assert carried == spec.policy.model_dump(mode="json", exclude_unset=True)  # type: ignore[union-attr]
    assert import_openslo([("x", openslo_yaml(spec))]).spec == spec


# --- import: the examples ----------------------------------------------------------------------


def test_sloths_kubernetes_example_imports_as_prometheus_availability_and_latency():
    result = read("sloth/openslo-kubernetes-apiserver.yml")
    assert result.spec is not None
    spec = parse_spec(result.yaml())
    assert spec.service == "k8s-apiserver"
    shapes = [(s.name, s.dimension, s.objective.target, str(s.window), s.alerts) for s in spec.slos]
    assert shapes == [
        ("requests-availability-openslo", "availability", 0.999, "30d", None),
        ("requests-latency-openslo", "latency", 0.99, "30d", None),
        ("requests-latency-openslo-2", "latency", 0.999, "30d", None),
    ]
    fast, slow = spec.slos[1], spec.slos[2]
    assert str(fast.sli.latency_threshold) == "0:00:00.400000"  # type: ignore[union-attr]
    assert str(slow.sli.latency_threshold) == "0:00:05"  # type: ignore[union-attr]
    assert 'apiserver_request_total{code!~"(5..|429)"}' in (spec.slos[0].description or "")
    assert 'good: sum(rate(apiserver_request_duration_seconds_bucket{le="0.4"' in (
        fast.description or ""
    )
    text = notes_of(result)
    assert text.count("a Prometheus source") == 0  # the wording is the one below
    assert text.count("reads a range of its own ([{{.window}}])") == 3
    assert "becomes SLO 'requests-latency-openslo-2'" in text
    assert 'le="0.4"' in text and 'le="5"' in text


def test_sloths_getting_started_example_imports():
    result = read("sloth/openslo-getting-started.yml")
    spec = parse_spec(result.yaml())
    (slo,) = spec.slos
    assert (slo.name, slo.dimension, slo.objective.target) == (
        "sloth-slo-my-service",
        "availability",
        0.999,
    )
    assert slo.description is not None and 'code!~"(5..|429)"' in slo.description
    assert spec.service == "my-service"


def test_a_prometheus_sli_of_the_specification_imports_with_its_datasource():
    result = read(
        "openslo/sli-description-ratio-good-metricsourceref.yaml", "written/slo-for-great-sli.yaml"
    )
    spec = parse_spec(result.yaml())
    (slo,) = spec.slos
    assert (slo.name, slo.dimension, str(slo.window)) == ("great-slo", "availability", "7d")
    source = prometheus_source(slo)
    assert source is not None and source.url == "http://127.0.0.1:9090"
    assert 'localhost_server_requests{code="total"' in source.total
    assert source.good is not None and source.bad is None
    assert "reads the queries from Prometheus at http://127.0.0.1:9090" in notes_of(result)


def test_a_datadog_ratio_of_the_specification_imports_with_what_changed_reported():
    result = read("openslo/slo-no-indicatorref-rolling-alerts.yaml")
    spec = parse_spec(result.yaml())
    (slo,) = spec.slos
    assert (slo.dimension, slo.objective.target, str(slo.window), slo.alerts) == (
        "availability",
        0.98,
        "30d",
        [],
    )
    lines = [str(n) for n in result.notes]
    where = "openslo/slo-no-indicatorref-rolling-alerts.yaml"
    assert (
        f"{where}:29: SLO 'test-slo': spec.timeWindow[0].duration: a rolling 1M is read as 30d"
        in lines
    )
    assert any("AlertPolicy 'foo-alert-policy' is not among the documents read" in x for x in lines)
    assert any("metric source type Datadog is not Prometheus" in x for x in lines)
    assert any(
        "DataSource 'datadog-datasource' is not among the documents read" in x for x in lines
    )


def test_timeslices_on_a_new_york_calendar_week_import_with_the_difference_reported():
    result = read("openslo/treat-low-traffic-timeslices-slo.yaml")
    spec = parse_spec(result.yaml())
    (slo,) = spec.slos
    assert slo.effective_budgeting == "timeslices"
    assert (slo.window.calendar, str(slo.slice), slo.objective.target) == (
        "week",
        "0:01:00",
        0.9995,
    )
    assert slo.objective.timeslice_target == 0.95
    text = notes_of(result)
    assert "starts at 2022-01-01 12:00:00 America/New_York" in text
    assert "op and value apply to threshold metrics; ignored for a ratio" in text


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("openslo/occurences-slo.yaml", "a thresholdMetric over 'Any' cannot be mapped"),
        ("openslo/ratio-timeslices.yaml", "budgetingMethod RatioTimeslices has no mlslo"),
        (
            "openslo/alert-policy-inline-cond.yaml",
            "AlertPolicy 'alert-policy': metadata.name: is not used by any SLO",
        ),
        (
            "openslo/sli-description-ratio-good-metricsourceref.yaml",
            "SLI 'GreatSLI': metadata.name: is not used by any SLO",
        ),
    ],
)
def test_examples_that_do_not_fit_give_no_spec_and_say_why(name, reason):
    result = read(name)
    assert result.spec is None
    text = notes_of(result)
    assert reason in text
    assert text.splitlines()[-1].endswith("no SLO could be mapped to mlslo, so there is no spec")


def test_nobl9_style_documents_import_with_their_alerts():
    result = read("written/nobl9-style.yaml")
    spec = parse_spec(result.yaml())
    assert (spec.service, spec.description) == ("web", "The public web front end")
    availability, latency = spec.slos
    assert availability.alerts is not None
    (alert,) = availability.alerts
    assert (
        str(alert.long),
        str(alert.short),
        alert.burn_rate,
        alert.severity,
        str(alert.for_),
    ) == (
        "1:00:00",
        "0:05:00",
        14.4,
        "page",
        "0:05:00",
    )
    assert str(availability.window) == "28d"
    assert "http://prometheus.internal:9090" in (availability.description or "")
    assert (latency.window.calendar, latency.alerts) == ("month", None)
    assert str(latency.sli.latency_threshold) == "0:00:00.250000"  # type: ignore[union-attr]
    text = notes_of(result)
    for expected in (
        "annotations nobl9.com/metadata.project are not kept",
        "labels team are not kept",
        "severity 'High' is read as page",
        "long/12 as in the SRE Workbook: 5m",
        "target 'email' is not imported",
    ):
        assert expected in text
    assert "calendar" not in text  # 2024-01-01 00:00 UTC is where mlslo's months start


def test_every_note_is_one_located_line():
    for name in sorted(EXAMPLES.rglob("*.y*ml")):
        result = import_openslo([(name.name, name.read_text(encoding="utf-8"))])
        for note in result.notes:
            line = str(note)
            assert "\n" not in line
            assert line.startswith(name.name)


# --- import: edge cases ------------------------------------------------------------------------


def test_unknown_versions_kinds_and_text_are_reported():
    result = import_openslo(
        [
            ("a.yaml", "apiVersion: openslo/v2alpha\nkind: SLO\nmetadata: {name: x}\nspec: {}\n"),
            ("b.yaml", "apiVersion: openslo/v1\nkind: Dashboard\nmetadata: {name: y}\nspec: {}\n"),
            ("c.yaml", "key: [unclosed\n"),
            ("d.yaml", "- just\n- a list\n"),
        ]
    )
    assert result.spec is None
    lines = [str(n) for n in result.notes]
    assert (
        "a.yaml:1: SLO 'x': apiVersion: apiVersion openslo/v2alpha is not read; mlslo reads "
        "openslo/v1 (and openslo/v1alpha SLOs)"
    ) in lines
    assert any(x.startswith("b.yaml:2: Dashboard 'y': kind: kind Dashboard is not") for x in lines)
    assert any(x.startswith("c.yaml:2: not valid YAML") for x in lines)
    assert [x for x in lines if x.startswith("d.yaml")] == [
        f"d.yaml:{n}: not an OpenSLO document (a mapping with apiVersion, kind, metadata, spec); "
        "skipped"
        for n in (1, 2)
    ]
    assert lines[-1] == (
        "a.yaml, b.yaml, c.yaml, d.yaml: no SLO could be mapped to mlslo, so there is no spec"
    )


def test_references_resolve_across_files():
    spec = load_spec(DESIGN)
    docs = openslo_documents(spec)
    slos = [d for d in docs if d["kind"] == "SLO"]
    rest = [d for d in docs if d["kind"] != "SLO"]
    result = import_openslo(
        [("slos.yaml", yaml.safe_dump_all(slos)), ("rest.yaml", yaml.safe_dump_all(rest))]
    )
    assert result.notes == ()
    assert result.spec == spec


def test_a_policy_naming_an_slo_that_was_not_imported_is_left_out_and_said():
    spec = load_spec(DESIGN)
    docs = openslo_documents(spec)
    for document in docs:
        if document["kind"] == "SLO" and document["metadata"]["name"] == "uptime":
            ratio = document["spec"]["indicator"]["spec"]["ratioMetric"]
            for part in ("good", "total"):
                ratio[part]["metricSource"]["spec"]["dimension"] = "uptime"
    result = import_openslo([("x.yaml", yaml.safe_dump_all(docs))])
    assert result.spec is not None
    assert [s.name for s in result.spec.slos] == ["accuracy", "freshness", "latency", "fairness"]
    assert result.spec.policy is None
    text = notes_of(result)
    assert "an mlslo metric source needs a dimension" in text
    assert "policy.hard_stop[0]: " in text and "policy left out" in text


# --- the command line --------------------------------------------------------------------------


def test_cli_export_then_import_gives_the_spec_back(cli, tmp_path):
    exported = tmp_path / "openslo.yaml"
    run = cli("openslo", "export", DESIGN, "--out", exported)
    assert run.exit_code == 0, run.stderr
    assert run.stderr.strip() == f"wrote {exported}"
    assert cli("openslo", "export", "--spec", DESIGN).stdout == exported.read_text()
    spec_file = tmp_path / "spec.yaml"
    run = cli("openslo", "import", exported, "-o", spec_file)
    assert run.exit_code == 0, run.stderr
    assert run.stderr.strip() == f"wrote {spec_file}"
    assert load_spec(spec_file) == load_spec(DESIGN)
    assert cli("validate", spec_file).exit_code == 0


def test_cli_import_prints_the_spec_and_one_warning_line_per_note(cli):
    run = cli("openslo", "import", EXAMPLES / "sloth" / "openslo-kubernetes-apiserver.yml")
    assert run.exit_code == 0
    assert parse_spec(run.stdout).service == "k8s-apiserver"
    lines = run.stderr.splitlines()
    assert len(lines) == 8
    assert all(
        line.startswith("warning: ") and "openslo-kubernetes-apiserver.yml:" in line
        for line in lines
    )


def test_cli_import_with_nothing_to_map_exits_2_with_every_reason(cli):
    run = cli(
        "openslo",
        "import",
        EXAMPLES / "openslo" / "ratio-timeslices.yaml",
        EXAMPLES / "openslo" / "occurences-slo.yaml",
    )
    assert run.exit_code == 2
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("error: ") for line in lines)
    assert "RatioTimeslices" in lines[0] and "thresholdMetric" in lines[1]
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("openslo", "import", "missing.yaml"), "error: missing.yaml: file not found"),
        (("openslo", "export"), "error: give the spec once"),
        (("openslo", "export", "missing.yaml"), "error: missing.yaml: file not found"),
    ],
)
def test_cli_user_errors_are_one_line_and_exit_2(cli, args, message):
    run = cli(*args)
    assert run.exit_code == 2
    assert run.stderr.startswith(message)
    assert len(run.stderr.strip().splitlines()) == 1


# --- the docs ----------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _fenced(doc: str, lang: str) -> list[str]:
    text = (DOCS / doc).read_text(encoding="utf-8")
    return [part.split("\n", 1)[1] for part in text.split("```")[1::2] if part.startswith(lang)]


def test_the_slo_document_in_openslo_md_is_what_export_writes():
    spec = load_spec(Path(__file__).resolve().parents[1] / "examples/reference/uptime/spec.yaml")
    (shown,) = [yaml.safe_load(b) for b in _fenced("openslo.md", "yaml")]
    assert shown == by_kind(documents(spec), "SLO")["uptime"]


def test_the_warnings_in_openslo_md_are_what_import_prints(cli, tmp_path, monkeypatch):
    (body,) = [b for b in _fenced("cli.md", "yaml") if b.startswith("# checkout-openslo.yaml")]
    (tmp_path / "checkout-openslo.yaml").write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run = cli("openslo", "import", "checkout-openslo.yaml")
    assert run.exit_code == 0
    (shown,) = [b for b in _fenced("openslo.md", "text") if b.startswith("warning:")]
    assert run.stderr.splitlines() == shown.splitlines()


def test_windows_mlslo_cannot_hold_are_refused_with_the_reason():
    text = SLO | {
        "spec": {
            "indicator": {"metadata": {"name": "s"}, "spec": {"ratioMetric": RATIO}},
            "timeWindow": [{"duration": "1Y", "isRolling": True}],
            "budgetingMethod": "Occurrences",
            "objectives": [{"target": 0.99}],
        }
    }
    result = import_openslo([("year.yaml", yaml.safe_dump(text))])
    assert result.spec is None
    assert "SLO 'ok' not imported: window: a rolling window must be between 5m and 90d" in (
        notes_of(result)
    )


def test_without_a_service_the_spec_is_named_after_the_file():
    text = {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": "up"},
        "spec": {
            "indicator": {"metadata": {"name": "s"}, "spec": {"ratioMetric": RATIO}},
            "budgetingMethod": "Occurrences",
            "objectives": [{"target": 0.99}],
        },
    }
    result = import_openslo([("dir/Shop Front.yaml", yaml.safe_dump(text))])
    assert result.spec is not None and result.spec.service == "Shop-Front"
    assert "the service is named 'Shop-Front' after the file" in notes_of(result)
    assert "has no time window: mlslo's default, 30d rolling, applies" in notes_of(result)


RATIO = {
    "counter": True,
    "good": {"metricSource": {"type": "Prometheus", "spec": {"query": "sum(ok)"}}},
    "total": {"metricSource": {"type": "Prometheus", "spec": {"query": "sum(all)"}}},
}


# --- robustness --------------------------------------------------------------------------------

_POOL = openslo_documents(load_spec(DESIGN)) + [
    document
    for path in sorted(EXAMPLES.rglob("*.y*ml"))
    for loaded in yaml.safe_load_all(path.read_text(encoding="utf-8"))
    for document in (loaded if isinstance(loaded, list) else [loaded])
    if isinstance(document, dict)
]
_JUNK = [None, 0, -1, 1e308, float("nan"), 10**20, "", "x", "0m", "1Y", "lte", [], {}, [1], True]


def _places(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for key, child in children:
        out += _places(child, (*path, key))
    return out


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mangled_documents_are_mapped_or_reported_never_a_crash(data):
    """Any field of real documents replaced by junk (a wrong type, a number too large for a
    duration, NaN, an empty list): the import still returns, each note one line, and any spec
    it gives is valid and reads back from its YAML."""
    docs = json.loads(
        json.dumps(data.draw(st.lists(st.sampled_from(_POOL), min_size=1, max_size=6)), default=str)
    )
    for _ in range(data.draw(st.integers(1, 4))):
        document = data.draw(st.sampled_from(docs))
        places = _places(document)
        if not places:
            continue
        *parents, last = data.draw(st.sampled_from(places))
        node = document
        for part in parents:
            node = node[part]
        node[last] = json.loads(json.dumps(data.draw(st.sampled_from(_JUNK))))
    result = import_openslo([("mangled.yaml", yaml.safe_dump_all(docs))])
    assert all("\n" not in str(note) for note in result.notes)
    if result.spec is not None:
        assert parse_spec(result.yaml()) == result.spec
    else:
        assert result.notes


def test_a_recursive_alias_is_reported_not_followed():
    result = import_openslo([("loop.yaml", "a: &x\n  b: *x\n")])
    assert result.spec is None
    assert str(result.notes[0]) == "loop.yaml:1: a YAML alias refers to itself; document skipped"


def test_the_smaller_mappings_of_foreign_documents():
    """Calendar days read as rolling days, targetPercent, a slice given in minutes, severities
    read as page or ticket, a condition mlslo cannot fire on, and an inline target."""
    slo = {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": "daily"},
        "spec": {
            "service": "shop",
            "indicator": {"metadata": {"name": "s"}, "spec": {"ratioMetric": RATIO}},
            "timeWindow": [
                {
                    "duration": "1d",
                    "isRolling": False,
                    "calendar": {"startTime": "2024-01-01 00:00:00", "timeZone": "Etc/UTC"},
                }
            ],
            "budgetingMethod": "Timeslices",
            "objectives": [{"targetPercent": 99.5, "timeSliceTarget": 0.9, "timeSliceWindow": 5}],
            "alertPolicies": [
                {
                    "kind": "AlertPolicy",
                    "metadata": {"name": "inline"},
                    "spec": {
                        "conditions": [
                            {
                                "kind": "AlertCondition",
                                "metadata": {"name": "slow-burn"},
                                "spec": {
                                    "severity": "Warning",
                                    "condition": {"threshold": 2, "lookbackWindow": "6h"},
                                },
                            },
                            {
                                "kind": "AlertCondition",
                                "metadata": {"name": "cool"},
                                "spec": {
                                    "severity": "sev1",
                                    "condition": {
                                        "op": "lt",
                                        "threshold": 1,
                                        "lookbackWindow": "1h",
                                    },
                                },
                            },
                        ],
                        "notificationTargets": [{"kind": "AlertNotificationTarget", "spec": {}}],
                    },
                }
            ],
        },
    }
    result = import_openslo([("shop.yaml", yaml.safe_dump(slo))])
    assert result.spec is not None
    (mapped,) = result.spec.slos
    assert str(mapped.window) == "1d"
    assert (mapped.objective.target, mapped.objective.timeslice_target) == (0.995, 0.9)
    assert str(mapped.slice) == "0:05:00"
    assert mapped.alerts is not None
    assert [(a.severity, str(a.long), str(a.short), a.burn_rate) for a in mapped.alerts] == [
        ("ticket", "6:00:00", "0:30:00", 2.0)
    ]
    text = notes_of(result)
    for expected in (
        "a calendar window of 1d is read as a rolling 1d window",
        "severity 'Warning' is read as ticket",
        "mlslo alerts when the burn rate is above a threshold > 0; not imported",
        "an inline notification target is not imported",
    ):
        assert expected in text
