"""The compiled scan's one GROUP BY (every count a bit of a row's code, the percentiles'
histograms grouping sets of the same read) against the plain ibis scan, which keeps one
aggregate per statistic and one query per histogram: the same rollup, statistic by statistic
and bin by bin, on records with missing values, filters, slices with missing attributes,
several percentiles, sums, classes and the value checks. With many groups the fairness SLOs'
statistics are counted per slice in a grouping set of their own and the others without
slices: the same sums per span and group, and the same evaluation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from mlslo.api import evaluate_files
from mlslo.errors import DataError, SpecError
from mlslo.inputs.files import open_table
from mlslo.measure.windows import count_edges, histogram_edges, scan_range
from mlslo.render.documents import evaluation_json
from mlslo.scan import coded as coded_module
from mlslo.scan.coded import MAX_BITS
from mlslo.scan.files import Sources, scan_files
from mlslo.scan.queries import scan
from mlslo.spec import FairnessSLO, Spec, parse_spec
from mlslo.stats.rollup import BUCKET, LAST, SEP, Rollup

AT = datetime(2026, 3, 20, 13, 7, 5, tzinfo=UTC)

BINARY = """service: coded
slos:
  - {name: up, dimension: availability, objective: {target: 0.99}, window: 7d, absent_after: 1h}
  - name: fresh
    dimension: freshness
    sli: {lag_threshold: 10m}
    objective: {target: 0.9}
    window: 7d
  - name: lag-p95
    dimension: freshness
    sli: {percentile: 95}
    objective: {target: 30m}
    window: 7d
  - name: fast-eu
    dimension: latency
    sli: {latency_threshold: 200ms}
    objective: {target: 0.9}
    window: 7d
    filter: {region: eu}
  - name: tail-eu
    dimension: latency
    sli: {percentile: 90}
    objective: {target: 300ms}
    window: 7d
    filter: {region: eu}
  - name: f1
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.8}
    window: 7d
  - {name: acc, dimension: accuracy, sli: {metric: accuracy}, objective: {target: 0.8}, window: 7d}
  - {name: mae, dimension: accuracy, sli: {metric: mae}, objective: {target: 1}, window: 7d}
  - name: est
    dimension: accuracy
    sli: {metric: f1, estimate: cbpe}
    objective: {target: 0.8}
    window: 7d
"""
FAIRNESS = """  - name: tpr-cohort
    dimension: fairness
    sli: {metric: true_positive_rate_difference, attribute: cohort, positive_label: 1}
    objective: {target: 0.3}
    window: 7d
  - name: dpd-cohort-region
    dimension: fairness
    sli: {metric: demographic_parity_difference, attribute: [cohort, region], missing: group}
    objective: {target: 0.3}
    window: 7d
"""
MULTICLASS = """service: coded
slos:
  - name: macro
    dimension: accuracy
    sli: {metric: recall, average: macro, classes: [0, 1, 2]}
    objective: {target: 0.5}
    window: 7d
  - {name: up, dimension: availability, objective: {target: 0.99}, window: 7d}
"""


def records(rows: int, seed: int, classes: int = 2) -> pa.Table:
    """Predictions over the 9 days before ``AT``, with missing labels, predictions, lags,
    latencies, scores and attributes."""
    rng = np.random.default_rng(seed)
    end = np.datetime64(AT.replace(tzinfo=None), "us")
    ts = end - rng.integers(1, 9 * 86_400_000_000, rows).astype("timedelta64[us]")
    lag = np.round(rng.lognormal(np.log(300e6), 1.2, rows)).astype("timedelta64[us]")
    label = rng.integers(0, classes, rows)
    prediction = np.where(rng.random(rows) < 0.7, label, rng.integers(0, classes, rows))

    def holes(values: Any, share: float, kind: Any = None) -> pa.Array:
        return pa.array(values, kind, mask=rng.random(rows) < share)

    return pa.table(
        {
            "ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
            "event_ts": holes(ts - lag, 0.05).cast(pa.timestamp("us", tz="UTC")),
            "latency_ms": holes(rng.lognormal(np.log(80.0), 0.9, rows), 0.05),
            "status": pa.array(np.where(rng.random(rows) < 0.98, "ok", "error")),
            "prediction": holes(prediction, 0.03),
            "label": holes(label, 0.3),
            "score": holes(rng.random(rows), 0.1),
            "cohort": holes([f"c{i:02d}" for i in rng.integers(0, 12, rows)], 0.05, pa.string()),
            "region": holes(rng.choice(["eu", "us", "apac"], rows), 0.05, pa.string()),
        }
    )


def plain(spec: Any, path: str, **reach: Any) -> Rollup:
    """The ibis scan: one aggregate per statistic, one query per histogram."""
    con = ibis.duckdb.connect()
    start, end = scan_range(spec, AT)
    return scan(spec, open_table(con, path), start=start, end=end, **reach)


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(
        (tuple(r.values()) for r in table.to_pylist()),
        key=lambda row: tuple((v is None, str(v)) for v in row),
    )


def assert_same(coded: Rollup, expected: Rollup) -> None:
    assert coded.table.column_names == expected.table.column_names
    got, want = rows(coded.table), rows(expected.table)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(y, float) and isinstance(x, float):
                assert math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-9) or (
                    math.isnan(x) and math.isnan(y)
                )
            else:
                assert x == y
    assert sorted(coded.histograms) == sorted(expected.histograms)
    for name, histogram in expected.histograms.items():
        assert rows(coded.histograms[name]) == rows(histogram), name
    assert coded.histogram_edges == expected.histogram_edges
    assert coded.count_edges == expected.count_edges


def per_group(rollup: Rollup, spec: Spec) -> dict[tuple[Any, ...], float]:
    """Each statistic as its SLO reads it: a fairness SLO's per span and slice values, any
    other's per span (a ``last:`` the largest, the others summed; zero sums left out)."""
    fair = tuple(slo.name + SEP for slo in spec.slos if isinstance(slo, FairnessSLO))
    table = rollup.table.to_pydict()
    out: dict[tuple[Any, ...], float] = {}
    for stat in table:
        if SEP not in stat:
            continue
        latest = stat.split(SEP, 1)[1].startswith(LAST)
        sliced = stat.startswith(fair) and not latest
        for i, value in enumerate(table[stat]):
            key = (stat, table[BUCKET][i], *(table[c][i] for c in rollup.slice_columns if sliced))
            if latest:
                out[key] = max(out.get(key, -math.inf), value)
            else:
                out[key] = out.get(key, 0.0) + value
    return {k: v for k, v in out.items() if v != 0.0}


def assert_equivalent(coded: Rollup, expected: Rollup, spec: Spec) -> None:
    assert coded.table.column_names == expected.table.column_names
    got, want = per_group(coded, spec), per_group(expected, spec)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert math.isclose(got[key], value, rel_tol=1e-12, abs_tol=1e-9), key
    for name, histogram in expected.histograms.items():
        assert rows(coded.histograms[name]) == rows(histogram), name


def cached(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(f.read_text()) for f in folder.rglob("*.json")]


@settings(max_examples=8, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    seed=st.integers(0, 2**32 - 1),
    fairness=st.booleans(),
    edges=st.sampled_from(["none", "both", "counts", "histograms"]),
    step=st.sampled_from([None, timedelta(days=1), timedelta(hours=5)]),
    many=st.booleans(),
)
def test_one_read_gives_what_one_aggregate_per_statistic_gives(
    seed: int,
    fairness: bool,
    edges: str,
    step: timedelta | None,
    many: bool,
    tmp_path_factory: Any,
) -> None:
    folder = tmp_path_factory.mktemp("coded")
    spec = parse_spec(BINARY + (FAIRNESS if fairness else ""))
    path = str(folder / "log.parquet")
    pq.write_table(records(4000, seed), path)
    reach: dict[str, Any] = {}
    if edges in ("both", "histograms"):
        reach["histogram_edges"] = histogram_edges(spec, AT, step)
    if edges in ("both", "counts"):
        reach["count_edges"] = count_edges(spec, AT, step)
    start, end = scan_range(spec, AT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSLO_CACHE_DIR", str(folder / "cache"))
        if many:  # a dozen cohorts count as many groups
            patch.setattr(coded_module, "MANY_GROUPS", 10)
        coded = scan_files(spec, Sources(path), start=start, end=end, **reach)
        (kept,) = cached(folder / "cache")
    split = many and fairness
    assert ("__sliced" in kept["sql"]) == split
    if split:
        assert_equivalent(coded, plain(spec, path, **reach), spec)
        assert kept["names"]["tpr-cohort/tp"] != kept["names"]["f1/tp"]
    else:
        assert_same(coded, plain(spec, path, **reach))
    together = edges in ("none", "both") and (
        edges == "none" or reach["histogram_edges"] == reach["count_edges"]
    )
    assert kept["binned"] == (["lag-p95", "tail-eu"] if together else [])
    assert ("GROUPING SETS" in kept["sql"]) == (together or split)
    # the CBPE calibration keeps its own query
    assert [names for _, names in kept["histograms"]][-1] == ["est"]
    assert len(kept["histograms"]) == (1 if together else 3)


def test_classes_and_sums_read_back_the_same(tmp_path: Path) -> None:
    spec = parse_spec(MULTICLASS)
    path = str(tmp_path / "log.parquet")
    pq.write_table(records(5000, 3, classes=3), path)
    start, end = scan_range(spec, AT)
    coded = scan_files(spec, Sources(path), start=start, end=end)
    assert_same(coded, plain(spec, path))
    assert coded.table["macro/tp.2"].to_numpy().sum() > 0


def test_too_many_conditions_keep_one_aggregate_each(tmp_path: Path, monkeypatch: Any) -> None:
    """Seventeen classes make more conditions than a code holds: the scan then keeps one
    aggregate per statistic, with the same numbers."""
    monkeypatch.setenv("MLSLO_CACHE_DIR", str(tmp_path / "cache"))
    classes = MAX_BITS // 2 + 2
    text = MULTICLASS.replace("classes: [0, 1, 2]", f"classes: {list(range(classes))}")
    spec = parse_spec(text)
    path = str(tmp_path / "log.parquet")
    pq.write_table(records(3000, 5, classes=classes), path)
    start, end = scan_range(spec, AT)
    coded = scan_files(spec, Sources(path), start=start, end=end)
    (kept,) = cached(tmp_path / "cache")
    assert "COUNT_IF" in kept["sql"].upper() and "__code" not in kept["sql"]
    assert_same(coded, plain(spec, path))


def test_a_bad_record_is_still_named_after_the_coded_read(tmp_path: Path) -> None:
    """The failing-check count travels through the code like any other: the scan still
    names the row."""
    spec = parse_spec(BINARY)
    table = records(500, 9)
    status = table["status"].to_pylist()
    status[123] = "maybe"
    table = table.set_column(table.schema.get_field_index("status"), "status", pa.array(status))
    path = str(tmp_path / "log.parquet")
    pq.write_table(table, path)
    start, end = scan_range(spec, AT)
    with pytest.raises(DataError) as caught:
        scan_files(spec, Sources(path), start=start, end=end)
    assert caught.value.row == 124 and "'maybe' is not a status" in str(caught.value)


ATTRIBUTE = """service: names
slos:
  - name: tpr
    dimension: fairness
    sli: {{metric: true_positive_rate_difference, attribute: '{name}', positive_label: 1}}
    objective: {{target: 0.3}}
    window: 7d
  - {{name: up, dimension: availability, objective: {{target: 0.9}}, window: 7d}}
  - name: lag
    dimension: freshness
    sli: {{percentile: 95}}
    objective: {{target: 30m}}
    window: 7d
"""


@pytest.mark.parametrize("name", ['te"am', "my team", "team.name", "ÉQUIPE"])
def test_attribute_columns_of_any_name_read_back_the_same(tmp_path: Path, name: str) -> None:
    table = records(2000, 4)
    table = table.rename_columns([name if c == "cohort" else c for c in table.column_names])
    path = str(tmp_path / "log.parquet")
    pq.write_table(table, path)
    spec = parse_spec(ATTRIBUTE.format(name=name))
    start, end = scan_range(spec, AT)
    coded = scan_files(spec, Sources(path), start=start, end=end)
    assert name in coded.table.column_names
    assert_same(coded, plain(spec, path))


@pytest.mark.parametrize("name", ["bucket", "__code", "__n"])
def test_an_attribute_named_like_the_scans_own_columns_is_refused(name: str) -> None:
    """Such a column would be confused with the scan's working columns (or, for ``bucket``,
    the rollup's time key): refused when the spec is read, at the attribute's line."""
    with pytest.raises(SpecError) as caught:
        parse_spec(ATTRIBUTE.format(name=name))
    assert str(caught.value) == (
        f"spec:5: slos[0].sli.attribute: '{name}' is a name mlslo's scan uses for its own "
        "columns ('bucket' and names starting with '__'); rename that column of the records"
    )


def test_thousands_of_groups_read_back_the_same(tmp_path: Path, monkeypatch: Any) -> None:
    """3,000 cohorts × 3 regions (and missing values of both): far more (span, slice, code)
    groups than rows per group. The fairness statistics get their own grouping set, with the
    same sums per span and group as the plain scan's."""
    monkeypatch.setenv("MLSLO_CACHE_DIR", str(tmp_path / "cache"))
    path = str(tmp_path / "log.parquet")
    pq.write_table(many_cohorts(30_000, 8, 3000), path)
    spec = parse_spec(BINARY + FAIRNESS)
    start, end = scan_range(spec, AT)
    coded = scan_files(spec, Sources(path), start=start, end=end)
    (kept,) = cached(tmp_path / "cache")
    assert "__sliced" in kept["sql"]
    assert len(set(coded.table["cohort"].to_pylist())) > 2900
    assert_equivalent(coded, plain(spec, path), spec)


def many_cohorts(rows: int, seed: int, cohorts: int) -> pa.Table:
    table = records(rows, seed)
    rng = np.random.default_rng(seed)
    values = pa.array(
        [f"k{i:04d}" for i in rng.integers(0, cohorts, rows)], mask=rng.random(rows) < 0.05
    )
    return table.set_column(table.schema.get_field_index("cohort"), "cohort", values)


@pytest.mark.parametrize("cohorts", [300, 3000])
def test_either_grouping_gives_the_same_evaluation(
    tmp_path: Path, monkeypatch: Any, cohorts: int
) -> None:
    """Counted per (span, slice, code) or in a grouping set of their own, the fairness
    statistics give the same evaluation document, series and groups included (``missing:
    group`` too, where the (span, code) rows' missing slice values meet the records')."""
    path = str(tmp_path / "log.parquet")
    pq.write_table(many_cohorts(40_000, 11, cohorts), path)
    spec = parse_spec(BINARY + FAIRNESS)
    documents = []
    for split in (False, True):
        monkeypatch.setenv("MLSLO_CACHE_DIR", str(tmp_path / f"cache-{split}"))
        monkeypatch.setattr(coded_module, "MANY_GROUPS", 1 if split else 10**9)
        evaluation = evaluate_files(spec, Sources(path), AT, series_step=timedelta(days=1))
        (kept,) = cached(tmp_path / f"cache-{split}")
        assert ("__sliced" in kept["sql"]) == split
        documents.append(json.dumps(evaluation_json(evaluation), sort_keys=True, default=str))
    assert documents[0] == documents[1]
    groups = json.loads(documents[1])["slos"]
    assert any(len(json.dumps(s)) > 10_000 for s in groups)  # the groups are listed


def test_few_groups_keep_one_grouping(tmp_path: Path, monkeypatch: Any) -> None:
    """With a dozen cohorts the code's GROUP BY is faster: the sample keeps it."""
    monkeypatch.setenv("MLSLO_CACHE_DIR", str(tmp_path / "cache"))
    path = str(tmp_path / "log.parquet")
    pq.write_table(records(20_000, 2), path)
    spec = parse_spec(BINARY + FAIRNESS)
    start, end = scan_range(spec, AT)
    scan_files(spec, Sources(path), start=start, end=end)
    (kept,) = cached(tmp_path / "cache")
    assert "__sliced" not in kept["sql"] and "__code" in kept["sql"]


def test_a_cached_run_with_thousands_of_groups_imports_no_pandas(tmp_path: Path) -> None:
    """The split read leaves no null for pyarrow to fill (filling one with a Python number
    imports pandas, a quarter of a second in a fresh process)."""
    path = str(tmp_path / "log.parquet")
    pq.write_table(many_cohorts(20_000, 5, 3000), path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(BINARY + FAIRNESS, encoding="utf-8")
    program = (
        "import json, sys\n"
        "from datetime import timedelta\n"
        "from mlslo.api import evaluate_files\n"
        "from mlslo.render.documents import evaluation_json\n"
        "from mlslo.scan.files import Sources\n"
        "from mlslo.spec import load_spec\n"
        f"at = __import__('datetime').datetime.fromisoformat({AT.isoformat()!r})\n"
        f"result = evaluate_files(load_spec({str(spec)!r}), Sources({path!r}), at,\n"
        "                        series_step=timedelta(days=1))\n"
        "print(json.dumps({'document': evaluation_json(result),\n"
        "                  'pandas': 'pandas' in sys.modules}, default=str))\n"
    )
    env = {**os.environ, "MLSLO_CACHE_DIR": str(tmp_path / "cache")}
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(2)
    ]
    (kept,) = cached(tmp_path / "cache")
    assert "__sliced" in kept["sql"]
    assert runs[1]["pandas"] is False
    assert runs[0]["document"] == runs[1]["document"]
