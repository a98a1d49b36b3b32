"""Rolling windows against a brute-force filter of the raw rows.

Every number the engine derives from its per-minute rollups is recomputed here from the raw
rows with numpy: the rows of a window ``[at - w, at)`` are those with
``ceil_to_bucket(at - w) <= ts < at`` (the window starts at the first bucket starting at or
after ``at - w``; the scan reads only ``ts < at``). Rows are planted exactly on, and one
microsecond either side of, every window edge of every evaluation time, and those rows are all
bad, so an off-by-one bucket changes the numbers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlslo.api import evaluate_files
from mlslo.measure.windows import burn_key, burn_windows, standard_burn_windows
from mlslo.render.documents import evaluation_json
from mlslo.scan.files import Sources
from mlslo.spec import Spec, parse_spec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = 60_000_000  # one bucket, in microseconds
HOUR = 60 * MINUTE
DAY = 24 * HOUR

AT0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ATS = {
    "aligned": AT0,
    "half-minute": AT0 + timedelta(seconds=30),
    "odd-micros": AT0 - timedelta(minutes=37) + timedelta(seconds=12, microseconds=345_678),
    "day-boundary": AT0 - timedelta(hours=12),
    "just-before-minute": AT0 - timedelta(hours=6, microseconds=1),
    # an unaligned moment written in another zone (UTC+05:30)
    "other-zone": (AT0 - timedelta(hours=3, seconds=43)).astimezone(
        timezone(timedelta(hours=5, minutes=30))
    ),
}

LATENCY_MS = 250.0
LAG_US = 15 * MINUTE

SPEC = """
service: windows
slos:
  - name: up30
    dimension: availability
    objective: {target: 0.99}
    window: 30d
  - name: up1d
    dimension: availability
    objective: {target: 0.995}
    window: 1d
  - name: fast
    dimension: latency
    sli: {latency_threshold: 250ms}
    objective: {target: 0.95}
    window: 30d
  - name: fresh
    dimension: freshness
    sli: {lag_threshold: 15m}
    objective: {target: 0.9}
    window: 7d
  - name: f1
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.8}
    window: 30d
  - name: f1d
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.8}
    window: 1d
"""
MONTH_KEYS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
WEEK_KEYS = ["1m", "7m", "14m", "28m", "1h24m", "5h36m", "16h48m"]  # 7/30 of them
WINDOWS = {"up30": 30, "up1d": 1, "fast": 30, "fresh": 7, "f1": 30, "f1d": 1}  # days
KINDS = {"up30": "up", "up1d": "up", "fast": "fast", "fresh": "fresh", "f1": "f1", "f1d": "f1"}


# --- time helpers ----------------------------------------------------------------------------


def us(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(micros))


def ceil_bucket(micros: int, size: int = MINUTE) -> int:
    return -(-micros // size) * size


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- the data --------------------------------------------------------------------------------


@dataclass
class Rows:
    """The raw rows as numpy arrays (timestamps in microseconds since the epoch)."""

    ids: np.ndarray
    ts: np.ndarray
    ok: np.ndarray
    latency: np.ndarray  # nan = unknown
    lag: np.ndarray  # int64 micros; -1 = no event time
    prediction: np.ndarray  # -1 = none
    label: np.ndarray  # -1 = pending

    def table(self, *, with_label: bool = True) -> pa.Table:
        ts = pa.array(self.ts, pa.timestamp("us", tz="UTC"))
        has_event = self.lag >= 0
        event = pa.array(
            np.where(has_event, self.ts - np.maximum(self.lag, 0), 0),
            pa.timestamp("us", tz="UTC"),
            mask=~has_event,
        )
        columns: dict[str, Any] = {
            "id": pa.array(self.ids),
            "ts": ts,
            "status": pa.array(np.where(self.ok, "ok", "error")),
            "latency_ms": pa.array(self.latency, pa.float64(), mask=np.isnan(self.latency)),
            "event_ts": event,
            "prediction": pa.array(self.prediction, pa.int64(), mask=self.prediction < 0),
        }
        if with_label:
            columns["label"] = pa.array(self.label, pa.int64(), mask=self.label < 0)
        return pa.table(columns)


def edges() -> list[int]:
    """Every window edge of every evaluation time, in microseconds."""
    spec = parse_spec(SPEC)
    lengths = {timedelta(days=d) for d in WINDOWS.values()}
    for slo in spec.slos:
        lengths.update(standard_burn_windows(slo.window, spec.bucket))
    lengths.update(timedelta(days=d) for d in range(1, 31))  # series steps
    points = []
    for at in ATS.values():
        a = us(at)
        points += [a, a - a % MINUTE]
        points += [a - int(w / timedelta(microseconds=1)) for w in lengths]
    out = set()
    for p in points:
        for q in (p, ceil_bucket(p)):
            out.update((q - 1, q, q + 1))
    return sorted(out)


def make_rows(seed: int = 7) -> Rows:
    rng = np.random.default_rng(seed)
    end = us(AT0) + HOUR
    spread = rng.integers(end - 32 * DAY, end, 6000)
    recent = rng.integers(end - 3 * DAY, end, 5000)
    dense = rng.integers(end - 3 * HOUR, end, 1500)
    planted = np.array(edges(), dtype=np.int64)
    ts = np.concatenate([spread, recent, dense, planted]).astype(np.int64)
    n_random = len(ts) - len(planted)
    bad = np.concatenate([rng.random(n_random) < 0.04, np.ones(len(planted), bool)])
    n = len(ts)
    ok = ~bad
    latency = rng.choice([12.0, 80.0, 249.9, 250.0, 250.1, 400.0], n)
    latency[bad] = 900.0
    latency[rng.random(n) < 0.05] = np.nan
    lag = rng.choice([0, MINUTE, LAG_US - 1, LAG_US, LAG_US + 1, 2 * HOUR], n)
    lag[bad] = 2 * HOUR
    lag[rng.random(n) < 0.05] = -1
    label = rng.integers(0, 2, n)
    prediction = np.where(rng.random(n) < 0.85, label, 1 - label)
    prediction[bad] = 1 - label[bad]
    prediction[rng.random(n) < 0.02] = -1
    label[rng.random(n) < 0.1] = -1
    ids = np.array([f"p{i:06d}" for i in range(n)])
    return Rows(ids, ts, ok, latency, lag.astype(np.int64), prediction, label)


@pytest.fixture(scope="module")
def rows() -> Rows:
    return make_rows()


@pytest.fixture(scope="module")
def files(rows: Rows, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("windows")
    out = {
        "predictions": folder / "predictions.parquet",
        "unlabelled": folder / "unlabelled.parquet",
        "labels": folder / "labels.parquet",
    }
    pq.write_table(rows.table(), out["predictions"])
    pq.write_table(rows.table(with_label=False), out["unlabelled"])
    pq.write_table(label_table(rows), out["labels"])
    return out


def label_table(rows: Rows, seed: int = 11) -> pa.Table:
    """0-3 labels per prediction at distinct, increasing times after it (often after ``at``),
    plus labels exactly at every evaluation time and labels of unknown ids."""
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    ts: list[int] = []
    values: list[int] = []
    for i in range(len(rows.ids)):
        count = rng.choice([0, 1, 2, 3], p=[0.2, 0.5, 0.2, 0.1])
        when = int(rows.ts[i])
        for _ in range(count):
            when += int(rng.integers(1, 6 * HOUR))
            ids.append(str(rows.ids[i]))
            ts.append(when)
            values.append(int(rng.integers(0, 2)))
    for k, at in enumerate(ATS.values()):
        for i in range(k, len(rows.ids), 97):  # a late flip, arriving exactly at `at`
            if rows.ts[i] < us(at):
                ids.append(str(rows.ids[i]))
                ts.append(us(at))
                values.append(1 - max(int(rows.label[i]), 0))
    ids += ["ghost-1", "ghost-2"]
    ts += [us(AT0) - HOUR, us(AT0) - HOUR]
    values += [1, 0]
    return pa.table(
        {
            "id": pa.array(ids),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "label": pa.array(values, pa.int64()),
        }
    )


def joined_labels(rows: Rows, labels: pa.Table, at: datetime) -> np.ndarray:
    """The brute-force join: labels with ts < at; per id the latest wins; -1 if none."""
    ids = labels["id"].to_numpy(zero_copy_only=False)
    ts = labels["ts"].cast(pa.int64()).to_numpy()
    values = labels["label"].to_numpy()
    keep = ts < us(at)
    latest: dict[str, tuple[int, int]] = {}
    for i, t, v in zip(ids[keep], ts[keep], values[keep], strict=True):
        if i not in latest or t > latest[i][0]:
            latest[i] = (int(t), int(v))
    return np.array([latest.get(i, (0, -1))[1] for i in rows.ids], dtype=np.int64)


# --- the oracle ------------------------------------------------------------------------------


@dataclass
class Expected:
    value: float | None
    n: int
    consumed: float | None


def oracle(
    rows: Rows,
    kind: str,
    target: float,
    lo: int,
    hi: int,
    *,
    label: np.ndarray | None = None,
    excluded: tuple[tuple[int, int], ...] = (),
) -> Expected:
    """The SLI, sample count and consumed share of the rows with ``lo <= ts < hi``."""
    inside = (rows.ts >= lo) & (rows.ts < hi)
    for a, b in excluded:
        inside &= ~((rows.ts >= a) & (rows.ts < b))
    if kind == "f1":
        lab = rows.label if label is None else label
        counted = inside & (rows.prediction >= 0) & (lab >= 0)
        p, y = rows.prediction[counted] == 1, lab[counted] == 1
        tp, fp, fn = int((p & y).sum()), int((p & ~y).sum()), int((~p & y).sum())
        n = int(counted.sum())
        if 2 * tp + fp + fn == 0:
            return Expected(None, n, None)
        f1 = 2 * tp / (2 * tp + fp + fn)
        return Expected(f1, n, (1 - f1) / (1 - target))
    if kind == "up":
        valid = inside
        good = valid & rows.ok
    elif kind == "fast":
        valid = inside & ~np.isnan(rows.latency)
        good = valid & (rows.latency <= LATENCY_MS)
    elif kind == "fresh":
        valid = inside & (rows.lag >= 0)
        good = valid & (rows.lag <= LAG_US)
    else:
        raise ValueError(kind)
    n, g = int(valid.sum()), int(good.sum())
    if n == 0:
        return Expected(None, 0, None)
    return Expected(g / n, n, (n - g) / ((1 - target) * n))


def expected_status(e: Expected, low: float = 0.25) -> str:
    if e.n == 0:
        return "no_data"
    if e.consumed is None:
        return "insufficient_data"
    remaining = 1 - e.consumed
    if remaining <= 1e-9:
        return "exhausted"
    return "low" if remaining < low else "healthy"


def approx(value: float | None) -> Any:
    return None if value is None else pytest.approx(value, rel=1e-9, abs=1e-12)


def evaluate_json(
    spec: Spec,
    predictions: Path,
    at: datetime,
    *,
    labels: Path | None = None,
    series: timedelta | None = None,
) -> dict[str, dict[str, Any]]:
    sources = Sources(str(predictions), str(labels) if labels else None)
    result = evaluation_json(evaluate_files(spec, sources, at, series_step=series))
    return {slo["name"]: slo for slo in result["slos"]}


def check_window(slo: dict[str, Any], e: Expected) -> None:
    assert slo["sli"]["n"] == e.n
    assert slo["sli"]["value"] == approx(e.value)
    assert slo["budget"]["consumed"] == approx(e.consumed)
    assert slo["budget"]["status"] == expected_status(e)


def burn_lengths(slo: dict[str, Any], spec: Spec) -> dict[str, int]:
    """The engine's burn windows of this SLO, in microseconds, by JSON key."""
    windows = burn_windows(spec.slo(slo["name"]), spec.bucket)
    return {burn_key(w): int(w / timedelta(microseconds=1)) for w in windows}


# --- the SLO window and every burn window -----------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(files: dict[str, Path]) -> dict[str, dict[str, dict[str, Any]]]:
    spec = parse_spec(SPEC)
    return {
        name: evaluate_json(spec, files["predictions"], at, series=timedelta(days=1))
        for name, at in ATS.items()
    }


@pytest.mark.parametrize("when", list(ATS))
@pytest.mark.parametrize("name", list(WINDOWS))
def test_slo_window_matches_brute_force(rows, evaluated, when, name):
    at = ATS[when]
    spec = parse_spec(SPEC)
    slo = evaluated[when][name]
    start = ceil_bucket(us(at) - WINDOWS[name] * DAY)
    e = oracle(rows, KINDS[name], spec.slo(name).target, start, us(at))
    assert e.n > 0
    check_window(slo, e)
    assert parse_iso(slo["window_start"]) == from_us(start)
    assert parse_iso(slo["window_end"]) == at


@pytest.mark.parametrize("when", list(ATS))
@pytest.mark.parametrize("name", list(WINDOWS))
def test_burn_rates_match_brute_force(rows, evaluated, when, name):
    at = ATS[when]
    spec = parse_spec(SPEC)
    slo = evaluated[when][name]
    lengths = burn_lengths(slo, spec)
    assert list(slo["burn_rates"]) == list(lengths)
    for key, length in lengths.items():
        e = oracle(rows, KINDS[name], spec.slo(name).target, ceil_bucket(us(at) - length), us(at))
        assert slo["burn_rates"][key] == approx(e.consumed), key
        assert slo["burn_rate_samples"][key] == e.n, key


def test_unaligned_at_reads_up_to_at_and_starts_on_the_next_bucket(rows, evaluated):
    """At 12:00:30 the window [at - 1d, at) is the rows from 12:01:00 the day before up to
    12:00:29.999999 today: the partial first minute is left out, the partial last one is in."""
    at = ATS["half-minute"]
    slo = evaluated["half-minute"]["up1d"]
    start = us(at) - DAY
    assert parse_iso(slo["window_start"]) == at - timedelta(days=1) + timedelta(seconds=30)
    # Rows planted in the left-out half minute and in the counted one.
    left_out = (rows.ts >= start) & (rows.ts < start + 30_000_000)
    counted_last = (rows.ts >= us(at) - 30_000_000) & (rows.ts < us(at))
    assert left_out.sum() > 0
    assert counted_last.sum() > 0
    e = oracle(rows, "up", 0.995, start + 30_000_000, us(at))
    assert slo["sli"]["n"] == e.n
    assert slo["sli"]["valid"] == e.n
    assert slo["sli"]["good"] == pytest.approx(e.value * e.n)
    naive = oracle(rows, "up", 0.995, start, us(at))
    assert naive.n != e.n  # the half-minute rows make a difference the assertion can see


@pytest.mark.parametrize("when", list(ATS))
@pytest.mark.parametrize("name", ["up30", "fast", "f1"])
def test_daily_series_matches_brute_force(rows, evaluated, when, name):
    at = ATS[when]
    slo = evaluated[when][name]
    series = slo["series"]
    start = ceil_bucket(us(at) - 30 * DAY)
    end = ceil_bucket(us(at))
    assert len(series) == 30
    for k, point in enumerate(reversed(series)):
        hi = end - k * DAY
        lo = max(start, hi - DAY)
        e = oracle(rows, KINDS[name], 0.5, lo, min(hi, us(at)))
        assert parse_iso(point["start"]) == from_us(lo)
        assert point["n"] == e.n
        assert point["value"] == approx(e.value)
    assert parse_iso(series[0]["start"]) == parse_iso(slo["window_start"])
    for before, after in itertools.pairwise(series):
        assert before["end"] == after["start"]


@pytest.mark.parametrize("when", list(ATS))
def test_last_series_point_ends_at_the_window_end(evaluated, when):
    """The series is aligned to the window end: its last point ends where the window does
    (``at``), not at the next minute boundary after it."""
    slo = evaluated[when]["up30"]
    assert slo["series"][-1]["end"] == slo["window_end"]


# --- empty windows ----------------------------------------------------------------------------


def test_windows_without_rows_have_no_data(files):
    spec = parse_spec(SPEC)
    late = AT0 + timedelta(days=2)  # the data ends at AT0 + 1h
    slos = evaluate_json(spec, files["predictions"], late)
    for name in ("up1d", "f1d"):
        slo = slos[name]
        assert slo["budget"] == {
            "consumed": None,
            "remaining": None,
            "status": "no_data",
            "reason": None,
        }
        assert slo["sli"]["last_event"] is None
        assert slo["sli"]["value"] is None
        assert slo["sli"]["n"] == 0
        assert slo["met"] is None
        assert set(slo["burn_rates"].values()) == {None}
        assert set(slo["burn_rate_samples"].values()) == {0}
        assert slo["time_to_exhaustion"] == {"1h": None, "1d": None}
    # the 30-day windows still hold rows, but their short burn windows do not; with no
    # response for two days uptime is absent: its numbers are reported, not judged
    up30 = slos["up30"]
    assert up30["budget"]["status"] == "no_data"
    assert up30["budget"]["consumed"] is not None and up30["met"] is None
    assert up30["sli"]["last_event"] == "2026-03-10T13:00:00Z"
    assert up30["budget"]["reason"] == "no events since 2026-03-10T13:00:00Z (absent_after 1h)"
    assert up30["burn_rates"]["1h"] is None
    assert up30["burn_rates"]["3d"] is not None
    # accuracy has no absent_after: judged on its rows however old
    assert slos["f1"]["budget"]["status"] not in ("no_data", "insufficient_data")
    assert slos["f1"]["met"] is not None


@pytest.mark.parametrize(
    "at",
    [
        AT0 - timedelta(days=40),  # before the first row
        AT0 + timedelta(days=31, hours=1),  # every window ends after the last row
        AT0 + timedelta(days=31, hours=1, seconds=59),  # the same, unaligned
    ],
)
def test_every_window_without_rows_has_no_data(files, at):
    spec = parse_spec(SPEC)
    slos = evaluate_json(spec, files["predictions"], at, series=timedelta(days=1))
    assert set(slos) == set(WINDOWS)
    for slo in slos.values():
        assert slo["budget"]["status"] == "no_data"
        assert slo["budget"]["consumed"] is None
        assert slo["sli"]["value"] is None
        assert slo["met"] is None
        assert all(p["value"] is None and p["n"] == 0 for p in slo["series"])


# --- labels in a separate table ---------------------------------------------------------------

LABELLED_SPEC = """
service: labels
slos:
  - name: f1
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.8}
    window: 30d
  - name: f1d
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.8}
    window: 1d
"""


@pytest.mark.parametrize("when", list(ATS))
def test_separate_labels_match_the_brute_force_join(rows, files, when):
    at = ATS[when]
    spec = parse_spec(LABELLED_SPEC)
    labels = pq.read_table(files["labels"])
    joined = joined_labels(rows, labels, at)
    slos = evaluate_json(spec, files["unlabelled"], at, labels=files["labels"])
    for name in ("f1", "f1d"):
        slo = slos[name]
        lo = ceil_bucket(us(at) - WINDOWS[name] * DAY)
        e = oracle(rows, "f1", 0.8, lo, us(at), label=joined)
        check_window(slo, e)
        inside = (rows.ts >= lo) & (rows.ts < us(at)) & (rows.prediction >= 0)
        coverage = (inside & (joined >= 0)).sum() / inside.sum()
        assert slo["sli"]["label_coverage"] == approx(coverage)
        for key, length in burn_lengths(slo, spec).items():
            w = oracle(rows, "f1", 0.8, ceil_bucket(us(at) - length), us(at), label=joined)
            assert slo["burn_rates"][key] == approx(w.consumed), key
            assert slo["burn_rate_samples"][key] == w.n, key


def test_the_label_join_is_not_trivial(rows, files):
    """Guards the test above: late labels, duplicates and labels at ``at`` all matter."""
    at = ATS["aligned"]
    labels = pq.read_table(files["labels"])
    joined = joined_labels(rows, labels, at)
    everything = joined_labels(rows, labels, AT0 + timedelta(days=30))
    assert (joined != everything).sum() > 100  # labels after `at` are ignored
    ids = labels["id"].to_numpy(zero_copy_only=False)
    _, counts = np.unique(ids, return_counts=True)
    assert (counts > 1).sum() > 1000  # duplicates per id
    # the first label of an id would give other numbers than the latest
    first: dict[str, int] = {}
    ts = labels["ts"].cast(pa.int64()).to_numpy()
    for i, t, v in zip(ids, ts, labels["label"].to_numpy(), strict=True):
        if t < us(at) and i not in first:
            first[i] = int(v)
    earliest = np.array([first.get(i, -1) for i in rows.ids])
    lo = ceil_bucket(us(at) - 30 * DAY)
    assert oracle(rows, "f1", 0.8, lo, us(at), label=earliest).value != pytest.approx(
        oracle(rows, "f1", 0.8, lo, us(at), label=joined).value
    )


def test_label_exactly_at_evaluation_time_is_ignored(write_records):
    spec = parse_spec(LABELLED_SPEC)
    at = AT0
    predictions = write_records(
        {
            "id": ["a", "b"],
            "ts": [at - timedelta(hours=2), at - timedelta(hours=1)],
            "prediction": [1, 1],
        }
    )
    labels = write_records(
        {
            "id": ["a", "b", "b", "a"],
            "ts": [
                at - timedelta(minutes=30),
                at - timedelta(minutes=20),
                at,  # a flip arriving exactly at `at`: ignored
                at + timedelta(minutes=1),  # after `at`: ignored
            ],
            "label": [1, 1, 0, 0],
        }
    )
    slo = evaluate_json(spec, predictions, at, labels=labels)["f1"]
    assert slo["sli"]["value"] == 1.0
    assert slo["sli"]["n"] == 2
    later = evaluate_json(spec, predictions, at + timedelta(minutes=2), labels=labels)["f1"]
    assert later["sli"]["value"] == 0.0  # both flips now count


# --- label delay ------------------------------------------------------------------------------

DELAYED_SPEC = """
service: delayed
slos:
  - name: f1
    dimension: accuracy
    sli: {metric: f1, positive_label: 1, label_delay: 2h}
    objective: {target: 0.8}
    window: 1d
  - name: up
    dimension: availability
    objective: {target: 0.995}
    window: 1d
"""


@pytest.mark.parametrize("when", list(ATS))
def test_label_delay_shifts_the_window_end_back(rows, files, when):
    at = ATS[when]
    spec = parse_spec(DELAYED_SPEC)
    slos = evaluate_json(spec, files["predictions"], at, series=timedelta(hours=6))
    end = us(at) - 2 * HOUR
    slo = slos["f1"]
    lo, hi = ceil_bucket(end - DAY), ceil_bucket(end)  # buckets starting in [end - 1d, end)
    check_window(slo, oracle(rows, "f1", 0.8, lo, hi))
    assert parse_iso(slo["window_start"]) == from_us(lo)
    assert parse_iso(slo["window_end"]) == from_us(end)
    for key, length in burn_lengths(slo, spec).items():
        w = oracle(rows, "f1", 0.8, ceil_bucket(end - length), hi)
        assert slo["burn_rates"][key] == approx(w.consumed), key
    assert parse_iso(slo["series"][0]["start"]) == from_us(lo)
    # the availability SLO of the same spec is not delayed
    up = slos["up"]
    assert parse_iso(up["window_end"]) == at
    check_window(up, oracle(rows, "up", 0.995, ceil_bucket(us(at) - DAY), us(at)))


def test_label_delay_ignores_the_newest_predictions(write_spec, write_records, cli):
    """Wrong predictions younger than the label delay do not count; older ones do."""
    spec = write_spec("""
        service: delayed
        slos:
          - name: acc
            dimension: accuracy
            sli: {metric: accuracy, label_delay: 1h}
            objective: {target: 0.9}
            window: 1d
    """)
    at = AT0
    ts = [at - timedelta(hours=3)] * 10 + [at - timedelta(minutes=30)] * 10
    data = write_records(
        {
            "id": [f"r{i}" for i in range(20)],
            "ts": ts,
            "prediction": [1] * 20,
            "label": [1] * 10 + [0] * 10,
        }
    )
    at_text = "2026-03-10T12:00:00Z"
    run = cli("evaluate", "--spec", spec, "--data", data, "--at", at_text, "--format", "json")
    assert run.exit_code == 0, run.stderr
    slo = run.json()["slos"][0]
    assert slo["window_end"] == "2026-03-10T11:00:00Z"
    assert slo["window_start"] == "2026-03-09T11:00:00Z"
    assert slo["sli"]["value"] == 1.0
    assert slo["sli"]["n"] == 10
    assert slo["budget"]["status"] == "healthy"


# --- corrections ------------------------------------------------------------------------------

CORRECTED_SPEC = """
service: corrected
corrections:
  - start: "2026-03-10T10:20:30Z"
    end: "2026-03-10T11:05:10Z"
    reason: label outage
  - start: "2026-03-08T00:00:00Z"
    end: "2026-03-08T06:00:00Z"
    reason: planned migration
    slos: [up1d]
slos:
  - name: up30
    dimension: availability
    objective: {target: 0.99}
    window: 30d
  - name: up1d
    dimension: availability
    objective: {target: 0.995}
    window: 3d
  - name: fresh
    dimension: freshness
    sli: {lag_threshold: 15m}
    objective: {target: 0.9}
    window: 7d
  - name: f1
    dimension: accuracy
    sli: {metric: f1, positive_label: 1}
    objective: {target: 0.8}
    window: 30d
"""
# Every bucket a correction touches: 10:20 .. 11:05 inclusive, and the whole 6 hours.
OUTAGE = (
    us(datetime(2026, 3, 10, 10, 20, tzinfo=UTC)),
    us(datetime(2026, 3, 10, 11, 6, tzinfo=UTC)),
)
MIGRATION = (us(datetime(2026, 3, 8, tzinfo=UTC)), us(datetime(2026, 3, 8, 6, tzinfo=UTC)))


@pytest.mark.parametrize("when", ["aligned", "half-minute", "odd-micros"])
def test_corrections_remove_every_bucket_they_touch(rows, files, when):
    at = ATS[when]
    spec = parse_spec(CORRECTED_SPEC)
    slos = evaluate_json(spec, files["predictions"], at)
    days = {"up30": 30, "up1d": 3, "fresh": 7, "f1": 30}
    kinds = {"up30": "up", "up1d": "up", "fresh": "fresh", "f1": "f1"}
    for name, slo in slos.items():
        excluded = (OUTAGE, MIGRATION) if name == "up1d" else (OUTAGE,)
        target = spec.slo(name).target
        lo = ceil_bucket(us(at) - days[name] * DAY)
        e = oracle(rows, kinds[name], target, lo, us(at), excluded=excluded)
        check_window(slo, e)
        uncorrected = oracle(rows, kinds[name], target, lo, us(at))
        assert uncorrected.n > e.n  # the correction removed rows
        for key, length in burn_lengths(slo, spec).items():
            w = oracle(
                rows, kinds[name], target, ceil_bucket(us(at) - length), us(at), excluded=excluded
            )
            assert slo["burn_rates"][key] == approx(w.consumed), (name, key)
            assert slo["burn_rate_samples"][key] == w.n, (name, key)


def test_a_window_inside_a_correction_has_no_data(files):
    spec = parse_spec(CORRECTED_SPEC)
    at = datetime(2026, 3, 10, 11, 0, tzinfo=UTC)  # the last 40 minutes are all corrected
    up30 = evaluate_json(spec, files["predictions"], at)["up30"]
    assert up30["burn_rates"]["5m"] is None
    assert up30["burn_rates"]["30m"] is None
    assert up30["burn_rate_samples"]["30m"] == 0
    assert up30["burn_rates"]["1h"] is not None


# --- calendar windows and scaled burn windows ---------------------------------------------------

CALENDAR_SPEC = """
service: calendar
slos:
  - name: month
    dimension: availability
    objective: {target: 0.99}
    window: {calendar: month}
  - name: week
    dimension: latency
    sli: {latency_threshold: 250ms}
    objective: {target: 0.95}
    window: {calendar: week}
"""


@pytest.mark.parametrize("when", ["aligned", "half-minute", "odd-micros", "day-boundary"])
def test_calendar_windows_run_from_the_period_start(rows, files, when):
    at = ATS[when]  # all in the week of Monday 2026-03-09
    spec = parse_spec(CALENDAR_SPEC)
    slos = evaluate_json(spec, files["predictions"], at, series=timedelta(days=1))
    month_start = datetime(2026, 3, 1, tzinfo=UTC)
    week_start = datetime(2026, 3, 9, tzinfo=UTC)
    for name, kind, start in (("month", "up", month_start), ("week", "fast", week_start)):
        slo = slos[name]
        assert parse_iso(slo["window_start"]) == start
        assert parse_iso(slo["window_end"]) == at
        check_window(slo, oracle(rows, kind, spec.slo(name).target, us(start), us(at)))
        for key, length in burn_lengths(slo, spec).items():
            w = oracle(rows, kind, spec.slo(name).target, ceil_bucket(us(at) - length), us(at))
            assert slo["burn_rates"][key] == approx(w.consumed), (name, key)
    month = slos["month"]
    assert list(month["burn_rates"]) == MONTH_KEYS
    assert list(slos["week"]["burn_rates"]) == WEEK_KEYS
    # the daily series of the month starts at the month start (a partial first day)
    assert parse_iso(month["series"][0]["start"]) == month_start
    assert sum(p["n"] for p in month["series"]) == month["sli"]["n"]


MONTH_ONLY_SPEC = """
service: calendar
slos:
  - name: month
    dimension: availability
    objective: {target: 0.99}
    window: month
"""


def test_calendar_month_burn_windows_reach_back_before_the_month(rows, files):
    """Early in a month, a burn window [at - w, at) reaches into the previous month: the
    burn rate is the recent error rate, whatever the budget period."""
    at = datetime(2026, 3, 1, 6, 0, 30, tzinfo=UTC)
    spec = parse_spec(MONTH_ONLY_SPEC)
    month = evaluate_json(spec, files["predictions"], at)["month"]
    assert parse_iso(month["window_start"]) == datetime(2026, 3, 1, tzinfo=UTC)
    for key in ("1d", "3d"):
        length = burn_lengths(month, spec)[key]
        w = oracle(rows, "up", 0.99, ceil_bucket(us(at) - length), us(at))
        assert month["burn_rate_samples"][key] == w.n, key
        assert month["burn_rates"][key] == approx(w.consumed), key


def test_an_slo_burn_rates_do_not_depend_on_the_other_slos_of_the_spec(files):
    """The month SLO alone and beside a calendar-week SLO (whose window starts earlier, so the
    scan reads more rows) must report the same burn rates."""
    at = datetime(2026, 3, 1, 6, 0, 30, tzinfo=UTC)  # a Sunday: the week began on Feb 23
    alone = evaluate_json(parse_spec(MONTH_ONLY_SPEC), files["predictions"], at)["month"]
    beside = evaluate_json(parse_spec(CALENDAR_SPEC), files["predictions"], at)["month"]
    assert alone["budget"] == beside["budget"]
    assert alone["burn_rate_samples"] == beside["burn_rate_samples"]
    assert alone["burn_rates"] == beside["burn_rates"]


def test_seven_day_window_has_scaled_burn_keys(evaluated):
    slo = evaluated["aligned"]["fresh"]
    assert slo["window"] == "7d"
    assert list(slo["burn_rates"]) == WEEK_KEYS
    assert list(slo["burn_rate_samples"]) == list(slo["burn_rates"])


# --- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["aligned", "odd-micros"])
def test_cli_matches_brute_force(rows, files, cli, write_spec, when):
    at = ATS[when]
    spec_path = write_spec(LABELLED_SPEC)
    run = cli(
        "evaluate",
        "--spec",
        spec_path,
        "--data",
        files["unlabelled"],
        "--labels",
        files["labels"],
        "--at",
        at.isoformat(),
        "--series",
        "1d",
        "--format",
        "json",
    )
    assert run.exit_code == 0, run.stderr
    slos = {s["name"]: s for s in run.json()["slos"]}
    joined = joined_labels(rows, pq.read_table(files["labels"]), at)
    slo = slos["f1"]
    lo = ceil_bucket(us(at) - 30 * DAY)
    check_window(slo, oracle(rows, "f1", 0.8, lo, us(at), label=joined))
    assert list(slo["burn_rates"]) == MONTH_KEYS
    for key, length in burn_lengths(slo, parse_spec(LABELLED_SPEC)).items():
        w = oracle(rows, "f1", 0.8, ceil_bucket(us(at) - length), us(at), label=joined)
        assert slo["burn_rates"][key] == approx(w.consumed), key
    for k, point in enumerate(reversed(slo["series"])):
        hi = ceil_bucket(us(at)) - k * DAY
        e = oracle(rows, "f1", 0.8, max(lo, hi - DAY), min(hi, us(at)), label=joined)
        assert point["n"] == e.n
        assert point["value"] == approx(e.value)
