"""A refused batch lists every bad row of every check (the first 100 in row order, and the
total), and never a good one; numeric fields refuse text that is not a number."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

NOW = datetime(2026, 11, 21, tzinfo=UTC)
WHEN = "2026-11-20T10:00:00Z"
SPEC = """
    service: batches
    slos:
      - {name: uptime, dimension: availability, objective: {target: 0.9}}
      - name: latency
        dimension: latency
        sli: {latency_threshold: 200ms}
        objective: {target: 0.9}
"""
REGRESSION = """
    service: batches
    slos:
      - name: mae
        dimension: accuracy
        sli: {metric: mae}
        objective: {target: 1.0}
"""
MEDIA = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}


def _body(rows: list[dict], fmt: str) -> bytes:
    """``rows`` in ``fmt``; Parquet, Arrow and CSV get one type per column, so a column with
    one word among numbers is text there, as a CSV reader makes it."""
    if fmt == "json":
        return json.dumps(rows).encode()
    if fmt == "ndjson":
        return "".join(json.dumps(r) + "\n" for r in rows).encode()
    names = list(dict.fromkeys(k for r in rows for k in r))
    columns = {}
    for name in names:
        values = [r.get(name) for r in rows]
        if any(isinstance(v, str) for v in values):
            values = [None if v is None else str(v) for v in values]
        columns[name] = pa.array(values)
    table = pa.table(columns)
    out = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(table, out)
    elif fmt == "parquet":
        pq.write_table(table, out)
    else:
        with ipc.new_stream(out, table.schema) as writer:
            writer.write_table(table)
    return out.getvalue()


def _mixed_rows() -> tuple[list[dict], set[tuple[int, str]]]:
    """Twelve records, seven of them bad in one field each; the (row, field) of each."""
    rows = [
        {"id": f"p{i}", "ts": WHEN, "status": "ok", "latency_ms": 10.0 + i, "score": 0.5}
        for i in range(12)
    ]
    rows[2]["ts"] = "yesterday"
    rows[4]["status"] = "maybe"
    rows[6]["latency_ms"] = "fast"
    rows[7]["latency_ms"] = -3.0
    rows[9]["score"] = 1.5
    rows[10]["id"] = ""
    rows[11]["ts"] = "2026-11-22T10:00:00Z"
    bad = {(3, "ts"), (5, "status"), (7, "latency_ms"), (8, "latency_ms")}
    bad |= {(10, "score"), (11, "id"), (12, "ts")}
    return rows, bad


@pytest.mark.parametrize("fmt", list(MEDIA))
def test_every_bad_row_and_no_good_one(live_server, fmt):
    live = live_server(SPEC, now=NOW)
    rows, bad = _mixed_rows()
    with live.client() as http:
        response = http.post(
            "/api/v1/predictions", content=_body(rows, fmt), headers={"Content-Type": MEDIA[fmt]}
        )
    assert response.status_code == 422, response.text
    document = response.json()
    found = [(e["row"], e["field"]) for e in document["errors"]]
    assert set(found) == bad
    assert [row for row, _ in found] == sorted(row for row, _ in bad)
    assert document["total"] == len(bad)
    messages = {(e["row"], e["field"]): e["message"] for e in document["errors"]}
    assert messages[(3, "ts")].startswith("'yesterday' is not an ISO-8601 time")
    assert messages[(5, "status")].startswith("'maybe' is not a status")
    assert messages[(7, "latency_ms")].startswith("'fast' is not a number")
    assert live.service.store.counts()["predictions"] == 0


@pytest.mark.parametrize("fmt", list(MEDIA))
def test_a_bad_time_names_only_its_own_row(live_server, fmt):
    """Before, the first unreadable ts also reported row 1 as empty."""
    live = live_server(SPEC, now=NOW)
    rows = [{"id": f"p{i}", "ts": WHEN, "status": "ok"} for i in range(5)]
    rows[1]["ts"] = "2026-13-45T99:00:00Z"
    rows[3]["ts"] = "soon"
    with live.client() as http:
        response = http.post(
            "/api/v1/predictions", content=_body(rows, fmt), headers={"Content-Type": MEDIA[fmt]}
        )
    assert response.status_code == 422
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(2, "ts"), (4, "ts")]
    assert response.json()["total"] == 2


def test_the_first_hundred_in_row_order_and_the_total(live_server):
    live = live_server(SPEC, now=NOW)
    rows = [{"id": f"p{i}", "ts": WHEN, "status": "ok", "latency_ms": 5.0} for i in range(400)]
    for i in range(0, 400, 2):
        rows[i]["latency_ms"] = -1.0
    for i in range(1, 400, 3):
        rows[i]["status"] = "meh"
    with live.client() as http:
        response = http.post("/api/v1/predictions", json=rows)
    document = response.json()
    assert response.status_code == 422
    checked = {"status": 0, "latency_ms": 1}
    expected = sorted(
        [(i + 1, "latency_ms") for i in range(0, 400, 2)]
        + [(i + 1, "status") for i in range(1, 400, 3)],
        key=lambda e: (e[0], checked[e[1]]),
    )
    assert document["total"] == len(expected) == 333
    assert [(e["row"], e["field"]) for e in document["errors"]] == expected[:100]


def test_outcomes_and_labels_list_every_bad_row(live_server):
    live = live_server(SPEC, now=NOW)
    outcomes = [{"ts": WHEN, "total": 10, "ok": 9} for _ in range(6)]
    outcomes[1]["total"] = "ten"
    outcomes[2]["ok"] = 11
    outcomes[3]["ok"] = 2.5
    outcomes[5]["total"] = None
    labels = [{"id": f"p{i}", "ts": WHEN, "label": 1} for i in range(4)]
    labels[0]["label"] = None
    labels[2]["ts"] = "later"
    with live.client() as http:
        counted = http.post("/api/v1/outcomes", json=outcomes).json()
        labelled = http.post("/api/v1/labels", json=labels).json()
    assert [(e["row"], e["field"]) for e in counted["errors"]] == [
        (2, "total"),
        (3, "ok"),
        (4, "ok"),
        (6, "total"),
    ]
    assert counted["errors"][0]["message"].startswith("'ten' is not a number")
    assert [(e["row"], e["field"]) for e in labelled["errors"]] == [(1, "label"), (3, "ts")]


def test_values_that_only_look_like_numbers(live_server):
    """With a regression SLO, a prediction or label must be a number (text that reads as one
    is one); without, a class label is any value."""
    live = live_server(REGRESSION, now=NOW)
    rng = np.random.default_rng(4)
    truth = np.round(rng.normal(5, 1, 20), 4)
    guess = np.round(truth + rng.normal(0, 0.3, 20), 4)
    rows = [
        {"id": f"p{i}", "ts": WHEN, "prediction": str(guess[i]), "label": float(truth[i])}
        for i in range(20)
    ]
    bad = [dict(r, id=f"b{i}") for i, r in enumerate(rows[:3])]
    bad[1]["prediction"] = "yes"
    bad[2]["label"] = "n/a"
    with live.client() as http:
        refused = http.post("/api/v1/predictions", json=bad)
        refused_label = http.post("/api/v1/labels", json=[{"id": "p1", "ts": WHEN, "label": "big"}])
        accepted = http.post("/api/v1/predictions", json=rows)
        mae = http.get("/api/v1/slos").json()["slos"][0]["sli"]
    assert refused.status_code == 422
    assert [(e["row"], e["field"]) for e in refused.json()["errors"]] == [
        (2, "prediction"),
        (3, "label"),
    ]
    assert refused.json()["errors"][0]["message"] == (
        "'yes' is not a number; SLO 'mae' needs numbers (quality compares predictions with labels)"
    )
    assert refused_label.status_code == 422
    assert refused_label.json()["errors"][0]["row"] == 1
    assert accepted.status_code == 200, accepted.text
    assert mae["value"] == pytest.approx(float(np.mean(np.abs(guess - truth))), rel=1e-9)
    classes = live_server(
        """
        service: classes
        slos:
          - name: acc
            dimension: accuracy
            sli: {metric: accuracy, positive_label: "yes"}
            objective: {target: 0.5}
        """,
        now=NOW,
    )
    with classes.client() as http:
        words = [{"id": "w1", "ts": WHEN, "prediction": "yes", "label": "no"}]
        assert http.post("/api/v1/predictions", json=words).status_code == 200


def test_ingest_says_how_many_more(live_server, cli, tmp_path: Path):
    live = live_server(SPEC, now=NOW)
    path = tmp_path / "log.csv"
    lines = ["id,ts,status,latency_ms"]
    for i in range(150):
        lines.append(f"p{i},{WHEN},{'meh' if i >= 40 else 'ok'},12")
    path.write_text("\n".join(lines) + "\n")
    run = cli("ingest", path, "--url", live.url, "--token", live.admin, "--batch-size", "100")
    assert run.exit_code == 2
    line = run.stderr.strip()
    assert "records 1-100 were rejected (422)" in line
    assert "row 41, field 'status': 'meh' is not a status" in line
    assert "… and 57 more" in line
    assert live.service.store.counts()["predictions"] == 0


def test_times_beyond_any_calendar_are_refused_not_a_crash(live_server):
    live = live_server(SPEC, now=NOW)
    table = pa.table({"id": ["a", "b"], "ts": pa.array([10**16, 1_795_000_000], pa.timestamp("s"))})
    out = io.BytesIO()
    with ipc.new_stream(out, table.schema) as writer:
        writer.write_table(table)
    with live.client() as http:
        response = http.post(
            "/api/v1/predictions", content=out.getvalue(), headers={"Content-Type": MEDIA["arrow"]}
        )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "row": None,
            "field": "ts",
            "message": "holds times beyond the year 294000; send real times",
        }
    ]
