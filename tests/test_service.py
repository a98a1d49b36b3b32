"""The service against a real uvicorn server on 127.0.0.1 and a real DuckDB file."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlslo.api import evaluate_files
from mlslo.client import arrow_bytes
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources
from mlslo.spec import parse_spec

NOW = datetime(2026, 11, 21, tzinfo=UTC)
STREAM = {"Content-Type": "application/vnd.apache.arrow.stream"}
SPEC = """
    service: fraud
    attributes: [region]
    slos:
      - {name: uptime, dimension: availability, objective: {target: 0.99}, window: 7d}
      - name: latency
        dimension: latency
        sli: {latency_threshold: 200ms}
        objective: {target: 0.9}
        window: 7d
      - name: lag-p95
        dimension: freshness
        sli: {percentile: 95}
        objective: {target: 10m}
        window: 7d
      - name: f1
        dimension: accuracy
        sli: {metric: f1, estimate: cbpe}
        objective: {target: 0.8}
        window: 7d
      - name: fairness
        dimension: fairness
        sli: {metric: true_positive_rate_difference, attribute: group}
        objective: {target: 0.1}
        window: 7d
"""


def _log(n: int = 3000, seed: int = 3, start: datetime = NOW - timedelta(days=2)) -> pa.Table:
    rng = np.random.default_rng(seed)
    ts = [start + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 2 * 86400 - 60, n))]
    truth = rng.random(n) < 0.3
    score = np.clip(np.where(truth, rng.beta(5, 2, n), rng.beta(2, 5, n)), 0, 1)
    labelled = [i for i in range(n) if i % 5 and ts[i] + timedelta(hours=3) < NOW]
    return pa.table(
        {
            "id": [f"r{seed}-{i}" for i in range(n)],
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "model_version": np.where(np.arange(n) < n // 2, "v1", "v2"),
            "status": np.where(rng.random(n) < 0.97, "ok", "error"),
            "latency_ms": np.round(rng.lognormal(4.5, 0.5, n), 3),
            "event_ts": pa.array(
                [
                    t - timedelta(seconds=float(x))
                    for t, x in zip(ts, rng.exponential(200, n), strict=True)
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "prediction": (score > 0.5).astype(np.int64),
            "score": np.round(score, 6),
            "group": rng.choice(["A", "B"], n),
            "region": rng.choice(["eu", "us"], n),
        }
    ), pa.table(
        {
            "id": [f"r{seed}-{i}" for i in labelled],
            "ts": pa.array(
                [ts[i] + timedelta(hours=3) for i in labelled], pa.timestamp("us", tz="UTC")
            ),
            "label": [int(truth[i]) for i in labelled],
        }
    )


def _arrow_file(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _post_log(http: httpx.Client, predictions: pa.Table, labels: pa.Table) -> None:
    http.post("/api/v1/predictions", content=arrow_bytes(predictions), headers=STREAM)
    http.post("/api/v1/labels", content=arrow_bytes(labels), headers=STREAM)


def _body(table: pa.Table, media: str) -> bytes:
    if media == "application/json":
        return json.dumps(table.to_pylist(), default=lambda v: v.isoformat()).encode()
    if media == "application/x-ndjson":
        return "".join(
            json.dumps(r, default=lambda v: v.isoformat()) + "\n" for r in table.to_pylist()
        ).encode()
    if media == "text/csv":
        out = io.BytesIO()
        pacsv.write_csv(table, out)
        return out.getvalue()
    if media == "application/vnd.apache.parquet":
        out = io.BytesIO()
        pq.write_table(table, out)
        return out.getvalue()
    return _arrow_file(table) if media.endswith("file") else arrow_bytes(table)


MEDIA = [
    "application/json",
    "application/x-ndjson",
    "text/csv",
    "application/vnd.apache.parquet",
    "application/vnd.apache.arrow.stream",
    "application/vnd.apache.arrow.file",
]


def _evaluate_files(
    tmp_path: Path, spec_text: str, predictions: pa.Table, labels: pa.Table | None, at: datetime
) -> dict:
    import textwrap

    pq.write_table(predictions, tmp_path / "p.parquet")
    label_path = None
    if labels is not None:
        pq.write_table(labels, tmp_path / "l.parquet")
        label_path = str(tmp_path / "l.parquet")
    spec = parse_spec(textwrap.dedent(spec_text))
    sources = Sources(str(tmp_path / "p.parquet"), label_path, dedupe=True)
    return evaluation_json(evaluate_files(spec, sources, at))


@pytest.mark.parametrize("media", MEDIA)
def test_every_content_type_and_parity_with_evaluate(live_server, tmp_path, media):
    live = live_server(SPEC, now=NOW)
    predictions, labels = _log()
    with live.client() as http:
        half = predictions.num_rows // 2
        for part in (predictions.slice(0, half), predictions.slice(half)):
            response = http.post(
                "/api/v1/predictions", content=_body(part, media), headers={"Content-Type": media}
            )
            assert response.status_code == 200, response.text
            assert response.json() == {"accepted": part.num_rows, "duplicates": 0, "folded": 0}
        response = http.post(
            "/api/v1/labels", content=_body(labels, media), headers={"Content-Type": media}
        )
        assert response.json() == {"accepted": labels.num_rows, "duplicates": 0, "folded": 0}
        served = http.get("/api/v1/slos", params={"at": "2026-11-21T00:00:00Z"}).json()
    assert served == _evaluate_files(tmp_path, SPEC, predictions, labels, NOW)
    coverage = labels.num_rows / predictions.num_rows
    assert served["slos"][3]["sli"]["label_coverage"] == pytest.approx(coverage)
    assert 0.7 < coverage < 0.8


def test_duplicates_are_counted_once(live_server):
    live = live_server(SPEC, now=NOW)
    predictions, labels = _log(n=400)
    body = arrow_bytes(predictions)
    with live.client() as http:
        first = http.post("/api/v1/predictions", content=body, headers=STREAM)
        again = http.post("/api/v1/predictions", content=body, headers=STREAM)
        doubled = pa.concat_tables([predictions.slice(0, 10), predictions.slice(0, 10)])
        within = http.post("/api/v1/predictions", content=arrow_bytes(doubled), headers=STREAM)
        labelled = http.post("/api/v1/labels", content=arrow_bytes(labels), headers=STREAM)
        relabelled = http.post("/api/v1/labels", content=arrow_bytes(labels), headers=STREAM)
        status = http.get("/api/v1/slos").json()
    assert first.json() == {"accepted": 400, "duplicates": 0, "folded": 0}
    assert again.json() == {"accepted": 0, "duplicates": 400, "folded": 0}
    assert within.json() == {"accepted": 0, "duplicates": 20, "folded": 0}
    assert labelled.json() == {"accepted": labels.num_rows, "duplicates": 0, "folded": 0}
    assert relabelled.json() == {"accepted": 0, "duplicates": labels.num_rows, "folded": 0}
    assert status["slos"][0]["sli"]["valid"] == 400
    assert live.service.store.counts()["predictions"] == 400


def test_idempotency_key_replays_the_first_result(live_server):
    live = live_server(SPEC, now=NOW)
    outcomes = pa.table(
        {
            "ts": pa.array([NOW - timedelta(hours=1)], pa.timestamp("us")),
            "total": [1000],
            "ok": [990],
        }
    )
    headers = {"Content-Type": "application/vnd.apache.arrow.stream", "Idempotency-Key": "b-1"}
    with live.client() as http:
        one = http.post("/api/v1/outcomes", content=arrow_bytes(outcomes), headers=headers)
        two = http.post("/api/v1/outcomes", content=arrow_bytes(outcomes), headers=headers)
        uptime = http.get("/api/v1/slos").json()["slos"][0]
    assert one.json() == two.json() == {"accepted": 1, "duplicates": 0, "folded": 0}
    assert uptime["sli"]["valid"] == 1000
    assert uptime["sli"]["good"] == 990


def test_an_idempotency_key_is_bound_to_its_endpoint_token_and_body(live_server):
    """As Stripe defines it: the same key with another body, another endpoint or another
    token is a 409 that writes nothing, never the first request's answer; the metric of
    records written counts a replay once."""
    live = live_server(SPEC, now=NOW)
    one = pa.table(
        {"ts": pa.array([NOW - timedelta(hours=1)], pa.timestamp("us")), "total": [10], "ok": [9]}
    )
    other = one.set_column(1, "total", pa.array([20]))
    key = {"Content-Type": "application/vnd.apache.arrow.stream", "Idempotency-Key": "k-1"}
    ingest_token = live.token("ingest")
    with live.client() as http, live.client(ingest_token) as second:
        first = http.post("/api/v1/outcomes", content=arrow_bytes(one), headers=key)
        again = http.post("/api/v1/outcomes", content=arrow_bytes(one), headers=key)
        changed = http.post("/api/v1/outcomes", content=arrow_bytes(other), headers=key)
        prediction = pa.table(
            {"id": ["p1"], "ts": pa.array([NOW - timedelta(hours=1)], pa.timestamp("us"))}
        )
        elsewhere = http.post("/api/v1/predictions", content=arrow_bytes(prediction), headers=key)
        stranger = second.post("/api/v1/outcomes", content=arrow_bytes(one), headers=key)
        uptime = http.get("/api/v1/slos").json()["slos"][0]
        metrics = http.get("/metrics").text
    assert first.json() == again.json() == {"accepted": 1, "duplicates": 0, "folded": 0}
    for refused in (changed, elsewhere, stranger):
        assert refused.status_code == 409, refused.text
        (error,) = refused.json()["errors"]
        assert error["field"] == "Idempotency-Key" and "'k-1' was first used" in error["message"]
    assert uptime["sli"]["valid"] == 10
    assert 'mlslo_ingested_records_total{kind="outcomes"} 1.0' in metrics


def test_late_and_early_labels_land_in_the_predictions_bucket(live_server, tmp_path):
    live = live_server(SPEC, now=NOW)
    predictions, labels = _log(n=600, seed=9)
    early, late = labels.slice(0, 200), labels.slice(200)
    with live.client() as http:
        sent = http.post("/api/v1/labels", content=arrow_bytes(early), headers=STREAM)
        assert sent.json()["accepted"] == 200
        assert live.service.store.counts()["held_labels"] == 200
        http.post("/api/v1/predictions", content=arrow_bytes(predictions), headers=STREAM)
        assert live.service.store.counts()["held_labels"] == 0
        partial = http.get("/api/v1/slos").json()
        http.post("/api/v1/labels", content=arrow_bytes(late), headers=STREAM)
        full = http.get("/api/v1/slos").json()
    assert partial["slos"][3]["sli"]["n"] == 200
    assert full == _evaluate_files(tmp_path, SPEC, predictions, labels, NOW)
    corrected = labels.slice(0, 50).set_column(
        1, "ts", pa.array([NOW - timedelta(minutes=1)] * 50, pa.timestamp("us", tz="UTC"))
    )
    corrected = corrected.set_column(2, "label", pa.compute.subtract(1, corrected["label"]))
    with live.client() as http:
        sent = http.post("/api/v1/labels", content=arrow_bytes(corrected), headers=STREAM)
        assert sent.json() == {"accepted": 50, "duplicates": 0, "folded": 0}
        after = http.get("/api/v1/slos").json()
    relabelled = pa.concat_tables([labels, corrected])
    assert after == _evaluate_files(tmp_path, SPEC, predictions, relabelled, NOW)


def test_auth_scopes_and_revocation(live_server):
    live = live_server(SPEC, now=NOW)
    ingest, read = live.token("ingest"), live.token("read")
    body = arrow_bytes(_log(n=20)[0])
    with live.client(None) as anonymous:
        missing = anonymous.get("/api/v1/slos")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.json()["errors"][0]["field"] == "Authorization"
        assert anonymous.get("/healthz").status_code == 200
    with live.client("mlslo_not-a-real-token") as wrong:
        assert wrong.get("/api/v1/slos").status_code == 401
    with live.client(read) as reader:
        assert reader.get("/api/v1/slos").status_code == 200
        assert reader.get("/metrics").status_code == 200
        denied = reader.post("/api/v1/predictions", content=body, headers=STREAM)
        assert denied.status_code == 403
        assert "needs 'ingest'" in denied.json()["errors"][0]["message"]
        assert reader.post("/api/v1/reload").status_code == 403
    with live.client(ingest) as sender:
        assert sender.post("/api/v1/predictions", content=body, headers=STREAM).status_code == 200
        assert sender.get("/api/v1/slos").status_code == 403
    with live.client() as admin:
        created = admin.post("/api/v1/tokens", json={"scope": "read", "name": "grafana"})
        assert created.status_code == 201
        secret = created.json()["token"]
        assert secret.startswith("mlslo_")
        listed = admin.get("/api/v1/tokens").json()
        assert all("token" not in t and "hash" not in t for t in listed)
        assert admin.delete(f"/api/v1/tokens/{created.json()['id']}").status_code == 200
        assert admin.delete("/api/v1/tokens/999").status_code == 404
    with live.client(secret) as revoked:
        assert revoked.get("/api/v1/slos").status_code == 401


@pytest.mark.parametrize(
    ("body", "media", "status", "row", "field", "fragment"),
    [
        (b'[{"id": 1,', "application/json", 400, None, None, "not valid JSON"),
        (
            b'{"id": "a", "ts": "2026-11-20T10:00:00Z"}\n{oops}\n',
            "application/x-ndjson",
            400,
            2,
            None,
            "not valid JSON",
        ),
        (
            b'[{"id": "a", "ts": "2026-11-20T10:00:00Z", "latency_ms": NaN}]',
            "application/json",
            422,
            1,
            "latency_ms",
            "NaN",
        ),
        (
            b'[{"id": "a", "ts": "2026-11-20T10:00:00Z", "latency_ms": 1},'
            b' {"id": "b", "ts": "2026-11-20T10:00:00Z", "latency_ms": Infinity}]',
            "application/json",
            422,
            2,
            "latency_ms",
            "infinite",
        ),
        (
            b'[{"id": "a", "ts": "2026-11-20T10:00:00Z", "latency_ms": 3},'
            b' {"id": "b", "ts": "2026-11-20T10:00:00Z", "latency_ms": "fast"}]',
            "application/json",
            422,
            2,
            "latency_ms",
            "'fast' is not a number",
        ),
        (b'[{"id": "a", "ts": "yesterday"}]', "application/json", 422, 1, "ts", "ISO-8601"),
        (
            b'[{"id": "a", "ts": "2026-11-20T10:00:00Z", "colour": "red"}]',
            "application/json",
            422,
            None,
            "colour",
            "not a known field",
        ),
        (
            b'[{"id": "a", "ts": "2026-11-20T10:00:00Z", "group; DROP TABLE predictions": "x"}]',
            "application/json",
            422,
            None,
            "group; DROP TABLE predictions",
            "not a known field",
        ),
        (b'[{"ts": "2026-11-20T10:00:00Z"}]', "application/json", 422, None, "id", "required"),
        (
            b'[{"id": "a", "ts": "2026-11-20T10:00:00Z", "status": "meh"}]',
            "application/json",
            422,
            1,
            "status",
            "'ok' or 'error'",
        ),
        (
            b'[{"id": "a", "ts": "2026-11-20T10:00:00Z", "score": 1.5}]',
            "application/json",
            422,
            1,
            "score",
            "<= 1",
        ),
        (
            b'[{"id": "a", "ts": "2026-11-22T10:00:00Z"}]',
            "application/json",
            422,
            1,
            "ts",
            "in the future",
        ),
        (b"id,ts\n", "text/csv", 400, None, None, "empty"),
        (b"\x00\x01garbage", "application/vnd.apache.parquet", 400, None, None, "cannot parse"),
        (b"[]", "application/xml", 415, None, None, "unsupported Content-Type"),
        (b"", "application/json", 400, None, None, "empty"),
    ],
)
def test_bad_batches_are_located_and_write_nothing(
    live_server, body, media, status, row, field, fragment
):
    live = live_server(SPEC, now=NOW)
    with live.client() as http:
        response = http.post("/api/v1/predictions", content=body, headers={"Content-Type": media})
    assert response.status_code == status, response.text
    error = response.json()["errors"][0]
    assert error["row"] == row
    assert error["field"] == field
    assert fragment in error["message"]
    assert live.service.store.counts()["predictions"] == 0


def test_a_batch_is_all_or_nothing_and_reports_every_column(live_server):
    live = live_server(SPEC, now=NOW)
    rows = [
        {"id": f"p{i}", "ts": "2026-11-20T10:00:00Z", "status": "ok", "latency_ms": 10.0}
        for i in range(50)
    ]
    rows[5]["status"] = None
    rows[6]["latency_ms"] = None
    rows[17]["status"] = "maybe"
    rows[30]["latency_ms"] = -1.0
    with live.client() as http:
        response = http.post("/api/v1/predictions", json=rows)
    assert response.status_code == 422
    errors = {(e["row"], e["field"]) for e in response.json()["errors"]}
    assert errors == {(18, "status"), (31, "latency_ms")}
    assert live.service.store.counts()["predictions"] == 0


def test_oversized_body_is_413(live_server):
    live = live_server(SPEC, now=NOW, max_body=2000)
    rows = [{"id": f"p{i}", "ts": "2026-11-20T10:00:00Z"} for i in range(100)]
    with live.client() as http:
        response = http.post("/api/v1/predictions", json=rows)
    assert response.status_code == 413
    assert "limit" in response.json()["errors"][0]["message"]
    assert live.service.store.counts()["predictions"] == 0


def test_sql_looking_attribute_values_are_stored_verbatim(live_server):
    live = live_server(SPEC, now=NOW)
    nasty = "eu'); DROP TABLE predictions; --"
    rows = [
        {
            "id": "p1",
            "ts": "2026-11-20T10:00:00Z",
            "status": "ok",
            "region": nasty,
            "group": "A' OR '1'='1",
            "prediction": 1,
            "label": 1,
        }
    ]
    with live.client() as http:
        assert http.post("/api/v1/predictions", json=rows).status_code == 200
    with live.service.store.db.locked() as con:
        stored = con.execute('SELECT region, "group" FROM predictions').fetchall()
    assert stored == [(nasty, "A' OR '1'='1")]
    assert live.service.store.counts()["predictions"] == 1


def test_metrics_exposition(live_server):
    live = live_server(SPEC, now=NOW)
    predictions, labels = _log(n=500)
    with live.client() as http:
        _post_log(http, predictions, labels)
        status = http.get("/api/v1/slos").json()
        text = http.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    remaining = {
        s.labels["slo"]: s.value for s in families["mlslo_error_budget_remaining_ratio"].samples
    }
    assert remaining == {
        s["name"]: pytest.approx(s["budget"]["remaining"])
        for s in status["slos"]
        if s["budget"]["remaining"] is not None
    }
    uptime_sli = next(s for s in families["mlslo_sli"].samples if s.labels["slo"] == "uptime")
    assert uptime_sli.labels == {
        "service": "fraud",
        "slo": "uptime",
        "dimension": "availability",
        "window": "7d",
        "metric": "availability",
    }
    burn = [s for s in families["mlslo_burn_rate"].samples if s.labels["slo"] == "uptime"]
    assert {s.labels["burn_window"] for s in burn} >= {"14m", "1h24m", "5h36m"}
    records = {
        s.labels["kind"]: s.value
        for s in families["mlslo_ingested_records"].samples
        if s.name.endswith("_total")
    }
    assert records == {"predictions": 500.0, "labels": labels.num_rows}
    timed = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in families["mlslo_http_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    assert timed[("POST", "/api/v1/predictions", "200")] == 1
    assert timed[("POST", "/api/v1/labels", "200")] == 1
    assert timed[("GET", "/api/v1/slos", "200")] == 1
    assert families["mlslo_objective_target"].samples[0].labels["op"] == ">="


def test_health_and_readiness(live_server):
    live = live_server(SPEC, now=NOW)
    with live.client(None) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_reload_rebuilds_rollups_for_a_changed_spec(live_server, tmp_path):
    live = live_server(SPEC, now=NOW)
    predictions, labels = _log(n=800, seed=5)
    with live.client() as http:
        _post_log(http, predictions, labels)
    changed = (
        SPEC.replace("latency_threshold: 200ms", "latency_threshold: 120ms")
        + """
      - name: recall-v2
        dimension: accuracy
        sli: {metric: recall}
        objective: {target: 0.7}
        window: 7d
        filter: {model_version: v2}
"""
    )
    live.service.spec_path.write_text(__import__("textwrap").dedent(changed).lstrip())
    with live.client() as http:
        reloaded = http.post("/api/v1/reload")
        assert reloaded.status_code == 200
        assert reloaded.json()["rebuilt"] is True
        status = http.get("/api/v1/slos").json()
        target_only = changed.replace("target: 0.7", "target: 0.75")
        live.service.spec_path.write_text(__import__("textwrap").dedent(target_only).lstrip())
        assert http.post("/api/v1/reload").json()["rebuilt"] is False
    assert [s["name"] for s in status["slos"]][-1] == "recall-v2"
    assert status == _evaluate_files(tmp_path, changed, predictions, labels, NOW)


def test_status_at_a_past_moment_and_series(live_server, tmp_path):
    live = live_server(SPEC, now=NOW)
    predictions, labels = _log(n=500)
    with live.client() as http:
        _post_log(http, predictions, labels)
        past = http.get(
            "/api/v1/slos", params={"at": "2026-11-20T06:00:00Z", "series": "6h"}
        ).json()
        bad = http.get("/api/v1/slos", params={"at": "soon"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "at"
    assert len(past["slos"][0]["series"]) == 28
    moment = datetime(2026, 11, 20, 6, tzinfo=UTC)
    expected = _evaluate_files(
        tmp_path,
        SPEC,
        predictions,
        labels.filter(
            pa.compute.less(labels["ts"], pa.scalar(moment, pa.timestamp("us", tz="UTC")))
        ),
        moment,
    )
    for served, local in zip(past["slos"], expected["slos"], strict=True):
        served.pop("series")
        served.pop("burndown")
        if served["dimension"] in ("availability", "latency", "freshness"):
            assert served == local


def test_metrics_say_what_the_store_holds_in_memory(live_server):
    """The ids part is 8 bytes per kept prediction id; the timelines and DuckDB's pool are
    reported too, so an operator can tell growth with the kept records from a leak."""
    live = live_server(SPEC, now=NOW)

    def memory(text: str) -> dict[str, float]:
        (family,) = [
            f for f in text_string_to_metric_families(text) if f.name == "mlslo_store_memory_bytes"
        ]
        return {s.labels["part"]: s.value for s in family.samples}

    log, _ = _log(n=1500)
    with live.client() as http:
        before = memory(http.get("/metrics").text)
        sent = http.post(
            "/api/v1/predictions",
            content=arrow_bytes(log),
            headers={"Content-Type": "application/vnd.apache.arrow.stream"},
        )
        after = memory(http.get("/metrics").text)
    assert sent.json()["accepted"] == 1500
    assert before["ids"] == 0 and after["ids"] == 1500 * 8
    assert after["timelines"] > before["timelines"]
    assert after["duckdb"] > 0
