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
    Records,
    SpecOption,
    StateOption,
    TableOrJson,
    TableOrJsonOption,
    duration,
    moment,
    reading,
    spinner,
    stated_moment,
    stderr,
    stdout,
    user_errors,
)
from mlslo.errors import UsageError


def register(app: typer.Typer) -> None:
    for command in (validate, evaluate, alerts, rules, report):
        app.command()(user_errors(command))


SpecArgument = Annotated[
    Path | None, typer.Argument(help="The SLO spec (YAML); or give it with --spec.")
]
SpecAsOption = Annotated[
    Path | None, typer.Option("--spec", "-s", help="The SLO spec (YAML).", show_default=False)
]


def _one_spec(positional: Path | None, option: Path | None) -> Path:
    chosen = positional if positional is not None else option
    if chosen is None or (positional is not None and option is not None):
        raise UsageError("give the spec once: mlslo <command> SPEC, or --spec SPEC")
    return chosen


def validate(spec: SpecArgument = None, spec_option: SpecAsOption = None) -> None:
    """Check an SLO spec; errors name the file, line, YAML path and fix; warnings say what
    is valid but probably not meant. Lists the SLOs each policy rule covers."""
    from mlslo.render.tables import validation_summary
    from mlslo.spec import load_spec
    from mlslo.spec.references import spec_warnings

    spec = _one_spec(spec, spec_option)
    loaded = load_spec(spec)
    typer.echo(validation_summary(str(spec), loaded))
    for warning in spec_warnings(loaded):
        stderr().print(f"warning: {warning}", markup=False, highlight=False)


def evaluate(
    spec: SpecOption,
    data: DataOption = None,
    labels: LabelsOption = None,
    outcomes: OutcomesOption = None,
    at: AtOption = None,
    output: FormatOption = OutputFormat.table,
    series: Annotated[
        str | None,
        typer.Option(
            "--series",
            help="Add the SLI per step across each window (e.g. 1d, 6h); a table "
            "per SLO in the table and Markdown formats.",
        ),
    ] = None,
    dedupe: DedupeOption = False,
    allow_unmatched_labels: AllowUnmatchedOption = False,
    engine: EngineOption = Engine.duckdb,
    state: StateOption = None,
) -> None:
    """Evaluate every SLO from prediction logs (or from the rollups of mlslo scan --state):
    SLIs, budgets, burn rates."""
    from mlslo.api import evaluate_files, evaluate_state
    from mlslo.render.documents import evaluation_json
    from mlslo.render.tables import evaluation_markdown, print_evaluation
    from mlslo.spec import load_spec

    loaded = load_spec(spec)
    step = None if series is None else duration(series, "series")
    records = Records(data, labels, outcomes, dedupe, allow_unmatched_labels, engine, state)
    stored = records.stored()
    if stored is not None:
        result = evaluate_state(loaded, stored, stated_moment(at), series_step=step)
    else:
        sources = records.sources(loaded, spec)
        with spinner(reading(sources)):
            result = evaluate_files(
                loaded, sources, moment(at), series_step=step, con=records.connection()
            )
    if output is OutputFormat.json:
        typer.echo(json.dumps(evaluation_json(result), indent=2))
    elif output is OutputFormat.markdown:
        typer.echo(evaluation_markdown(result), nl=False)
    else:
        print_evaluation(stdout(), result)


def alerts(
    spec: SpecOption,
    data: DataOption = None,
    labels: LabelsOption = None,
    outcomes: OutcomesOption = None,
    at: AtOption = None,
    output: TableOrJsonOption = TableOrJson.table,
    all_rules: Annotated[
        bool,
        typer.Option("--all", help="Show every rule, not only those firing (table format)."),
    ] = False,
    dedupe: DedupeOption = False,
    allow_unmatched_labels: AllowUnmatchedOption = False,
    engine: EngineOption = Engine.duckdb,
    state: StateOption = None,
) -> None:
    """Check the alert rules once, from files (or the rollups of mlslo scan --state): which
    would fire at --at; exit 1 when a page fires, 3 when only a ticket does."""
    from mlslo.api import evaluate_files, evaluate_state
    from mlslo.decide.alerts import checks
    from mlslo.render.documents import alerts_json
    from mlslo.render.tables import alerts_table
    from mlslo.spec import load_spec

    loaded = load_spec(spec)
    records = Records(data, labels, outcomes, dedupe, allow_unmatched_labels, engine, state)
    stored = records.stored()
    if stored is not None:
        evaluation = evaluate_state(loaded, stored, stated_moment(at))
    else:
        sources = records.sources(loaded, spec)
        with spinner(reading(sources)):
            evaluation = evaluate_files(loaded, sources, moment(at), con=records.connection())
    results = checks(loaded, evaluation)
    if output is TableOrJson.json:
        typer.echo(json.dumps(alerts_json(evaluation, results), indent=2))
    else:
        stdout().print(alerts_table(evaluation, results, show_all=all_rules))
    firing = {rule.severity for _, rule, result in results if result.active}
    raise typer.Exit(1 if "page" in firing else 3 if "ticket" in firing else 0)


def rules(
    spec: SpecArgument = None,
    spec_option: SpecAsOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the rules here (default: standard output)."),
    ] = None,
) -> None:
    """Write Prometheus recording and alerting rules over mlslo's /metrics series."""
    from mlslo.render.prometheus_rules import rules_yaml
    from mlslo.spec import load_spec

    text = rules_yaml(load_spec(_one_spec(spec, spec_option)))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        stderr().print(f"wrote {out}", markup=False)


def report(
    spec: SpecOption,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="report.html (self-contained) or report.md.", show_default=False
        ),
    ],
    data: DataOption = None,
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
    state: StateOption = None,
) -> None:
    """Write a self-contained SLO review report (charts inline) for a reliability review,
    from files or the rollups of mlslo scan --state."""
    from mlslo.api import report_files, report_state
    from mlslo.spec import load_spec

    loaded = load_spec(spec)
    records = Records(data, labels, outcomes, dedupe, allow_unmatched_labels, engine, state)
    stored = records.stored()
    if stored is not None:
        report_state(loaded, stored, out, stated_moment(at), policy=policy)
    else:
        sources = records.sources(loaded, spec)
        with spinner(reading(sources)):
            report_files(loaded, sources, moment(at), out, policy=policy, con=records.connection())
    typer.echo(f"wrote {out}")
