"""Bodies that used to reach a 500 (or take the process down), times outside what the store
keeps, and attributes with more values than the service keeps slices for: each is a located
4xx, and the store is unchanged by it."""

from __future__ import annotations

import io
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import free_port, start_mlslo_serve
from mlslo.client import arrow_bytes

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
STAMP = (NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
SPEC = """
service: hostile
attributes: [region]
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.99}}
  - name: fair
    dimension: fairness
    sli: {metric: demographic_parity_difference, attribute: group, positive_label: 1}
    objective: {target: 0.2}
"""
JSON = "application/json"
NDJSON = "application/x-ndjson"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
ARROW = "application/vnd.apache.arrow.stream"


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _record(**fields: Any) -> dict[str, Any]:
    return {"id": "r1", "ts": STAMP, "status": "ok", **fields}


HOSTILE: list[tuple[str, str, str, bytes, int, str | None, str]] = [
    (
        "deep JSON array",
        "predictions",
        JSON,
        b"[" * 100_000 + b"]" * 100_000,
        400,
        None,
        "nested too deeply",
    ),
    (
        "deep attributes",
        "predictions",
        JSON,
        b'[{"id": "a", "ts": "'
        + STAMP.encode()
        + b'", "attributes": '
        + b'{"a": ' * 5000
        + b"1"
        + b"}" * 5000
        + b"}]",
        400,
        None,
        "nested too deeply",
    ),
    (
        "an object where a value belongs",
        "predictions",
        JSON,
        json.dumps([_record(status={"x": [1, 2]})]).encode(),
        422,
        "status",
        "single value",
    ),
    (
        "total 1e19",
        "outcomes",
        JSON,
        json.dumps([{"ts": STAMP, "total": 1e19, "ok": 1}]).encode(),
        422,
        "total",
        "<= 1e+15",
    ),
    (
        "total 2**64",
        "outcomes",
        JSON,
        json.dumps([{"ts": STAMP, "total": 2**64, "ok": 1}]).encode(),
        422,
        "total",
        "<= 1e+15",
    ),
    (
        "total 2**63 - 1, an int64 past what a float holds exactly",
        "outcomes",
        JSON,
        json.dumps([{"ts": STAMP, "total": 2**63 - 1, "ok": 1}]).encode(),
        422,
        "total",
        "<= 1e+15",
    ),
    (
        "Parquet uint64 ok past 2**63",
        "outcomes",
        PARQUET,
        _parquet(
            pa.table(
                {
                    "ts": [STAMP],
                    "total": pa.array([1], pa.int64()),
                    "ok": pa.array([2**63 + 5], pa.uint64()),
                }
            )
        ),
        422,
        "ok",
        "<= 1e+15",
    ),
    (
        "a CSV header that is not UTF-8",
        "predictions",
        CSV,
        "id\na\n".encode("utf-16"),
        400,
        None,
        "not UTF-8",
    ),
    (
        "total 1.5",
        "outcomes",
        JSON,
        json.dumps([{"ts": STAMP, "total": 1.5, "ok": 1}]).encode(),
        422,
        "total",
        "whole number",
    ),
    (
        "total NaN",
        "outcomes",
        JSON,
        b'[{"ts": "' + STAMP.encode() + b'", "total": NaN, "ok": 1}]',
        422,
        "total",
        "NaN",
    ),
    (
        "a CSV column named twice",
        "predictions",
        CSV,
        f"id,ts,ts,status\na,{STAMP},{STAMP},ok\n".encode(),
        422,
        "ts",
        "more than once",
    ),
    (
        "an NDJSON body whose first line is null",
        "predictions",
        NDJSON,
        b'null\n{"id": "a"}\n',
        400,
        None,
        "must be a JSON object",
    ),
    (
        "NDJSON lines of numbers",
        "predictions",
        NDJSON,
        b"1\n2\n",
        400,
        None,
        "must be a JSON object",
    ),
    (
        "NDJSON whose first values are null",
        "predictions",
        NDJSON,
        (
            json.dumps(_record(latency_ms=None))
            + "\n"
            + json.dumps(_record(id="r2", latency_ms=[1]))
            + "\n"
        ).encode(),
        422,
        "latency_ms",
        "single value",
    ),
    (
        "ts 0001-01-01",
        "predictions",
        JSON,
        json.dumps([_record(ts="0001-01-01T00:00:00Z")]).encode(),
        422,
        "ts",
        "0001-01-01T00:00:00Z is more than 35d ago",
    ),
    (
        "ts 1900",
        "predictions",
        JSON,
        json.dumps([_record(ts="1900-01-01T00:00:00Z")]).encode(),
        422,
        "ts",
        "older than this service keeps",
    ),
    (
        "ts 9999",
        "predictions",
        JSON,
        json.dumps([_record(ts="9999-12-31T00:00:00Z")]).encode(),
        422,
        "ts",
        "in the future",
    ),
    (
        "a label from 2000",
        "labels",
        JSON,
        json.dumps([{"id": "r1", "ts": "2000-01-01T00:00:00Z", "label": 1}]).encode(),
        422,
        "ts",
        "older than this service keeps",
    ),
    (
        "Parquet ts of year 1",
        "predictions",
        PARQUET,
        _parquet(
            pa.table(
                {
                    "id": ["a"],
                    "ts": pa.array([datetime(1, 1, 1)], pa.timestamp("us")),
                    "status": ["ok"],
                }
            )
        ),
        422,
        "ts",
        "older than this service keeps",
    ),
    (
        "Arrow seconds past any calendar",
        "predictions",
        ARROW,
        arrow_bytes(
            pa.table(
                {
                    "id": ["a"],
                    "ts": pa.array([2**62], pa.timestamp("s", tz="UTC")),
                    "status": ["ok"],
                }
            )
        ),
        422,
        "ts",
        "beyond the year",
    ),
    (
        "an Arrow column named twice",
        "predictions",
        ARROW,
        arrow_bytes(
            pa.table(
                [pa.array(["a"]), pa.array([STAMP]), pa.array(["ok"]), pa.array(["ok"])],
                names=["id", "ts", "status", "status"],
            )
        ),
        422,
        "status",
        "more than once",
    ),
    ("Arrow garbage", "predictions", ARROW, b"\xff" * 64, 400, None, "cannot parse"),
]


@pytest.mark.parametrize(
    ("kind", "content_type", "body", "status", "field", "message"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_bodies_get_a_located_4xx_and_write_nothing(
    live_server, kind, content_type, body, status, field, message
):
    live = live_server(SPEC, now=NOW)
    before = live.service.store.counts()
    with live.client() as http:
        response = http.post(
            f"/api/v1/{kind}", content=body, headers={"Content-Type": content_type}
        )
    assert response.status_code == status, response.text
    (error, *_) = response.json()["errors"]
    assert error["field"] == field
    assert message in error["message"], error["message"]
    assert live.service.store.counts() == before


def test_dictionary_columns_are_read_as_their_values(live_server):
    live = live_server(SPEC, now=NOW)
    table = pa.table(
        {
            "id": pa.array(["a", "b"]).dictionary_encode(),
            "ts": [STAMP, STAMP],
            "status": pa.array(["ok", "error"]).dictionary_encode(),
            "group": pa.array(["x", "y"]).dictionary_encode(),
        }
    )
    with live.client() as http:
        response = http.post(
            "/api/v1/predictions", content=arrow_bytes(table), headers={"Content-Type": ARROW}
        )
    assert response.json() == {"accepted": 2, "duplicates": 0, "folded": 0}
    stored = live.service.store.db.fetch('SELECT id, status, "group" FROM predictions ORDER BY id')
    assert stored.to_pylist() == [
        {"id": "a", "status": "ok", "group": "x"},
        {"id": "b", "status": "error", "group": "y"},
    ]


def test_the_oldest_accepted_time_follows_the_retention(live_server):
    live = live_server(SPEC, now=NOW, store_options={"retention": timedelta(days=3)})
    with live.client() as http:
        inside = http.post(
            "/api/v1/predictions",
            json=[_record(id="in", ts=(NOW - timedelta(days=2, hours=23)).isoformat())],
        )
        outside = http.post(
            "/api/v1/predictions",
            json=[
                _record(id="ok"),
                _record(id="old", ts=(NOW - timedelta(days=3, seconds=1)).isoformat()),
            ],
        )
    assert inside.status_code == 200, inside.text
    assert outside.status_code == 422
    assert outside.json()["errors"] == [
        {
            "row": 2,
            "field": "ts",
            "message": "2026-11-18T11:59:59Z is more than 3d ago, older than this service "
            "keeps records (from 2026-11-18T12:00:00Z); check the time, or keep records longer",
        }
    ]
    assert live.service.store.counts()["predictions"] == 1


def _groups(start: int, count: int, prefix: str = "g") -> list[dict[str, Any]]:
    return [
        _record(id=f"{prefix}{i}", group=f"{prefix}{i}", prediction=1)
        for i in range(start, start + count)
    ]


def test_past_the_group_cap_a_batch_is_refused_naming_the_attribute(live_server):
    live = live_server(SPEC, now=NOW, store_options={"max_groups": 5})
    with live.client() as http:
        first = http.post("/api/v1/predictions", json=_groups(0, 4))
        again = http.post("/api/v1/predictions", json=[_record(id="again", group="g2")])
        past = http.post("/api/v1/predictions", json=_groups(4, 3))
        regions = http.post(
            "/api/v1/predictions",
            json=[_record(id=f"r{i}", region=f"r{i}", group="g0") for i in range(6)],
        )
    assert first.status_code == 200 and again.status_code == 200
    assert past.status_code == 422
    assert past.json()["errors"] == [
        {
            "row": 2,
            "field": "group",
            "message": "'g5' passes the cap of 5 distinct values of 'group' (4 kept, 3 new in "
            "this batch); send a grouping with fewer values (not an id), or raise the "
            "service's cap",
        }
    ]
    assert regions.status_code == 422
    assert regions.json()["errors"][0]["field"] == "region"
    stored = live.service.store.db.fetch('SELECT DISTINCT "group" AS g FROM predictions')
    assert sorted(stored["g"].to_pylist()) == ["g0", "g1", "g2", "g3"]


def test_folding_counts_new_values_as_other_and_says_so(live_server):
    live = live_server(SPEC, now=NOW, store_options={"max_groups": 4, "fold_groups": True})
    with live.client() as http:
        first = http.post("/api/v1/predictions", json=_groups(0, 2))
        more = http.post("/api/v1/predictions", json=_groups(2, 5))
        metrics = http.get("/metrics").text
        status = http.get("/api/v1/slos").json()
    assert first.json()["folded"] == 0
    assert more.json() == {"accepted": 5, "duplicates": 0, "folded": 4}
    stored = live.service.store.db.fetch(
        'SELECT "group" AS g, count(*) AS n FROM predictions GROUP BY 1 ORDER BY 1'
    )
    assert stored.to_pylist() == [
        {"g": "(other)", "n": 4},
        {"g": "g0", "n": 1},
        {"g": "g1", "n": 1},
        {"g": "g2", "n": 1},
    ]
    assert 'mlslo_ingested_records_total{kind="predictions_folded"} 4.0' in metrics
    (fair,) = [s for s in status["slos"] if s["name"] == "fair"]
    assert "(other)" in json.dumps(fair)


def test_values_are_counted_again_once_retention_deleted_their_records(live_server):
    live = live_server(
        SPEC, now=NOW, store_options={"max_groups": 2, "retention": timedelta(days=2)}
    )
    with live.client() as http:
        old = NOW - timedelta(days=1, hours=12)
        assert (
            http.post(
                "/api/v1/predictions",
                json=[_record(id=f"o{i}", ts=old.isoformat(), group=f"o{i}") for i in range(2)],
            ).status_code
            == 200
        )
        assert (
            http.post("/api/v1/predictions", json=[_record(id="n", group="new")]).status_code == 422
        )
        live.clock.advance(timedelta(days=1))
        live.service.store.retention.prune()
        response = http.post("/api/v1/predictions", json=[_record(id="n", group="new")])
    assert response.status_code == 200, response.text


@pytest.mark.integration
def test_no_body_takes_the_server_process_down(tmp_path):
    """The NDJSON line that used to crash the native JSON reader, sent to `mlslo serve`."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    port = free_port()
    server = start_mlslo_serve(spec, tmp_path / "db.duckdb", port)
    try:
        url = f"http://127.0.0.1:{port}"
        for body in (b"null\n", b'null\n{"id": "a"}\n', b"[null]\n", b"\n\n{}\n"):
            response = httpx.post(
                f"{url}/api/v1/predictions", content=body, headers={"Content-Type": NDJSON}
            )
            assert 400 <= response.status_code < 500, response.text
        assert server.poll() is None
        now = datetime.now(UTC).isoformat()
        ok = httpx.post(f"{url}/api/v1/predictions", json=[_record(ts=now)])
        assert ok.status_code == 200
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_a_replayed_batch_answers_what_it_folded_and_the_metric_counts_it_once(live_server):
    live = live_server(SPEC, now=NOW, store_options={"max_groups": 4, "fold_groups": True})
    key = {"Idempotency-Key": "fold-1"}
    with live.client() as http:
        http.post("/api/v1/predictions", json=_groups(0, 2))
        first = http.post("/api/v1/predictions", json=_groups(2, 5), headers=key)
        again = http.post("/api/v1/predictions", json=_groups(2, 5), headers=key)
        metrics = http.get("/metrics").text
    assert first.json() == {"accepted": 5, "duplicates": 0, "folded": 4}
    assert again.json() == first.json()
    assert 'mlslo_ingested_records_total{kind="predictions_folded"} 4.0' in metrics
    stored = live.service.store.db.one("SELECT count(*) FROM predictions")
    assert stored == (7,)
