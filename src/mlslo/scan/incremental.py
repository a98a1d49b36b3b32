"""Incremental scans: rollups kept in a state directory and brought up to date by scanning
only the buckets that new records or late labels can change.

A run to a new watermark ``W'`` after a state at ``W`` rescans from the earliest of
``W - lateness`` (records may still arrive that far back) and the prediction bucket of any
label that arrived since ``W - lateness``; those buckets are recomputed whole from the
predictions in them joined to every label that had arrived by ``W'``, and replace the stored
ones. Older buckets cannot have changed, so the state equals one full scan to ``W'``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlslo.errors import DataError, UsageError
from mlslo.inputs.files import VIEWS, connect_raw, open_views
from mlslo.inputs.frames import name_of
from mlslo.scan.files import Sources, scan_files
from mlslo.spec import Spec
from mlslo.stats.rollup import BUCKET, Rollup

STATE_FILE = "state.json"
STATE_FORMAT = 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class State:
    """Rollups of every bucket from ``start`` up to the ``watermark`` (exclusive), as one full
    scan of the sources to the watermark would give them."""

    fingerprint: str
    spec_fingerprint: str
    start: datetime
    watermark: datetime
    rollup: Rollup


@dataclass(frozen=True)
class ScanRun:
    """What one incremental run did: the new state, and from when it rescanned (the state's
    start on a full scan)."""

    state: State
    rescanned_from: datetime
    full: bool
    reason: str


def fingerprint(spec: Spec, sources: Sources) -> str:
    """What the stored rollups depend on besides the records: the spec and the sources."""
    text = json.dumps(
        {
            "spec": json.loads(spec.model_dump_json()),
            "predictions": sources.predictions,
            "labels": sources.labels,
            "outcomes": sources.outcomes,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def spec_fingerprint(spec: Spec) -> str:
    """The spec alone: evaluating stored rollups needs the spec they were scanned with."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def bucket_index(moment: datetime, bucket_seconds: int) -> int:
    delta = moment.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) // bucket_seconds


def bucket_time(index: int, bucket_seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=index * bucket_seconds)


def scan_incremental(
    spec: Spec,
    sources: Sources,
    directory: Path,
    *,
    start: datetime,
    end: datetime,
    lateness: timedelta,
) -> ScanRun:
    """Bring the state in ``directory`` to the watermark ``end``, keeping buckets from
    ``start`` on; a missing state, another spec or sources, or an earlier watermark than the
    stored one means a full scan."""
    if sources.dedupe:
        raise UsageError(
            "counting repeated ids once needs every earlier record, so it cannot be kept "
            "incrementally; scan without deduplication or evaluate the records directly",
            parameter="dedupe",
        )
    if lateness < timedelta(0):
        raise UsageError("the lateness allowance cannot be negative", parameter="lateness")
    seconds = int(spec.bucket.total_seconds())
    key = fingerprint(spec, sources)
    previous = read_state(directory)
    reason = ""
    if previous is None:
        reason = "no state yet"
    elif previous.fingerprint != key:
        reason = "the spec or the sources changed"
    elif end < previous.watermark:
        reason = "the new watermark is before the stored one"
    elif previous.start > start:
        reason = "the state starts after the records now needed"
    if previous is None or reason:
        rollup = scan_files(spec, sources, start=start, end=end)
        state = State(
            key,
            spec_fingerprint(spec),
            start,
            end,
            _keep(rollup, bucket_index(start, seconds), None),
        )
        write_state(directory, state)
        return ScanRun(state, start, True, reason)
    since = min(previous.watermark - lateness, end)
    touched = earliest_relabelled(spec, sources, since, end)
    rescan = min(since, touched) if touched is not None else since
    rescan = bucket_time(bucket_index(max(rescan, start), seconds), seconds)
    rescan = max(rescan, start)
    fresh = scan_files(spec, replace(sources, allow_unmatched_labels=True), start=rescan, end=end)
    kept = _keep(previous.rollup, bucket_index(start, seconds), bucket_index(rescan, seconds))
    merged = _concat(kept, fresh)
    state = State(key, spec_fingerprint(spec), start, end, merged)
    write_state(directory, state)
    return ScanRun(state, rescan, False, "")


def earliest_relabelled(
    spec: Spec, sources: Sources, since: datetime, end: datetime
) -> datetime | None:
    """The earliest prediction time among the predictions whose labels arrived in
    ``[since, end)`` (or carry no arrival time, so may be new); None without such labels."""
    if sources.labels is None:
        return None
    con = connect_raw()
    open_views(con, {"predictions": sources.predictions, "labels": sources.labels})
    label_columns = {name for name, *_ in con.execute(f"DESCRIBE {VIEWS['labels']}").fetchall()}
    prediction_columns = {
        name for name, *_ in con.execute(f"DESCRIBE {VIEWS['predictions']}").fetchall()
    }
    cols, lcols = spec.columns, spec.label_columns
    if lcols.id not in label_columns or cols.id not in prediction_columns:
        return None
    if lcols.ts in label_columns:
        arrived = _ts(lcols.ts)
        new = f"{arrived} IS NULL OR ({arrived} >= $since AND {arrived} < $end)"
    else:
        new = "true"
    sql = (
        f"SELECT min({_ts(cols.ts)}) FROM {VIEWS['predictions']} "
        f"WHERE CAST({_quote(cols.id)} AS VARCHAR) IN ("
        f"SELECT CAST({_quote(lcols.id)} AS VARCHAR) FROM {VIEWS['labels']} WHERE {new})"
    )
    params = {"since": since, "end": end} if "$since" in sql else {}
    try:
        row = con.execute(sql, params).fetchone()
    except Exception as exc:
        raise DataError(
            f"cannot find the predictions of new labels: {str(exc).splitlines()[0]}",
            source=name_of(sources.labels) if sources.labels is not None else "labels",
        ) from None
    finally:
        con.close()
    value = row[0] if row else None
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ts(name: str) -> str:
    return f"TRY_CAST({_quote(name)} AS TIMESTAMPTZ)"


def _keep(rollup: Rollup, first: int, before: int | None) -> Rollup:
    """The rollup's buckets from ``first`` up to ``before`` (exclusive; None: all)."""

    def within(table: pa.Table) -> pa.Table:
        column = table[BUCKET]
        mask = pc.greater_equal(column, first)
        if before is not None:
            mask = pc.and_(mask, pc.less(column, before))
        return table.filter(mask)

    return replace(
        rollup,
        table=within(rollup.table),
        histograms={name: within(t) for name, t in rollup.histograms.items()},
    )


def _concat(kept: Rollup, fresh: Rollup) -> Rollup:
    """Two rollups over disjoint buckets as one (columns of either, missing statistics 0)."""
    table = _union(kept.table, fresh.table)
    names = dict.fromkeys([*kept.histograms, *fresh.histograms])
    histograms = {
        name: _union(kept.histograms.get(name), fresh.histograms.get(name)) for name in names
    }
    return replace(fresh, table=table, histograms=histograms)


def _union(first: pa.Table | None, second: pa.Table | None) -> pa.Table:
    parts = [t for t in (first, second) if t is not None]
    table = pa.concat_tables(parts, promote_options="permissive")
    columns = {
        name: (
            pc.fill_null(table[name], 0.0)
            if pa.types.is_floating(table[name].type) and table[name].null_count
            else table[name]
        )
        for name in table.column_names
    }
    return pa.table(columns).combine_chunks()


# --- the state directory ---------------------------------------------------------------------


def read_state(directory: Path) -> State | None:
    """The state stored in ``directory``; None when there is none yet."""
    path = directory / STATE_FILE
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != STATE_FORMAT:
            return None
        generation = directory / str(meta["generation"])
        table = pq.read_table(generation / "rollup.parquet")
        histograms = {
            name: pq.read_table(generation / file) for name, file in meta["histograms"].items()
        }
        rollup = Rollup(int(meta["bucket_seconds"]), tuple(meta["slices"]), table, histograms)
        return State(
            str(meta["fingerprint"]),
            str(meta["spec"]),
            datetime.fromisoformat(meta["start"]),
            datetime.fromisoformat(meta["watermark"]),
            rollup,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"is not a readable state ({str(exc).splitlines()[0]}); delete the directory to "
            "scan again from the start",
            source=str(directory),
        ) from None


def write_state(directory: Path, state: State) -> None:
    """Write the state so that a crash leaves the previous one whole: the rollups go to a new
    generation folder, then ``state.json`` is replaced atomically to point at it, then older
    generations are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    generation = f"generation-{uuid.uuid4().hex}"
    folder = directory / generation
    folder.mkdir()
    rollup = state.rollup
    pq.write_table(rollup.table, folder / "rollup.parquet")
    histograms = {}
    for i, (name, table) in enumerate(sorted(rollup.histograms.items())):
        histograms[name] = f"histogram-{i}.parquet"
        pq.write_table(table, folder / histograms[name])
    _sync(folder)
    meta = {
        "format": STATE_FORMAT,
        "fingerprint": state.fingerprint,
        "spec": state.spec_fingerprint,
        "start": state.start.astimezone(UTC).isoformat(),
        "watermark": state.watermark.astimezone(UTC).isoformat(),
        "bucket_seconds": rollup.bucket_seconds,
        "slices": list(rollup.slice_columns),
        "generation": generation,
        "histograms": histograms,
    }
    temporary = directory / f".{STATE_FILE}.{uuid.uuid4().hex}"
    with temporary.open("w", encoding="utf-8") as out:
        json.dump(meta, out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, directory / STATE_FILE)
    for old in directory.iterdir():
        if old.name != generation and old.name.startswith(("generation-", f".{STATE_FILE}.")):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def _sync(folder: Path) -> None:
    for path in folder.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())


def load_state(directory: Path) -> State:
    """The stored state, or the error saying there is none."""
    state = read_state(directory)
    if state is None:
        raise DataError(
            "holds no scan state yet; scan the records into it first", source=str(directory)
        )
    return state
