"""Hypothesis-generated ingest bodies with hostile values, in every format the API reads, sent
to one real server: no answer is a 5xx, every refusal is the JSON envelope and leaves the
store exactly as it was, and a good batch is still accepted after all of them."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing import (
    LONG_RUN,
    NOW,
    Target,
    envelope_problem,
    examples,
    report,
    seed_predictions,
    target,
)
from mlslo.client import arrow_bytes

pytestmark = pytest.mark.fuzz

EXAMPLES = examples(bounded=40)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG_RUN,
    database=None,
    suppress_health_check=list(HealthCheck),
)

FIELDS = {
    "predictions": [
        "id",
        "ts",
        "model",
        "model_version",
        "status",
        "latency_ms",
        "event_ts",
        "prediction",
        "score",
        "label",
        "group",
        "region",
    ],
    "labels": ["id", "ts", "label"],
    "outcomes": ["ts", "total", "ok"],
}
JSON_TYPES = ["application/json"]
NDJSON_TYPES = ["application/x-ndjson", "application/ndjson", "application/jsonl"]
CSV_TYPES = ["text/csv", "text/csv; charset=utf-8"]
PARQUET_TYPES = ["application/vnd.apache.parquet", "application/x-parquet"]
ARROW_TYPES = ["application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.file"]
EVERY_TYPE = JSON_TYPES + NDJSON_TYPES + CSV_TYPES + PARQUET_TYPES + ARROW_TYPES
WRONG_TYPES = ["", "text/plain", "application/xml", "application/json; charset=utf-16", "*/*"]


# --- values -------------------------------------------------------------------------------


def _stamp(delta: timedelta) -> str:
    return (NOW + delta).isoformat().replace("+00:00", "Z")


good_stamps = st.integers(min_value=1, max_value=3600 * 24).map(
    lambda s: _stamp(-timedelta(seconds=s))
)
hostile_stamps = st.sampled_from(
    [
        "0001-01-01T00:00:00Z",
        "1900-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "+275760-09-13T00:00:00Z",
        "2262-04-11T23:47:16.854775808Z",
        "2026-02-30T00:00:00Z",
        "2026-11-21T11:00:00+14:00",
        "2026-11-21T11:00:00-12:00",
        "2026-11-21 11:00",
        "2026-11-21",
        "11:00",
        "T",
        _stamp(timedelta(minutes=4)),
        _stamp(timedelta(days=400)),
        _stamp(-timedelta(days=36)),
    ]
)
numbers_as_text = st.sampled_from(
    ["1", "0", "-1", "1e309", "-1e309", "NaN", "inf", "0x10", "1_000", " 1 ", "1,5", "٣"]
)
huge_numbers = st.sampled_from(
    [
        2**31,
        2**53 + 1,
        2**63 - 1,
        2**63,
        -(2**63) - 1,
        2**64,
        10**40,
        -(10**40),
        1e308,
        -1e308,
        5e-324,
        1.7e9,
        1.7e12,
        1.7e18,
        math.nan,
        math.inf,
        -math.inf,
    ]
)
odd_text = st.one_of(
    st.sampled_from(["", " ", "\x00", "null", "None", "true", "ok ", "OK", "\u202eko", "é" * 300]),
    st.text(max_size=20),
)


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    huge_numbers,
    numbers_as_text,
    odd_text,
    hostile_stamps,
    st.integers(min_value=-10, max_value=10),
    st.floats(),
    st.sampled_from([[], [1, 2], {}, {"x": [1]}]),
    st.integers(min_value=1, max_value=200).map(_nested),
)


def good_value(field: str) -> st.SearchStrategy[Any]:
    if field in ("ts", "event_ts"):
        return good_stamps
    if field == "id":
        return st.text(alphabet="abcdef0123456789", min_size=1, max_size=8).map("f-{}".format)
    if field == "status":
        return st.sampled_from(["ok", "error"])
    if field == "latency_ms":
        return st.floats(min_value=0, max_value=5000)
    if field in ("prediction", "label"):
        return st.sampled_from([0, 1])
    if field == "score":
        return st.floats(min_value=0, max_value=1)
    if field in ("total", "ok"):
        return st.integers(min_value=0, max_value=50)
    return st.sampled_from(["a", "b", "eu", "v1"])


def field_value(field: str) -> st.SearchStrategy[Any]:
    """Mostly good values, so that some batches pass and the store changes between refusals."""
    return st.one_of(good_value(field), good_value(field), hostile_values)


names = st.one_of(
    st.sampled_from(sorted({f for fields in FIELDS.values() for f in fields})),
    st.sampled_from(["attributes", "", " ", "id ", "ID", "ts\x00", "a.b", '"', "é"]),
    st.text(max_size=10),
)


@st.composite
def records(draw: st.DrawFn, kind: str, clean: bool) -> list[dict[str, Any]]:
    """Records of ``kind``: a well-formed batch, or one with fields left out, extra fields
    and hostile values."""
    rows = []
    if clean:
        for _ in range(draw(st.integers(min_value=1, max_value=5))):
            rows.append({field: draw(good_value(field)) for field in FIELDS[kind]})
        return rows
    fields = [f for f in FIELDS[kind] if draw(st.integers(0, 3)) > 0]
    extra = draw(st.lists(names, max_size=2))
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        row = {field: draw(field_value(field)) for field in fields}
        for name in extra:
            row[name] = draw(hostile_values)
        if kind == "predictions" and draw(st.integers(0, 5)) == 0:
            row["attributes"] = draw(
                st.one_of(
                    st.dictionaries(names, hostile_values, max_size=3),
                    hostile_values,
                )
            )
        rows.append(row)
    return rows


# --- text bodies ----------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=True, ensure_ascii=False)


@st.composite
def json_bodies(draw: st.DrawFn, kind: str, clean: bool) -> tuple[bytes, str]:
    rows = draw(records(kind, clean))
    shape = "array" if clean else draw(st.sampled_from(["array", "object", "wrapped", "scalar"]))
    document: Any = {
        "array": rows,
        "object": rows[0],
        "wrapped": {"records": rows},
        "scalar": draw(hostile_values),
    }[shape]
    encoding = "utf-8" if clean else draw(st.sampled_from(["utf-8", "utf-16", "latin-1"]))
    return _json(document).encode(encoding, errors="replace"), draw(st.sampled_from(JSON_TYPES))


@st.composite
def ndjson_bodies(draw: st.DrawFn, kind: str, clean: bool) -> tuple[bytes, str]:
    lines = [_json(row) for row in draw(records(kind, clean))]
    for _ in range(0 if clean else draw(st.integers(0, 2))):
        junk = draw(st.sampled_from(["", "null", "[]", "1", '"x"', "{", "}{", "\x00", "[{}]"]))
        lines.insert(draw(st.integers(0, len(lines))), junk)
    separator = draw(st.sampled_from(["\n", "\r\n", "\n\n"]))
    return separator.join(lines).encode(), draw(st.sampled_from(NDJSON_TYPES))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _json(value)


@st.composite
def csv_bodies(draw: st.DrawFn, kind: str, clean: bool) -> tuple[bytes, str]:
    rows = draw(records(kind, clean))
    header = list(dict.fromkeys(k for row in rows for k in row if k != "attributes"))
    if header and not clean and draw(st.integers(0, 3)) == 0:
        header.append(draw(st.sampled_from(header)))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(header)
    for row in rows:
        cells = [_cell(row.get(name)) for name in header]
        ragged = 0 if clean or draw(st.integers(0, 3)) else draw(st.sampled_from([-1, 1]))
        cells = cells[:ragged] if ragged < 0 else cells + ["extra"] * ragged
        writer.writerow(cells)
    return out.getvalue().encode("utf-8", errors="replace"), draw(st.sampled_from(CSV_TYPES))


# --- columnar bodies ------------------------------------------------------------------------

INT64 = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2**62, -(2**62), 2**63 - 1, -(2**63)]),
)
NOW_SECONDS = int(NOW.timestamp())


def column_values(kind: pa.DataType, field: str, rows: int) -> st.SearchStrategy[list[Any]]:
    """``rows`` values a pyarrow array of ``kind`` takes: extremes, nulls, and good ones."""
    if pa.types.is_timestamp(kind):
        scale = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[kind.unit]
        near = st.integers(NOW_SECONDS - 86_400, NOW_SECONDS).map(lambda s: s * scale)
        element: st.SearchStrategy[Any] = st.one_of(near, near, INT64, st.none())
    elif pa.types.is_date32(kind):
        element = st.one_of(st.integers(-(2**31), 2**31 - 1), st.none())
    elif pa.types.is_unsigned_integer(kind):
        top = 2**kind.bit_width - 1
        element = st.one_of(st.integers(0, top), st.sampled_from([0, 1, top]), st.none())
    elif pa.types.is_integer(kind):
        low, high = -(2 ** (kind.bit_width - 1)), 2 ** (kind.bit_width - 1) - 1
        element = st.one_of(st.integers(low, high), st.sampled_from([0, 1, low, high]), st.none())
    elif pa.types.is_floating(kind):
        element = st.one_of(st.floats(allow_subnormal=True), st.sampled_from([0.0, 1.0]))
    elif pa.types.is_boolean(kind):
        element = st.one_of(st.booleans(), st.none())
    elif pa.types.is_decimal(kind):
        element = st.one_of(
            st.decimals(min_value=-(10**10), max_value=10**10, places=2, allow_nan=False),
            st.none(),
        ).map(lambda d: None if d is None else Decimal(d).quantize(Decimal("0.01")))
    elif pa.types.is_null(kind):
        element = st.none()
    elif pa.types.is_list(kind):
        element = st.one_of(st.lists(st.integers(-5, 5), max_size=3), st.none())
    elif pa.types.is_struct(kind):
        element = st.one_of(st.fixed_dictionaries({"a": st.integers(-5, 5)}), st.none())
    elif pa.types.is_binary(kind):
        element = st.one_of(st.binary(max_size=8), st.none())
    else:
        element = st.one_of(good_value(field).map(_cell), odd_text, hostile_stamps, st.none())
    return st.lists(element, min_size=rows, max_size=rows)


ARROW_KINDS = st.sampled_from(
    [
        pa.string(),
        pa.large_string(),
        pa.dictionary(pa.int32(), pa.string()),
        pa.int64(),
        pa.int8(),
        pa.uint64(),
        pa.float64(),
        pa.float32(),
        pa.bool_(),
        pa.timestamp("s", tz="UTC"),
        pa.timestamp("ms"),
        pa.timestamp("us", tz="UTC"),
        pa.timestamp("ns", tz="UTC"),
        pa.timestamp("us", tz="America/New_York"),
        pa.date32(),
        pa.decimal128(12, 2),
        pa.null(),
        pa.list_(pa.int64()),
        pa.struct([("a", pa.int64())]),
        pa.binary(),
    ]
)


@st.composite
def tables(draw: st.DrawFn, kind: str, clean: bool) -> pa.Table:
    rows = draw(st.integers(min_value=1, max_value=5))
    if clean:
        return pa.table(
            {
                name: pa.array(
                    [draw(good_value(name)) for _ in range(rows)],
                    None if name in ("ts", "event_ts") else draw(_natural_type(name)),
                )
                for name in FIELDS[kind]
            }
        )
    chosen = [f for f in FIELDS[kind] if draw(st.integers(0, 4)) > 0]
    chosen += draw(st.lists(names, max_size=2))
    if chosen and draw(st.integers(0, 5)) == 0:
        chosen.append(draw(st.sampled_from(chosen)))
    arrays, column_names = [], []
    for name in chosen:
        arrow_type = draw(st.one_of(_natural_type(name), _natural_type(name), ARROW_KINDS))
        values = draw(column_values(arrow_type, name, rows))
        if pa.types.is_dictionary(arrow_type):
            array = pa.array(values, pa.string()).dictionary_encode()
        else:
            array = pa.array(values, arrow_type)
        arrays.append(array)
        column_names.append(name)
    if not arrays:
        return pa.table({"x": pa.array([None] * rows, pa.null())})
    return pa.Table.from_arrays(arrays, names=column_names)


def _natural_type(name: str) -> st.SearchStrategy[pa.DataType]:
    """The type a well-behaved writer uses for a field (so that many tables pass)."""
    if name in ("ts", "event_ts"):
        return st.sampled_from([pa.timestamp("us", tz="UTC"), pa.timestamp("ms", tz="UTC")])
    if name in ("latency_ms", "score"):
        return st.just(pa.float64())
    if name in ("prediction", "label", "total", "ok"):
        return st.just(pa.int64())
    return st.just(pa.string())


@st.composite
def columnar_bodies(draw: st.DrawFn, kind: str, clean: bool) -> tuple[bytes, str]:
    table = draw(tables(kind, clean))
    content_type = draw(st.sampled_from(PARQUET_TYPES + ARROW_TYPES))
    if "parquet" in content_type:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        body = sink.getvalue()
    elif content_type.endswith("stream"):
        body = arrow_bytes(table)
    else:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        body = sink.getvalue().to_pybytes()
    return body, content_type


# --- bodies as sent -------------------------------------------------------------------------


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """(kind, body, content type): a body of any format, maybe truncated, maybe emptied, maybe
    labelled with the wrong type."""
    kind = draw(st.sampled_from(sorted(FIELDS)))
    clean = draw(st.integers(0, 2)) == 0
    formats = [json_bodies, ndjson_bodies, csv_bodies, columnar_bodies]
    body, content_type = draw(st.one_of([encode(kind, clean) for encode in formats]))
    damage = "none" if clean else draw(st.sampled_from(["none", "truncate", "empty", "relabel"]))
    if damage == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif damage == "empty":
        body = draw(st.sampled_from([b"", b" ", b"\n\n", b"\xef\xbb\xbf"]))
    elif damage == "relabel":
        content_type = draw(st.sampled_from(EVERY_TYPE + WRONG_TYPES))
    return kind, body, content_type


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Target]:
    with target(tmp_path_factory.mktemp("body-fuzz"), seed=seed_predictions()) as live:
        yield live
        report(request.config, f"body fuzz: {live.summary()}")


def _send(service: Target, kind: str, body: bytes, content_type: str) -> None:
    before = service.fingerprint()
    counts = service.service.store.counts()
    headers = {"Content-Type": content_type} if content_type else {}
    with service.client() as http:
        response = http.post(f"/api/v1/{kind}", content=body, headers=headers)
    service.sent[response.status_code] += 1
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        problem = envelope_problem(response.headers.get("content-type", ""), response.text)
        assert problem is None, (response.status_code, problem, response.text)
        assert service.fingerprint() == before, f"a refused {kind} batch changed the store"
        return
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) == {"accepted", "duplicates", "folded"}
    after = service.service.store.counts()
    assert after[kind] - counts[kind] == result["accepted"]


@given(request=requests())
@FUZZ
def test_hostile_bodies_never_fault_and_refusals_write_nothing(
    service: Target, request: tuple[str, bytes, str]
) -> None:
    _send(service, *request)


@pytest.mark.parametrize("content_type", EVERY_TYPE)
def test_a_good_batch_is_accepted_after_the_fuzz(service: Target, content_type: str) -> None:
    """The service still takes a well-formed batch in every format once the fuzz is done."""
    slug = EVERY_TYPE.index(content_type)
    table = pa.table(
        {
            "id": [f"after-{slug}-{i}" for i in range(3)],
            "ts": pa.array(
                [NOW - timedelta(minutes=i + 1) for i in range(3)], pa.timestamp("us", "UTC")
            ),
            "status": ["ok", "error", "ok"],
            "latency_ms": [10.0, 20.0, 30.0],
        }
    )
    if content_type in JSON_TYPES + NDJSON_TYPES + CSV_TYPES:
        rows = [{**row, "ts": row["ts"].isoformat()} for row in table.to_pylist()]
        if content_type in JSON_TYPES:
            body = json.dumps(rows).encode()
        elif content_type in NDJSON_TYPES:
            body = "\n".join(json.dumps(row) for row in rows).encode()
        else:
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
            body = out.getvalue().encode()
    elif content_type in PARQUET_TYPES:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        body = sink.getvalue()
    elif content_type.endswith("stream"):
        body = arrow_bytes(table)
    else:
        file_sink = pa.BufferOutputStream()
        with pa.ipc.new_file(file_sink, table.schema) as writer:
            writer.write_table(table)
        body = file_sink.getvalue().to_pybytes()
    before = service.service.store.counts()["predictions"]
    with service.client() as http:
        response = http.post(
            "/api/v1/predictions", content=body, headers={"Content-Type": content_type}
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3, "duplicates": 0, "folded": 0}
    assert service.service.store.counts()["predictions"] == before + 3
