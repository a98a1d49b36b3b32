"""Reading a spec: YAML (or JSON) text to a validated :class:`~mlslo.spec.Spec`, and every
validation error turned into one located, actionable message (file, line, YAML path, fix)."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from mlslo.errors import SpecError
from mlslo.spec.document import Spec
from mlslo.spec.slos import DIMENSIONS
from mlslo.spec.types import SPEC_VERSION, AtPath, closest

# --- loading ----------------------------------------------------------------------------------


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec; raise SpecError naming file, line, path and fix."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            "file not found; pass the path of your SLO spec (YAML)", file=file
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror}", file=file) from None
    return parse_spec(text, file=file)


def parse_spec(text: str, *, file: str = "spec") -> Spec:
    """Validate spec text (YAML or JSON)."""
    data, lines = _load_yaml(text, file)
    if not isinstance(data, dict):
        raise SpecError(
            "expected a mapping with 'service' and 'slos' at the top", file=file, line=1
        )
    version = data.get("version", SPEC_VERSION)
    if version != SPEC_VERSION:
        raise SpecError(
            f"spec version {version!r} is not supported; this mlslo reads version {SPEC_VERSION}",
            file=file,
            path="version",
            line=lines.get(("version",)),
        )
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise _located(exc, data, lines, file) from None


def spec_from_dict(data: Mapping[str, Any], *, file: str = "spec") -> Spec:
    try:
        return Spec.model_validate(dict(data))
    except ValidationError as exc:
        raise _located(exc, data, {}, file) from None


_FAST = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml, when PyYAML has it


def _load_yaml(text: str, file: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    try:
        node = yaml.compose(text, Loader=_FAST)
        data = yaml.load(text, Loader=_FAST)
    except yaml.YAMLError:
        node, data = _load_slowly(text, file)  # the pure-Python parser's messages say more
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _index_lines(node, (), lines, file)
    return data, lines


def _load_slowly(text: str, file: str) -> tuple[Any, Any]:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise SpecError(f"not valid YAML: {exc.problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}", file=file) from None


def _index_lines(
    node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int], file: str
) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise SpecError(
                    f"key '{key}' appears twice; keep one",
                    file=file,
                    path=_render_path((*path, key)),
                    line=key_node.start_mark.line + 1,
                )
            seen.add(key)
            _index_lines(value_node, (*path, key), lines, file)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines, file)


def _render_path(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_FRIENDLY = {
    "missing": "is required",
    "literal_error": "must be one of {expected}",
    "union_tag_invalid": "must be one of {expected_tags}",
    "union_tag_not_found": "is required (one of availability, latency, freshness, accuracy, "
    "fairness)",
}


def _located(
    exc: ValidationError, data: Any, lines: dict[tuple[Any, ...], int], file: str
) -> SpecError:
    """Turn pydantic's first error into one located, actionable message."""
    errors = exc.errors(include_url=False)
    error = min(errors, key=lambda e: e["type"] != "extra_forbidden")
    path = _data_path(error["loc"], data)
    kind = error["type"]
    message = str(error["msg"])
    if kind == "extra_forbidden":
        field = str(path[-1])
        allowed = _allowed_fields(path[:-1], data)
        hint = closest(field, allowed)
        expected = f"; expected one of: {', '.join(allowed)}" if allowed and not hint else ""
        message = f"unknown field '{field}'{hint}{expected}"
    elif kind in _FRIENDLY:
        ctx = error.get("ctx", {})
        message = _FRIENDLY[kind].format(**{k: str(v) for k, v in ctx.items()})
        if kind == "union_tag_invalid":
            path.append("dimension")
            message += f", found {ctx.get('tag')!r}"
    elif kind == "value_error":
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, AtPath):
            path = [*path, *cause.path]
        message = message.removeprefix("Value error, ")
    else:
        found = error.get("input")
        message = f"{message[0].lower()}{message[1:]}"
        if not isinstance(found, dict | list):
            message += f", found {found!r}"
    line = None
    for cut in range(len(path), -1, -1):
        if tuple(path[:cut]) in lines:
            line = lines[tuple(path[:cut])]
            break
    return SpecError(message, file=file, path=_render_path(path) or None, line=line)


_TYPE_TAG = re.compile(r"^(float|int|str|bool|none|decimal|timedelta|datetime|date|dict|list)$|\[")


def _data_path(loc: Sequence[Any], data: Any) -> list[Any]:
    """Drop the discriminator and type tags pydantic inserts so the path matches the YAML
    (``objective.target``, never ``objective.target.float``)."""
    out: list[Any] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if (
            index
            and out
            and node is not None
            and (
                not isinstance(node, dict | list)
                or (isinstance(node, list) and isinstance(part, str))
            )
        ):
            break  # past a value: what follows names pydantic's types, not the YAML
        if (
            isinstance(node, dict)
            and part not in node
            and part in DIMENSIONS
            and (not last or "dimension" in node)
        ):
            continue
        if isinstance(part, str) and (part.startswith("function-") or _TYPE_TAG.search(part)):
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return out


def _allowed_fields(path: Sequence[Any], data: Any) -> list[str]:
    model: Any = Spec
    node = data
    for part in path:
        node = (
            node.get(part)
            if isinstance(node, dict)
            else (node[part] if isinstance(node, list) and isinstance(part, int) else None)
        )
        model = _child_type(model, part, node)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _child_type(model: Any, part: Any, node: Any) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel) and isinstance(part, str):
        field = model.model_fields.get(part)
        return None if field is None else _unwrap(field.annotation, node)
    origin = typing.get_origin(model)
    args = typing.get_args(model)
    if origin is list and args:
        return _unwrap(args[0], node)
    if origin is dict and len(args) == 2:
        return _unwrap(args[1], node)
    return None


def _unwrap(annotation: Any, node: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0], node)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        models = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
        if isinstance(node, dict) and "dimension" in node:
            for m in models:
                if m.model_fields.get("dimension") is not None and node[
                    "dimension"
                ] in typing.get_args(m.model_fields["dimension"].annotation):
                    return m
        if len(models) == 1:
            return models[0]
        containers = [a for a in options if typing.get_origin(a) in (list, dict)]
        return containers[0] if len(containers) == 1 else None
    return annotation
