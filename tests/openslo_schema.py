"""The OpenSLO v1 JSON Schema shipped in tests/data/openslo/schema (see SOURCES.md there),
loaded once, and a check that a document conforms to it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SCHEMA = Path(__file__).parent / "data" / "openslo" / "schema" / "v1"
ROOT_ID = "https://openslo.com/schemas/v1/openslo.schema.json"


@cache
def openslo_validator() -> Draft7Validator:
    """A validator of the root schema, every part schema registered under its ``$id``."""
    resources = []
    for path in sorted(SCHEMA.rglob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents, DRAFT7)))
    registry: Registry[Any] = Registry().with_resources(resources)
    root = registry.contents(ROOT_ID)
    Draft7Validator.check_schema(root)
    return Draft7Validator(root, registry=registry)


def openslo_errors(document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in openslo_validator().iter_errors(document)
    ]


def assert_valid_openslo(document: Any) -> None:
    errors = openslo_errors(document)
    kind = document.get("kind") if isinstance(document, dict) else None
    assert not errors, f"{kind} is not valid OpenSLO v1: {errors}"
