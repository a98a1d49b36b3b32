"""``mlslo explain``: where an SLO's error budget went, from record files."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mlslo.cli.shell import (
    AllowUnmatchedOption,
    AtOption,
    DataOption,
    DedupeOption,
    Engine,
    EngineOption,
    LabelsOption,
    OutcomesOption,
    SpecOption,
    TableOrJson,
    TableOrJsonOption,
    connect,
    duration,
    moment,
    reading,
    required_sources,
    spinner,
    stdout,
    user_errors,
)


def register(app: typer.Typer) -> None:
    app.command()(user_errors(explain))


def explain(
    spec: SpecOption,
    data: DataOption,
    slo: Annotated[
        str, typer.Option("--slo", help="The SLO whose budget to explain.", show_default=False)
    ],
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Columns to slice by, comma-separated: any listed under attribution in the "
            "spec, and hour (the hour of each bucket).",
            show_default=False,
        ),
    ],
    labels: LabelsOption = None,
    outcomes: OutcomesOption = None,
    at: AtOption = None,
    step: Annotated[
        str | None,
        typer.Option(
            "--step",
            help="The step of the burning periods (default: the window / 720, at least one "
            "bucket).",
        ),
    ] = None,
    output: TableOrJsonOption = TableOrJson.table,
    dedupe: DedupeOption = False,
    allow_unmatched_labels: AllowUnmatchedOption = False,
    engine: EngineOption = Engine.duckdb,
) -> None:
    """Rank the slices and periods that spent an SLO's error budget."""
    from mlslo.api import explain_files
    from mlslo.render.attribution import attribution_json, print_attribution
    from mlslo.spec import load_spec

    loaded = load_spec(spec)
    columns = [c.strip() for c in by.split(",") if c.strip()]
    span = None if step is None else duration(step, "step")
    sources = required_sources(
        loaded,
        spec,
        data,
        labels,
        outcomes,
        missing="attribution reads prediction records: give them (or source: "
        "{predictions: ...} in the spec)",
        dedupe=dedupe,
        allow_unmatched_labels=allow_unmatched_labels,
    )
    with spinner(reading(sources)):
        result = explain_files(
            loaded,
            sources,
            moment(at),
            slo,
            columns,
            step=span,
            con=connect(engine),
        )
    document = attribution_json(result)
    if output is TableOrJson.json:
        typer.echo(json.dumps(document, indent=2))
    else:
        print_attribution(stdout(), document)
