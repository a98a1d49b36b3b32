"""The runnable examples stay green: ``examples/notebook.ipynb`` executed in a real Jupyter
kernel of this environment, its numbers checked against the CLI on the same records, and
``examples/nightly_gate.py`` run as a job for each of its outcomes."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nbclient import NotebookClient
from typer.testing import CliRunner

from mlslo.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _cli(*args: Any) -> tuple[int, Any]:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


# --- the notebook -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The notebook executed in a kernel of this Python, plus one cell the file does not
    have: it writes the notebook's frames and numbers out for the checks below."""
    folder = tmp_path_factory.mktemp("notebook")
    book = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    nbformat.validate(book)
    assert not any(cell.get("outputs") for cell in book.cells), "commit the notebook cleared"
    book.cells.append(
        nbformat.v4.new_code_cell(
            "import json\n"
            'predictions.to_parquet("predictions.parquet")\n'
            'labels.to_parquet("labels.parquet")\n'
            'open("spec.json", "w").write(spec.model_dump_json(exclude_unset=True))\n'
            'open("result.json", "w").write(json.dumps(result.to_dict()))\n'
            'open("gate.json", "w").write(json.dumps(decision.to_dict()))'
        )
    )
    client = NotebookClient(
        book,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute()
    return book, folder


def _outputs(book: Any, source_start: str) -> list[Any]:
    cells = [c for c in book.cells if c.cell_type == "code" and c.source.startswith(source_start)]
    assert len(cells) == 1, source_start
    return list(cells[0].outputs)


def test_the_notebook_shows_the_evaluation_the_cli_computes(notebook):
    book, folder = notebook
    errors = [o for c in book.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    (folder / "spec.yaml").write_text(
        json.dumps(json.loads((folder / "spec.json").read_text())), encoding="utf-8"
    )
    at = "2026-03-01T00:00Z"
    code, document = _cli(
        "evaluate",
        "--spec",
        folder / "spec.yaml",
        "--data",
        folder / "predictions.parquet",
        "--labels",
        folder / "labels.parquet",
        "--at",
        at,
        "--series",
        "1d",
        "--format",
        "json",
    )
    assert code == 0
    assert json.loads((folder / "result.json").read_text()) == document
    code, gate = _cli(
        "gate",
        "--spec",
        folder / "spec.yaml",
        "--data",
        folder / "predictions.parquet",
        "--labels",
        folder / "labels.parquet",
        "--at",
        at,
        "--format",
        "json",
    )
    assert json.loads((folder / "gate.json").read_text())["decision"] == gate["decision"]
    assert gate["decision"] == "block" and code == 1

    shown = _outputs(book, "result = mlslo.evaluate")[0].data["text/html"]
    accuracy = next(s for s in document["slos"] if s["name"] == "accuracy")
    assert 'class="mlslo-evaluation"' in shown
    assert f"{accuracy['budget']['remaining'] * 100:.1f}%" in shown
    printed = _outputs(book, 'accuracy = result["accuracy"]')[0].text
    assert f"F1 {accuracy['sli']['value']:.3f} on {accuracy['sli']['n']:,}" in printed


def test_the_notebook_draws_the_burn_down(notebook):
    book, folder = notebook
    svg = _outputs(book, "SVG(")[0].data["image/svg+xml"]
    document = json.loads((folder / "result.json").read_text())
    burndown = next(s for s in document["slos"] if s["name"] == "accuracy")["burndown"]
    assert "accuracy: error budget left over the window" in svg
    assert svg.count('class="point"') == sum(p["remaining"] is not None for p in burndown)
    remaining = [p["remaining"] for p in burndown if p["remaining"] is not None]
    assert remaining == sorted(remaining, reverse=True)  # a budget only burns down
    decision = _outputs(book, "decision = mlslo.gate")[0].data["text/html"]
    assert "BLOCK" in decision and "min_remaining" in decision


# --- the nightly gate job ---------------------------------------------------------------------

GATE_SPEC = """\
service: fraud-scoring
slos:
  - name: accuracy
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.8}
    window: 7d
policies:
  release:
    min_remaining: {accuracy: 0.5}
  canary:
    soft_stop: [accuracy]
default_policy: release
"""


@pytest.fixture(scope="module")
def job_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten predictions a day for a week, all of the positive class, one a day missed:
    F1 = 2·63 / (2·63 + 7) = 126/133, so (1 - 126/133) / (1 - 0.8) = 26.3 % of the budget is
    spent and 73.7 % is left."""
    folder = tmp_path_factory.mktemp("nightly")
    ids, ts, predicted, truth = [], [], [], []
    for day in range(7):
        for i in range(10):
            ids.append(f"d{day}-{i}")
            ts.append(f"2026-02-{22 + day:02d}T{12 + i:02d}:00:00+00:00")
            truth.append(1)
            predicted.append(0 if i == 0 else 1)
    stamps = pa.array(ts).cast(pa.timestamp("us", tz="UTC"))
    pq.write_table(
        pa.table({"id": ids, "ts": stamps, "prediction": predicted}),
        folder / "predictions.parquet",
    )
    pq.write_table(pa.table({"id": ids, "ts": stamps, "label": truth}), folder / "labels.parquet")
    (folder / "spec.yaml").write_text(GATE_SPEC, encoding="utf-8")
    return folder


def _arguments(folder: Path, *options: str) -> list[str]:
    return [
        "--spec",
        str(folder / "spec.yaml"),
        "--predictions",
        str(folder / "predictions.parquet"),
        "--labels",
        str(folder / "labels.parquet"),
        "--at",
        "2026-03-01T00:00:00Z",
        *options,
    ]


@pytest.fixture(scope="module")
def nightly_gate() -> Any:
    """The job's module, to call its ``main`` in this process (as a PythonOperator would)."""
    loaded = importlib.util.spec_from_file_location("nightly_gate", EXAMPLES / "nightly_gate.py")
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def test_the_nightly_gate_fails_the_job_when_the_gate_blocks(job_data, nightly_gate, capsys):
    """73.7 % of the budget left: the release policy's 50 % minimum allows the deployment; a
    90 % minimum blocks it, and the job's process exits 1."""
    assert nightly_gate.main(_arguments(job_data, "--summary", str(job_data / "allow.json"))) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("ALLOW: policy release for fraud-scoring")
    assert "accuracy: healthy, 74% of the budget left" in printed
    assert json.loads((job_data / "allow.json").read_text())["decision"] == "allow"

    stricter = job_data / "stricter"
    stricter.mkdir()
    for name in ("predictions.parquet", "labels.parquet"):
        (stricter / name).write_bytes((job_data / name).read_bytes())
    (stricter / "spec.yaml").write_text(
        GATE_SPEC.replace("{accuracy: 0.5}", "{accuracy: 0.9}"), encoding="utf-8"
    )
    blocked = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "nightly_gate.py"),
            *_arguments(stricter, "--summary", str(stricter / "block.json")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert blocked.returncode == 1, blocked.stderr
    assert blocked.stdout.startswith("BLOCK: policy release")
    assert (
        "block: min_remaining: accuracy has 73.7% of its budget left; the policy needs at "
        "least 90.0%" in blocked.stdout
    )
    assert json.loads((stricter / "block.json").read_text())["decision"] == "block"


def test_the_nightly_gate_warns_and_reports_errors(job_data, nightly_gate, tmp_path, capsys):
    """With a 0.95 target the budget is overspent: the canary policy warns (exit 0, or 1
    with --strict); a wrong argument is one line on stderr and exit 2."""
    for name in ("predictions.parquet", "labels.parquet"):
        (tmp_path / name).write_bytes((job_data / name).read_bytes())
    (tmp_path / "spec.yaml").write_text(
        GATE_SPEC.replace("target: 0.8", "target: 0.95"), encoding="utf-8"
    )
    assert nightly_gate.main(_arguments(tmp_path, "--policy", "canary")) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("WARN: policy canary")
    assert "accuracy: exhausted" in printed
    assert nightly_gate.main(_arguments(tmp_path, "--policy", "canary", "--strict")) == 1
    capsys.readouterr()
    assert nightly_gate.main(_arguments(tmp_path, "--policy", "nope")) == 2
    failed = capsys.readouterr().err
    assert failed.startswith("error: policy: no policy named 'nope'")
    assert len(failed.splitlines()) == 1
