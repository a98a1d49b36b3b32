"""Bad records get one located line (file, row, column, fix) and exit code 2; good records in
every accepted shape (CSV, NDJSON, nested attributes, folders, globs) read the same."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

BASE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
AT = "2026-11-21T00:00:00Z"
SPEC = """
    service: errors
    slos:
      - name: uptime
        dimension: availability
        objective: {target: 0.99}
      - name: latency
        dimension: latency
        sli: {latency_threshold: 250ms}
        objective: {target: 0.9}
      - name: fairness
        dimension: fairness
        sli: {metric: demographic_parity_difference, attribute: group}
        objective: {target: 0.2}
"""


def _rows(n: int = 6) -> dict[str, list]:
    return {
        "id": [f"p{i}" for i in range(n)],
        "ts": [BASE + timedelta(minutes=i) for i in range(n)],
        "status": ["ok"] * (n - 1) + ["error"],
        "latency_ms": [100.0 + 50 * i for i in range(n)],
        "prediction": [i % 2 for i in range(n)],
        "group": ["A", "B"] * (n // 2),
    }


def _one_line_error(run, *fragments: str) -> str:
    assert run.exit_code == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_missing_column_names_column_slo_and_fix(cli, write_spec, write_records):
    rows = _rows()
    del rows["latency_ms"]
    run = cli("evaluate", "--spec", write_spec(SPEC), "--data", write_records(rows), "--at", AT)
    _one_line_error(
        run,
        "column 'latency_ms'",
        "is missing",
        "SLO 'latency'",
        "columns: {latency_ms: <your column>}",
        "Columns found:",
    )


def test_mapped_column_names_are_used(cli, write_spec, write_records):
    rows = _rows()
    rows["lat"] = rows.pop("latency_ms")
    rows["served_at"] = rows.pop("ts")
    spec = write_spec(textwrap.dedent(SPEC) + "columns: {latency_ms: lat, ts: served_at}\n")
    run = cli("evaluate", "--spec", spec, "--data", write_records(rows), "--at", AT, "-f", "json")
    assert run.exit_code == 0, run.stderr
    latency = run.json()["slos"][1]
    assert latency["sli"]["valid"] == 6
    assert latency["sli"]["good"] == 4


def test_wrong_type_names_expected_kind(cli, write_spec, write_records):
    rows = _rows()
    rows["latency_ms"] = [True] * 6
    run = cli("evaluate", "--spec", write_spec(SPEC), "--data", write_records(rows), "--at", AT)
    _one_line_error(run, "column 'latency_ms'", "holds boolean", "numbers")


def test_text_where_a_number_is_needed_names_the_first_value(cli, write_spec, write_records):
    rows = _rows()
    rows["latency_ms"] = ["120", "80.5", "fast", "90", "slow", "1e2"]
    run = cli("evaluate", "--spec", write_spec(SPEC), "--data", write_records(rows), "--at", AT)
    _one_line_error(
        run, "row 3", "column 'latency_ms'", "'fast' is not a number", "SLO 'latency' needs numbers"
    )


def test_bad_status_value_is_located_by_row(cli, write_spec, write_records):
    rows = _rows()
    rows["status"][3] = "maybe"
    run = cli("evaluate", "--spec", write_spec(SPEC), "--data", write_records(rows), "--at", AT)
    _one_line_error(run, "row 4", "column 'status'", "'maybe'", "'ok' or 'error'")


def test_negative_latency_is_located(cli, write_spec, write_records):
    rows = _rows()
    rows["latency_ms"][5] = -3.0
    run = cli("evaluate", "--spec", write_spec(SPEC), "--data", write_records(rows), "--at", AT)
    _one_line_error(run, "row 6", "column 'latency_ms'", "-3.0")


def test_unparsable_timestamp_in_csv_is_located(cli, write_spec, tmp_path: Path):
    path = tmp_path / "log.csv"
    lines = ["id,ts,status,latency_ms,prediction,group"]
    for i in range(5):
        ts = "yesterday-ish" if i == 2 else (BASE + timedelta(minutes=i)).isoformat()
        lines.append(f"p{i},{ts},ok,120,1,A")
    path.write_text("\n".join(lines) + "\n")
    run = cli("evaluate", "--spec", write_spec(SPEC), "--data", path, "--at", AT)
    _one_line_error(run, str(path), "row 3", "column 'ts'", "'yesterday-ish'", "ISO-8601")


def test_missing_timestamp_is_located(cli, write_spec, write_records):
    rows = _rows()
    rows["ts"][1] = None
    run = cli("evaluate", "--spec", write_spec(SPEC), "--data", write_records(rows), "--at", AT)
    _one_line_error(run, "row 2", "column 'ts'")


def test_no_such_file(cli, write_spec, tmp_path: Path):
    run = cli("evaluate", "--spec", write_spec(SPEC), "--data", tmp_path / "nope.parquet")
    _one_line_error(run, "nope.parquet", "no such file or folder")


def test_empty_folder_and_unknown_type(cli, write_spec, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run = cli("evaluate", "--spec", write_spec(SPEC), "--data", empty)
    _one_line_error(run, "no predictions files found")
    odd = tmp_path / "log.xlsx"
    odd.write_text("x")
    run = cli("evaluate", "--spec", write_spec(SPEC), "--data", odd)
    _one_line_error(run, "unknown file type")


def test_mixed_formats_in_a_folder(cli, write_spec, write_records, tmp_path: Path):
    folder = tmp_path / "logs"
    folder.mkdir()
    write_records(_rows(), "parquet", name="logs/a.parquet")
    write_records(_rows(), "csv", name="logs/b.csv")
    run = cli("evaluate", "--spec", write_spec(SPEC), "--data", folder)
    _one_line_error(run, "mixes formats")


def test_bad_at_is_a_usage_error(cli, write_spec, write_records):
    run = cli(
        "evaluate",
        "--spec",
        write_spec(SPEC),
        "--data",
        write_records(_rows()),
        "--at",
        "last tuesday",
    )
    _one_line_error(run, "--at", "ISO-8601")


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_text_formats_read_the_same_as_parquet(cli, write_spec, write_records, fmt):
    spec = write_spec(SPEC)
    reference = cli(
        "evaluate", "--spec", spec, "--data", write_records(_rows(40)), "--at", AT, "-f", "json"
    ).json()
    run = cli(
        "evaluate",
        "--spec",
        spec,
        "--data",
        write_records(_rows(40), fmt),
        "--at",
        AT,
        "-f",
        "json",
    )
    assert run.exit_code == 0, run.stderr
    assert run.json() == reference


def test_naive_timestamps_are_utc(cli, write_spec, tmp_path: Path):
    spec = write_spec(SPEC)
    naive = tmp_path / "naive.csv"
    zoned = tmp_path / "zoned.csv"
    header = "id,ts,status,latency_ms,prediction,group\n"
    naive.write_text(
        header + "p1,2026-11-20 23:59:30,error,100,1,A\np2,2026-11-21 00:00:30,ok,100,1,B\n"
    )
    zoned.write_text(
        header + "p1,2026-11-21T01:59:30+02:00,error,100,1,A\n"
        "p2,2026-11-21T02:00:30+02:00,ok,100,1,B\n"
    )
    outputs = []
    for path in (naive, zoned):
        run = cli("evaluate", "--spec", spec, "--data", path, "--at", AT, "-f", "json")
        assert run.exit_code == 0, run.stderr
        outputs.append(run.json())
    assert outputs[0] == outputs[1]
    uptime = outputs[0]["slos"][0]
    assert uptime["sli"]["valid"] == 1
    assert uptime["sli"]["good"] == 0


def test_nested_attributes_and_folder_and_glob(cli, write_spec, tmp_path: Path):
    spec = write_spec(SPEC)
    folder = tmp_path / "logs"
    (folder / "day=1").mkdir(parents=True)
    rows = _rows(8)
    for part, index in (("a", range(0, 4)), ("b", range(4, 8))):
        with (folder / "day=1" / f"{part}.ndjson").open("w") as out:
            for i in index:
                out.write(
                    json.dumps(
                        {
                            "id": rows["id"][i],
                            "ts": rows["ts"][i].isoformat(),
                            "status": rows["status"][i],
                            "latency_ms": rows["latency_ms"][i],
                            "prediction": rows["prediction"][i],
                            "attributes": {"group": rows["group"][i]},
                        }
                    )
                    + "\n"
                )
    by_folder = cli("evaluate", "--spec", spec, "--data", folder, "--at", AT, "-f", "json")
    by_glob = cli(
        "evaluate", "--spec", spec, "--data", f"{folder}/**/*.ndjson", "--at", AT, "-f", "json"
    )
    assert by_folder.exit_code == 0, by_folder.stderr
    assert by_folder.json() == by_glob.json()
    fairness = by_folder.json()["slos"][2]
    groups = {
        g["group"]["group"]: g["rates"]["selection_rate"]["value"]
        for g in fairness["sli"]["groups"]
    }
    assert groups == {"A": 0.0, "B": 1.0}
    assert fairness["sli"]["value"] == 1.0


def test_labels_table_without_id(cli, write_spec, write_records):
    spec = write_spec("""
        service: errors
        slos:
          - name: acc
            dimension: accuracy
            sli: {metric: accuracy}
            objective: {target: 0.9}
    """)
    rows = _rows()
    labels = write_records({"prediction_id": rows["id"], "label": [1] * 6})
    run = cli(
        "evaluate", "--spec", spec, "--data", write_records(rows), "--labels", labels, "--at", AT
    )
    _one_line_error(run, "column 'id'", "label_columns")


REGRESSION = """
    service: errors
    slos:
      - name: mae
        dimension: accuracy
        sli: {metric: mae}
        objective: {target: 0.5}
      - name: uptime
        dimension: availability
        objective: {target: 0.9}
"""


def test_regression_labels_that_are_not_numbers_are_named_in_the_labels(
    cli, write_spec, write_records, tmp_path: Path
):
    """A labels CSV whose label column reads as text because of one word: the word, its row
    and the labels file are named (before, it silently became a missing label)."""
    rows = _rows()
    rows["prediction"] = [1.5, 2.0, 3.25, 4.0, 5.0, 6.0]
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "id,ts,label\n"
        + "".join(
            f"p{i},{(BASE + timedelta(hours=1)).isoformat()},{'yes' if i == 3 else i}\n"
            for i in range(6)
        )
    )
    run = cli(
        "evaluate",
        "--spec",
        write_spec(REGRESSION),
        "--data",
        write_records(rows),
        "--labels",
        labels,
        "--at",
        AT,
    )
    _one_line_error(
        run, f"{labels}, row 4, column 'label'", "'yes' is not a number", "SLO 'mae' needs numbers"
    )


def test_regression_predictions_that_are_not_numbers_are_located(cli, write_spec, tmp_path: Path):
    path = tmp_path / "log.ndjson"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"p{i}",
                    "ts": (BASE + timedelta(minutes=i)).isoformat(),
                    "status": "ok",
                    "prediction": "yes" if i == 4 else str(i),
                    "label": i,
                }
            )
            + "\n"
            for i in range(6)
        )
    )
    run = cli("evaluate", "--spec", write_spec(REGRESSION), "--data", path, "--at", AT)
    _one_line_error(run, "row 5", "column 'prediction'", "'yes' is not a number", "SLO 'mae'")


def test_outcome_counts_that_are_not_numbers_are_located(cli, write_spec, write_records, tmp_path):
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text(f"ts,total,ok\n{BASE.isoformat()},10,9\n{BASE.isoformat()},ten,9\n")
    run = cli(
        "evaluate",
        "--spec",
        write_spec(SPEC),
        "--data",
        write_records(_rows()),
        "--outcomes",
        outcomes,
        "--at",
        AT,
    )
    _one_line_error(run, f"{outcomes}, row 2, column 'total'", "'ten' is not a number")


def test_numbers_written_as_text_are_read_as_numbers(cli, write_spec, tmp_path: Path):
    """JSON that quotes its numbers: latency, predictions, labels and outcome counts are read
    as the numbers they spell (the MAE is scikit-learn's)."""
    from sklearn.metrics import mean_absolute_error

    rng = np.random.default_rng(3)
    truth = np.round(rng.normal(10, 2, 30), 3)
    guess = np.round(truth + rng.normal(0, 0.5, 30), 3)
    path = tmp_path / "log.ndjson"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"p{i}",
                    "ts": (BASE + timedelta(minutes=i)).isoformat(),
                    "status": "ok",
                    "latency_ms": f"{100 + i}",
                    "prediction": f"{guess[i]}",
                    "label": f"{truth[i]:e}",
                }
            )
            + "\n"
            for i in range(30)
        )
    )
    outcomes = tmp_path / "outcomes.ndjson"
    outcomes.write_text(json.dumps({"ts": BASE.isoformat(), "total": "70", "ok": "60"}) + "\n")
    spec = write_spec(
        REGRESSION
        + """
      - name: latency
        dimension: latency
        sli: {latency_threshold: 110ms}
        objective: {target: 0.9}
    """
    )
    run = cli(
        "evaluate", "--spec", spec, "--data", path, "--outcomes", outcomes, "--at", AT, "-f", "json"
    )
    assert run.exit_code == 0, run.stderr
    slos = {s["name"]: s["sli"] for s in run.json()["slos"]}
    assert slos["mae"]["value"] == pytest.approx(mean_absolute_error(truth, guess), rel=1e-9)
    assert (slos["uptime"]["good"], slos["uptime"]["valid"]) == (90, 100)
    assert (slos["latency"]["good"], slos["latency"]["valid"]) == (11, 30)
