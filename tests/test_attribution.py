"""Budget attribution (``mlslo explain``, ``GET /api/v1/slos/{name}/attribution``, the SLO
page's panel) against independent oracles on generated data.

Occurrence SLIs: each slice's events, bad events, share, allowed and excess against a pandas
groupby. Aggregate SLIs, leave-one-slice-out: F1 and MAE against scikit-learn, the TPR gap
against Fairlearn, each on the records without the slice. Time: a planted incident comes out
as one period with its bad events. The spec's ``attribution`` columns, the scan and the
store's rebuild; the CLI's and the API's errors; the panel in Chromium.
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
from fairlearn.metrics import MetricFrame, true_positive_rate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, mean_absolute_error

from mlslo.api import explain_files
from mlslo.client import arrow_bytes
from mlslo.errors import SpecError, UsageError
from mlslo.measure.attribution import attribute
from mlslo.render.attribution import attribution_json
from mlslo.scan.files import Sources, scan_files
from mlslo.server.store import Store
from mlslo.server.store.rollups import rollup_fingerprint, store_scan
from mlslo.spec import parse_spec
from mlslo.stats.rollup import Rollup

AT = datetime(2026, 11, 21, tzinfo=UTC)
AT_TEXT = "2026-11-21T00:00:00Z"
STREAM = {"Content-Type": "application/vnd.apache.arrow.stream"}
SPEC = """
service: shop
attribution: [model_version, region]
slos:
  - name: uptime
    dimension: availability
    objective: {target: 0.99}
  - name: fast
    dimension: latency
    sli: {latency_threshold: 200ms}
    objective: {target: 0.95}
  - name: lag-p95
    dimension: freshness
    sli: {percentile: 95}
    objective: {target: 10m}
  - name: f1
    dimension: accuracy
    sli: {metric: f1}
    objective: {target: 0.9}
  - name: tpr-gap
    dimension: fairness
    sli: {metric: true_positive_rate_difference, attribute: group}
    objective: {target: 0.05}
"""
MAE_SPEC = """
service: prices
attribution: [region]
slos:
  - name: mae
    dimension: accuracy
    sli: {metric: mae}
    objective: {target: 3}
"""


def records(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    """A log over the 6 days before ``AT``: region ``ap`` fails more often, ``v2`` is less
    accurate and less fair; some records carry no region."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["eu", "us", "ap"], n).astype(object)
    region[rng.random(n) < 0.04] = None
    version = rng.choice(["v1", "v2", "v3"], n, p=[0.5, 0.3, 0.2])
    failing = np.where(region == "ap", 0.08, 0.004)
    truth = (rng.random(n) < 0.4).astype(np.int64)
    group = rng.choice(["A", "B"], n)
    right = np.where(version == "v2", np.where(group == "B", 0.6, 0.85), 0.93)
    offsets = rng.uniform(60, 6 * 86400, n)
    ts = [AT - timedelta(seconds=float(s)) for s in offsets]
    latency = rng.lognormal(4.3, 0.6, n) * np.where(version == "v3", 1.8, 1.0)
    return pd.DataFrame(
        {
            "id": [f"p{seed}-{i}" for i in range(n)],
            "ts": pd.to_datetime(ts, utc=True),
            "model_version": version,
            "region": region,
            "group": group,
            "status": np.where(rng.random(n) < failing, "error", "ok"),
            "latency_ms": np.round(latency, 3),
            "event_ts": pd.to_datetime(ts, utc=True)
            - pd.to_timedelta(rng.exponential(120, n), "s"),
            "prediction": np.where(rng.random(n) < right, truth, 1 - truth),
            "label": truth,
        }
    )


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    frame = records()
    path = tmp_path_factory.mktemp("attribution") / "log.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return frame, path


def explain(spec_text: str, path: Path, slo: str, by: list[str], **options: Any) -> dict:
    spec = parse_spec(textwrap.dedent(spec_text))
    return attribution_json(explain_files(spec, Sources(str(path)), AT, slo, by, **options))


def slice_of(frame: pd.DataFrame, by: list[str], values: dict[str, Any]) -> pd.Series:
    """The rows of one slice (None: rows without the attribute)."""
    mask = pd.Series(True, index=frame.index)
    for column in by:
        value = values[column]
        mask &= frame[column].isna() if value is None else frame[column] == value
    return mask


def close(expected: float, rel: float = 1e-9) -> Any:
    return pytest.approx(expected, rel=rel, abs=1e-12)


# --- occurrence SLIs against a pandas groupby ---------------------------------------------------


@pytest.mark.parametrize(
    ("slo", "target", "is_bad"),
    [
        ("uptime", 0.99, lambda f: f.status == "error"),
        ("fast", 0.95, lambda f: f.latency_ms > 200),
    ],
)
def test_occurrence_slices_match_a_pandas_groupby(log, slo, target, is_bad):
    frame, path = log
    by = ["model_version", "region"]
    document = explain(SPEC, path, slo, by)
    frame = frame.assign(bad=is_bad(frame).astype(int), n=1)
    grouped = frame.groupby(by, dropna=False)[["bad", "n"]].sum().reset_index()
    total_bad = frame.bad.sum()
    assert document["attribution"] == "occurrences"
    assert len(document["slices"]) == len(grouped)
    for row in document["slices"]:
        mine = frame[slice_of(frame, by, row["values"])]
        bad, n = int(mine.bad.sum()), len(mine)
        assert (row["n"], row["bad"]) == (n, bad), row["label"]
        assert row["share"] == close(bad / total_bad)
        assert row["allowed"] == close((1 - target) * n)
        assert row["excess"] == close(bad - (1 - target) * n)
        assert row["spent"] == close(bad / ((1 - target) * len(frame)))
        assert row["value"] == close((n - bad) / n)
    excesses = [row["excess"] for row in document["slices"]]
    assert excesses == sorted(excesses, reverse=True)
    assert sum(row["spent"] for row in document["slices"]) == close(document["consumed"])
    missing = [r for r in document["slices"] if r["values"]["region"] is None]
    assert missing and all("region=(none)" in r["label"] for r in missing)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans(), st.integers(1, 2000)),
        min_size=1,
        max_size=60,
    )
)
def test_any_log_splits_its_bad_events_exactly(tmp_path, rows):
    """Whatever the log, the slices' bad events add up to the window's and each equals the
    groupby's; the worst excess comes first."""
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime([AT - timedelta(minutes=m) for _, _, m in rows], utc=True),
            "region": [r for r, _, _ in rows],
            "status": ["ok" if ok else "error" for _, ok, _ in rows],
        }
    )
    path = tmp_path / "h.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    spec = """
    service: h
    attribution: [region]
    slos:
      - {name: up, dimension: availability, objective: {target: 0.9}, window: 2d}
    """
    document = explain(spec, path, "up", ["region"])
    expected = (frame.status == "error").groupby(frame.region).agg(["sum", "size"])
    seen = {r["values"]["region"]: (r["bad"], r["n"]) for r in document["slices"]}
    assert seen == {k: (float(v["sum"]), int(v["size"])) for k, v in expected.iterrows()}
    assert sum(r["bad"] for r in document["slices"]) == (frame.status == "error").sum()
    excess = [r["excess"] for r in document["slices"]]
    assert excess == sorted(excess, reverse=True)


# --- aggregate SLIs: leave one slice out ---------------------------------------------------------


def _check_leave_one_out(document, frame, by, metric, consumed, count=len):
    everything = metric(frame)
    assert document["sli"]["value"] == close(everything)
    assert document["attribution"] == "aggregate"
    for row in document["slices"]:
        mask = slice_of(frame, by, row["values"])
        without = metric(frame[~mask])
        assert row["n"] == count(frame[mask]), row["label"]
        assert row["value"] == close(metric(frame[mask])), row["label"]
        assert row["without"] == close(without), row["label"]
        assert row["change"] == close(everything - without, rel=1e-6), row["label"]
        assert row["spent"] == close(consumed(everything) - consumed(without), rel=1e-6)
        assert row["ci"][0] <= row["value"] <= row["ci"][1]
    spent = [row["spent"] for row in document["slices"]]
    assert spent == sorted(spent, reverse=True)


def test_leave_one_slice_out_f1_matches_scikit_learn(log):
    frame, path = log
    document = explain(SPEC, path, "f1", ["model_version"])

    def f1(part: pd.DataFrame) -> float:
        return float(f1_score(part.label, part.prediction))

    _check_leave_one_out(document, frame, ["model_version"], f1, lambda v: (1 - v) / 0.1)
    assert document["slices"][0]["values"] == {"model_version": "v2"}


def test_leave_one_slice_out_tpr_gap_matches_fairlearn(log):
    frame, path = log
    by = ["model_version", "region"]
    document = explain(SPEC, path, "tpr-gap", by)

    def gap(part: pd.DataFrame) -> float:
        rates = MetricFrame(
            metrics=true_positive_rate,
            y_true=part.label,
            y_pred=part.prediction,
            sensitive_features=part.group,
        )
        return float(rates.difference(method="between_groups"))

    _check_leave_one_out(document, frame, by, gap, lambda v: v / 0.05)
    assert document["slices"][0]["values"]["model_version"] == "v2"


def test_leave_one_slice_out_mae_matches_scikit_learn(tmp_path):
    rng = np.random.default_rng(11)
    n = 1500
    region = rng.choice(["north", "south", "west"], n)
    truth = rng.uniform(10, 100, n)
    noise = rng.normal(0, np.where(region == "west", 8.0, 2.0))
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(
                [AT - timedelta(seconds=float(s)) for s in rng.uniform(60, 86400 * 3, n)],
                utc=True,
            ),
            "region": region,
            "prediction": np.round(truth + noise, 4),
            "label": np.round(truth, 4),
        }
    )
    path = tmp_path / "prices.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    document = explain(MAE_SPEC, path, "mae", ["region"])

    def mae(part: pd.DataFrame) -> float:
        return float(mean_absolute_error(part.label, part.prediction))

    _check_leave_one_out(document, frame, ["region"], mae, lambda v: v / 3)
    assert document["slices"][0]["values"] == {"region": "west"}


def test_a_percentile_slo_attributes_its_slices_and_its_periods(log):
    """The leave-one-out values are checked against numpy in test_attribution_percentiles."""
    frame, path = log
    document = explain(SPEC, path, "lag-p95", ["region"], step=timedelta(days=1))
    assert document["slices_reason"] is None
    assert sum(row["n"] for row in document["slices"]) == len(frame)
    assert document["step"] == "1d"


# --- time: the incident as one period -----------------------------------------------------------

INCIDENT_SPEC = """
service: incident
attribution: [region]
bucket: 1m
slos:
  - {name: up, dimension: availability, objective: {target: 0.99}, window: 1d}
"""


def incident() -> pd.DataFrame:
    """Ten requests a minute for a day, every other one failing from 10:00 to 12:59."""
    start = AT - timedelta(days=1)
    minutes = pd.date_range(start, AT, freq="1min", inclusive="left", tz="UTC")
    ts = np.repeat(minutes.values, 10)
    stamps = pd.to_datetime(ts, utc=True) + pd.to_timedelta(np.tile(np.arange(10) * 5, 1440), "s")
    hour = stamps.hour
    within = (hour >= 10) & (hour < 13)
    failing = within & (np.tile(np.arange(10), 1440) % 2 == 0)
    return pd.DataFrame(
        {
            "ts": stamps,
            "region": np.where(within, "eu", np.tile(["eu", "us"], 7200)),
            "status": np.where(failing, "error", "ok"),
        }
    )


@pytest.mark.parametrize("step", [timedelta(minutes=1), timedelta(hours=1), None])
def test_a_planted_incident_is_one_period_with_its_bad_events(tmp_path, step):
    frame = incident()
    path = tmp_path / "incident.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    document = explain(INCIDENT_SPEC, path, "up", ["region"], step=step)
    bad = int((frame.status == "error").sum())
    assert document["periods"] == [
        {
            "start": "2026-11-20T10:00:00Z",
            "end": "2026-11-20T13:00:00Z",
            "n": 1800,
            "burn_rate": close(0.5 / 0.01),
            "peak_burn_rate": close(0.5 / 0.01),
            "bad": bad,
            "share": 1.0,
        }
    ]
    assert document["slices"][0]["values"] == {"region": "eu"}
    assert document["slices"][0]["share"] == 1.0


def test_hour_slices_match_a_groupby_of_the_hour(tmp_path):
    frame = incident()
    path = tmp_path / "incident.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    document = explain(INCIDENT_SPEC, path, "up", ["region", "hour"])
    frame = frame.assign(hour=frame.ts.dt.floor("h"), bad=(frame.status == "error").astype(int))
    grouped = frame.groupby(["region", "hour"]).bad.agg(["sum", "size"])
    seen = {
        (r["values"]["region"], pd.Timestamp(r["values"]["hour"])): (r["bad"], r["n"])
        for r in document["slices"]
    }
    assert seen == {k: (float(v["sum"]), int(v["size"])) for k, v in grouped.iterrows()}
    assert document["slices"][0]["values"]["hour"] in {
        "2026-11-20T10:00:00Z",
        "2026-11-20T11:00:00Z",
        "2026-11-20T12:00:00Z",
    }


def test_timeslices_leave_one_slice_out_matches_hourly_verdicts(tmp_path):
    """With timeslices the SLI is the share of good hours: each region is left out of every
    hour and the hours judged again (pandas oracle); the periods are the bad hours."""
    frame = incident()
    path = tmp_path / "incident.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    spec = INCIDENT_SPEC.replace(
        "objective: {target: 0.99}, window: 1d}",
        "budgeting: timeslices, slice: 1h, objective: {target: 0.9, timeslice_target: 0.95},"
        " window: 1d}",
    )
    document = explain(spec, path, "up", ["region"])

    def good_hours(part: pd.DataFrame) -> float:
        hourly = (part.status == "ok").groupby(part.ts.dt.floor("h")).mean()
        return float((hourly >= 0.95).sum() / len(hourly))

    def consumed(value: float) -> float:
        return (1 - value) / (1 - 0.9)

    def hours(part: pd.DataFrame) -> int:
        return part.ts.dt.floor("h").nunique()

    _check_leave_one_out(document, frame, ["region"], good_hours, consumed, hours)
    assert document["sli"]["value"] == close(21 / 24)
    assert document["consumed"] == close(consumed(21 / 24))
    assert document["step"] == "1h"
    assert [(p["start"], p["end"]) for p in document["periods"]] == [
        ("2026-11-20T10:00:00Z", "2026-11-20T13:00:00Z")
    ]


# --- the spec, the scan, the store ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("listed", "words"),
    [
        ("[region, region]", "listed twice"),
        ("[hour]", "always available"),
        ("[ts]", "one slice per record"),
        ("[id]", "one slice per record"),
    ],
)
def test_attribution_lists_attribute_columns_only(listed, words):
    text = textwrap.dedent(INCIDENT_SPEC).replace("[region]", listed)
    with pytest.raises(SpecError, match=words) as raised:
        parse_spec(text)
    assert "attribution" in str(raised.value)


def test_the_scan_slices_only_when_the_spec_lists_columns(tmp_path):
    path = tmp_path / "incident.parquet"
    pq.write_table(pa.Table.from_pandas(incident(), preserve_index=False), path)
    listed = parse_spec(textwrap.dedent(INCIDENT_SPEC))
    plain = parse_spec(textwrap.dedent(INCIDENT_SPEC).replace("attribution: [region]\n", ""))
    start = AT - timedelta(days=1)
    with_region = scan_files(listed, Sources(str(path)), start=start, end=AT)
    without = scan_files(plain, Sources(str(path)), start=start, end=AT)
    assert with_region.slice_columns == ("region",)
    assert without.slice_columns == ()
    assert without.table.num_rows == 1440
    assert with_region.table.num_rows > without.table.num_rows
    with pytest.raises(UsageError, match="not listed under attribution"):
        explain_files(plain, Sources(str(path)), AT, "up", ["region"])


def test_the_store_fingerprint_changes_with_attribution_and_answers_from_rollups(tmp_path, log):
    """A new attribution column changes what the store's rollups are sliced by (so an old
    store rebuilds); a column the store already slices by needs no rebuild; the answer
    comes from the rollups and equals the one from files."""
    frame, path = log
    spec = parse_spec(textwrap.dedent(SPEC))
    bare = parse_spec(textwrap.dedent(SPEC).replace("attribution: [model_version, region]\n", ""))
    assert rollup_fingerprint(bare, store_scan(bare)) != rollup_fingerprint(spec, store_scan(spec))
    assert "region" not in store_scan(bare).slices
    assert "region" in store_scan(spec).slices
    declared = parse_spec(
        textwrap.dedent(SPEC).replace(
            "attribution: [model_version, region]", "attributes: [region]"
        )
    )
    store = Store.open(tmp_path / "s.duckdb", declared, clock=lambda: AT)
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        store.writer.bulk_load(table.drop_columns(["label"]), _labels(frame))
        assert store.configure(spec) is False
        reading = store.rollups.at(AT, whole=True)
        assert isinstance(reading.rollups, Rollup)
        served = attribute(reading.spec, reading.rollups, AT, "uptime", ["region"])
    finally:
        store.close()
    assert attribution_json(served) == explain(SPEC, path, "uptime", ["region"])
    reopened = Store.open(tmp_path / "s2.duckdb", bare, clock=lambda: AT)
    try:
        assert reopened.configure(spec) is True
    finally:
        reopened.close()


def _labels(frame: pd.DataFrame) -> pa.Table:
    return pa.table(
        {
            "id": frame.id.tolist(),
            "ts": pa.array(list(frame.ts), pa.timestamp("us", "UTC")),
            "label": frame.label.tolist(),
        }
    )


# --- the CLI and the API -------------------------------------------------------------------------


def test_cli_explain_prints_the_worst_slice_first_and_json_is_the_library_document(
    cli, log, write_spec
):
    _, path = log
    spec = write_spec(textwrap.dedent(SPEC))
    common = ["explain", "--spec", str(spec), "--data", str(path), "--at", AT_TEXT]
    run = cli(*common, "--slo", "uptime", "--by", "region,model_version", "--format", "json")
    assert run.exit_code == 0, run.stderr
    document = run.json()
    assert document == explain(SPEC, path, "uptime", ["region", "model_version"])
    worst = document["slices"][0]["label"]
    assert worst.startswith("region=ap")
    table = cli(*common, "--slo", "uptime", "--by", "region,model_version")
    assert table.exit_code == 0, table.stderr
    lines = [line for line in table.stdout.splitlines() if "region=" in line]
    assert worst in lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--slo", "uptime", "--by", "group"], "--by: 'group' is not listed under attribution"),
        (["--slo", "uptime", "--by", "region,region"], "--by: 'region' is named twice"),
        (["--slo", "nope", "--by", "region"], "--slo: there is no SLO named 'nope'"),
        (["--slo", "uptime", "--by", "region", "--step", "1s"], "--step: "),
    ],
)
def test_cli_explain_errors_are_one_line_and_exit_2(cli, log, write_spec, args, words):
    _, path = log
    spec = write_spec(textwrap.dedent(SPEC))
    run = cli("explain", "--spec", str(spec), "--data", str(path), "--at", AT_TEXT, *args)
    assert run.exit_code == 2
    assert run.stdout == ""
    text = run.stderr.strip()
    assert len(text.splitlines()) == 1, text
    assert words in text
    assert "Traceback" not in text


def test_api_attribution_matches_the_cli_and_names_by_in_its_errors(live_server, log):
    frame, path = log
    live = live_server(SPEC, now=AT)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with live.client() as http:
        response = http.post(
            "/api/v1/predictions",
            content=arrow_bytes(table.drop_columns(["label"])),
            headers=STREAM,
        )
        assert response.status_code == 200, response.text
        response = http.post("/api/v1/labels", content=arrow_bytes(_labels(frame)), headers=STREAM)
        assert response.status_code == 200, response.text
        served = http.get("/api/v1/slos/f1/attribution", params={"by": "model_version"})
        unlisted = http.get("/api/v1/slos/f1/attribution", params={"by": "model_version,group"})
        unknown = http.get("/api/v1/slos/nope/attribution", params={"by": "region"})
        bad_step = http.get("/api/v1/slos/f1/attribution", params={"by": "region", "step": "x"})
    assert served.status_code == 200, served.text
    expected = explain(SPEC, path, "f1", ["model_version"])
    document = served.json()
    assert document["slices"] == expected["slices"]
    assert document["sli"] == expected["sli"]
    assert unlisted.status_code == 422
    assert unlisted.json()["errors"][0]["field"] == "by"
    assert "'group' is not listed under attribution" in unlisted.json()["errors"][0]["message"]
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["field"] == "slo"
    assert bad_step.status_code == 422
    assert bad_step.json()["errors"][0]["field"] == "step"


# --- the dashboard's panel in Chromium ----------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.mark.browser
@pytest.mark.system("chromium")
def test_the_slo_page_draws_the_worst_slice_first(live_server, log):
    from playwright.sync_api import sync_playwright

    frame, _ = log
    live = live_server(SPEC, now=AT)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with live.client() as http:
        http.post("/api/v1/predictions", content=arrow_bytes(table), headers=STREAM)
        api = {
            column: http.get("/api/v1/slos/uptime/attribution", params={"by": column}).json()
            for column in ("model_version", "region")
        }
        lag = http.get("/api/v1/slos/lag-p95/attribution", params={"by": "region"}).json()
    reader = live.token("read")
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{live.url}/?token={reader}")
            response = page.goto(f"{live.url}/slo/uptime")
            assert response is not None and response.status == 200
            panel = page.locator("#attribution")
            assert panel.locator("h2").inner_text() == "Where the budget went"
            for column, document in api.items():
                bars = panel.locator(f'figure[data-column="{column}"] rect.bar')
                labels = [bars.nth(i).get_attribute("data-label") for i in range(bars.count())]
                assert labels == [s["label"] for s in document["slices"]][: len(labels)]
                assert labels, column
            worst = panel.locator('figure[data-column="region"] rect.bar').first
            assert worst.get_attribute("data-label") == "region=ap"
            tops = [
                float(
                    panel.locator('figure[data-column="region"] rect.bar').nth(i).get_attribute("y")
                )
                for i in range(2)
            ]
            assert tops[0] < tops[1]
            assert "region=ap" in (
                panel.locator("figure[data-column=region] desc").text_content() or ""
            )
            page.goto(f"{live.url}/slo/lag-p95")
            bars = page.locator("#attribution figure[data-column=region] rect.bar")
            assert bars.count() == len(lag["slices"])
            assert bars.first.get_attribute("data-label") == lag["slices"][0]["label"]
            desc = page.locator("#attribution figure[data-column=region] desc").text_content()
            assert "p95 without it" in (desc or "")
        finally:
            browser.close()
    assert problems == []
