"""/metrics: SLO gauges computed at scrape time, plus the server's own counters.

Names follow Prometheus conventions: base units, ``_ratio`` for shares, ``_total`` for
counters. The SLO series carry ``service``, ``slo``, ``dimension`` and ``window`` labels;
burn rates add ``burn_window``. A composite SLO has the same series, with
``dimension="composite"`` and its reliability as the SLI.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from mlslo.measure.evaluate import Evaluation

if TYPE_CHECKING:
    from mlslo.server.alert_loop import AlertEngine
    from mlslo.server.service import Service

SLO_LABELS = ["service", "slo", "dimension", "window"]


class SLOCollector(Collector):
    """Evaluates every SLO at scrape time (from the in-memory timelines: no scan)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        store = self.service.store
        if not store.ready:
            return
        evaluation = self.service.evaluate()
        yield from slo_families(evaluation)
        yield memory_family(store.memory())
        engine = self.service.alerts
        if engine is not None:
            yield from alert_families(evaluation.service, engine)


def memory_family(parts: dict[str, int]) -> Metric:
    """What the store holds in memory, by part, so growth can be told from a leak."""
    family = GaugeMetricFamily(
        "mlslo_store_memory_bytes",
        "Bytes held by the store: DuckDB's buffer pool, kept prediction ids, SLO timelines",
        labels=["part"],
    )
    for part, size in parts.items():
        family.add_metric([part], float(size))
    return family


class PullCollector(Collector):
    """The pull mode's counters and times (nothing when the server does not pull)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        puller = self.service.puller
        if puller is None:
            return
        status = puller.status
        runs = CounterMetricFamily(
            "mlslo_pull_runs", "Pulls from the sources, by outcome", labels=["outcome"]
        )
        runs.add_metric(["ok"], status.pulls - status.failures)
        runs.add_metric(["failed"], status.failures)
        yield runs
        rows = CounterMetricFamily(
            "mlslo_pull_rows_read", "Records read from the sources, by kind", labels=["kind"]
        )
        for kind, count in status.rows_read_total.items():
            rows.add_metric([kind], count)
        yield rows
        times = {
            "mlslo_pull_watermark_timestamp_seconds": (
                "The time up to which the sources have been read, in Unix seconds",
                status.watermark,
            ),
            "mlslo_pull_last_success_timestamp_seconds": (
                "When the last pull that worked ran, in Unix seconds",
                status.last_success,
            ),
        }
        for name, (text, moment) in times.items():
            if moment is not None:
                yield GaugeMetricFamily(name, text, value=moment.timestamp())
        yield GaugeMetricFamily(
            "mlslo_pull_failing",
            "1 when the last pull failed",
            value=float(bool(status.last_error)),
        )


def alert_families(service: str, engine: AlertEngine) -> Iterator[Metric]:
    alerts = GaugeMetricFamily(
        "mlslo_alerts",
        "Alert rules by severity and state",
        labels=["service", "severity", "status"],
    )
    counts = engine.counts()
    for severity in ("page", "ticket"):
        for status in ("inactive", "pending", "firing", "resolved"):
            alerts.add_metric([service, severity, status], counts.get((severity, status), 0))
    yield alerts
    sent = CounterMetricFamily(
        "mlslo_alert_notifications",
        "Notifications delivered or given up on, by notifier",
        labels=["notifier", "outcome"],
    )
    for name, sender in engine.senders.items():
        sent.add_metric([name, "delivered"], sender.sent)
        sent.add_metric([name, "failed"], sender.failed)
    yield sent


def slo_families(evaluation: Evaluation) -> Iterator[Metric]:
    families = {
        "sli": GaugeMetricFamily(
            "mlslo_sli",
            "Current value of the SLI over the SLO window "
            "(shares as ratios, lags in seconds, latencies in "
            "milliseconds)",
            labels=[*SLO_LABELS, "metric"],
        ),
        "samples": GaugeMetricFamily(
            "mlslo_sli_samples", "Samples the SLI rests on", labels=SLO_LABELS
        ),
        "target": GaugeMetricFamily(
            "mlslo_objective_target", "The objective's target", labels=[*SLO_LABELS, "op"]
        ),
        "remaining": GaugeMetricFamily(
            "mlslo_error_budget_remaining_ratio",
            "Share of the error budget left (negative: overspent)",
            labels=SLO_LABELS,
        ),
        "consumed": GaugeMetricFamily(
            "mlslo_error_budget_consumed_ratio",
            "Share of the error budget spent",
            labels=SLO_LABELS,
        ),
        "burn": GaugeMetricFamily(
            "mlslo_burn_rate",
            "Error-budget burn rate over a window (1 spends the budget in exactly one SLO window)",
            labels=[*SLO_LABELS, "burn_window"],
        ),
        "burn_samples": GaugeMetricFamily(
            "mlslo_burn_rate_samples",
            "Samples behind each burn rate",
            labels=[*SLO_LABELS, "burn_window"],
        ),
        "met": GaugeMetricFamily(
            "mlslo_slo_met",
            "1 when the SLI meets its objective, 0 when not (absent without enough data)",
            labels=SLO_LABELS,
        ),
        "status": GaugeMetricFamily(
            "mlslo_error_budget_status",
            "1 for the budget's current status",
            labels=[*SLO_LABELS, "status"],
        ),
        "coverage": GaugeMetricFamily(
            "mlslo_label_coverage_ratio",
            "Share of predictions in the window with a label",
            labels=SLO_LABELS,
        ),
        "tte": GaugeMetricFamily(
            "mlslo_time_to_exhaustion_seconds",
            "Time until the budget is gone at the recent (1h) burn rate",
            labels=SLO_LABELS,
        ),
        "last_event": GaugeMetricFamily(
            "mlslo_last_event_timestamp_seconds",
            "End of the last bucket of the SLO window holding an event of the SLO, in Unix "
            "seconds (absent when the window holds none)",
            labels=SLO_LABELS,
        ),
    }
    for result in evaluation.slos:
        slo = result.slo
        labels = [evaluation.service, slo.name, slo.dimension, str(slo.window)]
        m = result.measurement
        if m.value is not None:
            families["sli"].add_metric([*labels, slo.metric], m.value)
        families["samples"].add_metric(labels, m.n)
        families["target"].add_metric([*labels, slo.op], slo.target)
        if result.budget.remaining is not None:
            families["remaining"].add_metric(labels, result.budget.remaining)
        if result.budget.consumed is not None:
            families["consumed"].add_metric(labels, result.budget.consumed)
        for rate in result.burn_rates:
            if rate.value is not None:
                families["burn"].add_metric([*labels, rate.key], rate.value)
            families["burn_samples"].add_metric([*labels, rate.key], rate.n)
        if result.met is not None:
            families["met"].add_metric(labels, 1.0 if result.met else 0.0)
        families["status"].add_metric([*labels, result.budget.status], 1.0)
        if m.label_coverage is not None:
            families["coverage"].add_metric(labels, m.label_coverage)
        tte = result.time_to_exhaustion.get("1h")
        if tte is not None:
            families["tte"].add_metric(labels, tte * 3600)
        if result.last_event is not None:
            families["last_event"].add_metric(labels, result.last_event.timestamp())
    weights = GaugeMetricFamily(
        "mlslo_composite_weight",
        "Each component's share of a composite SLO's weights (they sum to 1)",
        labels=["service", "composite", "slo"],
    )
    for composite in evaluation.composites:
        spec = composite.composite
        labels = [evaluation.service, spec.name, spec.dimension, str(spec.window)]
        if composite.value is not None:
            families["sli"].add_metric([*labels, spec.metric], composite.value)
        families["target"].add_metric([*labels, ">="], spec.objective)
        if composite.budget.remaining is not None:
            families["remaining"].add_metric(labels, composite.budget.remaining)
        if composite.budget.consumed is not None:
            families["consumed"].add_metric(labels, composite.budget.consumed)
        for rate in composite.burn_rates:
            if rate.value is not None:
                families["burn"].add_metric([*labels, rate.key], rate.value)
            families["burn_samples"].add_metric([*labels, rate.key], rate.n)
        if composite.met is not None:
            families["met"].add_metric(labels, 1.0 if composite.met else 0.0)
        families["status"].add_metric([*labels, composite.budget.status], 1.0)
        tte = composite.time_to_exhaustion.get("1h")
        if tte is not None:
            families["tte"].add_metric(labels, tte * 3600)
        for part in composite.components:
            weights.add_metric([evaluation.service, spec.name, part.slo], part.weight)
    yield from families.values()
    if evaluation.composites:
        yield weights


class Metrics:
    """The server's registry: injected, never module-global."""

    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Histogram(
            "mlslo_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.records = Counter(
            "mlslo_ingested_records", "Records accepted, by kind", ["kind"], registry=self.registry
        )
        self.duplicates = Counter(
            "mlslo_duplicate_records",
            "Records already present, not counted twice",
            ["kind"],
            registry=self.registry,
        )
        self._seen: dict[str, int] = {}
        self.service = service
        self.registry.register(SLOCollector(service))
        self.registry.register(PullCollector(service))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).observe(seconds)

    def _sync_counters(self) -> None:
        counters = dict(self.service.store.writer.counters)
        for key, value in counters.items():
            delta = value - self._seen.get(key, 0)
            if delta > 0:
                if key.endswith("_duplicates"):
                    self.duplicates.labels(key.removesuffix("_duplicates")).inc(delta)
                else:
                    self.records.labels(key).inc(delta)
            self._seen[key] = value

    def render(self) -> tuple[bytes, str]:
        self._sync_counters()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
