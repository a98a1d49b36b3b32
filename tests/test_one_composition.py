"""The CLI over files and the service over its store run the same evaluation and the same
gate; they differ only in where rollups come from. These tests hold the two paths to the same
numbers where their inputs are the same, and to the documented defaults where they differ:
a label counts at ``T`` only once it had arrived by ``T``, and both report repeated ids."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlslo.api import evaluate_files, gate_files
from mlslo.client import arrow_bytes
from mlslo.render.documents import evaluation_json, gate_json
from mlslo.scan.files import Sources
from mlslo.spec import parse_spec

STREAM = {"Content-Type": "application/vnd.apache.arrow.stream"}
DAY0 = datetime(2026, 11, 20, tzinfo=UTC)
SPEC = """
    service: waves
    slos:
      - {name: uptime, dimension: availability, objective: {target: 0.99}, window: 7d}
      - name: f1
        dimension: accuracy
        sli: {metric: f1}
        objective: {target: 0.8}
        window: 7d
      - name: tpr-gap
        dimension: fairness
        sli: {metric: true_positive_rate_difference, attribute: group}
        objective: {target: 0.1}
        window: 7d
    policy:
      hard_stop: [f1]
      min_remaining: {tpr-gap: 0.2}
"""


def _predictions(n: int = 600) -> pa.Table:
    rng = np.random.default_rng(11)
    ts = [DAY0 + timedelta(minutes=float(m)) for m in np.sort(rng.uniform(0, 600, n))]
    return pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "status": rng.choice(["ok", "ok", "ok", "error"], n).tolist(),
            "prediction": rng.integers(0, 2, n).tolist(),
            "group": rng.choice(["a", "b"], n).tolist(),
        }
    )


def _labels(ids: list[str], ts: datetime, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": ids,
            "ts": pa.array([ts] * len(ids), pa.timestamp("us", tz="UTC")),
            "label": rng.integers(0, 2, len(ids)).tolist(),
        }
    )


def _files(tmp_path: Path, name: str, table: pa.Table) -> str:
    path = tmp_path / f"{name}.parquet"
    pq.write_table(table, path)
    return str(path)


def _without_id(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "id"}


def test_a_label_counts_only_once_it_had_arrived(live_server, tmp_path):
    """Predictions, then two waves of labels. The second wave carries timestamps from before
    the moment asked about (a labeller's backlog) but reaches the server after it: a status
    or gate ``?at=`` between the waves equals ``mlslo evaluate --at`` over the first wave's
    labels alone, and a decision recorded then is re-derived to the same document later."""
    predictions = _predictions()
    ids = predictions["id"].to_pylist()
    first_wave = _labels(ids[:250], DAY0 + timedelta(hours=11), seed=1)
    second_wave = _labels(ids[250:500], DAY0 + timedelta(hours=11, minutes=30), seed=2)
    between = DAY0 + timedelta(hours=13)
    live = live_server(SPEC, now=DAY0 + timedelta(hours=10, minutes=5))
    spec = parse_spec(textwrap.dedent(SPEC))
    with live.client() as http:
        assert http.post(
            "/api/v1/predictions", content=arrow_bytes(predictions), headers=STREAM
        ).json() == {"accepted": 600, "duplicates": 0, "folded": 0}
        live.clock.now = DAY0 + timedelta(hours=12)
        assert http.post("/api/v1/labels", content=arrow_bytes(first_wave), headers=STREAM)
        live.clock.now = between
        recorded = http.get("/api/v1/gate").json()
        live.clock.now = DAY0 + timedelta(hours=14)
        assert http.post("/api/v1/labels", content=arrow_bytes(second_wave), headers=STREAM)
        at = {"at": "2026-11-20T13:00:00Z"}
        status_then = http.get("/api/v1/slos", params=at).json()
        gate_then = http.get("/api/v1/gate", params=at).json()
        status_now = http.get("/api/v1/slos").json()

    sources = Sources(
        _files(tmp_path, "p", predictions), _files(tmp_path, "l1", first_wave), dedupe=True
    )
    assert status_then == evaluation_json(evaluate_files(spec, sources, between))
    run = gate_files(spec, sources, between)
    assert _without_id(gate_then) == gate_json(run.evaluation, run.decision)
    assert _without_id(gate_then) == _without_id(recorded)

    both = pa.concat_tables([first_wave, second_wave])
    everything = Sources(sources.predictions, _files(tmp_path, "l", both), dedupe=True)
    later = DAY0 + timedelta(hours=14)
    assert status_now == evaluation_json(evaluate_files(spec, everything, later))
    f1 = {doc["evaluated_at"]: doc["slos"][1]["sli"]["n"] for doc in (status_then, status_now)}
    assert f1 == {"2026-11-20T13:00:00Z": 250, "2026-11-20T14:00:00Z": 500}
    # the files alone cannot tell arrival from ts: over both waves at 13:00 they count the
    # backlog, which the server had not received then
    backlog = evaluation_json(evaluate_files(spec, everything, between))
    assert backlog["slos"][1]["sli"]["n"] == 500


def test_repeated_ids_are_reported_by_files_and_by_the_server(live_server, tmp_path, cli):
    predictions = _predictions(300)
    predictions = predictions.append_column("label", predictions["prediction"])
    repeated = pa.concat_tables([predictions, predictions.slice(0, 40)])
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(textwrap.dedent(SPEC), encoding="utf-8")
    data = _files(tmp_path, "repeated", repeated)
    at = "2026-11-21T00:00:00Z"

    counted = cli("evaluate", "--spec", spec_path, "--data", data, "--at", at, "-f", "json")
    assert counted.json()["records"] == {"deduplicated": False, "repeated_ids": None}
    assert counted.json()["slos"][0]["sli"]["valid"] == 340
    once = cli(
        "evaluate", "--spec", spec_path, "--data", data, "--at", at, "-f", "json", "--dedupe"
    )
    assert once.json()["records"] == {"deduplicated": True, "repeated_ids": 40}
    assert once.json()["slos"][0]["sli"]["valid"] == 300
    table = cli("evaluate", "--spec", spec_path, "--data", data, "--at", at, "--dedupe")
    assert "40 repeated prediction ids were counted once" in table.stdout

    live = live_server(SPEC, now=DAY0 + timedelta(days=1))
    with live.client() as http:
        http.post("/api/v1/predictions", content=arrow_bytes(predictions), headers=STREAM)
        again = http.post(
            "/api/v1/predictions", content=arrow_bytes(predictions.slice(0, 40)), headers=STREAM
        )
        assert again.json() == {"accepted": 0, "duplicates": 40, "folded": 0}
        served = http.get("/api/v1/slos").json()
        long_ago = http.get("/api/v1/slos", params={"at": "2026-12-30T00:00:00Z"}).json()
    assert served["records"] == {"deduplicated": True, "repeated_ids": 40}
    assert served["slos"][0]["sli"]["valid"] == 300
    assert long_ago["records"] == {"deduplicated": True, "repeated_ids": 0}


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_an_argument_is_named_as_the_cli_option_and_as_the_api_field(
    live_server, tmp_path, cli, fmt
):
    """One library error, two edges: ``--candidate: ...`` on the command line (exit 2),
    ``{"field": "candidate"}`` in a 422 from the API."""
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(textwrap.dedent(SPEC), encoding="utf-8")
    predictions = _predictions(50)
    data = _files(tmp_path, "p", predictions.append_column("label", predictions["prediction"]))
    run = cli("gate", "--spec", spec_path, "--data", data, "--candidate", "v2", "-f", fmt)
    assert run.exit_code == 2
    assert run.stderr.startswith("error: --candidate: 'v2' is not ATTRIBUTE=VALUE")
    live = live_server(SPEC, now=DAY0 + timedelta(days=1))
    with live.client() as http:
        answer = http.get("/api/v1/gate", params={"candidate": "v2"})
    assert answer.status_code == 422
    (error,) = answer.json()["errors"]
    assert error["field"] == "candidate" and error["row"] is None
    assert error["message"].startswith("'v2' is not ATTRIBUTE=VALUE")
