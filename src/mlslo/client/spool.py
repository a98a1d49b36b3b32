"""The on-disk spool: every batch is a file until the server has acknowledged it.

A batch is ``<time_ns>-<pid>-<seq>-<kind>-<key>.arrow``, an Arrow IPC stream, so the folder
lists batches in the order they were written and each names its kind and its idempotency
key. A durable client appends each ``log_*()`` call to a segment, ``<name>.open``, which its
writer keeps locked (``flock``) until it is sealed as ``<name>.arrow``. A writer that died
leaves its segment unlocked; the next client or ``resend`` over the folder seals the
complete record batches in it under the same name, so under the same key. Batches the
server rejected wait in ``rejected/`` beside the server's error envelope (``<name>.json``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.ipc as ipc

from mlslo.client.wire import arrow_bytes
from mlslo.errors import MlsloError

if sys.platform != "win32":
    import fcntl

STALE = 3600.0
"""Seconds after which an unfinished ``.new`` file (its writer died before naming it) goes."""


class SpoolError(MlsloError):
    """The spool folder cannot be written: the records of the call were not logged."""


def default_folder(url: str) -> Path:
    """The spool of a server URL when none is given: one folder per URL in the user's cache."""
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "mlslo" / "spool" / digest


def kind_of(path: Path) -> str:
    return path.stem.split("-")[3]


def key_of(path: Path) -> str:
    return path.stem.split("-")[4]


def _lock(handle: IO[bytes], wait: bool) -> bool:
    """An exclusive lock on an open file; False if another open file holds it."""
    if sys.platform == "win32":
        return wait
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _sync_folder(folder: Path) -> None:
    """Make a file's creation or renaming in ``folder`` survive a power cut."""
    if sys.platform == "win32":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _complete_batches(handle: IO[bytes]) -> pa.Table | None:
    """The record batches of a stream up to the first torn one (a write cut by a kill)."""
    try:
        reader = ipc.open_stream(handle)
    except (pa.ArrowInvalid, OSError):
        return None
    batches = []
    while True:
        try:
            batches.append(reader.read_next_batch())
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError):
            break
    return pa.Table.from_batches(batches, reader.schema) if batches else None


class Spool:
    """One spool folder: its batches in order, writing them, setting them aside."""

    def __init__(self, folder: Path, *, create: bool = True) -> None:
        self.folder = folder
        self.rejected = folder / "rejected"
        if create:
            self.rejected.mkdir(parents=True, exist_ok=True)
        self._seq = 0

    def batches(self) -> list[Path]:
        """Sealed batches not yet acknowledged, oldest first."""
        return sorted(self.folder.glob("*.arrow"))

    def writing(self) -> list[Path]:
        """Segments still open (by a live writer, or one that died and is not recovered yet)."""
        return sorted(self.folder.glob("*.open"))

    def set_aside_batches(self) -> list[Path]:
        return sorted(self.rejected.glob("*.arrow"))

    def name(self, kind: str) -> str:
        self._seq += 1
        return f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}-{kind}-{uuid.uuid4().hex}"

    def _create(self, name: str) -> IO[bytes]:
        """A new file, locked before it gets a name anyone else looks at."""
        handle = open(self.folder / f".{name}.new", "xb", buffering=0)  # noqa: SIM115
        _lock(handle, wait=True)
        return handle

    def write(self, name: str, table: pa.Table) -> Path:
        """A whole batch (named by :meth:`name`), fsynced, then given its name: it appears
        complete or not at all."""
        try:
            with self._create(name) as out:
                out.write(arrow_bytes(table))
                os.fsync(out.fileno())
                path = self.folder / f"{name}.arrow"
                os.replace(self.folder / f".{name}.new", path)
        except OSError as exc:
            raise SpoolError(f"{self.folder}: cannot write the spool ({exc})") from None
        _sync_folder(self.folder)
        return path

    def segment(self, kind: str, schema: pa.Schema) -> Segment:
        name = self.name(kind)
        try:
            handle = self._create(name)
            path = self.folder / f"{name}.open"
            os.replace(self.folder / f".{name}.new", path)
            _sync_folder(self.folder)
        except OSError as exc:
            raise SpoolError(f"{self.folder}: cannot write the spool ({exc})") from None
        return Segment(path, kind, schema, handle)

    def recover(self) -> int:
        """Seal the segments whose writer died (their lock is free); returns how many."""
        sealed = 0
        for path in self.writing():
            try:
                handle = open(path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                continue
            with handle:
                if not _lock(handle, wait=False):
                    continue
                try:
                    if os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
                        continue
                except FileNotFoundError:
                    continue
                table = _complete_batches(handle)
                if table is not None:
                    temporary = self.folder / f".{path.stem}.seal"
                    with open(temporary, "wb") as out:
                        out.write(arrow_bytes(table))
                        os.fsync(out.fileno())
                    os.replace(temporary, path.with_suffix(".arrow"))
                path.unlink()
                _sync_folder(self.folder)
                sealed += 1
        now = time.time()
        for leftover in self.folder.glob(".*.new"):
            try:
                if now - leftover.stat().st_mtime > STALE:
                    leftover.unlink()
            except FileNotFoundError:
                continue
        return sealed

    def set_aside(self, path: Path, status: int, envelope: dict[str, Any]) -> Path:
        """Move a rejected batch to ``rejected/`` with the server's answer beside it."""
        answer = {"status": status, **envelope}
        (self.rejected / f"{path.stem}.json").write_text(json.dumps(answer, indent=2) + "\n")
        target = self.rejected / path.name
        os.replace(path, target)
        return target

    def restore_rejected(self) -> int:
        """Put the set-aside batches back in line (under their old names, so in their old
        order and with their keys: the server wrote nothing of them)."""
        restored = 0
        for path in self.set_aside_batches():
            os.replace(path, self.folder / path.name)
            (self.rejected / f"{path.stem}.json").unlink(missing_ok=True)
            restored += 1
        return restored


class Segment:
    """A batch written one ``log_*()`` call at a time: each call's records are fsynced
    before the call returns. Not thread-safe; the client holds its lock around every call."""

    def __init__(self, path: Path, kind: str, schema: pa.Schema, handle: IO[bytes]) -> None:
        self.path = path
        self.kind = kind
        self.schema = schema
        self.rows = 0
        self.opened = time.monotonic()
        self._handle = handle
        self._writer = ipc.new_stream(handle, schema)
        self._good = 0
        self._torn = False

    def append(self, table: pa.Table) -> None:
        try:
            self._writer.write_table(table)
            os.fsync(self._handle.fileno())
        except (OSError, pa.ArrowException) as exc:
            self._torn = True
            with contextlib.suppress(OSError):
                self._handle.truncate(self._good)
            raise SpoolError(
                f"{self.path.parent}: cannot write the spool ({exc}); the records of this "
                "call were not logged"
            ) from None
        self._good = self._handle.tell()
        self.rows += table.num_rows

    def seal(self) -> Path | None:
        """Close the segment and name it a batch to send (None if it holds no records). If
        that fails, the file is left unlocked for :meth:`Spool.recover` to seal."""
        target = self.path.with_suffix(".arrow")
        try:
            if self.rows and not self._torn:
                self._writer.close()
                os.fsync(self._handle.fileno())
            if self.rows:
                os.replace(self.path, target)
            else:
                self.path.unlink(missing_ok=True)
            _sync_folder(self.path.parent)
        except (OSError, pa.ArrowException) as exc:
            raise SpoolError(f"{self.path}: cannot seal the batch ({exc})") from None
        finally:
            self._handle.close()
        return target if self.rows else None
