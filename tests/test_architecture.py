"""The package's structure, checked like its behaviour: the stages of the data flow import
only the stages before them (import-linter contracts in pyproject.toml), nothing imports in
a circle, and no module grows past what one person reads in one sitting."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "mlslo"
MOST_LINES = 500


def test_import_contracts_hold():
    found = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(found).exists():
        pytest.fail("lint-imports is not installed; pip install -e '.[test]'")
    result = subprocess.run(
        [found, "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if not imported.startswith("mlslo"):
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for module in sorted(graph.modules):
        if module.startswith("mlslo") and module not in index:
            visit(module)
    return out


def test_no_import_cycles():
    graph = grimp.build_graph("mlslo")
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("mlslo.a", "mlslo.b", "mlslo.c"):
        graph.add_module(module)
    graph.add_import(importer="mlslo.a", imported="mlslo.b")
    graph.add_import(importer="mlslo.b", imported="mlslo.a")
    graph.add_import(importer="mlslo.b", imported="mlslo.c")
    assert _cycles(graph) == [["mlslo.a", "mlslo.b"]]


def test_no_module_is_longer_than_one_sitting():
    long = {
        str(path.relative_to(SOURCE)): n
        for path in SOURCE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MOST_LINES
    }
    assert long == {}


def test_every_folder_is_a_package_with_a_docstring():
    for folder in [SOURCE, *(p for p in SOURCE.rglob("*") if p.is_dir())]:
        if folder.name in ("templates", "static", "__pycache__"):
            continue
        init = folder / "__init__.py"
        assert init.exists(), f"{folder.relative_to(ROOT)} has no __init__.py"
        assert init.read_text(encoding="utf-8").lstrip().startswith('"""'), init


def _layers_in_pyproject() -> list[list[str]]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    return [[part.strip().removeprefix("mlslo.") for part in layer.split("|")] for layer in layers]


def _doc_section(marker: str) -> str:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    return text.split(marker, 1)[1].split("\n\n", 1)[0]


def test_architecture_doc_lists_the_layers_in_the_contracts_order():
    rows = [line for line in _doc_section("<!-- layers -->").splitlines() if line.startswith("| `")]
    documented = [
        [name.strip(" `/").removesuffix(".py") for name in row.split("|")[1].split(", ")]
        for row in rows
    ]
    assert list(reversed(documented)) == [sorted(layer) for layer in _layers_in_pyproject()]
    on_disk = sorted(
        p.stem if p.is_file() else p.name
        for p in SOURCE.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__")
        or (p.is_dir() and (p / "__init__.py").exists())
    )
    assert sorted(name for row in documented for name in row) == on_disk


def test_architecture_doc_names_files_that_exist():
    steps = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    steps = steps.split("<!-- new-family -->", 1)[1]
    import re

    paths = re.findall(r"`((?:src|docs|tests)/[\w/.]+)`", steps)
    assert len(paths) >= 8
    for path in paths:
        assert (ROOT / path).exists(), path
