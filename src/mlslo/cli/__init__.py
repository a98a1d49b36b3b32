"""The ``mlslo`` command line: each command parses its arguments and calls one library
function; library errors become one line and exit status 2 (:mod:`mlslo.cli.shell`)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlslo.cli import client, evaluate, explain, scan, service
from mlslo.cli.gate import gate_app
from mlslo.cli.openslo import openslo_app
from mlslo.cli.shell import OneLineErrors
from mlslo.version import __version__

app = typer.Typer(
    cls=OneLineErrors,
    name="mlslo",
    help="SRE error budgets for ML systems: accuracy, freshness, uptime and fairness SLOs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        typer.echo(f"mlslo {__version__}")
        raise typer.Exit(0)


evaluate.register(app)
scan.register(app)
explain.register(app)
app.add_typer(gate_app, name="gate")
service.register(app)
client.register(app)
app.add_typer(openslo_app, name="openslo")


def main() -> None:
    app()
