"""The public Python API (``import mlslo``): every input kind gives the document the CLI
prints for the same records, gates decide as ``mlslo gate`` does, results render in Jupyter,
errors are the library's own, and everything in ``mlslo.__all__`` is documented and typed."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score
from typer.testing import CliRunner

import mlslo
from mlslo.cli import app

AT = "2026-03-01T00:00:00Z"
START = datetime(2026, 2, 20, tzinfo=UTC)

SPEC = """\
service: fraud-scoring
slos:
  - name: accuracy
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.8}
    window: 30d
  - name: freshness
    dimension: freshness
    sli: {lag_threshold: 15m}
    objective: {target: 0.9}
    window: 30d
  - name: uptime
    dimension: availability
    objective: {target: 0.99}
    window: 30d
  - name: latency
    dimension: latency
    sli: {latency_threshold: 250ms}
    objective: {target: 0.95}
    window: 30d
  - name: fairness
    dimension: fairness
    sli: {metric: true_positive_rate_difference, attribute: group}
    objective: {target: 0.2}
    window: 30d
policies:
  release:
    hard_stop: [uptime, fairness]
    min_remaining: {accuracy: 0.6}
    risk_score: {weights: {uptime: 0.4, fairness: 0.3, accuracy: 0.3}, max: 0.6}
  lenient:
    soft_stop: [accuracy]
default_policy: release
"""


def _records(seed: int = 7, n: int = 2400) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Predictions of two model versions over nine days, labels for most of them (some
    arriving after the moment evaluated), and hourly outcome counts."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, 9 * 86_400_000, n))
    ts = [START + timedelta(milliseconds=int(ms)) for ms in offsets]
    truth = rng.integers(0, 2, n)
    version = np.where(rng.random(n) < 0.3, "v2", "v1")
    wrong = rng.random(n) < np.where(version == "v2", 0.22, 0.08)
    prediction = np.where(wrong, 1 - truth, truth)
    lags = rng.exponential(5, n)
    groups = rng.choice(["A", "B", "C"], n).astype(object)
    groups[rng.random(n) < 0.03] = None
    predictions = pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "model": ["fraud"] * n,
            "model_version": version.tolist(),
            "status": np.where(rng.random(n) < 0.004, "error", "ok").tolist(),
            "latency_ms": rng.lognormal(4.3, 0.5, n).round(1),
            "event_ts": pa.array(
                [t - timedelta(minutes=float(m)) for t, m in zip(ts, lags, strict=True)],
                pa.timestamp("us", tz="UTC"),
            ),
            "prediction": prediction,
            "score": np.clip(prediction * 0.6 + rng.random(n) * 0.4, 0, 1),
            "group": pa.array(groups.tolist(), pa.string()),
        }
    )
    labelled = rng.random(n) < 0.85
    delay = rng.integers(30, 3 * 86_400, n)
    labels = pa.table(
        {
            "id": [f"p{i}" for i in range(n) if labelled[i]],
            "ts": pa.array(
                [
                    t + timedelta(seconds=int(d))
                    for t, d, keep in zip(ts, delay, labelled, strict=True)
                    if keep
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "label": truth[labelled],
        }
    )
    hours = [START + timedelta(hours=h) for h in range(9 * 24)]
    totals = rng.integers(900, 1100, len(hours))
    outcomes = pa.table(
        {
            "ts": pa.array(hours, pa.timestamp("us", tz="UTC")),
            "total": totals,
            "ok": totals - rng.binomial(totals, 0.006),
        }
    )
    return predictions, labels, outcomes


class ArrowStream:
    """Only the Arrow PyCapsule stream interface, as a library other than pyarrow exports it."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)


def _reader(table: pa.Table) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=500))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("python-api")
    predictions, labels, outcomes = _records()
    (folder / "predictions").mkdir()
    half = predictions.num_rows // 2
    pq.write_table(predictions.slice(0, half), folder / "predictions" / "part-0.parquet")
    pq.write_table(predictions.slice(half), folder / "predictions" / "part-1.parquet")
    pq.write_table(predictions, folder / "predictions.parquet")
    pq.write_table(labels, folder / "labels.parquet")
    pq.write_table(outcomes, folder / "outcomes.parquet")
    (folder / "spec.yaml").write_text(SPEC, encoding="utf-8")
    return {
        "folder": folder,
        "tables": (predictions, labels, outcomes),
        "spec": folder / "spec.yaml",
    }


def _cli(*args: Any) -> tuple[int, Any]:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def _files(data: dict[str, Any]) -> list[Any]:
    folder = data["folder"]
    return [
        "--data",
        folder / "predictions.parquet",
        "--labels",
        folder / "labels.parquet",
        "--outcomes",
        folder / "outcomes.parquet",
    ]


@pytest.fixture(scope="module")
def cli_document(data: dict[str, Any]) -> dict[str, Any]:
    code, document = _cli(
        "evaluate", "--spec", data["spec"], *_files(data), "--at", AT, "--format", "json"
    )
    assert code == 0
    return document


def _as_json(document: dict[str, Any]) -> Any:
    """Through JSON text, as the CLI's document went."""
    return json.loads(json.dumps(document))


def _duckdb_relation(table: pa.Table, path: Path) -> Any:
    pq.write_table(table, path)
    return duckdb.connect().read_parquet(str(path))


INPUT_KINDS: dict[str, Callable[[pa.Table, Path], Any]] = {
    "path": lambda table, path: str(path),
    "pathlib": lambda table, path: path,
    "pandas": lambda table, path: table.to_pandas(),
    "polars": lambda table, path: pl.from_arrow(table),
    "pyarrow-table": lambda table, path: table,
    "record-batch-reader": lambda table, path: _reader(table),
    "duckdb-relation": _duckdb_relation,
    "arrow-c-stream": lambda table, path: ArrowStream(table),
}


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_every_input_kind_gives_the_cli_document(kind, data, cli_document, tmp_path):
    predictions, labels, outcomes = data["tables"]
    make = INPUT_KINDS[kind]
    folder = data["folder"]
    paths = {
        "predictions": folder / "predictions.parquet",
        "labels": folder / "labels.parquet",
        "outcomes": folder / "outcomes.parquet",
    }
    if kind == "duckdb-relation":
        paths = {role: tmp_path / f"{role}.parquet" for role in paths}
    result = mlslo.evaluate(
        mlslo.load_spec(data["spec"]),
        predictions=make(predictions, paths["predictions"]),
        labels=make(labels, paths["labels"]),
        outcomes=make(outcomes, paths["outcomes"]),
        at=AT,
    )
    assert _as_json(result.to_dict()) == cli_document


def test_a_glob_and_a_folder_read_every_part(data, cli_document):
    folder = data["folder"]
    for predictions in (str(folder / "predictions" / "*.parquet"), folder / "predictions"):
        result = mlslo.evaluate(
            str(data["spec"]),
            predictions,
            labels=folder / "labels.parquet",
            outcomes=folder / "outcomes.parquet",
            at=datetime(2026, 3, 1, tzinfo=UTC),
        )
        assert _as_json(result.to_dict()) == cli_document


def test_a_pandas_frame_is_scanned_without_a_copy_to_arrow_first(data, cli_document):
    """DuckDB reads the frame itself; the frame is neither changed nor replaced."""
    predictions, labels, outcomes = (t.to_pandas() for t in data["tables"])
    before = predictions.copy()
    result = mlslo.evaluate(
        mlslo.load_spec(data["spec"]), predictions, labels=labels, outcomes=outcomes, at=AT
    )
    pd.testing.assert_frame_equal(predictions, before)
    assert _as_json(result.to_dict()) == cli_document


def test_tables_in_memory_are_scanned_on_duckdb_only(data):
    """Another engine (here ibis's Polars backend) reads files; a table in memory is refused
    with the way out, not sent to the engine."""
    import ibis

    from mlslo.api import evaluate_files
    from mlslo.inputs.frames import as_location
    from mlslo.scan.files import Sources

    sources = Sources(as_location(data["tables"][0], role="predictions"))
    with pytest.raises(mlslo.UsageError, match="write it to Parquet") as refused:
        evaluate_files(
            mlslo.load_spec(data["spec"]),
            sources,
            datetime(2026, 3, 1, tzinfo=UTC),
            con=ibis.polars.connect(),
        )
    assert refused.value.parameter == "engine"
    assert "predictions (pyarrow Table)" in str(refused.value)


SMALL_SPEC = """\
service: s
slos:
  - {name: accuracy, dimension: accuracy, sli: {metric: f1, positive_label: 1},
     objective: {target: 0.8}, window: 1d}
  - {name: latency, dimension: latency, sli: {percentile: 90}, objective: {target: 200ms},
     window: 1d}
  - name: fairness
    dimension: fairness
    sli: {metric: demographic_parity_difference, attribute: group}
    objective: {target: 0.2}
    window: 1d
"""


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 86_399_999),
            st.integers(0, 1),
            st.one_of(st.none(), st.integers(0, 1)),
            st.floats(0.5, 5_000, allow_nan=False),
            st.sampled_from(["A", "B", None]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_a_frame_and_its_parquet_file_evaluate_alike(rows, tmp_path):
    """Any records: a pandas frame, a Polars frame and their Parquet file give one document."""
    start = datetime(2026, 2, 28, tzinfo=UTC)
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(len(rows))],
            "ts": pa.array(
                [start + timedelta(milliseconds=r[0]) for r in rows], pa.timestamp("ms", tz="UTC")
            ),
            "prediction": pa.array([r[1] for r in rows], pa.int64()),
            "label": pa.array([r[2] for r in rows], pa.int64()),
            "latency_ms": pa.array([r[3] for r in rows], pa.float64()),
            "group": pa.array([r[4] for r in rows], pa.string()),
        }
    )
    path = tmp_path / "records.parquet"
    pq.write_table(table, path)
    spec = mlslo.load_spec(yaml.safe_load(SMALL_SPEC))
    from_file = mlslo.evaluate(spec, path, at=AT).to_dict()
    assert mlslo.evaluate(spec, table.to_pandas(), at=AT).to_dict() == from_file
    assert mlslo.evaluate(spec, pl.from_arrow(table), at=AT).to_dict() == from_file
    accuracy = from_file["slos"][0]["sli"]
    assert accuracy["n"] == sum(r[2] is not None for r in rows)


def test_categorical_columns_read_as_their_text(data, cli_document):
    """A pandas category, a Polars Categorical and an Arrow dictionary column slice fairness
    groups as the plain strings of the file do."""
    predictions, labels, outcomes = data["tables"]
    frame = predictions.to_pandas()
    kinds = [
        frame.assign(group=frame["group"].astype("category")),
        pl.from_arrow(predictions).with_columns(pl.col("group").cast(pl.Categorical)),
        predictions.set_column(
            predictions.schema.get_field_index("group"),
            "group",
            predictions["group"].dictionary_encode(),
        ),
    ]
    spec = mlslo.load_spec(data["spec"])
    for records in kinds:
        result = mlslo.evaluate(spec, records, labels=labels, outcomes=outcomes, at=AT)
        assert _as_json(result.to_dict()) == cli_document


def test_values_agree_with_the_document_and_with_scikit_learn(data, cli_document):
    predictions, labels, outcomes = data["tables"]
    result = mlslo.evaluate(
        mlslo.load_spec(data["spec"]), predictions, labels=labels, outcomes=outcomes, at=AT
    )
    assert list(result) == [s["name"] for s in cli_document["slos"]]
    for entry in cli_document["slos"]:
        slo = result[entry["name"]]
        assert _as_json(slo.to_dict()) == entry
        for field in ("value", "n"):
            assert getattr(slo, field) == pytest.approx(entry["sli"][field], rel=1e-11)
        assert slo.remaining == pytest.approx(entry["budget"]["remaining"], rel=1e-11)
        assert slo.status == entry["budget"]["status"]
        assert slo.met == entry["met"]
    assert result["fairness"].groups == cli_document["slos"][4]["sli"]["groups"]
    assert {tuple(g["group"].values()) for g in result["fairness"].groups} == {
        ("A",),
        ("B",),
        ("C",),
    }
    assert result["fairness"].unattributed == sum(
        g is None for g in predictions["group"].to_pylist()
    )
    assert result["accuracy"].groups == []

    # F1 from scikit-learn over the predictions whose label had arrived by AT
    at = datetime(2026, 3, 1, tzinfo=UTC)
    arrived = labels.filter(pa.compute.less_equal(labels["ts"], pa.scalar(at)))
    truth = dict(zip(arrived["id"].to_pylist(), arrived["label"].to_pylist(), strict=True))
    pairs = [
        (truth[i], p)
        for i, p in zip(
            predictions["id"].to_pylist(), predictions["prediction"].to_pylist(), strict=True
        )
        if i in truth
    ]
    assert len(pairs) < labels.num_rows  # some labels arrive after AT and do not count
    y_true, y_pred = zip(*pairs, strict=True)
    assert result["accuracy"].value == pytest.approx(f1_score(y_true, y_pred), rel=1e-12)
    assert result["accuracy"].n == len(pairs)
    assert result["accuracy"].consumed == pytest.approx(
        (1 - f1_score(y_true, y_pred)) / (1 - 0.8), rel=1e-9
    )


def test_to_pandas_has_a_row_per_slo(data, cli_document):
    result = mlslo.evaluate(data["spec"], data["tables"][0], labels=data["tables"][1], at=AT)
    frame = result.to_pandas()
    assert list(frame["name"]) == list(result)
    accuracy = frame.set_index("name").loc["accuracy"]
    assert accuracy["remaining"] == result["accuracy"].remaining
    assert accuracy["status"] == result["accuracy"].status
    assert accuracy["target"] == 0.8 and accuracy["op"] == ">="
    assert result.to_arrow().schema.field("met").type == pa.bool_()


# --- the gate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "candidate"),
    [(None, None), ("release", None), ("lenient", None), ("release", "model_version=v2")],
)
def test_gate_decides_as_the_cli(policy, candidate, data):
    predictions, labels, outcomes = (t.to_pandas() for t in data["tables"])
    spec = mlslo.load_spec(data["spec"])
    result = mlslo.evaluate(spec, predictions, labels=labels, outcomes=outcomes, at=AT)
    decision = mlslo.gate(spec, result, policy=policy, candidate=candidate)
    options = [f"--policy={policy}"] if policy else []
    options += [f"--candidate={candidate}"] if candidate else []
    code, document = _cli(
        "gate", "--spec", data["spec"], *_files(data), "--at", AT, "--format", "json", *options
    )
    assert _as_json(decision.to_dict()) == document
    assert decision.decision == document["decision"]
    assert code == {"allow": 0, "block": 1, "warn": 3}[decision.decision]
    assert [r.message for r in decision.reasons] == [r["message"] for r in document["reasons"]]
    assert decision.allowed == (decision.decision != "block")


def test_the_policies_of_the_test_spec_reach_different_decisions(data):
    spec = mlslo.load_spec(data["spec"])
    result = mlslo.evaluate(spec, *data["tables"][:1], labels=data["tables"][1], at=AT)
    release = mlslo.gate(spec, result)
    lenient = mlslo.gate(spec, result, policy="lenient")
    assert release.policy == "release" and release.decision == "block"
    assert any(r.rule == "min_remaining" and r.slo == "accuracy" for r in release.reasons)
    assert 0 <= release.risk_score <= 1
    assert lenient.decision == "allow" and lenient.reasons == ()
    assert lenient.risk_score is None


def test_gate_with_another_spec_reads_the_records_again(data, tmp_path):
    """A gate under a spec other than the one evaluated re-reads the same records."""
    predictions, labels, outcomes = data["tables"]
    result = mlslo.evaluate(data["spec"], predictions, labels=labels, outcomes=outcomes, at=AT)
    stricter = SPEC.replace("{accuracy: 0.6}", "{accuracy: 0.99, uptime: 0.99}")
    path = tmp_path / "stricter.yaml"
    path.write_text(stricter, encoding="utf-8")
    decision = mlslo.gate(path, result)
    _, document = _cli("gate", "--spec", path, *_files(data), "--at", AT, "--format", "json")
    assert _as_json(decision.to_dict()) == document
    assert {r.slo for r in decision.reasons} >= {"accuracy", "uptime"}


def test_gate_with_a_candidate_mapping(data):
    spec = mlslo.load_spec(data["spec"])
    result = mlslo.evaluate(spec, data["tables"][0], labels=data["tables"][1], at=AT)
    by_text = mlslo.gate(spec, result, candidate="model_version=v2")
    by_mapping = mlslo.gate(spec, result, candidate={"model_version": "v2"})
    assert by_text.to_dict() == by_mapping.to_dict()
    assert by_text.to_dict()["candidate"]["selector"] == {"model_version": "v2"}


class OneShotStream:
    """An Arrow stream that can be read once, as many producers' streams can."""

    def __init__(self, table: pa.Table) -> None:
        self._reader: pa.RecordBatchReader | None = _reader(table)

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        reader, self._reader = self._reader, None
        if reader is None:
            raise RuntimeError("this stream was read already")
        return reader.__arrow_c_stream__(requested_schema)


def test_a_stream_read_once_serves_the_evaluation_and_a_later_gate(data):
    """A stream is read once, when evaluate is called; a candidate gate, which scans the
    records again, reads what was kept."""
    predictions, labels, outcomes = data["tables"]
    spec = mlslo.load_spec(data["spec"])
    result = mlslo.evaluate(
        spec,
        OneShotStream(predictions),
        labels=OneShotStream(labels),
        outcomes=OneShotStream(outcomes),
        at=AT,
    )
    decision = mlslo.gate(spec, result, candidate="model_version=v2")
    _, document = _cli(
        "gate",
        "--spec",
        data["spec"],
        *_files(data),
        "--at",
        AT,
        "--format",
        "json",
        "--candidate",
        "model_version=v2",
    )
    assert _as_json(decision.to_dict()) == document


# --- Jupyter ----------------------------------------------------------------------------------


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _parse(html: str) -> _Cells:
    parser = _Cells()
    parser.feed(html)
    return parser


def test_results_render_as_html_tables(data):
    spec = mlslo.load_spec(data["spec"])
    result = mlslo.evaluate(spec, *data["tables"][:1], labels=data["tables"][1], at=AT)
    parsed = _parse(result._repr_html_())
    header, *rows = parsed.rows
    assert header[0] == "SLO" and "remaining" in header and "status" in header
    assert [row[0] for row in rows] == list(result)
    status = header.index("status")
    assert [row[status] for row in rows] == [
        result[name].status.replace("_", " ") for name in result
    ]
    assert "fraud-scoring" in "".join(parsed.text)
    single = _parse(result["fairness"]._repr_html_())
    assert [row[0] for row in single.rows[1:]] == ["fairness"]

    decision = mlslo.gate(spec, result)
    text = "".join(_parse(decision._repr_html_()).text)
    assert "BLOCK" in text
    for reason in decision.reasons:
        assert reason.message in text


def test_the_burn_down_is_drawn_from_a_series(data):
    spec = mlslo.load_spec(data["spec"])
    result = mlslo.evaluate(spec, *data["tables"][:1], labels=data["tables"][1], at=AT, series="1d")
    points = result["accuracy"].burndown
    assert len(points) >= 9
    assert points[-1][1] == pytest.approx(result["accuracy"].remaining, rel=1e-9)
    svg = result["accuracy"].burndown_svg()
    assert svg.startswith("<svg") and "error budget left" in svg
    assert svg.count('class="point"') == sum(v is not None for _, v in points)
    plain = mlslo.evaluate(spec, *data["tables"][:1], labels=data["tables"][1], at=AT)
    with pytest.raises(mlslo.UsageError, match="series"):
        plain["accuracy"].burndown_svg()


# --- errors -----------------------------------------------------------------------------------


def test_errors_are_the_librarys_own(data, tmp_path):
    spec = mlslo.load_spec(data["spec"])
    predictions = data["tables"][0]
    with pytest.raises(mlslo.DataError, match="no such file") as missing:
        mlslo.evaluate(spec, tmp_path / "nowhere.parquet", at=AT)
    assert missing.value.source == str(tmp_path / "nowhere.parquet")
    with pytest.raises(mlslo.DataError) as no_ts:
        mlslo.evaluate(spec, predictions.drop_columns(["ts"]).to_pandas(), at=AT)
    assert "ts" in str(no_ts.value) and "pandas DataFrame" in str(no_ts.value)
    with pytest.raises(mlslo.UsageError) as wrong_kind:
        mlslo.evaluate(spec, [1, 2, 3], at=AT)
    assert wrong_kind.value.parameter == "predictions"
    with pytest.raises(mlslo.UsageError) as naive:
        mlslo.evaluate(spec, predictions, at=datetime(2026, 3, 1))
    assert naive.value.parameter == "at" and "time zone" in str(naive.value)
    with pytest.raises(mlslo.UsageError) as bad_moment:
        mlslo.evaluate(spec, predictions, at="yesterday-ish")
    assert bad_moment.value.parameter == "at"
    with pytest.raises(mlslo.UsageError) as bad_step:
        mlslo.evaluate(spec, predictions, at=AT, series="daily")
    assert bad_step.value.parameter == "series"
    result = mlslo.evaluate(spec, predictions, labels=data["tables"][1], at=AT)
    with pytest.raises(mlslo.UsageError) as policy:
        mlslo.gate(spec, result, policy="nope")
    assert policy.value.parameter == "policy" and "release" in str(policy.value)
    with pytest.raises(mlslo.UsageError) as candidate:
        mlslo.gate(spec, result, candidate="v2")
    assert candidate.value.parameter == "candidate"
    with pytest.raises(KeyError, match="accuracy"):
        result["acuracy"]
    for error in (missing, no_ts, wrong_kind, naive, policy):
        assert isinstance(error.value, mlslo.MlsloError)


def test_spec_errors_name_the_path(tmp_path):
    with pytest.raises(mlslo.SpecError) as located:
        mlslo.load_spec({"service": "s", "slos": [{"name": "a", "dimension": "acuracy"}]})
    assert located.value.path is not None and located.value.path.startswith("slos[0]")
    with pytest.raises(mlslo.SpecError, match="file not found"):
        mlslo.load_spec(tmp_path / "missing.yaml")
    with pytest.raises(mlslo.UsageError):
        mlslo.load_spec(42)  # type: ignore[arg-type]
    spec = mlslo.Spec.model_validate(
        {
            "service": "s",
            "slos": [{"name": "up", "dimension": "availability", "objective": {"target": 0.99}}],
        }
    )
    assert mlslo.load_spec(spec.model_dump(mode="json", exclude_unset=True)) == spec


# --- the public surface -----------------------------------------------------------------------


def _public_callables(value: Any) -> list[tuple[str, Any]]:
    if inspect.isfunction(value):
        return [(value.__name__, value)]
    out = [(value.__name__, value)]
    for name, member in vars(value).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            out.append((f"{value.__name__}.{name}", member.fget))
        elif inspect.isfunction(member):
            out.append((f"{value.__name__}.{name}", member))
    return out


@pytest.mark.parametrize("name", [n for n in mlslo.__all__ if n != "__version__"])
def test_every_public_name_has_a_docstring_and_type_hints(name):
    value = getattr(mlslo, name)
    assert name in dir(mlslo)
    for label, member in _public_callables(value):
        assert inspect.getdoc(member), f"{label} has no docstring"
        if inspect.isclass(member):
            continue
        hints = inspect.get_annotations(member)
        parameters = [
            p for p in inspect.signature(member).parameters.values() if p.name not in ("self",)
        ]
        missing = [p.name for p in parameters if p.name not in hints]
        assert not missing, f"{label}: no type hint for {missing}"
        assert "return" in hints, f"{label}: no return type"


def test_import_is_cheap_and_the_rest_of_the_namespace_is_private_by_name():
    """``import mlslo`` loads no engine or data library; after every public name is used,
    the package's namespace holds nothing public beyond ``__all__`` (and its submodules)."""
    code = (
        "import sys, types, mlslo\n"
        "heavy = ['duckdb', 'ibis', 'pyarrow', 'pandas', 'pydantic', 'numpy', 'httpx']\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "for name in mlslo.__all__: getattr(mlslo, name)\n"
        "print(sorted(n for n, v in vars(mlslo).items() if not n.startswith('_') "
        "and not isinstance(v, types.ModuleType)))"
    )
    loaded, public = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert loaded == "[]"
    assert set(json.loads(public.replace("'", '"'))) == set(mlslo.__all__) - {"__version__"}
    assert mlslo.__version__ and isinstance(mlslo.__version__, str)
    assert (Path(mlslo.__file__).parent / "py.typed").is_file()
