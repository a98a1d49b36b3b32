"""Labels none of whose ids is a prediction's are an error naming the labels file and the
first ids of each side, on every command that takes --labels, unless
--allow-unmatched-labels; labels that match some prediction, have not arrived yet, or are
empty are no error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

AT = "2026-11-21T00:00:00Z"
BASE = datetime(2026, 11, 20, 12, tzinfo=UTC)
SPEC = """
    service: labels
    slos:
      - name: acc
        dimension: accuracy
        sli: {metric: accuracy}
        objective: {target: 0.9}
        window: 1d
      - name: uptime
        dimension: availability
        objective: {target: 0.9}
        window: 1d
    policy:
      hard_stop: [acc]
"""
MESSAGE = (
    "no label matches a prediction by id (labels: l-1, l-2, l-3; predictions: p-1, p-2, p-3); "
    "check columns.id and label_columns.id"
)


def _predictions(n: int = 8) -> dict[str, list]:
    return {
        "id": [f"p-{i}" for i in range(1, n + 1)],
        "ts": [BASE + timedelta(minutes=i) for i in range(n)],
        "model_version": ["v1"] * (n // 2) + ["v2"] * (n - n // 2),
        "status": ["ok"] * n,
        "prediction": [i % 2 for i in range(n)],
    }


def _labels(ids: list[str], hours: float = 1.0) -> dict[str, list]:
    return {
        "id": ids,
        "ts": [BASE + timedelta(hours=hours)] * len(ids),
        "label": [1] * len(ids),
    }


COMMANDS = {
    "evaluate": ["evaluate"],
    "alerts": ["alerts"],
    "gate": ["gate"],
    "report": ["report", "--out", "{out}"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_labels_that_match_nothing(
    cli, write_spec, write_records, tmp_path: Path, command
):
    spec = write_spec(SPEC)
    data = write_records(_predictions())
    labels = write_records(_labels([f"l-{i}" for i in range(1, 9)]), name="labels.parquet")
    args = [a.format(out=tmp_path / "report.html") for a in COMMANDS[command]]
    common = [*args, "--spec", spec, "--data", data, "--labels", labels, "--at", AT]
    run = cli(*common)
    assert run.exit_code == 2, run.stdout
    assert run.stderr.strip() == f"error: {labels}: {MESSAGE}"
    allowed = cli(*common, "--allow-unmatched-labels")
    assert allowed.exit_code in (0, 1, 3), allowed.stderr
    assert "no label matches" not in allowed.stderr


def test_allowed_the_accuracy_has_no_labelled_predictions(cli, write_spec, write_records):
    run = cli(
        "evaluate",
        "--spec",
        write_spec(SPEC),
        "--data",
        write_records(_predictions()),
        "--labels",
        write_records(_labels(["l-1", "l-2"])),
        "--at",
        AT,
        "--allow-unmatched-labels",
        "-f",
        "json",
    )
    assert run.exit_code == 0, run.stderr
    acc = run.json()["slos"][0]
    assert acc["budget"]["status"] == "insufficient_data"
    assert acc["sli"]["label_coverage"] == 0.0


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(_labels(["l-1", "p-7", "l-3"]), id="one-matches"),
        pytest.param(_labels(["p-1", "p-2"]), id="matching-v1-while-the-slo-reads-v2"),
        pytest.param(_labels(["l-1", "l-2"], hours=13), id="not-arrived-by-at"),
        pytest.param(
            {"id": pa.array([], pa.string()), "label": pa.array([], pa.int64())}, id="empty"
        ),
    ],
)
def test_labels_that_match_some_prediction_or_none_yet_are_fine(
    cli, write_spec, write_records, labels
):
    spec = write_spec(
        SPEC.replace("window: 1d\n", "window: 1d\n        filter: {model_version: v2}\n", 1)
    )
    run = cli(
        "evaluate",
        "--spec",
        spec,
        "--data",
        write_records(_predictions()),
        "--labels",
        write_records(labels),
        "--at",
        AT,
        "-f",
        "json",
    )
    assert run.exit_code == 0, run.stderr


def test_the_check_names_ids_of_the_window_and_casts_like_the_join(cli, write_spec, write_records):
    """Integer prediction ids match text label ids as the join matches them; predictions
    outside the window are not shown."""
    rows = _predictions()
    rows["id"] = list(range(101, 109))
    rows["ts"][0] = BASE - timedelta(days=5)
    spec = write_spec(SPEC)
    unmatched = cli(
        "evaluate",
        "--spec",
        spec,
        "--data",
        write_records(rows),
        "--labels",
        write_records(_labels(["9", "x", "10"])),
        "--at",
        AT,
    )
    assert unmatched.exit_code == 2
    assert "(labels: 9, x, 10; predictions: 102, 103, 104)" in unmatched.stderr
    matched = cli(
        "evaluate",
        "--spec",
        spec,
        "--data",
        write_records(rows),
        "--labels",
        write_records(_labels(["9", "105"])),
        "--at",
        AT,
    )
    assert matched.exit_code == 0, matched.stderr


@pytest.mark.spark
@pytest.mark.system("java")
def test_spark_refuses_them_too(spark, write_spec, write_records):
    import ibis

    from mlslo.api import evaluate_files
    from mlslo.errors import DataError
    from mlslo.scan.files import Sources
    from mlslo.spec import load_spec

    spec = load_spec(write_spec(SPEC))
    data = str(write_records(_predictions()))
    labels = str(write_records(_labels([f"l-{i}" for i in range(1, 9)])))
    at = datetime(2026, 11, 21, tzinfo=UTC)
    con = ibis.pyspark.connect(spark)
    with pytest.raises(DataError) as refused:
        evaluate_files(spec, Sources(data, labels), at, con=con)
    assert str(refused.value) == f"{labels}: {MESSAGE}"
    allowed = evaluate_files(spec, Sources(data, labels, allow_unmatched_labels=True), at, con=con)
    assert allowed.slos[0].measurement.value is None
