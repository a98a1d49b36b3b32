"""``mlslo demo``: a realistic fraud-scoring scenario (:mod:`.scenario`) written to files,
evaluated, loaded into a store and served with its dashboard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from mlslo.demo.scenario import DEMO_SPEC, DemoData, Incident, Scenario, generate, write_files

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["DEMO_SPEC", "DemoData", "Incident", "Scenario", "generate", "run_demo", "write_files"]


def run_demo(
    scenario: Scenario,
    out: Path,
    *,
    serve: tuple[str, int] | None,
    console: Console,
    progress_console: Console,
) -> None:
    """Generate the scenario into ``out``; then print its evaluation (``serve`` None), or
    load it into a store and serve the dashboard on ``serve`` (host, port) until stopped."""
    from rich.progress import Progress

    from mlslo.spec import load_spec

    if serve is not None:
        from mlslo.server.run import check_port

        check_port(*serve)
    with Progress(console=progress_console, transient=True) as bar:
        task = bar.add_task("Generating traffic", total=scenario.days)
        data = generate(scenario, lambda done, total: bar.update(task, completed=done))
        paths = write_files(out, data)
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
    if serve is None:
        from mlslo.api import evaluate_files
        from mlslo.render.format import iso
        from mlslo.render.tables import print_evaluation
        from mlslo.scan.files import Sources

        sources = Sources(str(paths["predictions"]), str(paths["labels"]))
        print_evaluation(console, evaluate_files(spec, sources, scenario.end))
        console.print(
            f"\nTry: mlslo evaluate --spec {paths['spec']} --data {paths['predictions']} "
            f"--labels {paths['labels']} --at {iso(scenario.end)}",
            markup=False,
            highlight=False,
        )
        return
    _serve(scenario, paths, data, out, serve, console, progress_console)


def _serve(
    scenario: Scenario,
    paths: dict[str, Path],
    data: DemoData,
    out: Path,
    address: tuple[str, int],
    console: Console,
    progress_console: Console,
) -> None:
    """The demo's store (its clock shifted so that "now" is the end of the traffic), loaded
    in bulk, then served with a read token in the dashboard's link."""
    from rich.progress import Progress

    from mlslo.measure.evaluate import evaluate
    from mlslo.render.tables import evaluation_table
    from mlslo.server.run import serve_store
    from mlslo.server.store import Store
    from mlslo.spec import load_spec

    db = out / "mlslo.duckdb"
    for stale in (db, out / "mlslo.duckdb.wal"):
        stale.unlink(missing_ok=True)
    offset: timedelta = scenario.end - datetime.now(UTC)

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    spec = load_spec(paths["spec"])
    store = Store.open(db, spec, clock=clock)
    with Progress(console=progress_console, transient=True) as bar:
        task = bar.add_task("Loading the store", total=scenario.days)
        store.writer.bulk_load(
            data.predictions,
            data.labels,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    now = clock()
    reading = store.rollups.at(now)
    evaluation = evaluate(reading.spec, reading.rollups, now, repeated_ids=reading.repeated_ids)
    console.print(evaluation_table(evaluation))
    _, admin = store.tokens.create("admin", "demo")
    _, reader = store.tokens.create("read", "demo dashboard")
    host, port = address
    url = f"http://{host}:{port}"
    banner = (
        f"\nThe dashboard: {url}/?token={reader}\n"
        f"API (admin token): curl -H 'Authorization: Bearer {admin}' {url}/api/v1/slos\n"
        f"API docs: {url}/docs · the spec: {paths['spec']} · Ctrl-C stops the server"
    )
    serve_store(
        store, paths["spec"], host=host, port=port, auth=True, console=console, banner=banner
    )
