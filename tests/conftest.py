"""Shared fixtures: the real CLI (in process), and writers for specs and record files."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mlslo.cli import app


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli() -> Callable[..., Run]:
    """Invoke ``mlslo`` with arguments; returns exit code, stdout and stderr."""
    runner = CliRunner()

    def invoke(*args: str) -> Run:
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str], Path]:
    """Write a YAML spec (dedented) and return its path."""
    counter = iter(range(1_000_000))

    def write(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"spec{next(counter)}.yaml")
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_records(tmp_path: Path) -> Callable[..., Path]:
    """Write records (a dict of columns or a pyarrow table) as parquet, csv or ndjson."""
    counter = iter(range(1_000_000))

    def write(
        data: dict[str, list[Any]] | pa.Table, fmt: str = "parquet", name: str | None = None
    ) -> Path:
        table = data if isinstance(data, pa.Table) else pa.table(data)
        path = tmp_path / (name or f"records{next(counter)}.{fmt}")
        if fmt == "parquet":
            pq.write_table(table, path)
        elif fmt == "csv":
            pacsv.write_csv(table, path)
        elif fmt in ("ndjson", "jsonl"):
            with path.open("w", encoding="utf-8") as out:
                for row in table.to_pylist():
                    out.write(json.dumps(row, default=_iso) + "\n")
        else:
            raise ValueError(fmt)
        return path

    return write


def _iso(value: Any) -> str:
    return value.isoformat()
