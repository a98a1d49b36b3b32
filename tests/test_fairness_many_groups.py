"""Thousands of fairness groups from messy records (null and empty attributes, repeated ids,
timestamps from 1900 and 9999) through the real interfaces: the CLI with and without
``--dedupe`` and the service, each against a pandas oracle of the documented semantics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlslo.client import arrow_bytes

AT = datetime(2026, 11, 21, tzinfo=UTC)
STREAM = {"Content-Type": "application/vnd.apache.arrow.stream"}
SPEC = """
    service: many
    slos:
      - name: parity
        dimension: fairness
        sli: {metric: demographic_parity_difference, attribute: cohort}
        objective: {target: 0.9}
      - name: parity_x
        dimension: fairness
        sli:
          metric: demographic_parity_difference
          attribute: [cohort, region]
          min_group_size: 10
        objective: {target: 0.9}
      - name: tpr
        dimension: fairness
        sli:
          metric: true_positive_rate_difference
          attribute: cohort
          missing: group
          min_group_size: 15
        objective: {target: 0.9}
"""


def messy(n: int, cohorts: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The records, and the same with 300 repeats (a later copy with the other prediction)
    and 200 records from 1900 and 9999 added."""
    rng = np.random.default_rng(seed)
    cohort = np.array([f"c{v:04d}" for v in rng.integers(0, cohorts, n)], dtype=object)
    cohort[rng.random(n) < 0.03] = None
    cohort[rng.random(n) < 0.02] = ""
    region = pd.array(rng.integers(0, 4, n), dtype="Int64")
    region[rng.random(n) < 0.02] = pd.NA
    frame = pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": AT - pd.to_timedelta(rng.integers(60, 20 * 86400, n), unit="s"),
            "prediction": rng.integers(0, 2, n),
            "label": rng.integers(0, 2, n),
            "cohort": cohort,
            "region": region,
        }
    )
    repeats = frame.sample(300, random_state=seed).assign(
        ts=lambda f: f.ts + pd.Timedelta(seconds=30), prediction=lambda f: 1 - f.prediction
    )
    odd = frame.sample(200, random_state=seed + 1).assign(
        id=lambda f: "o" + f.id,
        ts=[datetime(1900, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)] * 100,
    )
    blank = frame.cohort.isna() | (frame.cohort == "")
    frame.loc[blank, "prediction"] = 1  # (missing) has the highest rates: counted or not shows
    return frame, pd.concat([frame, repeats, odd], ignore_index=True)


def gap(frame: pd.DataFrame, by: list[str], rate: str, smallest: int, gather: bool) -> float:
    """The widest gap of a rate between groups of at least ``smallest`` records in its
    denominator; blank attributes leave a record out, or form ``(missing)``."""
    kept = frame.copy()
    blank = np.zeros(len(kept), dtype=bool)
    for column in by:
        empty = (kept[column].isna() | (kept[column].astype(str) == "")).to_numpy()
        blank |= empty
        kept[column] = kept[column].astype(object).where(~empty, "(missing)")
    if not gather:
        kept = kept[~blank]
    if rate == "true_positive_rate":
        kept = kept[kept.label == 1]
    counts = kept.groupby(by).prediction.agg(["sum", "size"])
    rates = (counts["sum"] / counts["size"])[counts["size"] >= smallest]
    return float(rates.max() - rates.min())


def oracle(frame: pd.DataFrame) -> dict[str, float]:
    inside = frame[(frame.ts >= AT - timedelta(days=30)) & (frame.ts < AT)]
    return {
        "parity": gap(inside, ["cohort"], "selection_rate", 1, False),
        "parity_x": gap(inside, ["cohort", "region"], "selection_rate", 10, False),
        "tpr": gap(inside, ["cohort"], "true_positive_rate", 15, True),
    }


def table_of(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False).cast(
        pa.schema(
            [
                ("id", pa.string()),
                ("ts", pa.timestamp("us", tz="UTC")),
                ("prediction", pa.int64()),
                ("label", pa.int64()),
                ("cohort", pa.string()),
                ("region", pa.int64()),
            ]
        )
    )


def values(document: dict[str, Any]) -> dict[str, float]:
    return {s["name"]: s["sli"]["value"] for s in document["slos"]}


def test_thousands_of_messy_groups_equal_pandas_on_files_and_the_service(
    cli: Any, write_spec: Any, write_records: Any, live_server: Any
) -> None:
    first, everything = messy(24_000, 1_200, 3)
    spec = write_spec(SPEC)
    path = write_records(table_of(everything))
    at = ("--at", AT.isoformat())
    as_is = cli("evaluate", "--spec", spec, "--data", path, *at, "--format", "json")
    deduped = cli("evaluate", "--spec", spec, "--data", path, *at, "--format", "json", "--dedupe")
    assert as_is.exit_code == 0 and deduped.exit_code == 0, as_is.stderr + deduped.stderr
    once = oracle(everything.sort_values("ts", kind="stable").drop_duplicates("id"))
    for got, want in ((values(as_is.json()), oracle(everything)), (values(deduped.json()), once)):
        assert got.keys() == want.keys()
        for name, value in want.items():
            assert 0 < value < 1 and abs(got[name] - value) < 1e-9, (name, got[name], value)
    groups = json.loads(as_is.stdout)["slos"][1]["sli"]["groups"]
    assert len(groups) > 4_000

    live = live_server(SPEC, now=AT, store_options={"max_groups": 5_000})
    repeats = everything.iloc[len(first) : len(first) + 300]
    with live.client() as http:
        for start in range(0, len(first), 8_000):
            part = table_of(first.iloc[start : start + 8_000])
            posted = http.post("/api/v1/predictions", content=arrow_bytes(part), headers=STREAM)
            assert posted.status_code == 200, posted.text
        again = http.post(
            "/api/v1/predictions", content=arrow_bytes(table_of(repeats)), headers=STREAM
        )
        assert again.json() == {"accepted": 0, "duplicates": 300, "folded": 0}
        served = values(http.get("/api/v1/slos", params={"at": AT.isoformat()}).json())
    for name, value in once.items():
        assert abs(served[name] - value) < 1e-9, (name, served[name], value)
