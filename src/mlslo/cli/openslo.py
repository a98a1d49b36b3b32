"""``mlslo openslo export`` and ``mlslo openslo import``: a spec to OpenSLO v1 documents and
back, for teams whose SLOs live in OpenSLO (Sloth, Nobl9, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlslo.cli.shell import stderr, user_errors
from mlslo.errors import UsageError

openslo_app = typer.Typer(
    help="Exchange SLOs with OpenSLO v1: export a spec, import OpenSLO documents.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

OutOption = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Write here (default: standard output).", show_default=False),
]


def _write(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}", parameter="out") from None
    stderr().print(f"wrote {out}", markup=False, highlight=False)


@openslo_app.command("export")
@user_errors
def export(
    spec: Annotated[Path | None, typer.Argument(help="The SLO spec (YAML).")] = None,
    spec_option: Annotated[
        Path | None,
        typer.Option("--spec", "-s", help="The SLO spec (YAML).", show_default=False),
    ] = None,
    out: OutOption = None,
) -> None:
    """Write the spec as OpenSLO v1 documents (one YAML stream): a Service, a DataSource, an
    SLO per SLO, and an AlertCondition and AlertPolicy per burn-rate rule."""
    from mlslo.render.openslo import openslo_yaml
    from mlslo.spec import load_spec

    if (spec is None) == (spec_option is None):
        raise UsageError("give the spec once: mlslo openslo export SPEC, or --spec SPEC")
    chosen = spec if spec is not None else spec_option
    assert chosen is not None
    _write(openslo_yaml(load_spec(chosen)), out)


@openslo_app.command("import")
@user_errors
def import_(
    files: Annotated[
        list[Path],
        typer.Argument(help="OpenSLO files (YAML streams), read together.", show_default=False),
    ],
    out: OutOption = None,
) -> None:
    """Read OpenSLO documents into an mlslo spec (YAML). Every part that is not mapped as
    written is one warning line; exit 2 when no SLO could be mapped."""
    from mlslo.spec.openslo import import_openslo

    sources = []
    for file in files:
        try:
            sources.append((str(file), file.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise UsageError(f"{file}: file not found; give OpenSLO YAML files") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{file}: cannot read the file ({exc})") from None
    result = import_openslo(sources)
    level = "warning" if result.spec is not None else "error"
    for note in result.notes:
        stderr().print(f"{level}: {note}", markup=False, highlight=False)
    if result.spec is None:
        raise typer.Exit(2)
    _write(result.yaml(), out)
