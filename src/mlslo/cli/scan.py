"""``mlslo scan``: bring the rollups kept in a state directory up to date, reading only the
records newer than the last watermark (less a lateness allowance) and the buckets of late
labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlslo.cli.shell import (
    AllowUnmatchedOption,
    DataOption,
    DedupeOption,
    LabelsOption,
    OutcomesOption,
    SpecOption,
    duration,
    moment,
    reading,
    required_sources,
    spinner,
    user_errors,
)


def register(app: typer.Typer) -> None:
    app.command()(user_errors(scan))


def scan(
    spec: SpecOption,
    data: DataOption,
    state: Annotated[
        Path,
        typer.Option(
            "--state",
            help="The directory that keeps the rollups and the watermark between runs.",
            show_default=False,
        ),
    ],
    labels: LabelsOption = None,
    outcomes: OutcomesOption = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="The new watermark (ISO-8601, UTC if no zone; floored to a whole bucket). "
            "Default: now.",
        ),
    ] = None,
    lateness: Annotated[
        str,
        typer.Option(
            "--lateness",
            help="How long after its time a record may still reach the source; records and "
            "labels this far before the last watermark are read again.",
        ),
    ] = "1h",
    dedupe: DedupeOption = False,
    allow_unmatched_labels: AllowUnmatchedOption = False,
) -> None:
    """Scan the records into rollups kept in --state, incrementally; then evaluate, alert or
    gate from the state with --state."""
    from mlslo.api import scan_to_state
    from mlslo.spec import load_spec

    loaded = load_spec(spec)
    sources = required_sources(
        loaded,
        spec,
        data,
        labels,
        outcomes,
        missing="give the prediction records (or source: {predictions: ...} in the spec)",
        dedupe=dedupe,
        allow_unmatched_labels=allow_unmatched_labels,
    )
    with spinner(reading(sources)):
        run = scan_to_state(
            loaded,
            sources,
            state,
            moment(at),
            lateness=duration(lateness, "lateness"),
        )
    watermark = run.state.watermark.isoformat().replace("+00:00", "Z")
    since = run.rescanned_from.isoformat().replace("+00:00", "Z")
    how = f"full scan ({run.reason})" if run.full else f"incremental, rescanned from {since}"
    buckets = run.state.rollup.table.num_rows
    typer.echo(f"{state}: watermark {watermark}; {how}; {buckets} bucket rows stored")
