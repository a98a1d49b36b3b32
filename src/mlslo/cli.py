"""The ``mlslo`` command line. Each command is a thin wrapper over one library call.

User errors (a bad spec, a missing column, a malformed --at) print one line naming the file,
field or row and the fix, and exit with status 2; no traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from typer._click import exceptions as click_exceptions
from typer.core import TyperGroup

from mlslo import __version__
from mlslo.errors import MlsloError, UsageError
from mlslo.moments import parse_duration

if TYPE_CHECKING:
    from rich.console import Console

    from mlslo.demo.scenario import DemoData
    from mlslo.measure.evaluate import Evaluation
    from mlslo.scan.files import Sources
    from mlslo.spec import Spec


class _OneLineErrors(TyperGroup):
    """Command-line mistakes are one line on stderr and exit 2; unexpected failures exit 70
    (exit 1 is reserved for a gate that blocks)."""

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
            _stderr().print(f"error: {error.format_message()}{hint}", markup=False, highlight=False)
            sys.exit(error.exit_code)
        except typer.Exit as done:
            sys.exit(done.exit_code)
        except typer.Abort:
            _stderr().print("aborted", markup=False)
            sys.exit(130)
        except Exception as failure:
            _stderr().print(
                f"error: internal error ({type(failure).__name__}: {failure}); "
                "please report it with the command you ran",
                markup=False,
                highlight=False,
            )
            sys.exit(70)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="mlslo",
    help="SRE error budgets for ML systems: accuracy, freshness, uptime and fairness SLOs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
P = ParamSpec("P")
R = TypeVar("R")


def _stdout() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors into one line on stderr and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except MlsloError as error:
            _stderr().print(f"error: {error}", markup=False, highlight=False)
            raise typer.Exit(2) from None

    return wrapper


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


class GateFormat(StrEnum):
    table = "table"
    json = "json"


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


def parse_at(text: str | None, *, now: Callable[[], datetime] | None = None) -> datetime:
    """``--at``: ISO-8601 (naive means UTC) or ``now``."""
    if text is None or text == "now":
        return (now or (lambda: datetime.now(UTC)))()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--at: '{text}' is not an ISO-8601 time; write e.g. 2026-11-30T00:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_step(text: str | None, option: str) -> timedelta | None:
    return None if text is None else _duration(text, option)


def _duration(text: str, option: str) -> timedelta:
    """A duration option (never zero: parse_duration refuses it)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


SpecOption = Annotated[
    Path, typer.Option("--spec", "-s", help="The SLO spec (YAML).", show_default=False)
]
DataOption = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        show_default=False,
        help="Prediction records: a Parquet/CSV/NDJSON/Arrow file, a glob or a folder.",
    ),
]
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
GateFormatOption = Annotated[GateFormat, typer.Option("--format", "-f", help="Output format.")]
DedupeOption = Annotated[
    bool,
    typer.Option(
        "--dedupe",
        help="Count a repeated prediction id once (costs a hash of every id; the server "
        "always does it at ingest).",
    ),
]
EngineOption = Annotated[
    Engine,
    typer.Option(
        "--engine", help="Where the scan runs: embedded DuckDB, or PySpark (needs mlslo[spark])."
    ),
]


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        typer.echo(f"mlslo {__version__}")
        raise typer.Exit(0)


@app.command()
@user_errors
def validate(spec: Annotated[Path, typer.Argument(help="The SLO spec to check (YAML).")]) -> None:
    """Check an SLO spec; errors name the file, line, YAML path and fix."""
    from mlslo.spec import load_spec

    loaded = load_spec(spec)
    names = ", ".join(f"{s.name} ({s.dimension})" for s in loaded.slos)
    policies = loaded.all_policies()
    extra = f"; policies: {', '.join(policies)}" if policies else ""
    typer.echo(f"{spec}: valid — service {loaded.service}, {len(loaded.slos)} SLOs: {names}{extra}")


@app.command()
@user_errors
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
    engine: EngineOption = Engine.duckdb,
) -> None:
    """Evaluate every SLO from prediction logs: SLIs, budgets, burn rates."""
    from mlslo.render.documents import evaluation_json
    from mlslo.render.tables import evaluation_markdown
    from mlslo.scan.files import Sources
    from mlslo.spec import load_spec

    loaded = load_spec(spec)
    moment = parse_at(at)
    step = parse_step(series, "--series")
    sources = Sources(data, labels, outcomes, dedupe)
    result = _evaluate_local(loaded, sources, moment, engine, series_step=step)
    if output is OutputFormat.json:
        typer.echo(json.dumps(evaluation_json(result), indent=2))
    elif output is OutputFormat.markdown:
        typer.echo(evaluation_markdown(result), nl=False)
    else:
        _print_evaluation(_stdout(), result)


gate_app = typer.Typer(
    help="Gate a deployment on what is left of every error budget.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(gate_app, name="gate")
EXIT_CODES = {"allow": 0, "block": 1, "warn": 3}


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
            help="Prediction records: a Parquet/CSV/NDJSON/Arrow file, a glob or a folder.",
        ),
    ] = None,
    labels: LabelsOption = None,
    outcomes: OutcomesOption = None,
    at: AtOption = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy", help="Which policy of the spec (default: default_policy, or the only one)."
        ),
    ] = None,
    candidate: Annotated[
        str | None,
        typer.Option(
            "--candidate",
            help="Also check a candidate's own predictions, e.g. "
            "model_version=v2 (accuracy and fairness SLOs).",
        ),
    ] = None,
    output: GateFormatOption = GateFormat.table,
    warn_ok: Annotated[
        bool, typer.Option("--warn-ok", help="Exit 0 on warn (default: 3).")
    ] = False,
    dedupe: DedupeOption = False,
    engine: EngineOption = Engine.duckdb,
    url: Annotated[
        str | None, typer.Option("--url", help="Ask a running server instead of reading files.")
    ] = None,
    token: TokenOption = None,
) -> None:
    """Decide allow / warn / block from the budgets; exit 0 allow, 1 block, 3 warn, 2 error."""
    if ctx.invoked_subcommand is not None:
        return
    from mlslo.render.documents import gate_json
    from mlslo.render.tables import gate_lines

    if url is not None:
        if data is not None:
            raise UsageError("give either --data (evaluate files) or --url (ask a server)")
        params = {
            k: v
            for k, v in (("policy", policy), ("candidate", candidate), ("at", at))
            if v is not None
        }
        document = _api(url, token, "GET", "/api/v1/gate", params=params)
    else:
        from mlslo.api import gate_files
        from mlslo.measure.candidate import parse_selector
        from mlslo.scan.files import Sources
        from mlslo.spec import load_spec

        if spec is None or data is None:
            raise UsageError(
                "mlslo gate needs --spec and --data, or --url and --token (see mlslo gate --help)"
            )
        loaded = load_spec(spec)
        moment = parse_at(at)
        selector = parse_selector(candidate) if candidate else None
        with _progress(f"Scanning {data}"):
            run = gate_files(
                loaded,
                Sources(data, labels, outcomes, dedupe),
                moment,
                policy=policy,
                candidate=selector,
                con=_connect(engine),
            )
        document = gate_json(run.evaluation, run.decision, run.candidate)
    if output is GateFormat.json:
        typer.echo(json.dumps(document, indent=2))
    else:
        console = _stdout()
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
    parse_step(expires, "--expires")
    created = _api(
        url, token, "POST", "/api/v1/gate/overrides", json={"reason": reason, "expires": expires}
    )
    typer.echo(
        f"override {created['id']} active until {created['expires_at']}: {created['reason']}"
    )


@app.command()
@user_errors
def alerts(
    spec: SpecOption,
    data: DataOption,
    labels: LabelsOption = None,
    outcomes: OutcomesOption = None,
    at: AtOption = None,
    output: GateFormatOption = GateFormat.table,
    all_rules: Annotated[
        bool, typer.Option("--all", help="Show every rule, not only those firing or held back.")
    ] = False,
    dedupe: DedupeOption = False,
    engine: EngineOption = Engine.duckdb,
) -> None:
    """Check the burn-rate alert rules once, from files: which would fire at --at."""
    from mlslo.decide.alerts import checks
    from mlslo.render.documents import alerts_json
    from mlslo.render.tables import alerts_table
    from mlslo.scan.files import Sources
    from mlslo.spec import load_spec

    loaded = load_spec(spec)
    moment = parse_at(at)
    evaluation = _evaluate_local(loaded, Sources(data, labels, outcomes, dedupe), moment, engine)
    results = checks(loaded, evaluation)
    if output is GateFormat.json:
        typer.echo(json.dumps(alerts_json(evaluation, results), indent=2))
    else:
        _stdout().print(alerts_table(evaluation, results, show_all=all_rules))


@app.command()
@user_errors
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
        _stderr().print(f"wrote {out}", markup=False)


@app.command()
@user_errors
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
    from rich.progress import Progress

    from mlslo.api import evaluate_files
    from mlslo.demo.scenario import Scenario, generate, write_files
    from mlslo.scan.files import Sources
    from mlslo.spec import load_spec

    end = parse_at(at).replace(second=0, microsecond=0)
    scenario = Scenario(end=end, seed=seed, days=days, daily_volume=volume)
    if not no_serve:
        from mlslo.server.run import check_port

        check_port(host, port)
    with Progress(console=_stderr(), transient=True) as bar:
        task = bar.add_task("Generating traffic", total=days)
        data = generate(scenario, lambda done, total: bar.update(task, completed=done))
        paths = write_files(out, data)
    console = _stdout()
    console.print(
        f"Wrote {paths['spec']}, {paths['predictions']} and {paths['labels']}.",
        markup=False,
        highlight=False,
    )
    for incident in scenario.incidents():
        console.print(
            f"  • {incident.name} ({incident.dimension}): {incident.description}",
            markup=False,
            highlight=False,
        )
    spec = load_spec(paths["spec"])
    if no_serve:
        result = evaluate_files(spec, Sources(str(paths["predictions"]), str(paths["labels"])), end)
        _print_evaluation(console, result)
        console.print(
            f"\nTry: mlslo evaluate --spec {paths['spec']} --data "
            f"{paths['predictions']} --labels {paths['labels']} --at "
            f"{end.isoformat().replace('+00:00', 'Z')}",
            markup=False,
            highlight=False,
        )
        return
    _serve_demo(spec, paths, data, out, scenario, host, port, console)


@app.command()
@user_errors
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
    engine: EngineOption = Engine.duckdb,
) -> None:
    """Write a self-contained SLO review report (charts inline) for a reliability review."""
    from mlslo.decide.alerts import checks
    from mlslo.decide.gate import gate as decide_gate
    from mlslo.render.documents import alerts_json, evaluation_json, gate_json
    from mlslo.render.report import report_html, report_markdown
    from mlslo.render.views import series_step
    from mlslo.scan.files import Sources
    from mlslo.spec import load_spec

    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".md", ".markdown"):
        raise UsageError(f"--out: '{out}' should end in .html or .md")
    loaded = load_spec(spec)
    moment = parse_at(at)
    step = min((series_step(str(s.window)) for s in loaded.slos), default=None)
    sources = Sources(data, labels, outcomes, dedupe)
    evaluation = _evaluate_local(loaded, sources, moment, engine, series_step=step)
    document = evaluation_json(evaluation)
    gate_document = None
    if loaded.all_policies():
        decision = decide_gate(loaded, evaluation, policy=policy)
        gate_document = gate_json(evaluation, decision)
    alerts_document = alerts_json(evaluation, checks(loaded, evaluation))
    render = report_html if suffix in (".html", ".htm") else report_markdown
    out.write_text(render(document, loaded, gate_document, alerts_document), encoding="utf-8")
    typer.echo(f"wrote {out}")


def _serve_demo(
    spec: Any,
    paths: dict[str, Path],
    data: DemoData,
    out: Path,
    scenario: Any,
    host: str,
    port: int,
    console: Console,
) -> None:
    from rich.progress import Progress

    from mlslo.render.tables import evaluation_table
    from mlslo.server.run import serve_store
    from mlslo.server.store import Store

    db = out / "mlslo.duckdb"
    for stale in (db, out / "mlslo.duckdb.wal"):
        stale.unlink(missing_ok=True)
    offset: timedelta = scenario.end - datetime.now(UTC)

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    store = Store.open(db, spec, clock=clock)
    with Progress(console=_stderr(), transient=True) as bar:
        task = bar.add_task("Loading the store", total=scenario.days)
        store.bulk_load(
            data.predictions,
            data.labels,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(evaluation_table(store.evaluate(clock())))
    _, admin = store.create_token("admin", "demo")
    _, reader = store.create_token("read", "demo dashboard")
    url = f"http://{host}:{port}"
    banner = (
        f"\nThe dashboard: {url}/?token={reader}\n"
        f"API (admin token): curl -H 'Authorization: Bearer {admin}' {url}/api/v1/slos\n"
        f"API docs: {url}/docs · the spec: {paths['spec']} · Ctrl-C stops the server"
    )
    serve_store(
        store, paths["spec"], host=host, port=port, auth=True, console=console, banner=banner
    )


def parse_size(text: str, option: str) -> int:
    """``64MB`` -> 67108864."""
    units = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
    clean = text.strip().lower()
    for unit in sorted(units, key=len, reverse=True):
        if clean.endswith(unit) and clean[: -len(unit)].strip().replace(".", "", 1).isdigit():
            return int(float(clean[: -len(unit)]) * units[unit])
    if clean.isdigit():
        return int(clean)
    raise UsageError(f"{option}: '{text}' is not a size; write e.g. 64MB")


DbOption = Annotated[
    Path | None, typer.Option("--db", help="The service's DuckDB file.", show_default=False)
]


@app.command()
@user_errors
def serve(
    spec: SpecOption,
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
) -> None:
    """Run the service: ingestion API, status, gate, alerts, /metrics and the dashboard."""
    from mlslo.server.run import run_server

    run_server(
        spec_path=spec,
        db=db,
        host=host,
        port=port,
        auth=not no_auth,
        retention=_duration(retention, "--retention"),
        max_body=parse_size(max_body, "--max-body"),
        max_skew=_duration(max_skew, "--max-skew"),
        eval_interval=_duration(eval_interval, "--eval-interval"),
        log_level=log_level,
        console=_stderr(),
        memory_limit=memory_limit,
        label_horizon=_duration(label_horizon, "--label-horizon"),
    )


token_app = typer.Typer(
    help="Create, list and revoke API tokens.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(token_app, name="token")
ScopeOption = Annotated[
    str,
    typer.Option(
        "--scope", help="ingest (send records), read (status, metrics, gate) or admin (all)."
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


@token_app.command("create")
@user_errors
def token_create(
    scope: ScopeOption,
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
        created = _api(url, token, "POST", "/api/v1/tokens", json={"scope": scope, "name": name})
        typer.echo(created["token"])
        _stderr().print(
            f"token {created['id']} ({scope}) created; it is not shown again", markup=False
        )
        return
    from mlslo.server.store import Store

    store = Store.open_admin(_need_db(db))
    try:
        record, secret = store.create_token(scope, name)  # type: ignore[arg-type]
    finally:
        store.close()
    typer.echo(secret)
    _stderr().print(f"token {record.id} ({scope}) created; it is not shown again", markup=False)


@token_app.command("list")
@user_errors
def token_list(
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List tokens (never their secrets)."""
    if url:
        rows = _api(url, token, "GET", "/api/v1/tokens")
    else:
        from mlslo.server.app import token_json
        from mlslo.server.store import Store

        store = Store.open_admin(_need_db(db))
        try:
            rows = [token_json(t) for t in store.tokens()]
        finally:
            store.close()
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
        _api(url, token, "DELETE", f"/api/v1/tokens/{token_id}")
    else:
        from mlslo.server.store import Store

        store = Store.open_admin(_need_db(db))
        try:
            store.revoke_token(token_id)
        finally:
            store.close()
    typer.echo(f"token {token_id} revoked")


def _need_db(db: Path | None) -> Path:
    if db is None:
        raise UsageError("give --db PATH (the server stopped) or --url URL --token ADMIN_TOKEN")
    return db


def _api(url: str, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    from mlslo.client import api_request

    return api_request(url, token, method, path, **kwargs)


@app.command()
@user_errors
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
        raise UsageError(f"--kind: '{kind}' is not one of predictions, labels, outcomes")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} records"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_stderr(), transient=True) as bar:
        task = bar.add_task(f"Sending {kind}", total=0)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        totals = upload_file(
            file, url=url, token=token, kind=kind, batch_size=batch_size, progress=advance
        )
    typer.echo(f"{file}: {totals.accepted:,} accepted, {totals.duplicates:,} duplicates")


def _connect(engine: Engine) -> Any:
    """The ibis backend to scan with; None for embedded DuckDB (the compiled scan)."""
    if engine is Engine.duckdb:
        return None
    try:
        import ibis
        from pyspark.sql import SparkSession
    except ImportError:
        raise UsageError("--engine spark needs PySpark: pip install 'mlslo[spark]'") from None
    builder = SparkSession.builder.appName("mlslo").config("spark.sql.session.timeZone", "UTC")
    if "SPARK_MASTER" not in os.environ and "spark.master" not in os.environ.get(
        "PYSPARK_SUBMIT_ARGS", ""
    ):
        builder = builder.master("local[*]").config("spark.ui.enabled", "false")
    return ibis.pyspark.connect(builder.getOrCreate())


@contextmanager
def _progress(message: str) -> Iterator[None]:
    """A spinner on stderr while a long step runs (only on a terminal)."""
    if not sys.stderr.isatty():
        yield
        return
    with _stderr().status(message):
        yield


def _evaluate_local(
    spec: Spec,
    sources: Sources,
    at: datetime,
    engine: Engine,
    *,
    series_step: timedelta | None = None,
) -> Evaluation:
    """Evaluate from files with the chosen engine, under a spinner."""
    from mlslo.api import evaluate_files

    with _progress(f"Scanning {sources.predictions}"):
        return evaluate_files(spec, sources, at, series_step=series_step, con=_connect(engine))


def _print_evaluation(console: Console, evaluation: Evaluation) -> None:
    """The evaluation table, then a bullet for each reason."""
    from mlslo.render.tables import evaluation_table, reasons

    console.print(evaluation_table(evaluation))
    for line in reasons(evaluation):
        console.print(f"  • {line}", markup=False, highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
