"""Classification on any label type, checked against scikit-learn (issue #13).

``metric: accuracy`` is the share of exact matches on text, integer and boolean labels (it used
to report 1.0 on "fraud"/"ok" because the positive class defaulted to 1). Binary metrics and
fairness without ``positive_label`` take 1 as positive only when every class is 0/1, and
otherwise fail with the classes seen; with ``positive_label`` and more than two classes they
are one-vs-rest. Macro averages count a class whose value is undefined as 0, as
``precision_recall_fscore_support(zero_division=0)`` does. Random label alphabets include
classes seen only among predictions or only among labels.
"""

from __future__ import annotations

import textwrap
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)

from conftest import close, evaluate_table
from mlslo.client import arrow_bytes
from mlslo.errors import DataError

AT = datetime(2026, 11, 21, tzinfo=UTC)
AT_TEXT = "2026-11-21T00:00:00Z"
STREAM = {"Content-Type": "application/vnd.apache.arrow.stream"}
BINARY_METRICS = ("precision", "recall", "f1", "specificity", "balanced_accuracy")
ALPHABETS = {
    "strings": ["cat", "dog", "emu", "fox", "gnu"],
    "integers": [0, 1, 2, 3, 4],
    "booleans": [False, True],
}


def stamps(n: int) -> list[datetime]:
    return [AT - timedelta(minutes=1 + (7 * i) % (28 * 24 * 60)) for i in range(n)]


def spec_of(slos: list[tuple[str, str]]) -> str:
    """A spec with one accuracy SLO per (name, sli) pair."""
    body = "".join(
        f"""
          - name: {name}
            dimension: accuracy
            sli: {sli}
            objective: {{target: 0.5}}"""
        for name, sli in slos
    )
    return "service: labels\nslos:" + textwrap.dedent(body)


def yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f'"{value}"' if isinstance(value, str) else str(value)


Row = tuple[Any, Any, bool]  # label, prediction, labelled?


@st.composite
def labelled_rows(draw: st.DrawFn, alphabet: list[Any]) -> list[Row]:
    """Rows whose predictions and labels come from two overlapping subsets of ``alphabet``,
    so that some classes are seen only on one side; about one row in five is unlabelled."""
    predicted = draw(st.lists(st.sampled_from(alphabet), min_size=1, unique=True))
    labelled = draw(st.lists(st.sampled_from(alphabet), min_size=1, unique=True))
    row = st.tuples(
        st.sampled_from(labelled), st.sampled_from(predicted), st.integers(0, 4).map(bool)
    )
    return draw(st.lists(row, min_size=1, max_size=120))


def table_of(rows: list[Row]) -> pa.Table:
    predictions = pa.array([prediction for _, prediction, _ in rows])
    labels = pa.array([label if known else None for label, _, known in rows], predictions.type)
    return pa.table(
        {
            "id": [f"p{i}" for i in range(len(rows))],
            "ts": stamps(len(rows)),
            "label": labels,
            "prediction": predictions,
        }
    )


def known(rows: list[Row]) -> tuple[list[Any], list[Any]]:
    pairs = [(label, prediction) for label, prediction, ok in rows if ok]
    return [label for label, _ in pairs], [prediction for _, prediction in pairs]


# --- accuracy: exact matches ----------------------------------------------------------------


@pytest.mark.parametrize("alphabet", list(ALPHABETS.values()), ids=list(ALPHABETS))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_accuracy_is_the_share_of_exact_matches(alphabet: list[Any], data: Any) -> None:
    rows = data.draw(labelled_rows(alphabet))
    spec = spec_of([("accuracy", "{metric: accuracy}")])
    slo = evaluate_table(spec, table_of(rows), AT)["accuracy"]
    y_true, y_pred = known(rows)
    if not y_true:
        assert slo["sli"]["value"] is None
        return
    assert slo["sli"]["value"] == close(float(accuracy_score(y_true, y_pred)))
    assert slo["budgeting"] == "occurrences"
    assert slo["sli"]["good"] == sum(t == p for t, p in zip(y_true, y_pred, strict=True))
    assert slo["sli"]["valid"] == slo["sli"]["n"] == len(y_true)


def test_accuracy_of_fraud_and_ok_is_not_one(cli: Any, write_spec: Any, write_records) -> None:
    """The issue: text labels, no positive_label; 3 of 5 predictions match."""
    labels = ["fraud", "ok", "ok", "fraud", "ok"]
    predictions = ["ok", "ok", "fraud", "fraud", "ok"]
    spec = write_spec(spec_of([("accuracy", "{metric: accuracy}")]))
    data = write_records({"ts": stamps(5), "label": labels, "prediction": predictions}, fmt="csv")
    run = cli("evaluate", "--spec", spec, "--data", data, "--at", AT_TEXT, "--format", "json")
    assert run.exit_code == 0, run.stderr
    value = run.json()["slos"][0]["sli"]["value"]
    assert value == close(float(accuracy_score(labels, predictions))) == 0.6


def test_labels_of_another_type_are_compared_with_the_predictions() -> None:
    """Text labels '1'/'0' in the prediction table match integer predictions (they are read
    as the predictions' type, as labels from a separate table are)."""
    table = pa.table({"ts": stamps(4), "prediction": [1, 0, 1, 0], "label": ["1", "0", "0", "0"]})
    spec = spec_of([("accuracy", "{metric: accuracy}"), ("recall", "{metric: recall}")])
    result = evaluate_table(spec, table, AT)
    assert result["accuracy"]["sli"]["value"] == 0.75
    assert result["recall"]["sli"]["value"] == 1.0


def test_a_label_that_cannot_take_the_predictions_type_is_named() -> None:
    table = pa.table({"ts": stamps(3), "prediction": [1, 0, 1], "label": ["1", "fraud", "0"]})
    with pytest.raises(DataError) as caught:
        evaluate_table(spec_of([("accuracy", "{metric: accuracy}")]), table, AT)
    assert caught.value.row == 2 and caught.value.column == "label"
    assert "'fraud' cannot be compared with the predictions" in str(caught.value)


# --- multiclass averages --------------------------------------------------------------------

AVERAGED = [(m, a) for a in ("macro", "micro") for m in ("precision", "recall", "f1")]


@pytest.mark.parametrize("alphabet", list(ALPHABETS.values()), ids=list(ALPHABETS))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_averages_equal_precision_recall_fscore_support(alphabet: list[Any], data: Any) -> None:
    rows = data.draw(labelled_rows(alphabet))
    slos = [(f"{m}-{a}", f"{{metric: {m}, average: {a}}}") for m, a in AVERAGED]
    slos.append(("balanced-macro", "{metric: balanced_accuracy, average: macro}"))
    result = evaluate_table(spec_of(slos), table_of(rows), AT)
    y_true, y_pred = known(rows)
    if not y_true:
        assert all(slo["sli"]["value"] is None for slo in result.values())
        return
    for average in ("macro", "micro"):
        scores = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        for metric, expected in zip(("precision", "recall", "f1"), scores[:3], strict=False):
            sli = result[f"{metric}-{average}"]["sli"]
            assert sli["value"] == close(float(expected)), (metric, average)
            assert sli["ci"][0] - 1e-12 <= sli["value"] <= sli["ci"][1] + 1e-12
    # a class seen only among labels has no precision; one seen only among predictions no
    # recall: each counts as 0, and the SLI says how many there were
    only_labels = len(set(y_true) - set(y_pred))
    only_predictions = len(set(y_pred) - set(y_true))
    for metric, undefined in (("precision", only_labels), ("recall", only_predictions)):
        sli = result[f"{metric}-macro"]["sli"]
        assert sli.get("classes_without_a_defined_value", 0) == undefined, metric
    assert "classes_without_a_defined_value" not in result["f1-macro"]["sli"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes seen only among predictions warn
        balanced = balanced_accuracy_score(y_true, y_pred)
    assert result["balanced-macro"]["sli"]["value"] == close(float(balanced))


# --- binary metrics and the positive class --------------------------------------------------


def binary_oracle(y_true: list[Any], y_pred: list[Any], positive: Any) -> dict[str, Any]:
    """scikit-learn on the one-vs-rest view: ``positive`` against every other class."""
    truth = [y == positive for y in y_true]
    guess = [y == positive for y in y_pred]
    tn, fp, fn, tp = confusion_matrix(truth, guess, labels=[False, True]).ravel()
    nan = {"zero_division": np.nan}

    def defined(value: float) -> float | None:
        return None if np.isnan(value) else float(value)

    return {
        "precision": defined(precision_score(truth, guess, **nan)),
        "recall": defined(recall_score(truth, guess, **nan)),
        "f1": defined(f1_score(truth, guess, **nan)),
        "specificity": float(tn / (tn + fp)) if tn + fp else None,
        "balanced_accuracy": (
            (tp / (tp + fn) + tn / (tn + fp)) / 2 if tp + fn and tn + fp else None
        ),
    }


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_positive_label_on_text_is_one_vs_rest(data: Any) -> None:
    alphabet = ALPHABETS["strings"]
    rows = data.draw(labelled_rows(alphabet))
    positive = data.draw(st.sampled_from(alphabet))
    slos = [(m, f"{{metric: {m}, positive_label: {positive}}}") for m in BINARY_METRICS]
    result = evaluate_table(spec_of(slos), table_of(rows), AT)
    y_true, y_pred = known(rows)
    expected = binary_oracle(y_true, y_pred, positive) if y_true else {}
    for metric in BINARY_METRICS:
        value = result[metric]["sli"]["value"]
        if expected.get(metric) is None:
            assert value is None, metric
        else:
            assert value == close(expected[metric]), metric
    if len(set(y_true) | set(y_pred)) > 2:  # scikit-learn itself refuses this case
        with pytest.raises(ValueError):
            precision_score(y_true, y_pred, pos_label=positive)


ZERO_ONE = {"integers": (0, 1), "text": ("0", "1"), "booleans": (False, True)}


@pytest.mark.parametrize("pair", list(ZERO_ONE.values()), ids=list(ZERO_ONE))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_without_positive_label_zero_one_classes_take_1_as_positive(
    pair: tuple[Any, Any], data: Any
) -> None:
    rows = data.draw(labelled_rows(list(pair)))
    slos = [(m, f"{{metric: {m}}}") for m in BINARY_METRICS]
    result = evaluate_table(spec_of(slos), table_of(rows), AT)
    y_true, y_pred = known(rows)
    expected = binary_oracle(y_true, y_pred, pair[1]) if y_true else {}
    if y_true and len(set(y_true) | set(y_pred)) == 2:
        assert expected["precision"] == nan_or(
            precision_score(y_true, y_pred, pos_label=pair[1], zero_division=np.nan)
        )
    for metric in BINARY_METRICS:
        value = result[metric]["sli"]["value"]
        if expected.get(metric) is None:
            assert value is None, metric
        else:
            assert value == close(expected[metric]), metric


def nan_or(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


@st.composite
def not_zero_one_rows(draw: st.DrawFn) -> list[Row]:
    """Rows with at least one class outside 0/1 in the window."""
    alphabet = draw(st.sampled_from([ALPHABETS["strings"], ALPHABETS["integers"]]))
    rows = draw(labelled_rows(alphabet))
    seen = {p for _, p, _ in rows} | {y for y, _, ok in rows if ok}
    if seen <= {0, 1}:
        rows = [*rows, (alphabet[-1], alphabet[-1], True)]
    return rows


@settings(max_examples=15, deadline=None)
@given(rows=not_zero_one_rows(), metric=st.sampled_from(BINARY_METRICS))
def test_without_positive_label_other_classes_are_an_error(rows: list[Row], metric: str) -> None:
    with pytest.raises(DataError) as caught:
        evaluate_table(spec_of([("quality", f"{{metric: {metric}}}")]), table_of(rows), AT)
    error = caught.value
    predicted = {p for _, p, _ in rows}
    column = "prediction" if not predicted <= {0, 1} else "label"
    assert error.column == column
    assert error.row is not None
    seen = sorted(predicted | {y for y, _, ok in rows if ok}, key=str)
    shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in seen)
    assert f"(seen: {shown})" in error.detail
    assert "set positive_label: <one of them> or average: macro" in error.detail


def test_the_error_lists_at_most_ten_classes() -> None:
    classes = [f"c{i:02}" for i in range(14)]
    table = pa.table({"ts": stamps(14), "prediction": classes, "label": classes})
    with pytest.raises(DataError) as caught:
        evaluate_table(spec_of([("f1", "{metric: f1}")]), table, AT)
    assert "(seen: " + ", ".join(repr(c) for c in classes[:10]) + ", ...)" in str(caught.value)


def test_the_error_on_files_is_one_line_naming_the_labels_file(
    cli: Any, write_spec: Any, write_records: Any
) -> None:
    spec = write_spec(spec_of([("recall", "{metric: recall}")]))
    data = write_records({"id": ["a", "b", "c"], "ts": stamps(3), "prediction": [1, 0, 1]})
    labels = write_records(
        {"id": ["a", "b", "c"], "ts": stamps(3), "label": ["1", "0", "7"]}, fmt="csv"
    )
    run = cli("evaluate", "--spec", spec, "--data", data, "--labels", labels, "--at", AT_TEXT)
    assert run.exit_code == 2, run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert f"{labels}, column 'label': '7' is not a 0/1 class" in lines[0]
    assert "(seen: 0, 1, 7)" in lines[0]


def test_fairness_without_positive_label_needs_zero_one_classes() -> None:
    base = {"ts": stamps(4), "group": ["A", "B", "A", "B"]}
    spec = """
        service: labels
        slos:
          - name: parity
            dimension: fairness
            sli: {metric: demographic_parity_difference, attribute: group}
            objective: {target: 0.5}
    """
    text = pa.table({**base, "prediction": ["yes", "no", "no", "no"]})
    with pytest.raises(DataError, match="'yes' is not a 0/1 class") as caught:
        evaluate_table(spec, text, AT)
    assert caught.value.column == "prediction" and caught.value.row == 1
    assert "average: macro" not in str(caught.value)
    chosen = evaluate_table(
        spec.replace("attribute: group", "attribute: group, positive_label: 'yes'"), text, AT
    )
    assert chosen["parity"]["sli"]["value"] == 0.5
    booleans = pa.table({**base, "prediction": [True, False, False, False]})
    assert evaluate_table(spec, booleans, AT)["parity"]["sli"]["value"] == 0.5


# --- the server -----------------------------------------------------------------------------

SERVER_SPEC = """
    service: labels
    slos:
      - name: recall
        dimension: accuracy
        sli: {metric: recall}
        objective: {target: 0.5}
      - name: accuracy
        dimension: accuracy
        sli: {metric: accuracy}
        objective: {target: 0.5}
"""


def test_the_server_refuses_classes_other_than_zero_one_without_positive_label(live_server):
    live = live_server(SERVER_SPEC, now=AT)
    ts = (AT - timedelta(hours=1)).isoformat()
    with live.client() as http:
        refused = http.post(
            "/api/v1/predictions",
            json=[
                {"id": "a", "ts": ts, "prediction": "1"},
                {"id": "b", "ts": ts, "prediction": "fraud"},
            ],
        )
        assert refused.status_code == 422, refused.text
        (error,) = refused.json()["errors"]
        assert error["row"] == 2 and error["field"] == "prediction"
        assert "'fraud' is not a 0/1 class" in error["message"]
        assert "(seen: '1', 'fraud')" in error["message"]
        predictions = pa.table(
            {"id": ["a", "b", "c"], "ts": [AT - timedelta(hours=1)] * 3, "prediction": [1, 0, 1]}
        )
        accepted = http.post(
            "/api/v1/predictions", content=arrow_bytes(predictions), headers=STREAM
        )
        assert accepted.json()["accepted"] == 3
        labels = [{"id": "a", "ts": ts, "label": "true"}, {"id": "b", "ts": ts, "label": "maybe"}]
        refused = http.post("/api/v1/labels", json=labels)
        assert refused.status_code == 422, refused.text
        (error,) = refused.json()["errors"]
        assert error["row"] == 2 and error["field"] == "label"
        assert "'maybe' is not a 0/1 class" in error["message"]
        assert "(seen: 'maybe', 'true')" in error["message"]
        good = [{"id": "a", "ts": ts, "label": 1}, {"id": "b", "ts": ts, "label": 1}]
        assert http.post("/api/v1/labels", json=good).json()["accepted"] == 2
        slos = {s["name"]: s for s in http.get("/api/v1/slos").json()["slos"]}
    assert slos["recall"]["sli"]["value"] == close(recall_score([1, 1], [1, 0]))
    assert slos["accuracy"]["sli"]["value"] == 0.5


def test_the_server_measures_text_classes_with_accuracy(live_server: Any) -> None:
    """Accuracy needs no positive class: text classes are accepted and matched exactly."""
    text = SERVER_SPEC.replace("{metric: recall}", "{metric: recall, positive_label: fraud}")
    live = live_server(text, now=AT)
    ts = (AT - timedelta(hours=1)).isoformat()
    labels = ["fraud", "ok", "ok", "review"]
    predictions = ["fraud", "fraud", "ok", "ok"]
    records = [
        {"id": f"p{i}", "ts": ts, "prediction": p, "label": y}
        for i, (p, y) in enumerate(zip(predictions, labels, strict=True))
    ]
    with live.client() as http:
        assert http.post("/api/v1/predictions", json=records).json()["accepted"] == 4
        slos = {s["name"]: s for s in http.get("/api/v1/slos").json()["slos"]}
    assert slos["accuracy"]["sli"]["value"] == close(float(accuracy_score(labels, predictions)))
    assert slos["recall"]["sli"]["value"] == close(
        float(recall_score([y == "fraud" for y in labels], [p == "fraud" for p in predictions]))
    )
