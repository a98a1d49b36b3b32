"""``mlslo client resend``: deliver what the Python SDK kept in its spool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlslo.cli.shell import TokenOption, stderr, user_errors
from mlslo.errors import DataError

client_app = typer.Typer(
    help="Look after the Python SDK's spool.", no_args_is_help=True, rich_markup_mode=None
)


def register(app: typer.Typer) -> None:
    app.add_typer(client_app, name="client")


@client_app.command("resend")
@user_errors
def resend(
    url: Annotated[
        str,
        typer.Option("--url", help="The server, e.g. http://127.0.0.1:8080.", show_default=False),
    ],
    token: TokenOption = None,
    spool: Annotated[
        Path | None,
        typer.Option(
            "--spool",
            help="The spool folder (the client's spool_dir). Default: the one the SDK uses "
            "for --url.",
        ),
    ] = None,
    rejected: Annotated[
        bool,
        typer.Option("--rejected", help="Also send again the batches the server rejected."),
    ] = False,
) -> None:
    """Send every spooled batch now, oldest first (after a refused token was fixed)."""
    from mlslo.client import resend as send_spool

    done = send_spool(url, token, spool, rejected=rejected)
    parts = [
        f"{_count(done.batches, 'batch', 'batches')} sent",
        f"{_count(done.totals.accepted, 'record', 'records')} accepted",
        _count(done.totals.duplicates, "duplicate", "duplicates"),
        f"{len(done.rejected):,} rejected",
    ]
    if rejected:
        parts.insert(0, f"{_count(done.restored, 'set-aside batch', 'set-aside batches')} put back")
    typer.echo(f"{done.spool}: {', '.join(parts)}")
    if done.writing:
        stderr().print(
            f"{_count(done.writing, 'batch is', 'batches are')} still being written by a "
            "running client, which sends them",
            markup=False,
        )
    if done.rejected:
        path, reason = done.rejected[0]
        more = f" ({len(done.rejected) - 1} more batches too)" if len(done.rejected) > 1 else ""
        raise DataError(
            f"the server rejected it{more}: {reason}; fix the spec or the records, then send "
            "it again with --rejected",
            source=str(path),
        )


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"
