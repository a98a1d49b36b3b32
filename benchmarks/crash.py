"""Crash trials: SIGKILL a real ``mlslo serve`` under mixed load, again and again, and check
that every acknowledged record is stored exactly once.

One DuckDB file serves every trial. A trial starts ``mlslo serve --no-auth`` on 127.0.0.1,
which recovers whatever the previous kill left, and checks that ``GET /api/v1/slos`` counts
exactly the predictions the file held after that kill. It then runs the mixed load of
``benchmarks/mixed.py`` at a high rate (100 predictions every 50 ms, labels for up to 100
acknowledged predictions every 0.2 s, a status GET every 0.2 s, a gate call every second, each
from its own connection) and SIGKILLs the server 1-4 s after the first acknowledgement.
With the server dead, it opens the file read-only (DuckDB replays the write-ahead log in
memory and leaves it for the server) and checks the trial's records: every acknowledged
prediction and label present, none twice. After the last trial the server is started once
more for the final count.

    python benchmarks/crash.py                # 20 trials
    python benchmarks/crash.py --trials 3     # a smoke run

This is a benchmark, not a test: it is not collected by pytest (``tests/test_crash.py`` is
the one-kill test).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import describe, log
from ingest import Server
from mixed import SPEC, Load, Rates

FAST = Rates(
    prediction_batch=100,
    prediction_every=0.05,
    label_batch=100,
    label_every=0.2,
    status_every=0.2,
    gate_every=1.0,
)


@dataclass
class Trial:
    number: int
    ran_s: float
    predictions_acknowledged: int
    predictions_lost: int
    predictions_duplicated: int
    predictions_unacknowledged_stored: int
    labels_acknowledged: int
    labels_lost: int
    labels_duplicated: int
    labels_wrong: int
    status_ok: int
    gate_ok: int
    counted_at_start: int
    stored_before: int
    stored: int

    @property
    def ok(self) -> bool:
        return (
            self.predictions_lost == 0
            and self.predictions_duplicated == 0
            and self.labels_lost == 0
            and self.labels_duplicated == 0
            and self.labels_wrong == 0
            and self.counted_at_start == self.stored_before
        )


def counted(url: str) -> int:
    """The predictions ``GET /api/v1/slos`` counts (the availability SLI's n)."""
    import httpx

    document = httpx.get(f"{url}/api/v1/slos", timeout=60).json()
    return int(next(s for s in document["slos"] if s["name"] == "availability")["sli"]["n"])


def run_trial(
    number: int, spec: Path, db: Path, work: Path, rng: random.Random, stored_before: int
) -> Trial:
    """Start the server (it recovers from the previous kill), check it counts what the file
    held, run the load, SIGKILL it, and check the file (read-only, as the kill left it)."""
    import duckdb

    prefix = f"t{number:03d}"
    with Server(spec, db, work / f"trial-{number}.log") as server:
        count = counted(server.url)
        load = Load(server.url, prefix, FAST, seed=number).start()
        deadline = time.monotonic() + 120
        while not load.predictions and time.monotonic() < deadline and not load.errors:
            time.sleep(0.05)
        ran = rng.uniform(1.0, 4.0)
        time.sleep(ran)
        os.kill(server.pid, signal.SIGKILL)
        server.process.wait(timeout=30)
        load.stop()
    if load.errors:
        raise RuntimeError(f"trial {number}: the load failed: {load.errors[0]!r}")
    con = duckdb.connect(str(db), read_only=True)
    try:
        stored = con.execute("SELECT count(*) FROM predictions").fetchone()[0]
        rows = con.execute(
            "SELECT id, count(*) FROM predictions WHERE starts_with(id, ?) GROUP BY id",
            [prefix + "-"],
        ).fetchall()
        labels = con.execute(
            "SELECT id, count(*), any_value(label) FROM labels WHERE starts_with(id, ?) "
            "GROUP BY id",
            [prefix + "-"],
        ).fetchall()
    finally:
        con.close()
    present = {i: n for i, n in rows}
    acknowledged = set(load.predictions)
    held = {i: (n, label) for i, n, label in labels}
    return Trial(
        number,
        ran,
        len(acknowledged),
        len(acknowledged - present.keys()),
        sum(n - 1 for n in present.values()),
        len(present.keys() - acknowledged),
        len(load.labels),
        sum(1 for i in load.labels if i not in held),
        sum(n - 1 for n, _ in held.values()),
        sum(1 for i, v in load.labels.items() if i in held and str(held[i][1]) != str(v)),
        sum(1 for c in load.calls if c.kind == "status" and c.status == 200),
        sum(1 for c in load.calls if c.kind == "gate" and c.status == 200),
        count,
        stored_before,
        stored,
    )


def report(trials: Sequence[Trial], final: int, load_avg: tuple[float, float]) -> str:
    lines = [
        "| trial | killed after (s) | predictions acknowledged | lost | duplicated "
        "| stored without ack | labels acknowledged | lost | duplicated | status / gate 200s "
        "| restarted server's count = stored (count / stored) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in trials:
        lines.append(
            f"| {t.number} | {t.ran_s:.1f} | {t.predictions_acknowledged:,} "
            f"| {t.predictions_lost} | {t.predictions_duplicated} "
            f"| {t.predictions_unacknowledged_stored} | {t.labels_acknowledged:,} "
            f"| {t.labels_lost} | {t.labels_duplicated} | {t.status_ok} / {t.gate_ok} "
            f"| {'yes' if t.counted_at_start == t.stored_before else 'NO'} "
            f"({t.counted_at_start:,} / {t.stored_before:,}) |"
        )
    total = {
        "predictions acknowledged": sum(t.predictions_acknowledged for t in trials),
        "predictions lost": sum(t.predictions_lost for t in trials),
        "predictions duplicated": sum(t.predictions_duplicated for t in trials),
        "predictions stored without an acknowledgement": sum(
            t.predictions_unacknowledged_stored for t in trials
        ),
        "labels acknowledged": sum(t.labels_acknowledged for t in trials),
        "labels lost": sum(t.labels_lost for t in trials),
        "labels duplicated": sum(t.labels_duplicated for t in trials),
        "labels with another value": sum(t.labels_wrong for t in trials),
        "status GETs / gate calls answered 200": (
            f"{sum(t.status_ok for t in trials):,} / {sum(t.gate_ok for t in trials):,}"
        ),
    }
    good = sum(t.ok for t in trials)
    lines += [
        "",
        f"{good} of {len(trials)} trials kept every acknowledged record exactly once, and "
        "each restarted server counted what the file held after the kill before it. After "
        f"the last kill the server counted {final:,} predictions; the file held "
        f"{trials[-1].stored:,}.",
        "",
        "| total | |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v if isinstance(v, str) else f'{v:,}'} |" for k, v in total.items()]
    info = describe([("DuckDB", "duckdb"), ("pyarrow", "pyarrow"), ("mlslo", "mlslo")])
    info["load average (1 min)"] = f"{load_avg[0]:.2f} before, {load_avg[1]:.2f} after"
    lines += ["", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in info.items())]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="SIGKILLs (default 20)")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--work-dir", type=Path, help="default: a temporary directory")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    rng = random.Random(args.seed)
    load_before = os.getloadavg()[0]
    trials = []
    with tempfile.TemporaryDirectory(prefix="mlslo-crash-") as tmp:
        work = args.work_dir.resolve() if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        spec = work / "spec.yaml"
        spec.write_text(SPEC, encoding="utf-8")
        db = work / "crash.duckdb"
        for suffix in ("", ".wal"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        stored = 0
        for number in range(1, args.trials + 1):
            trial = run_trial(number, spec, db, work, rng, stored)
            stored = trial.stored
            log(
                f"trial {number}: {trial.predictions_acknowledged} acknowledged, "
                f"{trial.predictions_lost} lost, {trial.predictions_duplicated} duplicated"
            )
            trials.append(trial)
        with Server(spec, db, work / "final.log") as server:
            final = counted(server.url)
    print(report(trials, final, (load_before, os.getloadavg()[0])))
    ok = all(t.ok for t in trials) and final == stored
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
