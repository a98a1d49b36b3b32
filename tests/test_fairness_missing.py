"""Records whose group attribute is null or empty (issue #13).

One such record in thousands used to form a group of its own with no positives: the TPR gap
became undefined, the fairness SLO ``insufficient_data`` and a blocking gate a mere warning;
one null record moved demographic parity from 0.119 to 0.376. With ``missing: exclude`` (the
default) such a record belongs to no group and is counted in ``sli.unattributed``; with
``missing: group`` it joins the group ``(missing)``; with ``missing: error`` files fail with a
located line and the server refuses the batch. Checked against Fairlearn, through the CLI and
through a real server, and the two paths against each other.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import close, evaluate_table
from mlslo.api import evaluate_files
from mlslo.client import arrow_bytes
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources
from mlslo.spec import parse_spec

AT = datetime(2026, 11, 21, tzinfo=UTC)
AT_TEXT = "2026-11-21T00:00:00Z"
STREAM = {"Content-Type": "application/vnd.apache.arrow.stream"}
METRICS = (
    "true_positive_rate_difference",
    "false_positive_rate_difference",
    "equalized_odds_difference",
    "demographic_parity_difference",
    "disparate_impact_ratio",
)


def stamps(n: int) -> list[datetime]:
    """``n`` timestamps inside the 30-day window that ends at ``AT``."""
    return [AT - timedelta(minutes=1 + (13 * i) % (28 * 24 * 60)) for i in range(n)]


def spec_text(missing: str | None, metrics: tuple[str, ...] = METRICS, attribute: str = "group"):
    option = f", missing: {missing}" if missing else ""
    slos = "".join(
        f"""
          - name: {metric}
            dimension: fairness
            sli: {{metric: {metric}, attribute: {attribute}{option}}}
            objective: {{target: {0.8 if metric == "disparate_impact_ratio" else 0.05}}}"""
        for metric in metrics
    )
    return "service: fair\nslos:" + textwrap.dedent(slos)


# --- the issue's scenarios ------------------------------------------------------------------


def issue_log(n: int = 4000) -> dict[str, list[Any]]:
    """Two groups of ``n / 2`` with positives and negatives; the model catches 90 % of A's
    positives and 82 % of B's (a TPR gap of 0.08 against an objective of 0.05) and selects
    the groups at different rates."""
    rng = np.random.default_rng(13)
    group = np.where(np.arange(n) % 2 == 0, "A", "B")
    label = (rng.random(n) < 0.4).astype(np.int64)
    caught = np.where(group == "A", 0.90, 0.82)
    flagged = np.where(group == "A", 0.10, 0.20)
    hit = rng.random(n)
    prediction = np.where(label == 1, hit < caught, hit < flagged).astype(np.int64)
    return {
        "id": [f"p{i}" for i in range(n)],
        "ts": stamps(n),
        "group": group.tolist(),
        "label": label.tolist(),
        "prediction": prediction.tolist(),
    }


def with_one_record(log: dict[str, list[Any]], group: Any, label: int, prediction: int):
    out = {k: list(v) for k, v in log.items()}
    for column, value in (
        ("id", "odd"),
        ("ts", AT - timedelta(hours=3)),
        ("group", group),
        ("label", label),
        ("prediction", prediction),
    ):
        out[column].append(value)
    return out


GATE_SPEC = """
    service: fair
    slos:
      - name: fairness
        dimension: fairness
        sli: {metric: true_positive_rate_difference, attribute: group}
        objective: {target: 0.05}
      - name: parity
        dimension: fairness
        sli: {metric: demographic_parity_difference, attribute: group}
        objective: {target: 0.5}
      - name: accuracy
        dimension: accuracy
        sli: {metric: accuracy}
        objective: {target: 0.5}
    policy:
      hard_stop: [fairness]
"""


@pytest.mark.parametrize("blank", [None, ""], ids=["null", "empty"])
def test_one_blank_record_changes_no_gap_and_the_gate_still_blocks(
    blank: Any, cli: Any, write_spec: Any, write_records: Any
) -> None:
    log = issue_log()
    spec = write_spec(GATE_SPEC)
    clean = write_records(log)
    # a negative the model flagged: alone in its group, it has no positive label and a
    # selection rate of 1
    odd = write_records(with_one_record(log, blank, label=0, prediction=1))
    base = ("--spec", spec, "--at", AT_TEXT)
    before = cli("evaluate", *base, "--data", clean, "--format", "json")
    after = cli("evaluate", *base, "--data", odd, "--format", "json")
    assert before.exit_code == after.exit_code == 0, (before.stderr, after.stderr)
    then = {s["name"]: s for s in before.json()["slos"]}
    now = {s["name"]: s for s in after.json()["slos"]}
    for name in ("fairness", "parity"):
        assert now[name]["sli"]["value"] == then[name]["sli"]["value"], name
        assert now[name]["sli"]["groups"] == then[name]["sli"]["groups"], name
        assert then[name]["sli"]["unattributed"] == 0
        assert now[name]["sli"]["unattributed"] == 1
    assert now["fairness"]["sli"]["value"] > 0.05
    assert now["fairness"]["budget"]["status"] == "exhausted"
    assert now["fairness"]["sli"]["n"] == then["fairness"]["sli"]["n"]
    # the record still counts for every other SLO
    assert now["accuracy"]["sli"]["n"] == then["accuracy"]["sli"]["n"] + 1

    gate = cli("gate", *base, "--data", odd, "--format", "json")
    assert gate.exit_code == 1, gate.stdout
    decision = gate.json()
    assert decision["decision"] == "block"
    assert {"slo": "fairness", "rule": "hard_stop", "effect": "block"}.items() <= (
        decision["reasons"][0].items()
    )


def test_one_null_record_leaves_demographic_parity_as_fairlearn_has_it(write_records: Any):
    """The issue's parity case, against Fairlearn on the rows that have a group."""
    log = issue_log()
    odd = with_one_record(log, None, label=0, prediction=1)
    spec = spec_text(None, ("demographic_parity_difference",))
    table = pa.table(odd)
    slo = evaluate_table(spec, table, AT)["demographic_parity_difference"]
    expected = demographic_parity_difference(
        np.array(log["label"]), np.array(log["prediction"]), sensitive_features=log["group"]
    )
    assert slo["sli"]["value"] == close(float(expected))
    assert slo["sli"]["unattributed"] == 1
    grouped = evaluate_table(spec_text("group", ("demographic_parity_difference",)), table, AT)[
        "demographic_parity_difference"
    ]
    assert grouped["sli"]["value"] == close(1.0 - min(_selection(log, "A"), _selection(log, "B")))
    assert grouped["sli"]["between"][0] == {"group": "(missing)"}


def _selection(log: dict[str, list[Any]], group: str) -> float:
    picked = [p for g, p in zip(log["group"], log["prediction"], strict=True) if g == group]
    return sum(picked) / len(picked)


# --- Fairlearn on generated data ------------------------------------------------------------

BLANKS = [None, ""]


def blank_value(value: Any) -> bool:
    """Null (pandas shows it as NaN) or empty."""
    return value is None or value == "" or (isinstance(value, float) and np.isnan(value))


def text(values: list[Any]) -> list[str | None]:
    return [None if blank_value(v) and v != "" else v for v in values]


def cells(keys: list[tuple[Any, ...]], *, forced: bool) -> st.SearchStrategy[dict]:
    """Rows per group key; ``forced`` groups get a positive and a negative label, so every
    rate is defined; blank-keyed groups may have any rows at all (even no positives)."""
    pair = st.tuples(st.integers(0, 1), st.integers(0, 1))

    def rows_for(key: tuple[Any, ...]) -> st.SearchStrategy[list[tuple[int, int]]]:
        blank = any(v in BLANKS for v in key)
        rows = st.lists(pair, min_size=2 if forced or not blank else 1, max_size=25)
        if blank and not forced:
            return rows
        return rows.map(lambda r: [(1, r[0][1]), (0, r[1][1]), *r[2:]])

    return st.fixed_dictionaries({key: rows_for(key) for key in keys})


def frame_of(groups: dict[tuple[Any, ...], list[tuple[int, int]]], columns: list[str]) -> Any:
    records = [
        {**dict(zip(columns, key, strict=True)), "label": label, "prediction": prediction}
        for key, rows in groups.items()
        for label, prediction in rows
    ]
    return pd.DataFrame.from_records(records)


def fairlearn_values(frame: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    y_true, y_pred = frame["label"].to_numpy(), frame["prediction"].to_numpy()
    features = frame[columns] if len(columns) > 1 else frame[columns[0]]

    def gap(function: Any) -> float:
        return float(
            MetricFrame(
                metrics=function, y_true=y_true, y_pred=y_pred, sensitive_features=features
            ).difference()
        )

    return {
        "true_positive_rate_difference": gap(true_positive_rate),
        "false_positive_rate_difference": gap(false_positive_rate),
        "equalized_odds_difference": float(
            equalized_odds_difference(y_true, y_pred, sensitive_features=features)
        ),
        "demographic_parity_difference": float(
            demographic_parity_difference(y_true, y_pred, sensitive_features=features)
        ),
        "disparate_impact_ratio": float(
            demographic_parity_ratio(y_true, y_pred, sensitive_features=features)
        ),
    }


def assert_equals_fairlearn(value: float | None, expected: float, metric: str) -> None:
    """Equal to Fairlearn's value; where Fairlearn gives NaN (no group selected, so no
    ratio), mlslo has no value, never 0."""
    if np.isnan(expected):
        assert value is None, metric
    else:
        assert value == close(expected), metric


def evaluate_frame(spec: str, frame: pd.DataFrame, columns: list[str]) -> dict[str, Any]:
    table = pa.table(
        {
            **{c: pa.array(text(frame[c].tolist()), pa.string()) for c in columns},
            "label": pa.array(frame["label"].tolist(), pa.int64()),
            "prediction": pa.array(frame["prediction"].tolist(), pa.int64()),
            "ts": pa.array(stamps(len(frame)), pa.timestamp("us", "UTC")),
        }
    )
    return evaluate_table(spec, table, AT)


def is_blank(frame: pd.DataFrame, columns: list[str]) -> Any:
    return frame[columns].apply(lambda row: any(blank_value(v) for v in row), axis=1)


SINGLE = [("A",), ("B",), ("C",), (None,), ("",)]
CROSSED = [("A", "x"), ("A", "y"), ("B", "x"), ("B", "y"), (None, "x"), ("B", None), ("", "y")]
SHAPES = [(["group"], SINGLE), (["group", "region"], CROSSED)]


@pytest.mark.parametrize(("columns", "keys"), SHAPES, ids=["one attribute", "intersectional"])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_excluded_records_equal_fairlearn_without_them(
    columns: list[str], keys: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    frame = frame_of(data.draw(cells(keys, forced=False)), columns)
    blank = is_blank(frame, columns)
    attribute = columns[0] if len(columns) == 1 else f"[{', '.join(columns)}]"
    result = evaluate_frame(spec_text(None, attribute=attribute), frame, columns)
    expected = fairlearn_values(frame[~blank].reset_index(drop=True), columns)
    for metric in METRICS:
        sli = result[metric]["sli"]
        assert_equals_fairlearn(sli["value"], expected[metric], metric)
        assert sli["unattributed"] == int(blank.sum())
        assert all(all(v not in BLANKS for v in g["group"].values()) for g in sli["groups"])
        if metric != "demographic_parity_difference" and metric != "disparate_impact_ratio":
            assert sli["n"] == int((~blank).sum())


@pytest.mark.parametrize(("columns", "keys"), SHAPES, ids=["one attribute", "intersectional"])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_grouped_records_equal_fairlearn_with_a_missing_group(
    columns: list[str], keys: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    frame = frame_of(data.draw(cells(keys, forced=True)), columns)
    attribute = columns[0] if len(columns) == 1 else f"[{', '.join(columns)}]"
    result = evaluate_frame(spec_text("group", attribute=attribute), frame, columns)
    mapped = frame.copy()
    for column in columns:
        mapped[column] = ["(missing)" if blank_value(v) else v for v in mapped[column]]
    expected = fairlearn_values(mapped, columns)
    for metric in METRICS:
        sli = result[metric]["sli"]
        assert_equals_fairlearn(sli["value"], expected[metric], metric)
        assert sli["unattributed"] == 0
        listed = {tuple(g["group"][c] for c in columns) for g in sli["groups"]}
        assert listed == {tuple(row) for row in mapped[columns].itertuples(index=False)}


# --- missing: error -------------------------------------------------------------------------

ERROR_SPEC = """
    service: fair
    slos:
      - name: fairness
        dimension: fairness
        sli: {metric: demographic_parity_difference, attribute: group, missing: error}
        objective: {target: 0.2}
        filter: {model: fraud}
"""


def error_rows(blank_at: int, model: str = "fraud") -> dict[str, list[Any]]:
    n = 8
    groups: list[Any] = ["A", "B"] * (n // 2)
    groups[blank_at] = None
    return {
        "id": [f"p{i}" for i in range(n)],
        "ts": [AT - timedelta(minutes=10 + i) for i in range(n)],
        "model": ["fraud"] * n if model == "fraud" else ["fraud", model] * (n // 2),
        "group": groups,
        "prediction": [i % 2 for i in range(n)],
    }


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_missing_error_on_files_names_the_row(
    fmt: str, cli: Any, write_spec: Any, write_records: Any
) -> None:
    data = write_records(error_rows(blank_at=4), fmt=fmt)
    run = cli("evaluate", "--spec", write_spec(ERROR_SPEC), "--data", data, "--at", AT_TEXT)
    assert run.exit_code == 2, run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert f"{data}, row 5, column 'group': is empty" in lines[0]
    assert "missing: error" in lines[0] and "missing: exclude or group" in lines[0]


def test_missing_error_reads_only_the_slos_records(cli: Any, write_spec: Any, write_records):
    """A blank group on a record the SLO's filter leaves out is not the SLO's concern."""
    data = write_records(error_rows(blank_at=3, model="other"))
    run = cli(
        "evaluate", "--spec", write_spec(ERROR_SPEC), "--data", data, "--at", AT_TEXT,
        "--format", "json",
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    assert run.json()["slos"][0]["sli"]["unattributed"] == 0


def test_missing_error_on_the_server_is_a_422_naming_rows_and_field(live_server: Any) -> None:
    live = live_server(ERROR_SPEC)
    rows = error_rows(blank_at=2)
    rows["group"][6] = ""
    records = [
        {**{k: v for k, v in zip(rows, values, strict=True) if k != "ts"}, "ts": values[1]}
        for values in zip(*rows.values(), strict=True)
    ]
    body = [{**r, "ts": r["ts"].isoformat()} for r in records]
    with live.client() as http:
        refused = http.post("/api/v1/predictions", json=body)
        assert refused.status_code == 422, refused.text
        (error,) = refused.json()["errors"]
        assert error["row"] == 3 and error["field"] == "group"
        assert "rows 3, 7" in error["message"] and "missing: error" in error["message"]
        fine = [r for i, r in enumerate(body) if i not in (2, 6)]
        assert http.post("/api/v1/predictions", json=fine).json()["accepted"] == 6
        status = http.get("/api/v1/slos").json()["slos"][0]
    assert status["sli"]["unattributed"] == 0
    assert status["sli"]["n"] == 6


# --- files and server agree -----------------------------------------------------------------


@pytest.mark.parametrize("missing", ["exclude", "group"])
def test_files_and_server_agree_on_blank_attributes(
    missing: str, live_server: Any, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    n = 400
    group = rng.choice(np.array(["A", "B", "", None], dtype=object), n, p=[0.45, 0.45, 0.05, 0.05])
    region = rng.choice(np.array(["x", "y", None], dtype=object), n, p=[0.5, 0.45, 0.05])
    table = pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": pa.array(
                [AT - timedelta(minutes=5 + int(m)) for m in rng.integers(0, 3000, n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "prediction": rng.integers(0, 2, n).tolist(),
            "label": rng.integers(0, 2, n).tolist(),
            "group": pa.array(group.tolist(), pa.string()),
            "region": pa.array(region.tolist(), pa.string()),
        }
    )
    text = f"""
        service: fair
        slos:
          - name: tpr
            dimension: fairness
            sli: {{metric: true_positive_rate_difference, attribute: group, missing: {missing}}}
            objective: {{target: 0.2}}
          - name: parity
            dimension: fairness
            sli:
              metric: demographic_parity_difference
              attribute: [group, region]
              missing: {missing}
            objective: {{target: 0.2}}
    """
    live = live_server(text, now=AT)
    with live.client() as http:
        posted = http.post("/api/v1/predictions", content=arrow_bytes(table), headers=STREAM)
        assert posted.json() == {"accepted": n, "duplicates": 0, "folded": 0}, posted.text
        served = http.get("/api/v1/slos", params={"at": AT_TEXT}).json()
    path = tmp_path / "records.parquet"
    pq.write_table(table, path)
    spec = parse_spec(textwrap.dedent(text))
    from_files = evaluation_json(evaluate_files(spec, Sources(str(path), dedupe=True), AT))
    assert served["slos"] == from_files["slos"]
    blank = sum(1 for g in group.tolist() if g in BLANKS)
    tpr = {s["name"]: s for s in served["slos"]}["tpr"]["sli"]
    assert tpr["unattributed"] == (blank if missing == "exclude" else 0)
    if missing == "group":
        assert {"group": "(missing)"} in [g["group"] for g in tpr["groups"]]
