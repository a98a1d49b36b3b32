"""What both benchmarks share: progress lines, the ``mlslo`` command, and what they ran on."""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mlslo_command() -> list[str]:
    """The installed ``mlslo`` next to this interpreter, else on PATH, else ``-m``."""
    script = Path(sys.executable).with_name("mlslo")
    if script.exists():
        return [str(script)]
    found = shutil.which("mlslo")
    return [found] if found else [sys.executable, "-m", "mlslo.cli"]


def compile_bytecode() -> None:
    """Write mlslo's bytecode, as installing a wheel does: an editable install under
    PYTHONDONTWRITEBYTECODE would otherwise recompile every module on every run."""
    import compileall

    import mlslo

    compileall.compile_dir(str(Path(mlslo.__file__).parent), quiet=1)


def describe(modules: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``modules`` are (label, import name) pairs whose ``__version__`` is reported."""
    out = {
        "nproc": str(os.cpu_count()),
        "RAM": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB",
        "Python": platform.python_version(),
    }
    for label, name in modules:
        try:
            out[label] = importlib.import_module(name).__version__
        except ImportError:
            out[label] = "not installed"
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", "src")
        out["commit"] = commit + (" (src modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        pass
    out["CPU"] = _cpu_model()
    return out


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
