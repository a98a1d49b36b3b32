"""``mlslo serve``, ``demo``, ``token`` and ``ingest``: running the service and talking to it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from mlslo.cli.shell import (
    DataOption,
    DbOption,
    LabelsOption,
    OutcomesOption,
    TokenOption,
    UrlOption,
    api,
    duration,
    moment,
    required_sources,
    size,
    stderr,
    stdout,
    user_errors,
)
from mlslo.errors import UsageError

token_app = typer.Typer(
    help="Create, list and revoke API tokens.", no_args_is_help=True, rich_markup_mode=None
)
store_app = typer.Typer(
    help="Look after the service's database file.", no_args_is_help=True, rich_markup_mode=None
)


def register(app: typer.Typer) -> None:
    for command in (demo, serve, ingest):
        app.command()(user_errors(command))
    app.add_typer(token_app, name="token")
    app.add_typer(store_app, name="store")


def serve(
    spec: Annotated[
        Path, typer.Option("--spec", "-s", help="The SLO spec (YAML).", show_default=False)
    ],
    db: Annotated[Path, typer.Option("--db", help="The DuckDB file (created if absent).")] = Path(
        "mlslo.duckdb"
    ),
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Accept requests without a token (development only).")
    ] = False,
    retention: Annotated[
        str, typer.Option("--retention", help="How long raw records are kept.")
    ] = "35d",
    max_body: Annotated[
        str, typer.Option("--max-body", help="Largest accepted request body.")
    ] = "64MB",
    max_skew: Annotated[
        str, typer.Option("--max-skew", help="How far in the future a record's ts may be.")
    ] = "5m",
    eval_interval: Annotated[
        str, typer.Option("--eval-interval", help="How often alerts are evaluated.")
    ] = "30s",
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "warning",
    memory_limit: Annotated[
        str, typer.Option("--memory-limit", help="DuckDB's memory limit (the store's cache).")
    ] = "512MB",
    label_horizon: Annotated[
        str,
        typer.Option(
            "--label-horizon", help="How long a label waits for its prediction to arrive."
        ),
    ] = "30d",
    max_groups: Annotated[
        int,
        typer.Option(
            "--max-groups",
            min=1,
            help="Most distinct values an attribute (group, model_version, ...) may take.",
        ),
    ] = 1000,
    fold_groups: Annotated[
        bool,
        typer.Option(
            "--fold-groups",
            help="Count records with values past --max-groups as '(other)' instead of "
            "refusing them.",
        ),
    ] = False,
    pull: Annotated[
        bool,
        typer.Option(
            "--pull",
            help="Also read new records from the spec's source (or --data, --labels, "
            "--outcomes) on a schedule and ingest them.",
        ),
    ] = False,
    data: DataOption = None,
    labels: LabelsOption = None,
    outcomes: OutcomesOption = None,
    pull_every: Annotated[
        str, typer.Option("--pull-every", help="How often to pull (with --pull).")
    ] = "1m",
    lateness: Annotated[
        str,
        typer.Option(
            "--lateness",
            help="How long after its ts a record may still reach the source; each pull "
            "reads again this far before the last watermark (with --pull).",
        ),
    ] = "1h",
) -> None:
    """Run the service: ingestion API, status, gate, alerts, /metrics and the dashboard."""
    from mlslo.server.run import ServerOptions, run_server
    from mlslo.spec import load_spec

    sources = None
    if pull:
        sources = required_sources(
            load_spec(spec),
            spec,
            data,
            labels,
            outcomes,
            missing="pulling reads prediction records: give them (or source: "
            "{predictions: ...} in the spec)",
        )
    elif data is not None or labels is not None or outcomes is not None:
        raise UsageError(
            "records are read from a source only in pull mode; add --pull, or send them "
            "with mlslo ingest",
            parameter="pull",
        )
    every = duration(pull_every, "pull_every")
    if every <= timedelta(0):
        raise UsageError("give a positive interval, e.g. 1m", parameter="pull_every")

    run_server(
        ServerOptions(
            spec_path=spec,
            db=db,
            host=host,
            port=port,
            auth=not no_auth,
            retention=duration(retention, "retention"),
            max_body=size(max_body, "max_body"),
            max_skew=duration(max_skew, "max_skew"),
            eval_interval=duration(eval_interval, "eval_interval"),
            log_level=log_level,
            memory_limit=memory_limit,
            label_horizon=duration(label_horizon, "label_horizon"),
            max_groups=max_groups,
            fold_groups=fold_groups,
            pull=sources,
            pull_every=every,
            lateness=duration(lateness, "lateness"),
        ),
        console=stderr(),
    )


def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the generated files.")] = Path(
        "mlslo-demo"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the scenario.")] = 7,
    at: Annotated[
        str | None,
        typer.Option("--at", help="End of the generated traffic (ISO-8601). Default: now."),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=7, max=90, help="Days of traffic.")] = 30,
    volume: Annotated[
        int, typer.Option("--volume", min=1000, help="Predictions per day (on average).")
    ] = 20_000,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Only write the files (spec, predictions, labels).")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8080,
) -> None:
    """A realistic fraud-scoring scenario with incidents: files, a store, the dashboard."""
    from mlslo.demo import Scenario, run_demo

    end = moment(at).replace(second=0, microsecond=0)
    scenario = Scenario(end=end, seed=seed, days=days, daily_volume=volume)
    run_demo(
        scenario,
        out,
        serve=None if no_serve else (host, port),
        console=stdout(),
        progress_console=stderr(),
    )


@token_app.command("create")
@user_errors
def token_create(
    scope: Annotated[
        str,
        typer.Option(
            "--scope", help="ingest (send records), read (status, metrics, gate) or admin (all)."
        ),
    ],
    db: Annotated[
        Path | None,
        typer.Option("--db", help="The service's DuckDB file (the server must be stopped)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A note: who uses it.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Create a token; it is printed once and only its hash is stored."""
    if url:
        created = api(url, token, "POST", "/api/v1/tokens", json={"scope": scope, "name": name})
    else:
        from mlslo.server.admin import create_token

        created = create_token(_need_db(db), scope, name)
    typer.echo(created["token"])
    stderr().print(f"token {created['id']} ({scope}) created; it is not shown again", markup=False)


@token_app.command("list")
@user_errors
def token_list(db: DbOption = None, url: UrlOption = None, token: TokenOption = None) -> None:
    """List tokens (never their secrets)."""
    if url:
        rows = api(url, token, "GET", "/api/v1/tokens")
    else:
        from mlslo.server.admin import list_tokens

        rows = list_tokens(_need_db(db))
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        typer.echo(
            f"{row['id']}\t{row['scope']}\t{state}\t{row['created_at']}\t{row['name'] or ''}"
        )


@token_app.command("revoke")
@user_errors
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see mlslo token list).")],
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Revoke a token; it stops working at once."""
    if url:
        api(url, token, "DELETE", f"/api/v1/tokens/{token_id}")
    else:
        from mlslo.server.admin import revoke_token

        revoke_token(_need_db(db), token_id)
    typer.echo(f"token {token_id} revoked")


def _need_db(db: Path | None) -> Path:
    if db is None:
        raise UsageError("give --db PATH (the server stopped) or --url URL --token ADMIN_TOKEN")
    return db


def ingest(
    file: Annotated[str, typer.Argument(help="Records: a Parquet/CSV/NDJSON file.")],
    url: Annotated[
        str,
        typer.Option("--url", help="The server, e.g. http://127.0.0.1:8080.", show_default=False),
    ],
    token: TokenOption = None,
    kind: Annotated[
        str, typer.Option("--kind", help="predictions, labels or outcomes.")
    ] = "predictions",
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Records per request.")
    ] = 50_000,
) -> None:
    """Bulk-load a file through the API (Arrow batches, with a progress bar)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from mlslo.client import upload_file

    if kind not in ("predictions", "labels", "outcomes"):
        raise UsageError(f"'{kind}' is not one of predictions, labels, outcomes", parameter="kind")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} records"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr(), transient=True) as bar:
        task = bar.add_task(f"Sending {kind}", total=0)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        totals = upload_file(
            file, url=url, token=token, kind=kind, batch_size=batch_size, progress=advance
        )
    typer.echo(f"{file}: {totals.accepted:,} accepted, {totals.duplicates:,} duplicates")


@store_app.command("check")
@user_errors
def store_check(
    db: Annotated[
        Path,
        typer.Option(
            "--db", help="The service's DuckDB file (the server stopped).", show_default=False
        ),
    ],
) -> None:
    """Read every table of the store in full, without changing it; exit 2 if any cannot be
    read."""
    from mlslo.server.store.check import check_store

    results = check_store(db)
    for result in results:
        state = f"{result.rows:,} rows" if result.problem is None else f"PROBLEM: {result.problem}"
        typer.echo(f"{result.table:<16}{state}")
    damaged = [r.table for r in results if r.problem is not None and r.problem != "missing"]
    if damaged:
        raise UsageError(
            f"{db}: {', '.join(damaged)} cannot be read; restore the file from a backup"
        )
