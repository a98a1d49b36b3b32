"""Reading OpenSLO documents into an mlslo spec: ``mlslo openslo import``.

The documents of one or several YAML streams (or YAML lists of documents) are read together,
so an SLO may refer to an SLI, an AlertPolicy or a DataSource in another file. What mlslo
wrote (:mod:`mlslo.render.openslo`) comes back as the same spec; what other tools wrote is
mapped where mlslo has a counterpart (docs/openslo.md has the table), and every part that is
not mapped as written is reported as one located :class:`Note`. The result is no spec only
when no SLO could be mapped. Pure: the caller reads the files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from mlslo.errors import SpecError
from mlslo.spec.document import Notifier, Spec
from mlslo.spec.loader import spec_from_dict
from mlslo.spec.openslo import format as fmt
from mlslo.spec.openslo.documents import Doc, Library, Note, Notes, mapping, read_documents
from mlslo.spec.openslo.slo import SLOReader

__all__ = ["Note", "OpenSLOImport", "import_openslo", "spec_yaml"]

_SERVICE_SETTINGS = (
    (fmt.BUDGET_LOW, "budget_low"),
    (fmt.CORRECTIONS, "corrections"),
    (fmt.COMPOSITES, "composites"),
    (fmt.POLICY, "policy"),
    (fmt.POLICIES, "policies"),
)
_RECORD_SETTINGS = (
    "bucket",
    "columns",
    "label_columns",
    "outcome_columns",
    "attributes",
    "attribution",
)
_DROPPABLE = (
    "corrections",
    "composites",
    "policy",
    "policies",
    "default_policy",
    "notifiers",
    "attributes",
    "attribution",
)


@dataclass(frozen=True)
class OpenSLOImport:
    """The spec mapped from OpenSLO documents (None when no SLO could be mapped) and what was
    not mapped as written."""

    spec: Spec | None
    notes: tuple[Note, ...]
    files: tuple[str, ...]

    def yaml(self) -> str:
        """The spec as YAML, headed by where it came from."""
        assert self.spec is not None
        return (
            f"# mlslo spec imported from OpenSLO ({', '.join(self.files)}) by mlslo openslo "
            "import.\n" + spec_yaml(self.spec)
        )


_SLO_ORDER = ("name", "description", "dimension", "sli", "objective", "window", "budgeting")


def spec_yaml(spec: Spec) -> str:
    """A spec as YAML: the fields it was given, in the order docs/spec.md lists them."""
    data = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    slos = []
    for slo in data["slos"]:
        window = slo.get("window")
        if isinstance(window, dict) and len(window) == 1:
            slo["window"] = next(iter(window.values()))
        first = {key: slo[key] for key in _SLO_ORDER if key in slo}
        slos.append({**first, **{k: v for k, v in slo.items() if k not in first}})
    data["slos"] = slos
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


class _Dumper(yaml.SafeDumper):
    """Text of several lines (descriptions that carry queries) as a ``|`` block."""


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data and data == data.strip() and " \n" not in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _text)


def import_openslo(sources: Sequence[tuple[str, str]]) -> OpenSLOImport:
    """Map OpenSLO documents, given as (file name, text) pairs, to a spec."""
    notes = Notes()
    docs: list[Doc] = []
    for file, text in sources:
        docs += read_documents(file, text, notes)
    library = Library(docs, notes)
    data: dict[str, Any] = {}
    service = _service(library, notes, data)
    _records(library, notes, data)
    slos: list[dict[str, Any]] = []
    taken: set[str] = set()
    for doc in list(library.of("SLO")):
        library.use(doc)
        owner = doc.spec.get("service")
        if service is not None and owner is not None and str(owner) != service:
            notes.add(
                doc.note(
                    f"belongs to service '{owner}'; imported into '{data['service']}' (a spec "
                    "is one service's)",
                    "spec",
                    "service",
                )
            )
        for slo in SLOReader(doc, library, notes, taken).slos():
            if _valid_slo(slo, data.get("bucket"), doc, notes):
                slos.append(slo)
    notifiers = _notifiers(library, notes)
    _unused(library, notes)
    files = tuple(file for file, _ in sources)
    if slos and "service" not in data:
        data["service"] = fmt.mlslo_name(files[0].replace("\\", "/").rsplit("/", 1)[-1])
        data["service"] = data["service"].rsplit(".", 1)[0] or "service"
        notes.file(
            files[0],
            f"no Service document and no SLO names one: the service is named "
            f"'{data['service']}' after the file",
        )
    if not slos:
        notes.file(", ".join(files), "no SLO could be mapped to mlslo, so there is no spec")
        return OpenSLOImport(None, tuple(notes.items), files)
    data["slos"] = slos
    if notifiers:
        data["notifiers"] = notifiers
    ordered = {key: data[key] for key in Spec.model_fields if key in data}
    return OpenSLOImport(_validated(ordered, notes, files), tuple(notes.items), files)


# --- the service, its records and notifiers ----------------------------------------------------


def _loaded(doc: Doc, key: str, notes: Notes) -> Any:
    try:
        return json.loads(doc.annotations[key])
    except ValueError:
        notes.add(doc.note(f"{key} is not JSON; ignored", "metadata", "annotations", key))
        return None


def _foreign_metadata(doc: Doc, notes: Notes) -> None:
    labels = mapping(doc.metadata.get("labels"))
    if labels:
        notes.add(doc.note(f"labels {', '.join(map(str, labels))} are not kept", "metadata"))
    foreign = [k for k in doc.annotations if not k.startswith(fmt.PREFIX)]
    if foreign:
        notes.add(
            doc.note(f"annotations {', '.join(foreign)} are not kept", "metadata", "annotations")
        )


def _service(library: Library, notes: Notes, data: dict[str, Any]) -> str | None:
    """The spec's service and its settings, from the Service document (the one the SLOs
    name, when there are several) or, without one, from the SLOs' ``service``. Returns the
    service's name as the SLOs write it."""
    services = list(library.of("Service"))
    named = [str(d.spec["service"]) for d in library.of("SLO") if d.spec.get("service")]
    chosen = next((d for d in services if named and d.name == named[0]), None)
    chosen = chosen or (services[0] if services else None)
    for doc in services:
        library.use(doc)
        if doc is not chosen:
            notes.add(doc.note("not imported: a spec holds one service", "metadata", "name"))
    if chosen is None:
        if not named:
            return None
        data["service"] = fmt.mlslo_name(named[0])
        return named[0]
    _foreign_metadata(chosen, notes)
    annotations = chosen.annotations
    data["service"] = fmt.mlslo_name(annotations.get(fmt.NAME, chosen.name))
    description = annotations.get(fmt.DESCRIPTION, chosen.spec.get("description"))
    if description:
        data["description"] = str(description)
    for key, field in _SERVICE_SETTINGS:
        if key in annotations and (value := _loaded(chosen, key, notes)) is not None:
            data[field] = value
    if fmt.DEFAULT_POLICY in annotations:
        data["default_policy"] = annotations[fmt.DEFAULT_POLICY]
    if fmt.DASHBOARD_URL in annotations:
        data["dashboard_url"] = annotations[fmt.DASHBOARD_URL]
    return chosen.name


def _records(library: Library, notes: Notes, data: dict[str, Any]) -> None:
    """Where the records keep each field, from mlslo's DataSource."""
    own = [d for d in library.of("DataSource") if d.spec.get("type") == fmt.MLSLO_TYPE]
    for extra in own[1:]:
        library.use(extra)
        notes.add(extra.note("a second mlslo DataSource; only the first is read", "metadata"))
    if not own:
        return
    library.use(own[0])
    details = mapping(own[0].spec.get("connectionDetails"))
    for key, value in details.items():
        if key in _RECORD_SETTINGS:
            data[key] = value
        else:
            notes.add(
                own[0].note("is not an mlslo setting; ignored", "spec", "connectionDetails", key)
            )
    if "bucket" in data:
        try:
            Spec.model_validate({"service": "x", "bucket": data["bucket"], "slos": [_PROBE]})
        except ValidationError:
            notes.add(
                own[0].note(
                    f"bucket {data['bucket']!r} is not a valid bucket; the default 1m applies",
                    "spec",
                    "connectionDetails",
                    "bucket",
                )
            )
            del data["bucket"]


_PROBE = {"name": "probe", "dimension": "availability", "objective": {"target": 0.5}}


def _notifiers(library: Library, notes: Notes) -> list[dict[str, Any]]:
    """The spec's notifiers, from the notification targets mlslo wrote; other targets are
    reported (mlslo sends to webhook, Slack and Alertmanager URLs)."""
    out: list[dict[str, Any]] = []
    for doc in library.of("AlertNotificationTarget"):
        library.use(doc)
        if doc.annotations.get(fmt.PLACEHOLDER) == "true":
            continue
        if fmt.NOTIFIER not in doc.annotations:
            notes.add(
                doc.note(
                    f"target {doc.spec.get('target')!r} is not imported: mlslo notifiers are "
                    "webhook, slack or alertmanager URLs; add one under notifiers",
                    "spec",
                    "target",
                )
            )
            continue
        carried = _loaded(doc, fmt.NOTIFIER, notes)
        if not isinstance(carried, dict):
            continue
        notifier = {"name": fmt.mlslo_name(doc.annotations.get(fmt.NAME, doc.name)), **carried}
        try:
            Notifier.model_validate(notifier)
        except ValidationError as exc:
            message = exc.errors()[0]["msg"]
            notes.add(doc.note(f"not imported: {message}", "metadata", "annotations"))
            continue
        out.append(notifier)
    return out


def _unused(library: Library, notes: Notes) -> None:
    for doc in library.unused():
        kind = doc.kind
        if kind == "DataSource":
            what = f"(type {doc.spec.get('type')}) is not used by any SLO; ignored"
        else:
            what = "is not used by any SLO; ignored"
        notes.add(doc.note(what, "metadata", "name"))


# --- validation --------------------------------------------------------------------------------


def _valid_slo(slo: dict[str, Any], bucket: Any, doc: Doc, notes: Notes) -> bool:
    """Whether one mapped SLO is valid on its own; if not, why, at its document."""
    probe: dict[str, Any] = {"service": "probe", "slos": [slo]}
    if bucket is not None:
        probe["bucket"] = bucket
    try:
        spec_from_dict(probe, file=doc.file)
    except SpecError as error:
        where = (error.path or "").removeprefix("slos[0]").lstrip(".")
        detail = f"{where}: {error.detail}" if where else error.detail
        notes.add(doc.note(f"SLO '{slo['name']}' not imported: {detail}"))
        return False
    return True


def _validated(data: dict[str, Any], notes: Notes, files: tuple[str, ...]) -> Spec | None:
    """The spec; a setting that makes it invalid (a policy naming an SLO that was not
    imported, say) is reported and left out."""
    where = ", ".join(files)
    for _ in range(len(_DROPPABLE) + 1):
        try:
            return spec_from_dict(data, file=where)
        except SpecError as error:
            top = (error.path or "").split(".")[0].split("[")[0]
            if top not in _DROPPABLE or top not in data:
                notes.file(where, f"no spec: {error.detail} ({error.path})")
                return None
            notes.file(where, f"{error.path}: {error.detail}; {top} left out")
            del data[top]
            if top in ("policy", "policies"):
                data.pop("default_policy", None)
    return None
