"""Timestamps in seconds, milliseconds, microseconds and nanoseconds, with a zone, an offset or
none, in every format, read the same on files (DuckDB and Spark) and on the server: each
record lands where a numpy oracle over the nanoseconds, floored to the microsecond, puts it.

The data straddle every edge a unit could blur: a record 1 ns before the evaluation time (in
the window), one at it (out), one at the window start (in) and one 1 ns before it (out, once
floored; rounding would take it in), and labels and outcome counts on the same edges."""

from __future__ import annotations

import io
import json
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from mlslo.api import evaluate_files
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources
from mlslo.spec import parse_spec

EVAL = datetime(2026, 11, 21, 0, 3, tzinfo=UTC)
EVAL_NS = int(EVAL.timestamp()) * 10**9
DAY_NS = 86_400 * 10**9
START_NS = EVAL_NS - DAY_NS
LAG_LIMIT_US = 90 * 10**6
UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
ZONES = ("naive", "utc", "offset")
"""No zone (UTC), UTC, and +05:30 (Asia/Kolkata): the same instants, written three ways."""
OFFSET = timedelta(hours=5, minutes=30)
SLOS = """
  - name: uptime{suffix}
    dimension: availability
    objective: {{target: 0.9}}
    window: 1d{filter}
  - name: fresh{suffix}
    dimension: freshness
    sli: {{lag_threshold: 90s}}
    objective: {{target: 0.9}}
    window: 1d{filter}
  - name: acc{suffix}
    dimension: accuracy
    sli: {{metric: accuracy}}
    objective: {{target: 0.5}}
    window: 1d{filter}
"""


def spec_text(zones: tuple[str, ...] = ()) -> str:
    """One uptime, freshness and accuracy SLO; with zones, one of each per zone, filtered on
    the model_version that names the zone."""
    parts = [
        SLOS.format(suffix=f"-{z}", filter=f"\n    filter: {{model_version: {z}}}") for z in zones
    ] or [SLOS.format(suffix="", filter="")]
    return "service: units\nslos:" + "".join(parts)


@dataclass
class Log:
    """Predictions, labels and outcome counts, every time in integer nanoseconds."""

    ids: list[str]
    ts: np.ndarray
    event_ts: np.ndarray
    status: list[str]
    prediction: list[int]
    label_ids: list[str]
    label_ts: np.ndarray
    label: list[int]
    outcome_ts: np.ndarray
    total: list[int]
    ok: list[int]


def make_log(unit: str, seed: int = 5) -> Log:
    """Random records inside the day, and records on each edge, truncated to ``unit``."""
    rng = np.random.default_rng(seed)
    n = 40
    regular = rng.integers(START_NS + 3_600 * 10**9, EVAL_NS - 3_600 * 10**9, n)
    edges = np.array(
        [EVAL_NS - 1, EVAL_NS, EVAL_NS + 60 * 10**9, START_NS, START_NS - 1, EVAL_NS - 999],
        dtype=np.int64,
    )
    ts = np.concatenate([regular, edges])
    lag = rng.integers(0, 180 * 10**9, len(ts))
    lag[:3] = [90 * 10**9, 90 * 10**9 + 1, 90 * 10**9 - 1]
    event_ts = ts - lag
    labelled = [i for i in range(len(ts)) if i % 4 != 3]
    label_ts = np.minimum(
        ts[labelled] + rng.integers(0, 2 * 3_600 * 10**9, len(labelled)), EVAL_NS + 120 * 10**9
    )
    label_ts[:2] = [EVAL_NS - 1, EVAL_NS]
    outcome_ts = np.concatenate(
        [rng.integers(START_NS, EVAL_NS, 6), [EVAL_NS - 1, EVAL_NS, START_NS, START_NS - 1]]
    ).astype(np.int64)
    step = UNITS[unit]
    return Log(
        ids=[f"p{i}" for i in range(len(ts))],
        ts=ts // step * step,
        event_ts=event_ts // step * step,
        status=["error" if x < 0.2 else "ok" for x in rng.random(len(ts))],
        prediction=rng.integers(0, 2, len(ts)).tolist(),
        label_ids=[f"p{i}" for i in labelled],
        label_ts=label_ts // step * step,
        label=rng.integers(0, 2, len(labelled)).tolist(),
        outcome_ts=outcome_ts // step * step,
        total=[100, 50, 70, 10, 20, 30, 7, 11, 13, 17],
        ok=[99, 45, 70, 9, 20, 28, 6, 10, 13, 16],
    )


def oracle(log: Log, *, labels_by_ts: bool) -> dict[str, Any]:
    """The SLIs from the nanoseconds: every time floored to the microsecond, the window
    [EVAL - 1d, EVAL); a label counts when its time is before EVAL (files) or always (the
    server, which counts a label from when it was received)."""

    def us(ns: np.ndarray) -> np.ndarray:
        return ns // 1000

    start, end = START_NS // 1000, EVAL_NS // 1000
    inside = (us(log.ts) >= start) & (us(log.ts) < end)
    ok = np.array([s == "ok" for s in log.status])
    outcome_in = (us(log.outcome_ts) >= start) & (us(log.outcome_ts) < end)
    lag_ok = (us(log.ts) - us(log.event_ts)) <= LAG_LIMIT_US
    labels = {}
    for i, label_id in enumerate(log.label_ids):
        if not labels_by_ts or us(log.label_ts[i : i + 1])[0] < end:
            labels[label_id] = log.label[i]
    judged = [i for i in np.flatnonzero(inside) if log.ids[i] in labels]
    correct = sum(log.prediction[i] == labels[log.ids[i]] for i in judged)
    return {
        "uptime": (
            int(ok[inside].sum() + np.asarray(log.ok)[outcome_in].sum()),
            int(inside.sum() + np.asarray(log.total)[outcome_in].sum()),
        ),
        "fresh": (int(lag_ok[inside].sum()), int(inside.sum())),
        "acc": (correct / len(judged), len(judged)),
    }


def measured(document: dict[str, Any], suffix: str = "") -> dict[str, Any]:
    slos = {s["name"]: s["sli"] for s in document["slos"]}
    uptime, fresh, acc = (slos[f"{n}{suffix}"] for n in ("uptime", "fresh", "acc"))
    return {
        "uptime": (uptime["good"], uptime["valid"]),
        "fresh": (fresh["good"], fresh["valid"]),
        "acc": (pytest.approx(acc["value"]), acc["n"]) if acc["n"] else (None, 0),
    }


def expected(log: Log, *, labels_by_ts: bool) -> dict[str, Any]:
    truth = oracle(log, labels_by_ts=labels_by_ts)
    value, n = truth["acc"]
    return {**truth, "acc": (pytest.approx(value), n)}


# --- writing the log in each format and zone ------------------------------------------------


def text_time(ns: int, digits: int, zone: str) -> str:
    """ISO-8601 with ``digits`` fractional digits, and ``Z``, ``+05:30`` or no zone."""
    seconds, fraction = divmod(int(ns), 10**9)
    wall = datetime.fromtimestamp(seconds, UTC) + (OFFSET if zone == "offset" else timedelta())
    text = wall.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{fraction:09d}"[:digits]
    return text + {"naive": "", "utc": "Z", "offset": "+05:30"}[zone]


def typed_times(values: np.ndarray, unit: str, zone: str) -> pa.Array:
    exact = pa.array(values.astype(np.int64), pa.timestamp("ns")).cast(pa.timestamp(unit))
    if zone == "naive":
        return exact
    zoned = exact.cast(pa.timestamp(unit, tz="UTC"))
    return zoned if zone == "utc" else zoned.cast(pa.timestamp(unit, tz="Asia/Kolkata"))


def tables(log: Log, unit: str, zone: str, *, text: bool, version: str | None) -> dict[str, Any]:
    """The three tables, times typed in ``unit`` or written as text."""

    def times(values: np.ndarray) -> Any:
        if text:
            return [text_time(v, DIGITS[unit], zone) for v in values]
        return typed_times(values, unit, zone)

    model = {"model_version": [version] * len(log.ids)} if version else {}
    outcome_model = {"model_version": [version] * len(log.total)} if version else {}
    return {
        "predictions": pa.table(
            {
                "id": log.ids,
                "ts": times(log.ts),
                **model,
                "status": log.status,
                "event_ts": times(log.event_ts),
                "prediction": log.prediction,
            }
        ),
        "labels": pa.table({"id": log.label_ids, "ts": times(log.label_ts), "label": log.label}),
        "outcomes": pa.table(
            {"ts": times(log.outcome_ts), "total": log.total, "ok": log.ok, **outcome_model}
        ),
    }


def write(table: pa.Table, path: Path, fmt: str) -> str:
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "arrow":
        with ipc.new_file(str(path), table.schema) as writer:
            writer.write_table(table)
    elif fmt == "csv":
        pacsv.write_csv(table, path)
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))
    return str(path)


EXTENSIONS = {"parquet": "parquet", "arrow": "arrow", "csv": "csv", "json": "ndjson"}


def write_log(folder: Path, log: Log, unit: str, zone: str, fmt: str) -> Sources:
    folder.mkdir(parents=True, exist_ok=True)
    made = tables(log, unit, zone, text=fmt in ("csv", "json"), version=None)
    paths = {
        role: write(table, folder / f"{role}.{EXTENSIONS[fmt]}", fmt)
        for role, table in made.items()
    }
    return Sources(paths["predictions"], paths["labels"], paths["outcomes"])


# --- files ----------------------------------------------------------------------------------


def test_the_edges_are_what_the_oracle_says():
    """The oracle itself: the edge records fall where the floor puts them."""
    log = make_log("ns")
    inside = (log.ts // 1000 >= START_NS // 1000) & (log.ts // 1000 < EVAL_NS // 1000)
    edges = dict(zip(log.ts[-6:].tolist(), inside[-6:].tolist(), strict=True))
    assert edges == {
        EVAL_NS - 1: True,
        EVAL_NS: False,
        EVAL_NS + 60 * 10**9: False,
        START_NS: True,
        START_NS - 1: False,
        EVAL_NS - 999: True,
    }


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "csv", "json"])
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_every_unit_and_format_on_files(cli, write_spec, tmp_path, unit, fmt):
    log = make_log(unit)
    spec = write_spec(spec_text())
    for zone in ZONES:
        sources = write_log(tmp_path / zone, log, unit, zone, fmt)
        run = cli(
            "evaluate",
            "--spec",
            spec,
            "--data",
            sources.predictions,
            "--labels",
            sources.labels or "",
            "--outcomes",
            sources.outcomes or "",
            "--at",
            EVAL.isoformat(),
            "-f",
            "json",
        )
        assert run.exit_code == 0, (zone, run.stderr)
        assert measured(run.json()) == expected(log, labels_by_ts=True), zone


@pytest.mark.parametrize("digits", range(10))
def test_text_times_with_any_number_of_fractional_digits(cli, write_spec, tmp_path, digits):
    """0 to 9 fractional digits, with Z, an offset or no zone, in CSV and NDJSON: a record
    whose time is 1 ns (or the last digit) before the evaluation time counts; one at it does
    not."""
    last = 10 ** (9 - digits) if digits else 10**9
    edges = [EVAL_NS - last, EVAL_NS, START_NS, START_NS - last]
    spec = write_spec(spec_text())
    for zone in ZONES:
        for fmt in ("csv", "json"):
            rows = pa.table(
                {
                    "id": [f"e{i}" for i in range(len(edges))],
                    "ts": [text_time(v, digits, zone) for v in edges],
                    "status": ["ok", "ok", "error", "error"],
                    "event_ts": [text_time(v - 10**9, digits, zone) for v in edges],
                    "prediction": [1, 1, 1, 1],
                    "label": [1, 0, 0, 1],
                }
            )
            path = write(rows, tmp_path / f"{zone}-{digits}.{EXTENSIONS[fmt]}", fmt)
            run = cli(
                "evaluate", "--spec", spec, "--data", path, "--at", EVAL.isoformat(), "-f", "json"
            )
            assert run.exit_code == 0, (zone, fmt, run.stderr)
            slos = {s["name"]: s["sli"] for s in run.json()["slos"]}
            assert (slos["uptime"]["good"], slos["uptime"]["valid"]) == (1, 2), (zone, fmt)
            assert (slos["fresh"]["good"], slos["fresh"]["valid"]) == (2, 2), (zone, fmt)
            assert (slos["acc"]["value"], slos["acc"]["n"]) == (0.5, 2), (zone, fmt)


# --- the server -----------------------------------------------------------------------------

MEDIA = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}


def body(table: pa.Table, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(table.to_pylist()).encode()
    if fmt == "ndjson":
        return "".join(json.dumps(row) + "\n" for row in table.to_pylist()).encode()
    out = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(table, out)
    elif fmt == "parquet":
        pq.write_table(table, out)
    else:
        with ipc.new_stream(out, table.schema) as writer:
            writer.write_table(table)
    return out.getvalue()


@pytest.mark.parametrize("fmt", list(MEDIA))
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_every_unit_and_format_on_the_server(live_server, unit, fmt):
    """Each zone is sent as its own model_version, which SLOs of its own filter on."""
    log = make_log(unit)
    live = live_server(textwrap.dedent(spec_text(ZONES)), now=EVAL)
    with live.client() as http:
        for zone in ZONES:
            made = tables(log, unit, zone, text=fmt in ("json", "ndjson", "csv"), version=zone)
            made["predictions"] = made["predictions"].set_column(
                0, "id", pa.array([f"{zone}-{i}" for i in log.ids])
            )
            made["labels"] = made["labels"].set_column(
                0, "id", pa.array([f"{zone}-{i}" for i in log.label_ids])
            )
            for kind in ("predictions", "labels", "outcomes"):
                response = http.post(
                    f"/api/v1/{kind}",
                    content=body(made[kind], fmt),
                    headers={"Content-Type": MEDIA[fmt]},
                )
                assert response.status_code == 200, (zone, kind, response.text)
        document = http.get("/api/v1/slos", params={"at": EVAL.isoformat()}).json()
    truth = expected(log, labels_by_ts=False)
    for zone in ZONES:
        assert measured(document, f"-{zone}") == truth, zone


# --- Spark ----------------------------------------------------------------------------------


@pytest.mark.spark
@pytest.mark.system("java")
def test_every_unit_on_spark_reads_as_on_duckdb(spark, tmp_path):
    """Spark reads nanosecond Parquet (which it cannot by itself), timestamps without a
    zone (its TIMESTAMP_NTZ), Arrow IPC of every unit, and text times."""
    import ibis

    spec = parse_spec(spec_text())
    con = ibis.pyspark.connect(spark)
    cases = [
        ("ns", "offset", "parquet"),
        ("s", "naive", "parquet"),
        ("ns", "utc", "arrow"),
        ("us", "offset", "csv"),
        ("ms", "utc", "json"),
    ]
    for unit, zone, fmt in cases:
        log = make_log(unit)
        sources = write_log(tmp_path / f"{unit}-{zone}-{fmt}", log, unit, zone, fmt)
        document = evaluation_json(evaluate_files(spec, sources, EVAL, con=con))
        assert measured(document) == expected(log, labels_by_ts=True), (unit, zone, fmt)
