"""``mlslo gate``: allow, warn or block a deployment, from files or a running server; and
``mlslo gate override``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mlslo.cli.shell import (
    AllowUnmatchedOption,
    AtOption,
    DedupeOption,
    Engine,
    EngineOption,
    LabelsOption,
    OutcomesOption,
    PolicyOption,
    Records,
    StateOption,
    TableOrJson,
    TableOrJsonOption,
    TokenOption,
    api,
    duration,
    moment,
    reading,
    spinner,
    stated_moment,
    stdout,
    user_errors,
)
from mlslo.errors import UsageError

EXIT_CODES = {"allow": 0, "block": 1, "warn": 3}

gate_app = typer.Typer(
    help="Gate a deployment on what is left of every error budget.",
    invoke_without_command=True,
    rich_markup_mode=None,
)


@gate_app.callback()
@user_errors
def gate(
    ctx: typer.Context,
    spec: Annotated[
        Path | None, typer.Option("--spec", "-s", help="The SLO spec (YAML).", show_default=False)
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            "-d",
            show_default=False,
            help="Prediction records: a Parquet/CSV/NDJSON/Arrow file, a glob, a folder, or a "
            "table's URL (duckdb://, delta://, iceberg://, postgres://; see docs/sources.md). "
            "Default: the spec's source.",
        ),
    ] = None,
    labels: LabelsOption = None,
    outcomes: OutcomesOption = None,
    at: AtOption = None,
    policy: PolicyOption = None,
    candidate: Annotated[
        str | None,
        typer.Option(
            "--candidate",
            help="Also check a candidate's own predictions, e.g. "
            "model_version=v2 (accuracy and fairness SLOs).",
        ),
    ] = None,
    output: TableOrJsonOption = TableOrJson.table,
    warn_ok: Annotated[
        bool, typer.Option("--warn-ok", help="Exit 0 on warn (default: 3).")
    ] = False,
    dedupe: DedupeOption = False,
    allow_unmatched_labels: AllowUnmatchedOption = False,
    engine: EngineOption = Engine.duckdb,
    url: Annotated[
        str | None, typer.Option("--url", help="Ask a running server instead of reading files.")
    ] = None,
    token: TokenOption = None,
    state: StateOption = None,
) -> None:
    """Decide allow / warn / block from the budgets; exit 0 allow, 1 block, 3 warn, 2 error."""
    if ctx.invoked_subcommand is not None:
        return
    from mlslo.render.tables import gate_lines

    if url is not None:
        if data is not None or state is not None:
            raise UsageError(
                "give either --data or --state (evaluate here) or --url (ask a server)"
            )
        params = {
            k: v
            for k, v in (("policy", policy), ("candidate", candidate), ("at", at))
            if v is not None
        }
        document = api(url, token, "GET", "/api/v1/gate", params=params)
    else:
        from mlslo.api import gate_files, gate_state
        from mlslo.measure.candidate import parse_selector
        from mlslo.render.documents import gate_json
        from mlslo.spec import load_spec

        if spec is None:
            raise UsageError(
                "mlslo gate needs --spec and --data (or the spec's source:, or none when every "
                "SLO reads Prometheus), or --url and --token (see mlslo gate --help)"
            )
        loaded = load_spec(spec)
        selector = parse_selector(candidate) if candidate else None
        records = Records(data, labels, outcomes, dedupe, allow_unmatched_labels, engine, state)
        stored = records.stored()
        if stored is not None:
            if selector is not None:
                raise UsageError(
                    "a candidate's own predictions are not in the stored rollups; give --data "
                    "to scan them",
                    parameter="candidate",
                )
            run = gate_state(loaded, stored, stated_moment(at), policy=policy)
        else:
            sources = records.sources(loaded, spec)
            with spinner(reading(sources)):
                run = gate_files(
                    loaded,
                    sources,
                    moment(at),
                    policy=policy,
                    candidate=selector,
                    con=records.connection(),
                )
        document = gate_json(run.evaluation, run.decision, run.candidate)
    if output is TableOrJson.json:
        typer.echo(json.dumps(document, indent=2))
    else:
        console = stdout()
        for line in gate_lines(document):
            console.print(line)
    code = EXIT_CODES[document["decision"]]
    if code == 3 and warn_ok:
        code = 0
    raise typer.Exit(code)


@gate_app.command("override")
@user_errors
def gate_override(
    reason: Annotated[
        str, typer.Option("--reason", help="Why (shown on every decision).", show_default=False)
    ],
    expires: Annotated[
        str, typer.Option("--expires", help="How long it lasts (at most 30d).")
    ] = "24h",
    url: Annotated[
        str,
        typer.Option("--url", help="The server, e.g. http://127.0.0.1:8080.", show_default=False),
    ] = "",
    token: TokenOption = None,
) -> None:
    """Let blocked deployments through (as warnings) until the override expires (admin)."""
    if not url:
        raise UsageError("give --url of the server (and an admin --token)")
    duration(expires, "expires")
    created = api(
        url, token, "POST", "/api/v1/gate/overrides", json={"reason": reason, "expires": expires}
    )
    typer.echo(
        f"override {created['id']} active until {created['expires_at']}: {created['reason']}"
    )
