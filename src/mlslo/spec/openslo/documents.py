"""Reading OpenSLO files into documents that know where they are: each YAML stream's documents
(or a YAML list of them, as Nobl9 writes), with the line of every field, so that every part
the import cannot map is reported as ``file:line: Kind 'name': field: why``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from mlslo.spec.openslo import format as fmt

KINDS = (
    "Service",
    "DataSource",
    "SLO",
    "SLI",
    "AlertPolicy",
    "AlertCondition",
    "AlertNotificationTarget",
)
Path = tuple[Any, ...]


@dataclass(frozen=True)
class Note:
    """One part of the OpenSLO input that mlslo did not map as written, and why."""

    file: str
    line: int | None
    document: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where, self.document, self.field, self.message]
        return ": ".join(part for part in parts if part)


def render_path(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a mapping, else an empty one (a field the input left out or got
    wrong is reported where it is used)."""
    return value if isinstance(value, dict) else {}


def sequence(value: Any) -> list[Any]:
    """``value`` when it is a list, else an empty one."""
    return value if isinstance(value, list) else []


@dataclass
class Doc:
    """One OpenSLO document (or one object written inline in another) and its lines."""

    file: str
    data: dict[str, Any]
    lines: dict[Path, int]
    base: Path = ()

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def api(self) -> str:
        return str(self.data.get("apiVersion", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        return mapping(self.data.get("metadata"))

    @property
    def name(self) -> str:
        name = self.metadata.get("name")
        return str(name) if name is not None else ""

    @property
    def spec(self) -> dict[str, Any]:
        return mapping(self.data.get("spec"))

    @property
    def annotations(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in mapping(self.metadata.get("annotations")).items()}

    @property
    def label(self) -> str:
        return f"{self.kind or 'document'} '{self.name}'" if self.name else self.kind or "document"

    def line(self, *path: Any) -> int | None:
        full = (*self.base, *path)
        for cut in range(len(full), -1, -1):
            if full[:cut] in self.lines:
                return self.lines[full[:cut]]
        return None

    def note(self, message: str, *path: Any) -> Note:
        return Note(self.file, self.line(*path), self.label, render_path(path) or None, message)

    def inline(self, data: dict[str, Any], *path: Any) -> Doc:
        """An object written inside this document (an inline AlertPolicy, a condition)."""
        return Doc(self.file, data, self.lines, (*self.base, *path))


@dataclass
class Notes:
    """What the import reports, in the order it found it."""

    items: list[Note] = field(default_factory=list)

    def add(self, note: Note) -> None:
        if note not in self.items:
            self.items.append(note)

    def file(self, file: str, message: str, line: int | None = None) -> None:
        self.add(Note(file, line, None, None, message))


class _Recursive(ValueError):
    """A YAML alias that contains itself: no OpenSLO document is built like that."""


def _index(node: yaml.Node, path: Path, lines: dict[Path, int], open_: set[int]) -> None:
    if id(node) in open_:
        raise _Recursive(node.start_mark.line + 1)
    lines.setdefault(path, node.start_mark.line + 1)
    open_.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines[(*path, key.value)] = key.start_mark.line + 1
            _index(value, (*path, key.value), lines, open_)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), lines, open_)
    open_.discard(id(node))


def read_documents(file: str, text: str, notes: Notes) -> list[Doc]:
    """The OpenSLO documents of one file; what is not a document is reported."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        datas = list(yaml.safe_load_all(text))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        notes.file(file, f"not valid YAML: {exc.problem}", mark.line + 1 if mark else None)
        return []
    except yaml.YAMLError as exc:
        notes.file(file, f"not valid YAML: {exc}")
        return []
    out: list[Doc] = []
    for node, data in zip(nodes, datas, strict=True):
        if node is None or data is None:
            continue
        lines: dict[Path, int] = {}
        try:
            _index(node, (), lines, set())
        except _Recursive as recursive:
            notes.file(file, "a YAML alias refers to itself; document skipped", recursive.args[0])
            continue
        items = list(enumerate(data)) if isinstance(data, list) else [(None, data)]
        for index, item in items:
            base: Path = () if index is None else (index,)
            if not isinstance(item, dict):
                notes.file(
                    file,
                    "not an OpenSLO document (a mapping with apiVersion, kind, metadata, spec); "
                    "skipped",
                    lines.get(base),
                )
                continue
            out.append(Doc(file, item, lines, base))
    return out


class Library:
    """Every document read, by kind and name, and which of them the mapping used."""

    def __init__(self, docs: Sequence[Doc], notes: Notes) -> None:
        self.docs: list[Doc] = []
        self.used: set[int] = set()
        self.notes = notes
        for doc in docs:
            if doc.api not in (fmt.API_VERSION, fmt.API_VERSION_ALPHA):
                notes.add(
                    doc.note(
                        f"apiVersion {doc.api or '(none)'} is not read; mlslo reads "
                        f"{fmt.API_VERSION} (and {fmt.API_VERSION_ALPHA} SLOs)",
                        "apiVersion",
                    )
                )
            elif doc.kind not in KINDS:
                notes.add(
                    doc.note(f"kind {doc.kind or '(none)'} is not an OpenSLO kind; skipped", "kind")
                )
            elif doc.api == fmt.API_VERSION_ALPHA and doc.kind not in ("SLO", "Service"):
                notes.add(
                    doc.note(f"{fmt.API_VERSION_ALPHA} {doc.kind} documents are not read", "kind")
                )
            elif not doc.name:
                notes.add(doc.note("has no metadata.name; skipped", "metadata"))
            else:
                self.docs.append(doc)

    def of(self, kind: str) -> Iterator[Doc]:
        return (doc for doc in self.docs if doc.kind == kind)

    def find(self, kind: str, name: str) -> Doc | None:
        for doc in self.of(kind):
            if doc.name == name:
                self.use(doc)
                return doc
        return None

    def use(self, doc: Doc) -> None:
        self.used.add(id(doc))

    def unused(self) -> Iterator[Doc]:
        return (doc for doc in self.docs if id(doc) not in self.used)


class Reader:
    """What each part of mapping one document shares: the document, every document read
    (to follow references), and the notes."""

    def __init__(self, doc: Doc, library: Library, notes: Notes) -> None:
        self.doc = doc
        self.library = library
        self.notes = notes
        self.annotations = doc.annotations

    def note(self, message: str, *path: Any, doc: Doc | None = None) -> None:
        self.notes.add((doc or self.doc).note(message, *path))
