"""``mlslo validate``, ``evaluate``, ``alerts``, ``rules`` and ``report``: reading a spec and
record files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mlslo.cli.shell import (
    AllowUnmatchedOption,
    AtOption,
    DataOption,
    DedupeOption,
    Engine,
    EngineOption,
    FormatOption,
    LabelsOption,
    OutcomesOption,
    OutputFormat,
    SpecOption,
    TableOrJson,
    TableOrJsonOption,
    connect,
    duration,
    moment,
    spinner,
    stderr,
    stdout,
    user_errors,
)


def register(app: typer.Typer) -> None:
    for command in (validate, evaluate, alerts, rules, report):
        app.command()(user_errors(command))


def validate(spec: Annotated[Path, typer.Argument(help="The SLO spec to check (YAML).")]) -> None:
    """Check an SLO spec; errors name the file, line, YAML path and fix."""
    from mlslo.render.tables import validation_summary
    from mlslo.spec import load_spec

    typer.echo(validation_summary(str(spec), load_spec(spec)))


def evaluate(
    spec: SpecOption,
    data: DataOption,
    labels: LabelsOption = None,
    outcomes: OutcomesOption = None,
    at: AtOption = None,
    output: FormatOption = OutputFormat.table,
    series: Annotated[
        str | None,
        typer.Option("--series", help="Add the SLI per step across each window (e.g. 1d, 6h)."),
    ] = None,
    dedupe: DedupeOption = False,
    allow_unmatched_labels: AllowUnmatchedOption = False,
    engine: EngineOption = Engine.duckdb,
) -> None:
    """Evaluate every SLO from prediction logs: SLIs, budgets, burn rates."""
    from mlslo.api import evaluate_files
    from mlslo.render.documents import evaluation_json
    from mlslo.render.tables import evaluation_markdown, print_evaluation
    from mlslo.scan.files import Sources
    from mlslo.spec import load_spec

    loaded = load_spec(spec)
    when = moment(at)
    step = None if series is None else duration(series, "series")
    with spinner(f"Scanning {data}"):
        result = evaluate_files(
            loaded,
            Sources(data, labels, outcomes, dedupe, allow_unmatched_labels),
            when,
            series_step=step,
            con=connect(engine),
        )
    if output is OutputFormat.json:
        typer.echo(json.dumps(evaluation_json(result), indent=2))
    elif output is OutputFormat.markdown:
        typer.echo(evaluation_markdown(result), nl=False)
    else:
        print_evaluation(stdout(), result)


def alerts(
    spec: SpecOption,
    data: DataOption,
    labels: LabelsOption = None,
    outcomes: OutcomesOption = None,
    at: AtOption = None,
    output: TableOrJsonOption = TableOrJson.table,
    all_rules: Annotated[
        bool, typer.Option("--all", help="Show every rule, not only those firing or held back.")
    ] = False,
    dedupe: DedupeOption = False,
    allow_unmatched_labels: AllowUnmatchedOption = False,
    engine: EngineOption = Engine.duckdb,
) -> None:
    """Check the burn-rate alert rules once, from files: which would fire at --at."""
    from mlslo.api import evaluate_files
    from mlslo.decide.alerts import checks
    from mlslo.render.documents import alerts_json
    from mlslo.render.tables import alerts_table
    from mlslo.scan.files import Sources
    from mlslo.spec import load_spec

    loaded = load_spec(spec)
    with spinner(f"Scanning {data}"):
        evaluation = evaluate_files(
            loaded,
            Sources(data, labels, outcomes, dedupe, allow_unmatched_labels),
            moment(at),
            con=connect(engine),
        )
    results = checks(loaded, evaluation)
    if output is TableOrJson.json:
        typer.echo(json.dumps(alerts_json(evaluation, results), indent=2))
    else:
        stdout().print(alerts_table(evaluation, results, show_all=all_rules))


def rules(
    spec: Annotated[Path, typer.Argument(help="The SLO spec (YAML).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the rules here (default: standard output)."),
    ] = None,
) -> None:
    """Write Prometheus recording and alerting rules over mlslo's /metrics series."""
    from mlslo.render.prometheus_rules import rules_yaml
    from mlslo.spec import load_spec

    text = rules_yaml(load_spec(spec))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        stderr().print(f"wrote {out}", markup=False)


def report(
    spec: SpecOption,
    data: DataOption,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="report.html (self-contained) or report.md.", show_default=False
        ),
    ],
    labels: LabelsOption = None,
    outcomes: OutcomesOption = None,
    at: AtOption = None,
    policy: Annotated[
        str | None,
        typer.Option("--policy", help="Show this policy's gate decision (default: the spec's)."),
    ] = None,
    dedupe: DedupeOption = False,
    allow_unmatched_labels: AllowUnmatchedOption = False,
    engine: EngineOption = Engine.duckdb,
) -> None:
    """Write a self-contained SLO review report (charts inline) for a reliability review."""
    from mlslo.api import report_files
    from mlslo.scan.files import Sources
    from mlslo.spec import load_spec

    loaded = load_spec(spec)
    with spinner(f"Scanning {data}"):
        report_files(
            loaded,
            Sources(data, labels, outcomes, dedupe, allow_unmatched_labels),
            moment(at),
            out,
            policy=policy,
            con=connect(engine),
        )
    typer.echo(f"wrote {out}")
