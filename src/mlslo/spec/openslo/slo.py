"""One OpenSLO ``SLO`` document (v1, or the v1alpha that Sloth reads) as mlslo SLOs.

An indicator whose metric sources are of type ``mlslo`` is mlslo's own and comes back exactly.
A ``ratioMetric`` over Prometheus whose ``DataSource`` gives the url becomes an availability
SLO — or a latency SLO when its good query counts a histogram bucket (``le="0.4"``) — that
reads the queries (``source.prometheus``). Over another source, or without a url, it is
measured from mlslo's own records, with the queries kept in the description. Every objective
becomes an SLO (mlslo has one objective per SLO). Whatever cannot be mapped is reported.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mlslo.moments import format_duration
from mlslo.spec.openslo import format as fmt
from mlslo.spec.openslo.alerts import AlertReader
from mlslo.spec.openslo.documents import Doc, Library, Notes, Path, Reader, mapping
from mlslo.spec.openslo.windows import WindowReader
from mlslo.spec.slos import DIMENSIONS

UNMAPPABLE = "unmappable"
_LE = re.compile(r"""\ble\s*=~?\s*["']([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)["']""")


@dataclass
class Measure:
    """What an OpenSLO indicator measures, as an mlslo SLI."""

    dimension: str
    sli: dict[str, Any] = field(default_factory=dict)
    filter: dict[str, Any] | None = None
    threshold_unit: str | None = None
    """``ms`` or ``s`` when the objective's ``value`` is the bound each event must meet."""
    counts_events: bool = True
    described: list[str] = field(default_factory=list)
    foreign: bool = False
    source: dict[str, Any] | None = None
    """``{"prometheus": {...}}`` when the queries are read from one Prometheus."""


_Part = tuple[int, dict[str, Any], dict[str, Any] | None, Doc, Path]


@dataclass
class Source:
    type: str
    """Lowercase, for comparing; :attr:`written` is as the document wrote it."""
    spec: dict[str, Any]
    url: str | None
    written: str = ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _query(spec: dict[str, Any]) -> str:
    for key in ("query", "promql", "expr"):
        if isinstance(spec.get(key), str):
            return str(spec[key]).strip()
    return json.dumps(spec, sort_keys=True, default=str)


_RANGE = re.compile(r"\[([^\]]*)\]")


def _fixed(query: str) -> str | None:
    """A range selector of ``query`` other than mlslo's window placeholder (None: none)."""
    for selector in _RANGE.findall(query):
        if selector.strip() != "window" and "$window" not in selector:
            return f"[{selector}]"
    return None


class SLOReader(Reader):
    """Maps one SLO document; :meth:`slos` gives the SLO mappings, to be validated."""

    def __init__(self, doc: Doc, library: Library, notes: Notes, taken: set[str]) -> None:
        super().__init__(doc, library, notes)
        self.taken = taken

    # --- the document as a whole ---------------------------------------------------------

    def slos(self) -> list[dict[str, Any]]:
        doc = self.doc
        if not doc.spec.get("objectives"):
            self.note("has no objectives; not imported", "spec", "objectives")
            return []
        budgeting = self._budgeting()
        if budgeting == UNMAPPABLE:
            return []
        measured = [
            (index, objective, measure)
            for index, objective, sli, where, path in self._parts()
            if sli is not None and (measure := self._measure(sli, where, path)) is not None
        ]
        if not measured:
            return []
        self._metadata()
        base = self._name()
        window = WindowReader(doc, self.library, self.notes).window()
        alerts = AlertReader(doc, self.library, self.notes).alerts()
        out: list[dict[str, Any]] = []
        for index, objective, measure in measured:
            mapped = self._objective(objective, index, measure, budgeting)
            if mapped is None:
                continue
            name = base if not out else self._extra_name(base, objective, index)
            slo: dict[str, Any] = {"name": name}
            described = self._description(measure)
            if described:
                slo["description"] = described
            slo["dimension"] = measure.dimension
            if measure.sli or measure.dimension != "availability":
                slo["sli"] = measure.sli
            slo.update(mapped)
            if window is not None:
                slo["window"] = window
            self._settings(slo)
            if measure.filter:
                slo["filter"] = measure.filter
            if measure.source is not None:
                slo["source"] = self._with_timeout(measure.source)
            if alerts is not None:
                slo["alerts"] = alerts
            if fmt.RUNBOOK_URL in self.annotations:
                slo["runbook_url"] = self.annotations[fmt.RUNBOOK_URL]
            self.taken.add(name)
            out.append(slo)
        return out

    def _with_timeout(self, source: dict[str, Any]) -> dict[str, Any]:
        timeout = self.annotations.get(fmt.PROMETHEUS_TIMEOUT)
        if timeout is None:
            return source
        return {"prometheus": {**source["prometheus"], "timeout": timeout}}

    def _extra_name(self, base: str, objective: dict[str, Any], index: int) -> str:
        """The name of the SLO of a second (third, ...) objective."""
        label = objective.get("displayName")
        suffix = fmt.slug(str(label)) if label else str(index + 1)
        name = fmt.unique(f"{base}-{suffix or index + 1}", self.taken)
        self.note(
            f"becomes SLO '{name}': mlslo has one objective per SLO", "spec", "objectives", index
        )
        return name

    def _metadata(self) -> None:
        metadata = self.doc.metadata
        if metadata.get("labels"):
            keys = ", ".join(str(k) for k in mapping(metadata["labels"]))
            self.note(f"labels {keys} are not kept (mlslo SLOs have no labels)", "metadata")
        foreign = [k for k in self.annotations if not k.startswith(fmt.PREFIX)]
        if foreign:
            self.note(f"annotations {', '.join(foreign)} are not kept", "metadata", "annotations")

    def _name(self) -> str:
        original = self.annotations.get(fmt.NAME, self.doc.name)
        name = fmt.mlslo_name(original)
        if name in self.taken:
            name = fmt.unique(name, self.taken)
        if name != original:
            self.note(f"is named '{name}' in mlslo", "metadata", "name")
        return name

    def _description(self, measure: Measure) -> str | None:
        spec = self.doc.spec
        text = self.annotations.get(fmt.DESCRIPTION, spec.get("description"))
        display = self.doc.metadata.get("displayName")
        original = self.annotations.get(fmt.NAME, self.doc.name)
        parts = []
        if display and display != original and display != text:
            parts.append(str(display))
        if text:
            parts.append(str(text))
        parts += measure.described
        return "\n".join(parts) if parts else None

    def _settings(self, slo: dict[str, Any]) -> None:
        for key, field_name in (
            (fmt.MIN_SAMPLES, "min_samples"),
            (fmt.MAX_CI_WIDTH, "max_ci_width"),
        ):
            if key in self.annotations:
                try:
                    slo[field_name] = json.loads(self.annotations[key])
                except ValueError:
                    self.note(f"{key} is not a number; ignored", "metadata", "annotations", key)

    # --- the parts: (objective, indicator) pairs, v1 and v1alpha -------------------------

    def _parts(self) -> list[_Part]:
        spec = self.doc.spec
        objectives = spec.get("objectives")
        if not isinstance(objectives, list):
            return []
        if self.doc.api == fmt.API_VERSION_ALPHA:
            out: list[_Part] = []
            for index, objective in enumerate(objectives):
                objective = mapping(objective)
                ratio = mapping(objective.get("ratioMetrics"))
                path: Path = ("spec", "objectives", index, "ratioMetrics")
                if not ratio:
                    self.note(
                        "has no ratioMetrics; a v1alpha thresholdMetric cannot be mapped",
                        "spec",
                        "objectives",
                        index,
                    )
                    out.append((index, objective, None, self.doc, path))
                    continue
                metric = {
                    part: {"metricSource": {"type": q.get("source"), "spec": q}}
                    for part in ("good", "bad", "total")
                    if isinstance(q := ratio.get(part), dict)
                }
                out.append((index, objective, {"ratioMetric": metric}, self.doc, path))
            return out
        sli, where, sli_path = self._indicator()
        return [(i, mapping(o), sli, where, sli_path) for i, o in enumerate(objectives)]

    def _indicator(self) -> tuple[dict[str, Any] | None, Doc, Path]:
        spec = self.doc.spec
        if isinstance(spec.get("indicator"), dict):
            return mapping(spec["indicator"].get("spec")), self.doc, ("spec", "indicator", "spec")
        ref = spec.get("indicatorRef")
        if ref is None:
            self.note("has neither indicator nor indicatorRef; not imported", "spec")
            return None, self.doc, ()
        found = self.library.find("SLI", str(ref))
        if found is None:
            self.note(
                f"SLI '{ref}' is not among the documents read; not imported",
                "spec",
                "indicatorRef",
            )
            return None, self.doc, ()
        return found.spec, found, ("spec",)

    # --- the indicator -------------------------------------------------------------------

    def _measure(self, sli: dict[str, Any], where: Doc, path: Path) -> Measure | None:
        ratio = mapping(sli.get("ratioMetric"))
        threshold = mapping(sli.get("thresholdMetric"))
        if ratio:
            if self.doc.api != fmt.API_VERSION_ALPHA:
                path = (*path, "ratioMetric")
            parts: dict[str, Source] = {
                part: self._source(mapping(mapping(ratio[part]).get("metricSource")), where, path)
                for part in ("good", "bad", "total")
                if part in ratio
            }
            if parts and all(s.type == fmt.MLSLO_TYPE for s in parts.values()):
                return self._own(next(iter(parts.values())).spec, where, path)
            return self._foreign_ratio(parts, where, path)
        if threshold:
            path = (*path, "thresholdMetric")
            source = self._source(mapping(threshold.get("metricSource")), where, path)
            if source.type == fmt.MLSLO_TYPE:
                return self._own(source.spec, where, path)
            self.note(
                f"a thresholdMetric over '{source.written or 'an untyped source'}' cannot be "
                "mapped: mlslo cannot tell what its query measures; not imported",
                *path,
                doc=where,
            )
            return None
        self.note("has neither ratioMetric nor thresholdMetric; not imported", *path, doc=where)
        return None

    def _source(self, source: dict[str, Any], where: Doc, path: Path) -> Source:
        kind = source.get("type")
        url = None
        ref = source.get("metricSourceRef")
        if ref is not None:
            found = self.library.find("DataSource", str(ref))
            if found is None:
                self.note(f"DataSource '{ref}' is not among the documents read", *path, doc=where)
            else:
                kind = kind or found.spec.get("type")
                details = mapping(found.spec.get("connectionDetails"))
                url = str(details["url"]) if "url" in details else None
        text = str(kind or "")
        return Source(text.lower(), mapping(source.get("spec")), url, text)

    def _own(self, spec: dict[str, Any], where: Doc, path: Path) -> Measure | None:
        dimension = spec.get("dimension")
        if dimension not in DIMENSIONS:
            self.note(
                f"an mlslo metric source needs a dimension ({', '.join(DIMENSIONS)}), found "
                f"{dimension!r}; not imported",
                *path,
                doc=where,
            )
            return None
        sli = dict(mapping(spec.get("sli")))
        measure = Measure(str(dimension), sli, mapping(spec.get("filter")) or None)
        if dimension in ("latency", "freshness") and "percentile" not in sli:
            measure.threshold_unit = "ms" if dimension == "latency" else "s"
        measure.counts_events = (
            dimension == "availability"
            or measure.threshold_unit is not None
            or (dimension == "accuracy" and sli.get("metric") == "accuracy")
        )
        return measure

    def _foreign_ratio(self, parts: dict[str, Source], where: Doc, path: Path) -> Measure | None:
        if "total" not in parts or not ({"good", "bad"} & set(parts)):
            self.note("a ratioMetric needs total and good (or bad); not imported", *path, doc=where)
            return None
        kinds = sorted({s.type or "untyped" for s in parts.values()})
        written = sorted({s.written or "untyped" for s in parts.values()})
        measure = Measure("availability", foreign=True)
        urls = sorted({s.url for s in parts.values() if s.url})
        origin = "/".join(written) + (f" ({', '.join(urls)})" if urls else "")
        for part, source in parts.items():
            measure.described.append(f"{origin} {part}: {_query(source.spec)}")
        good = _query(parts["good"].spec) if "good" in parts else ""
        bucket = _LE.search(good) if "_bucket" in good else None
        if bucket:
            bound = fmt.scaled(float(bucket.group(1)), timedelta(seconds=1))
            threshold = format_duration(bound) if bound else bucket.group(1) + "s"
            measure.dimension = "latency"
            measure.sli = {"latency_threshold": threshold}
            if self.annotations.get(fmt.DIMENSION) != "latency":
                self.note(
                    f"read as a latency SLO: the share of requests within {threshold} "
                    f'(the good query counts le="{bucket.group(1)}")',
                    *path,
                    "good",
                    doc=where,
                )
        fields = "latency_ms" if bucket else "status"
        fixed = [(q, r) for q in (_query(s.spec) for s in parts.values()) if (r := _fixed(q))]
        if fixed and kinds == ["prometheus"]:
            query, selector = fixed[0]
            self.note(
                f"the query {query} reads a range of its own ({selector}), which mlslo cannot "
                "count per bucket: the PromQL is kept in the description, and mlslo measures "
                f"this SLO from its own records ({fields}); write the queries with [$window] "
                "(or as plain counters) under source.prometheus to read them",
                *path,
                doc=where,
            )
            return measure
        if kinds == ["prometheus"] and len(urls) == 1 and all(s.url for s in parts.values()):
            measure.foreign, measure.described = False, []
            if self.annotations.get(fmt.DIMENSION) == "latency" and not bucket:
                measure.dimension, measure.sli = "latency", {}
            queries = {part: _query(source.spec) for part, source in parts.items()}
            measure.source = {"prometheus": {"url": urls[0], **queries}}
            if fmt.ALERTS not in self.annotations:
                self.note(
                    f"reads the queries from Prometheus at {urls[0]} (source.prometheus): "
                    "check that they count events — a query with $window counts one bucket, "
                    "one without reads a cumulative counter",
                    *path,
                    doc=where,
                )
            return measure
        if kinds == ["prometheus"]:
            self.note(
                "a ratio of Prometheus queries without a DataSource that gives its url: the "
                f"PromQL is kept in the description, and mlslo measures this SLO from its own "
                f"records ({fields}); add source.prometheus (url, good or bad, total) to read "
                "the queries",
                *path,
                doc=where,
            )
        else:
            self.note(
                f"metric source type {'/'.join(written)} is not Prometheus: the queries are kept "
                f"in the description, and mlslo measures this SLO from its own records ({fields})",
                *path,
                doc=where,
            )
        return measure

    # --- window, budgeting, objective ----------------------------------------------------

    def _budgeting(self) -> str | None:
        if fmt.BUDGETING in self.annotations:
            return self.annotations[fmt.BUDGETING]
        method = self.doc.spec.get("budgetingMethod")
        if method in (None, "Occurrences"):
            return None
        if method == "Timeslices":
            return "timeslices"
        self.note(
            f"budgetingMethod {method} has no mlslo counterpart (mlslo budgets occurrences, "
            "timeslices or one aggregate value); not imported",
            "spec",
            "budgetingMethod",
        )
        return "unmappable"

    def _objective(
        self, objective: dict[str, Any], index: int, measure: Measure, budgeting: str | None
    ) -> dict[str, Any] | None:
        path: Path = ("spec", "objectives", index)
        if budgeting == UNMAPPABLE:
            return None
        target = _number(objective.get("target"))
        if target is None and _number(objective.get("targetPercent")) is not None:
            target = float(objective["targetPercent"]) / 100
        value = _number(objective.get("value"))
        if target is None:
            self.note("has no numeric target (or targetPercent); not imported", *path)
            return None
        out: dict[str, Any] = {}
        bound: dict[str, Any] = {}
        if measure.foreign and ("op" in objective or "value" in objective):
            self.note("op and value apply to threshold metrics; ignored for a ratio", *path)
        if measure.source is not None and measure.dimension == "latency" and value is not None:
            threshold = self._duration(value, "ms", path)
            if threshold is not None:
                measure.sli["latency_threshold"] = threshold
        if measure.threshold_unit is not None:
            if value is None:
                self.note("needs value (the bound each event must meet)", *path)
                return None
            key = "latency_threshold" if measure.dimension == "latency" else "lag_threshold"
            threshold = self._duration(value, measure.threshold_unit, path)
            if threshold is None:
                return None
            measure.sli[key] = threshold
        if budgeting == "timeslices":
            window = objective.get("timeSliceWindow")
            minutes = _number(window)
            parsed = fmt.parse_shorthand(window)
            slice_length = (
                fmt.scaled(minutes, timedelta(minutes=1))
                if minutes is not None
                else parsed and parsed[0]
            )
            if slice_length is None:
                self.note(f"timeSliceWindow {window!r} is not a duration", *path)
                return None
            out["budgeting"] = "timeslices"
            out["slice"] = format_duration(slice_length)
            if measure.counts_events:
                bound["timeslice_target"] = objective.get("timeSliceTarget")
                if _number(bound["timeslice_target"]) is None:
                    self.note("Timeslices needs a numeric timeSliceTarget; not imported", *path)
                    return None
            else:
                bound["timeslice_target"] = self._bound(value, measure, path)
            bound["target"] = target
        elif measure.counts_events:
            bound["target"] = target
        else:
            bound["target"] = self._bound(value, measure, path)
        if budgeting not in (None, "timeslices"):
            out["budgeting"] = budgeting
        if any(v is None for v in bound.values()):
            return None
        if fmt.OBJECTIVE_OP in self.annotations:
            bound["op"] = self.annotations[fmt.OBJECTIVE_OP]
        if self.annotations.get(fmt.ALLOW_REVERSE_OP) == "true":
            bound["allow_reverse_op"] = True
        return {"objective": bound, **out}

    def _bound(self, value: float | None, measure: Measure, path: Path) -> Any:
        if value is None:
            self.note("needs value (the bound of the SLI)", *path)
            return None
        unit = {"latency": "ms", "freshness": "s"}.get(measure.dimension)
        return value if unit is None else self._duration(value, unit, path)

    def _duration(self, value: float, unit: str, path: Path) -> str | None:
        """``value`` (in ``unit``, ``ms`` or ``s``) as an mlslo duration."""
        size = timedelta(milliseconds=1) if unit == "ms" else timedelta(seconds=1)
        duration = fmt.scaled(value, size)
        if duration is None:
            self.note(f"value {value:g} {unit} is not a duration mlslo can hold", *path)
            return None
        return format_duration(duration)

    # --- alerts --------------------------------------------------------------------------
