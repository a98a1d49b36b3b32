"""The running service: the store, its spec file, reloads and background maintenance.

Evaluations and gate decisions are the same two functions the CLI runs over files
(:func:`mlslo.measure.evaluate.evaluate`, :func:`mlslo.decide.gate.gate`), fed the store's
rollups as of the moment asked about. The HTTP layer holds no logic; it calls these methods.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from mlslo.decide.gate import gate
from mlslo.decide.policy import Override
from mlslo.errors import UsageError
from mlslo.measure.attribution import Attribution, attribute
from mlslo.measure.attribution_checks import check_by, slo_named
from mlslo.measure.candidate import parse_selector
from mlslo.measure.evaluate import Evaluation, evaluate, timelines_for
from mlslo.measure.windows import bucket_floor, scan_range
from mlslo.render.documents import gate_json
from mlslo.scan.prometheus import prometheus_slos, read_prometheus
from mlslo.server.alert_loop import AlertEngine
from mlslo.server.pull import Puller
from mlslo.server.store import Store
from mlslo.spec import HOUR, Spec, is_percentile, load_spec
from mlslo.stats.rollup import Rollup, empty_rollup
from mlslo.stats.timeline import Timeline

Log = Callable[[str], None]


@dataclass
class Progress:
    """What a rebuild is doing, for /readyz and the log."""

    done: int = 0
    total: int = 0
    running: bool = False


@dataclass
class Service:
    store: Store
    spec_path: Path | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    max_skew: timedelta = timedelta(minutes=5)
    max_body: int = 64 * 1024 * 1024
    auth: bool = True
    maintenance_interval: timedelta = timedelta(minutes=5)
    log: Log = field(default=lambda message: None)
    rebuild: Progress = field(default_factory=Progress)
    eval_interval: timedelta = timedelta(seconds=30)
    alerts: AlertEngine | None = None
    puller: Puller | None = None
    pull_every: timedelta | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _reload_lock: threading.Lock = field(default_factory=threading.Lock)
    _prometheus_client: httpx.Client | None = None

    @property
    def spec(self) -> Spec:
        return self.store.spec

    def reload(self) -> dict[str, Any]:
        """Re-read the spec file; rebuild rollups from raw records if their inputs changed."""
        if self.spec_path is None:
            raise UsageError("this server was not started from a spec file; nothing to reload")
        with self._reload_lock:
            spec = load_spec(self.spec_path)
            self.rebuild = Progress(running=True)

            def progress(done: int, total: int) -> None:
                self.rebuild.done, self.rebuild.total = done, total
                self.log(f"rebuilding rollups: day {done}/{total}")

            started = time.monotonic()
            try:
                rebuilt = self.store.configure(spec, progress=progress)
            finally:
                self.rebuild.running = False
            if self.alerts is not None:
                self.alerts.configure()
            seconds = time.monotonic() - started
            self.log(
                f"spec reloaded ({len(spec.slos)} SLOs); "
                f"{'rollups rebuilt' if rebuilt else 'rollups unchanged'} in {seconds:.1f}s"
            )
            return {
                "service": spec.service,
                "slos": [s.name for s in spec.slos],
                "rebuilt": rebuilt,
                "seconds": round(seconds, 3),
            }

    def evaluate(
        self,
        at: datetime | None = None,
        *,
        series_step: timedelta | None = None,
        slos: Sequence[str] | None = None,
    ) -> Evaluation:
        """Every SLO (or those named) at ``at`` (default: now), from what had arrived by
        then."""
        moment = at or self.clock()
        reading = self.store.rollups.at(moment)
        rollups, unavailable = with_prometheus(
            reading.spec, reading.rollups, moment, slos, client=self._prometheus()
        )
        return evaluate(
            reading.spec,
            rollups,
            moment,
            series_step=series_step,
            slos=slos,
            repeated_ids=reading.repeated_ids,
            unavailable=unavailable,
        )

    def explain(
        self,
        slo: str,
        by: Sequence[str],
        at: datetime | None = None,
        *,
        step: timedelta | None = None,
    ) -> Attribution:
        """Where the budget of ``slo`` went at ``at`` (default: now): its slices by ``by``
        and its burning periods, from the rollups (no rescan)."""
        moment = at or self.clock()
        spec = self.spec
        chosen = slo_named(spec, slo)
        named = [c for c in check_by(spec, None, by) if c != HOUR]
        reading = self.store.rollups.at(moment, whole=True)
        rollup = reading.rollups
        assert not isinstance(rollup, Mapping)
        if is_percentile(chosen) and named:
            start, _ = scan_range(reading.spec, moment)
            first = bucket_floor(start, rollup.bucket_seconds)
            rows = self.store.rollups.sliced_histogram(chosen, named, first)
            rollup = replace(rollup, sliced_histograms={chosen.name: rows})
        return attribute(reading.spec, rollup, moment, slo, by, step=step)

    def gate(
        self,
        *,
        policy: str | None = None,
        candidate: str | None = None,
        caller: str | None = None,
        at: datetime | None = None,
        record: bool = True,
        evaluation: Evaluation | None = None,
    ) -> dict[str, Any]:
        """Decide from the budgets at ``at`` (and a candidate's own predictions), record the
        decision in the audit log (unless ``record`` is false: the dashboard only shows it),
        and return the JSON of ``mlslo gate --format json``. A caller that has just
        evaluated at ``at`` passes its ``evaluation`` so both show the same numbers."""
        moment = at or self.clock()
        selector = parse_selector(candidate) if candidate else None
        firing = None
        if at is None and self.alerts is not None and self.alerts.evaluated_at is not None:
            firing = self.alerts.firing()
        reading = self.store.rollups.at(moment, whole=selector is not None)
        rollups = reading.rollups
        unavailable: dict[str, str] = {}
        if evaluation is None or selector is not None:  # else gate() reads no rollup
            rollups, unavailable = with_prometheus(
                reading.spec, reading.rollups, moment, client=self._prometheus()
            )
        if evaluation is None and unavailable:
            evaluation = evaluate(
                reading.spec,
                rollups,
                moment,
                repeated_ids=reading.repeated_ids,
                unavailable=unavailable,
            )
        run = gate(
            reading.spec,
            rollups,
            moment,
            policy=policy,
            candidate=selector,
            override=self.store.overrides.active(moment),
            evaluation=evaluation,
            repeated_ids=reading.repeated_ids,
            firing=firing,
        )
        document = gate_json(run.evaluation, run.decision, run.candidate)
        if not record:
            return document
        document["id"] = self.store.audit.record(
            moment,
            run.decision.policy,
            candidate,
            run.decision.decision,
            caller,
            run.decision.override.id if run.decision.override else None,
            document,
        )
        return document

    def _prometheus(self) -> httpx.Client:
        """The HTTP client SLOs read from Prometheus share (made on first use)."""
        if self._prometheus_client is None:
            self._prometheus_client = httpx.Client()
        return self._prometheus_client

    def add_override(self, reason: str, expires: timedelta, caller: str | None) -> Override:
        """A time-limited override: blocks become warnings until it expires."""
        if not reason.strip():
            raise UsageError("an override needs a reason (it is shown on every decision)")
        if expires <= timedelta(0) or expires > timedelta(days=30):
            raise UsageError("an override must expire within 30 days")
        return self.store.overrides.add(reason.strip(), self.clock() + expires, caller)

    def maintain(self) -> dict[str, int]:
        """Retention and compaction: delete what is past retention, fold delta rows."""
        deleted = self.store.retention.prune()
        self.store.retention.compact()
        self.store.db.checkpoint()
        return deleted

    def start(self) -> None:
        self.store.start()
        self._stop.clear()
        self._spawn("mlslo-maintenance", self._maintenance_loop)
        if self.alerts is not None:
            self._spawn("mlslo-alerts", self._alert_loop)
        if self.puller is not None and self.pull_every is not None:
            self._spawn("mlslo-pull", self._pull_loop)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _pull_loop(self) -> None:
        """Pull at once, then every ``pull_every`` (a pull that fails only reports it)."""
        assert self.puller is not None and self.pull_every is not None
        while not self._stop.is_set():
            self.puller.pull()
            if self._stop.wait(self.pull_every.total_seconds()):
                return

    def _maintenance_loop(self) -> None:
        while not self._stop.wait(self.maintenance_interval.total_seconds()):
            try:
                self.maintain()
            except Exception as exc:
                self.log(f"maintenance failed: {exc}")

    def enable_alerts(
        self,
        *,
        dashboard_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        backoff: float = 1.0,
    ) -> AlertEngine:
        """Evaluate the alert rules every ``eval_interval`` once started."""
        self.alerts = AlertEngine(
            lambda: self.spec,
            self.evaluate,
            self.store.alert_states,
            self.clock,
            dashboard_url=dashboard_url,
            transport=transport,
            backoff=backoff,
        )
        return self.alerts

    def _alert_loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.alerts is not None and self.store.ready:
                    self.alerts.evaluate()
            except Exception as exc:
                self.log(f"alert evaluation failed: {exc}")
            if self._stop.wait(self.eval_interval.total_seconds()):
                return

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        if self.alerts is not None:
            self.alerts.stop()
        if self._prometheus_client is not None:
            self._prometheus_client.close()
            self._prometheus_client = None
        self.store.stop()


def with_prometheus(
    spec: Spec,
    rollups: Rollup | Mapping[str, Timeline],
    at: datetime,
    slos: Sequence[str] | None = None,
    *,
    client: httpx.Client | None = None,
) -> tuple[Rollup | Mapping[str, Timeline], dict[str, str]]:
    """The store's statistics with those of the SLOs read from Prometheus (fetched now, for
    an evaluation at ``at``), and the SLOs Prometheus could not answer for, with the reason:
    the service shows them as ``no_data`` instead of failing."""
    wanted = [s.name for s in prometheus_slos(spec) if slos is None or s.name in slos]
    if not wanted:
        return rollups, {}
    start, end = scan_range(spec, at)
    if isinstance(rollups, Rollup):
        fetched = read_prometheus(
            spec,
            start,
            end,
            slice_columns=rollups.slice_columns,
            strict=False,
            slos=wanted,
            client=client,
        )
        merged = rollups if fetched.rollup is None else rollups.merge(fetched.rollup)
        return merged, dict(fetched.unavailable)
    fetched = read_prometheus(spec, start, end, strict=False, slos=wanted, client=client)
    source = fetched.rollup or empty_rollup(int(spec.bucket.total_seconds()))
    timelines = dict(rollups)
    timelines.update(timelines_for(spec, source, at, slos=wanted))
    return timelines, dict(fetched.unavailable)
