"""What every command shares: one-line errors with exit codes, the options, the consoles.

User errors (a bad spec, a missing column, a malformed --at) print one line naming the file,
field or row and the fix, and exit with status 2; no traceback. Exit 1 is kept for a gate
that blocks and 3 for one that warns; an unexpected failure exits 70.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from typer._click import exceptions as click_exceptions
from typer.core import TyperGroup

from mlslo.errors import MlsloError, UsageError
from mlslo.moments import parse_duration, parse_moment

if TYPE_CHECKING:
    from rich.console import Console

    from mlslo.scan.files import Sources
    from mlslo.spec import Spec

P = ParamSpec("P")
R = TypeVar("R")


class OneLineErrors(TyperGroup):
    """Command-line mistakes are one line on stderr and exit 2; unexpected failures exit 70."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        standalone = kwargs.pop("standalone_mode", True)
        kwargs["standalone_mode"] = False
        if not standalone:
            return super().main(*args, **kwargs)
        try:
            code = super().main(*args, **kwargs)
        except click_exceptions.NoArgsIsHelpError as error:
            if error.ctx is not None:
                typer.echo(error.ctx.get_help())
            sys.exit(0)
        except click_exceptions.ClickException as error:
            context = getattr(error, "ctx", None)
            hint = f" (see {context.command_path} --help)" if context is not None else ""
            stderr().print(f"error: {error.format_message()}{hint}", markup=False, highlight=False)
            sys.exit(error.exit_code)
        except typer.Exit as done:
            sys.exit(done.exit_code)
        except typer.Abort:
            stderr().print("aborted", markup=False)
            sys.exit(130)
        except Exception as failure:
            stderr().print(
                f"error: internal error ({type(failure).__name__}: {failure}); "
                "please report it with the command you ran",
                markup=False,
                highlight=False,
            )
            sys.exit(70)
        sys.exit(code if isinstance(code, int) else 0)


def stdout() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def message(error: MlsloError) -> str:
    """A library error as the CLI says it: an argument is named by its option."""
    if isinstance(error, UsageError) and error.parameter is not None:
        return f"--{error.parameter.replace('_', '-')}: {error.detail}"
    return str(error)


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors into one line on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except MlsloError as error:
            stderr().print(f"error: {message(error)}", markup=False, highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def moment(text: str | None, option: str = "at") -> datetime:
    """An ``--at``-style option: ISO-8601 (UTC without a zone) or ``now`` (the default)."""
    try:
        return parse_moment(text, lambda: datetime.now(UTC))
    except ValueError as exc:
        raise UsageError(str(exc), parameter=option) from None


def stated_moment(text: str | None) -> datetime | None:
    """An ``--at`` that may be left out (None), for a command that then picks the time."""
    return None if text is None else moment(text)


def duration(text: str, option: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(str(exc), parameter=option) from None


def size(text: str, option: str) -> int:
    """``64MB`` -> 67108864."""
    units = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
    clean = text.strip().lower()
    for unit in sorted(units, key=len, reverse=True):
        if clean.endswith(unit) and clean[: -len(unit)].strip().replace(".", "", 1).isdigit():
            return int(float(clean[: -len(unit)]) * units[unit])
    if clean.isdigit():
        return int(clean)
    raise UsageError(f"'{text}' is not a size; write e.g. 64MB", parameter=option)


@contextmanager
def spinner(text: str) -> Iterator[None]:
    """A spinner on stderr while a long step runs (only on a terminal)."""
    if not sys.stderr.isatty():
        yield
        return
    with stderr().status(text):
        yield


def api(url: str, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    from mlslo.client import api_request

    return api_request(url, token, method, path, **kwargs)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


class TableOrJson(StrEnum):
    table = "table"
    json = "json"


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


SpecOption = Annotated[
    Path, typer.Option("--spec", "-s", help="The SLO spec (YAML).", show_default=False)
]
DataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        "-d",
        show_default=False,
        help="Prediction records: a Parquet/CSV/NDJSON/Arrow file, a glob, a folder, or a "
        "table's URL (duckdb://, delta://, iceberg://, postgres://; see docs/sources.md). "
        "Default: the spec's source (none needed when every SLO reads Prometheus).",
    ),
]


def reading(sources: Sources | None) -> str:
    """What the spinner says while the sources are read."""
    if sources is None:
        return "Querying Prometheus"
    from mlslo.inputs.frames import name_of

    return f"Scanning {name_of(sources.predictions)}"


LabelsOption = Annotated[
    str | None,
    typer.Option("--labels", help="Labels in a separate table (id, ts, label), joined by id."),
]
OutcomesOption = Annotated[
    str | None,
    typer.Option(
        "--outcomes", help="Outcome counts (ts, total, ok) for traffic not logged one by one."
    ),
]
AtOption = Annotated[
    str | None,
    typer.Option("--at", help="Evaluate as of this time (ISO-8601, UTC if no zone). Default: now."),
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")]
TableOrJsonOption = Annotated[TableOrJson, typer.Option("--format", "-f", help="Output format.")]
DedupeOption = Annotated[
    bool,
    typer.Option(
        "--dedupe",
        help="Count a repeated prediction id once (costs a hash of every id; the server "
        "always does it at ingest).",
    ),
]
AllowUnmatchedOption = Annotated[
    bool,
    typer.Option(
        "--allow-unmatched-labels",
        help="Go on when no label's id matches a prediction's (by default an error: the ids "
        "are usually mapped to the wrong column).",
    ),
]
EngineOption = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="Where the scan of files runs: embedded DuckDB, or PySpark (needs mlslo[spark]); "
        "a database source runs its own scan.",
    ),
]
PolicyOption = Annotated[
    str | None,
    typer.Option(
        "--policy", help="Which policy of the spec (default: default_policy, or the only one)."
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="A running server (instead of --db), e.g. http://127.0.0.1:8080."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="MLSLO_TOKEN", help="Bearer token (or set MLSLO_TOKEN)."),
]
DbOption = Annotated[
    Path | None, typer.Option("--db", help="The service's DuckDB file.", show_default=False)
]


StateOption = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help="Read the rollups mlslo scan --state keeps here, at their watermark, "
        "instead of scanning --data.",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class Records:
    """Where a command reads its records: ``--data``, ``--labels`` and ``--outcomes`` (or
    the spec's ``source:``) scanned on ``--engine``, or the rollups kept in ``--state``."""

    data: str | None
    labels: str | None
    outcomes: str | None
    dedupe: bool = False
    allow_unmatched_labels: bool = False
    engine: Engine = Engine.duckdb
    state: Path | None = None

    def stored(self) -> Path | None:
        """The ``--state`` directory to read instead of scanning; refused together with
        records to scan."""
        if self.state is not None and (
            self.data is not None or self.labels is not None or self.outcomes is not None
        ):
            raise UsageError(
                "give either --state (evaluate the stored rollups) or --data and its labels "
                "and outcomes (scan them), not both"
            )
        return self.state

    def sources(self, spec: Spec, spec_path: Path) -> Sources | None:
        return record_sources(
            spec,
            spec_path,
            self.data,
            self.labels,
            self.outcomes,
            dedupe=self.dedupe,
            allow_unmatched_labels=self.allow_unmatched_labels,
        )

    def connection(self) -> Any:
        return connect(self.engine)


def record_sources(
    spec: Spec,
    spec_path: Path,
    data: str | None,
    labels: str | None,
    outcomes: str | None,
    *,
    dedupe: bool = False,
    allow_unmatched_labels: bool = False,
) -> Sources | None:
    """The sources to scan: ``--data`` (with ``--labels``/``--outcomes``), else the spec's
    ``source:`` (each overridable by ``--labels``/``--outcomes``), its relative paths read
    from the spec's folder; None when nothing is given (enough when every SLO reads
    Prometheus)."""
    from mlslo.scan.files import Sources

    if data is None:
        if spec.source is None:
            if labels is not None or outcomes is not None:
                raise UsageError(
                    "labels and outcome counts go with prediction records: give them too",
                    parameter="data",
                )
            return None
        data = _beside(spec_path, spec.source.predictions)
        if labels is None and spec.source.labels is not None:
            labels = _beside(spec_path, spec.source.labels)
        if outcomes is None and spec.source.outcomes is not None:
            outcomes = _beside(spec_path, spec.source.outcomes)
    return Sources(data, labels, outcomes, dedupe, allow_unmatched_labels)


def required_sources(
    spec: Spec,
    spec_path: Path,
    data: str | None,
    labels: str | None,
    outcomes: str | None,
    *,
    missing: str,
    dedupe: bool = False,
    allow_unmatched_labels: bool = False,
) -> Sources:
    """:func:`record_sources` for a command that reads prediction records in any case;
    ``missing`` says why when none are given."""
    sources = record_sources(
        spec,
        spec_path,
        data,
        labels,
        outcomes,
        dedupe=dedupe,
        allow_unmatched_labels=allow_unmatched_labels,
    )
    if sources is None:
        raise UsageError(missing, parameter="data")
    return sources


def _beside(spec_path: Path, location: str) -> str:
    """A relative path in a spec is relative to the spec's folder; URLs stay as written."""
    if "://" in location or Path(location).is_absolute():
        return location
    return str(spec_path.parent / location)


def connect(engine: Engine) -> Any:
    """The ibis backend to scan with; None for embedded DuckDB (the compiled scan)."""
    if engine is Engine.duckdb:
        return None
    from mlslo.inputs.engines import spark_backend

    return spark_backend()
