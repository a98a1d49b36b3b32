"""Sources by URL: how credentials are found, and errors that name the source and what was
wrong (unreachable, no table, missing column, no such version) without showing a secret."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from conftest import Run, free_port
from mlslo.errors import DataError
from mlslo.inputs.locations import masked, parse_location, password_for
from postgres_server import PASSWORD, USER, write_table

AT = datetime(2026, 3, 2, tzinfo=UTC)
SPEC = """
service: sources
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.9}, window: 1d}
  - name: latency
    dimension: latency
    sli: {latency_threshold: 100ms}
    objective: {target: 0.5}
    window: 1d
"""


def records(n: int = 40) -> pa.Table:
    start = AT - timedelta(hours=12)
    return pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "ts": pa.array(
                [start + timedelta(minutes=7 * i) for i in range(n)], pa.timestamp("us", "UTC")
            ),
            "status": ["error" if i % 10 == 0 else "ok" for i in range(n)],
            "latency_ms": [float(20 + 5 * i) for i in range(n)],
        }
    )


@pytest.fixture
def evaluate(cli: Callable[..., Run], write_spec: Callable[[str], Path]) -> Callable[..., Run]:
    spec = write_spec(SPEC)

    def run(data: str, *extra: str) -> Run:
        return cli(
            "evaluate", "--spec", spec, "--data", data, "--at", AT.isoformat(), "-f", "json", *extra
        )

    return run


def one_line_error(result: Run, *expected: str) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: "), line
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in line, line
    return line


# --- URLs -----------------------------------------------------------------------------------


def test_paths_and_urls_parse_to_their_kind() -> None:
    assert parse_location("logs/*.parquet", role="predictions").kind == "file"
    assert parse_location("file:///data/log.parquet", role="predictions").target == (
        "/data/log.parquet"
    )
    duck = parse_location("duckdb:///data/log.db?table=preds&schema=ml", role="predictions")
    assert (duck.kind, duck.target, duck.table, dict(duck.options)) == (
        "duckdb",
        "/data/log.db",
        "preds",
        {"schema": "ml"},
    )
    delta = parse_location("delta:///lake/preds?version=3", role="predictions")
    assert (delta.kind, delta.target, delta.options["version"]) == ("delta", "/lake/preds", "3")
    pg = parse_location(
        "postgresql://ml@db:5433/prod?table=preds&sslmode=require", role="predictions"
    )
    assert (pg.kind, pg.table, pg.embedded) == ("postgres", "preds", False)
    assert pg.target == "postgres://ml@db:5433/prod?sslmode=require"
    trino = parse_location("trino://ml@trino:8080/hive/ml?table=preds", role="predictions")
    assert (trino.kind, trino.target) == ("trino", "trino://ml@trino:8080/hive/ml")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://ml@db/prod", "names no table; add ?table=<name>, e.g. ?table=predictions"),
        ("duckdb:///x.db?version=2&table=t", "'version=' does not apply to duckdb sources"),
        ("delta:///lake/t?version=latest", "'version=latest' is not a number"),
        ("delta:///lake/t?table=t", "a Delta table is its folder"),
        ("iceberg:///c.db", "?table=ml.predictions"),
    ],
)
def test_malformed_urls_say_what_to_write(url: str, expected: str) -> None:
    with pytest.raises(DataError) as caught:
        parse_location(url, role="predictions")
    assert expected in str(caught.value)
    assert str(caught.value).startswith(url)


def test_a_password_in_the_url_is_refused_and_never_shown(
    evaluate: Callable[..., Run],
) -> None:
    for url in (
        "postgres://ml:hunter2-secret@127.0.0.1:5432/prod?table=predictions",
        "postgres://ml@127.0.0.1:5432/prod?table=predictions&password=hunter2-secret",
    ):
        result = evaluate(url)
        line = one_line_error(result, "a password in the URL is refused", "MLSLO_PG_PASSWORD")
        assert "hunter2-secret" not in result.stderr + result.stdout
        assert "***" in line
    assert "hunter2" not in masked("snowflake://me:hunter2@acct/db?table=t")


def test_password_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "pw"
    file.write_text("from-file\nignored\n", encoding="utf-8")
    with_file = parse_location(
        f"postgres://ml@db/prod?table=t&password_file={file}", role="predictions"
    )
    assert password_for(with_file, {"MLSLO_PG_PASSWORD": "from-env"}) == "from-file"
    plain = parse_location("postgres://ml@db/prod?table=t", role="predictions")
    assert password_for(plain, {"MLSLO_PG_PASSWORD": "from-env"}) == "from-env"
    assert password_for(plain, {}) is None
    trino = parse_location("trino://ml@trino/hive/ml?table=t", role="predictions")
    assert password_for(trino, {"MLSLO_TRINO_PASSWORD": "t"}) == "t"
    missing = parse_location(
        f"postgres://ml@db/prod?table=t&password_file={tmp_path / 'none'}", role="predictions"
    )
    with pytest.raises(DataError, match="cannot read the password_file"):
        password_for(missing, {})


# --- PostgreSQL -----------------------------------------------------------------------------

pg = [pytest.mark.integration, pytest.mark.system("postgresql")]


@pytest.fixture(scope="module")
def pg_tables(postgres: Any) -> Any:
    write_table(postgres, "src_predictions", records())
    write_table(postgres, "src_no_latency", records().drop_columns(["latency_ms"]))
    return postgres


@pytest.mark.parametrize("how", ["MLSLO_PG_PASSWORD", "PGPASSWORD", "password_file"])
@pytest.mark.integration
@pytest.mark.system("postgresql")
def test_postgres_credentials(
    how: str,
    pg_tables: Any,
    evaluate: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("MLSLO_PG_PASSWORD", raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    options: dict[str, str] = {}
    if how == "password_file":
        (tmp_path / "pg.pw").write_text(PASSWORD + "\n", encoding="utf-8")
        options["password_file"] = str(tmp_path / "pg.pw")
    else:
        monkeypatch.setenv(how, PASSWORD)
    result = evaluate(pg_tables.url("src_predictions", **options))
    assert result.exit_code == 0, result.stderr
    uptime = result.json()["slos"][0]["sli"]
    assert (uptime["good"], uptime["valid"]) == (36.0, 40.0)
    assert PASSWORD not in result.stdout


@pytest.mark.integration
@pytest.mark.system("postgresql")
def test_postgres_errors_name_the_source_and_hide_the_password(
    pg_tables: Any,
    evaluate: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLSLO_PG_PASSWORD", "wrong-Secret-42")
    bad = evaluate(pg_tables.url("src_predictions"))
    one_line_error(bad, pg_tables.url("src_predictions"), "cannot connect", "password")
    assert "wrong-Secret-42" not in bad.stderr

    monkeypatch.setenv("MLSLO_PG_PASSWORD", PASSWORD)
    unreachable = f"postgres://{USER}@127.0.0.1:{free_port()}/postgres?table=t"
    one_line_error(evaluate(unreachable), unreachable, "cannot connect", "refused")

    missing_table = pg_tables.url("nope")
    line = one_line_error(evaluate(missing_table), missing_table, "has no table 'nope'")
    assert "src_predictions" in line

    no_column = pg_tables.url("src_no_latency")
    one_line_error(evaluate(no_column), no_column, "column 'latency_ms'", "is missing")
    for result in (bad, evaluate(missing_table), evaluate(no_column)):
        assert PASSWORD not in result.stderr + result.stdout


@pytest.mark.integration
@pytest.mark.system("postgresql")
def test_labels_must_live_in_the_database_that_runs_the_scan(
    pg_tables: Any, evaluate: Callable[..., Run], tmp_path: Path
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("id,ts,label\np1,2026-03-01T12:00:00Z,1\n", encoding="utf-8")
    result = evaluate(pg_tables.url("src_predictions"), "--labels", str(labels))
    one_line_error(result, str(labels), "must be in the same database as the predictions")


# --- tables the embedded DuckDB reads -------------------------------------------------------


def test_duckdb_database_errors(tmp_path: Path, evaluate: Callable[..., Run]) -> None:
    path = tmp_path / "log.db"
    con = duckdb.connect(str(path))
    con.register("incoming", records())
    con.execute("CREATE TABLE predictions AS SELECT * FROM incoming")
    con.close()
    good = evaluate(f"duckdb://{path}?table=predictions")
    assert good.exit_code == 0, good.stderr
    assert good.json()["slos"][0]["sli"]["valid"] == 40.0
    missing = f"duckdb://{path}?table=preds"
    one_line_error(evaluate(missing), missing, "has no table 'preds' (tables: predictions)")
    nowhere = f"duckdb://{tmp_path / 'none.db'}?table=predictions"
    one_line_error(evaluate(nowhere), nowhere, "no such DuckDB database file")


def test_delta_and_iceberg_errors(tmp_path: Path, evaluate: Callable[..., Run]) -> None:
    from deltalake import write_deltalake
    from pyiceberg.catalog.sql import SqlCatalog

    write_deltalake(str(tmp_path / "delta"), records())
    too_new = f"delta://{tmp_path / 'delta'}?version=5"
    one_line_error(evaluate(too_new), too_new, "cannot be read as a Delta table")
    not_delta = f"delta://{tmp_path}"
    one_line_error(evaluate(not_delta), not_delta, "is not a Delta table")

    catalog_file = tmp_path / "catalog.db"
    catalog = SqlCatalog("lake", uri=f"sqlite:///{catalog_file}", warehouse=f"file://{tmp_path}")
    catalog.create_namespace("ml")
    catalog.create_table("ml.predictions", schema=records().schema).append(records())
    good = evaluate(f"iceberg://{catalog_file}?table=ml.predictions")
    assert good.exit_code == 0, good.stderr
    assert good.json()["slos"][0]["sli"]["valid"] == 40.0
    missing = f"iceberg://{catalog_file}?table=ml.preds"
    one_line_error(evaluate(missing), missing, "has no table 'ml.preds' (tables: ml.predictions)")
    snapshot = f"iceberg://{catalog_file}?table=ml.predictions&snapshot=12"
    one_line_error(evaluate(snapshot), snapshot, "has no snapshot 12 (snapshots: ")


@pytest.mark.parametrize("zone", ["UTC", None])
def test_iceberg_reads_only_the_window(tmp_path: Path, zone: str | None) -> None:
    """The window's filter is planned against the manifests: a data file wholly outside the
    window is not read, and the rows read are those in the window (timestamps with a zone or
    without one, which hold UTC)."""
    from pyiceberg.catalog.sql import SqlCatalog

    from mlslo.inputs.lakes import RowFilter, table_source

    kind = pa.timestamp("us", zone)
    recent = records()
    recent = recent.set_column(1, "ts", recent["ts"].cast(kind))
    old = recent.set_column(
        1, "ts", pa.array([AT.replace(tzinfo=None) - timedelta(days=30)] * 40, kind)
    )
    catalog_file = tmp_path / "catalog.db"
    catalog = SqlCatalog("lake", uri=f"sqlite:///{catalog_file}", warehouse=f"file://{tmp_path}")
    catalog.create_namespace("ml")
    table = catalog.create_table("ml.predictions", schema=recent.schema)
    table.append(old)
    table.append(recent)
    location = parse_location(f"iceberg://{catalog_file}?table=ml.predictions", role="p")
    con = duckdb.connect()
    window = RowFilter("ts", AT - timedelta(days=1), AT)
    source = table_source(con, "v", location, rows=window)
    assert con.execute(f"SELECT count(*) FROM {source}").fetchall() == [(40,)]
    whole = table_source(con, "w", location)
    assert con.execute(f"SELECT count(*) FROM {whole}").fetchall() == [(80,)]
    since = (AT - timedelta(days=1)).replace(tzinfo=UTC if zone else None).isoformat()
    assert len(list(table.scan(row_filter=f"ts >= '{since}'").plan_files())) == 1
    assert len(list(table.scan().plan_files())) == 2


def test_delta_lets_duckdb_push_the_window_down(tmp_path: Path) -> None:
    from deltalake import write_deltalake

    from mlslo.inputs.lakes import table_source

    write_deltalake(str(tmp_path / "t"), records())
    location = parse_location(f"delta://{tmp_path / 't'}", role="predictions")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    source = table_source(con, "v", location)
    plan = con.execute(
        f"EXPLAIN SELECT count(*) FROM {source} WHERE ts >= TIMESTAMPTZ '{AT.isoformat()}'"
    ).fetchall()[0][1]
    assert "ARROW_SCAN" in plan and "Filters" in plan and "ts" in plan.split("Filters")[1]


def test_an_unknown_kind_of_source_says_what_is_known(evaluate: Callable[..., Run]) -> None:
    url = "warehouse://db/ml?table=predictions"
    one_line_error(evaluate(url), url, "not a kind of source mlslo knows", "postgres://")


# --- source: in the spec --------------------------------------------------------------------


def test_the_spec_says_where_the_records_are(
    tmp_path: Path, cli: Callable[..., Run], write_spec: Callable[..., Path]
) -> None:
    """Without --data the spec's source is read, a relative path from the spec's folder; a
    --labels alone replaces only the labels."""
    import pyarrow.parquet as pq

    (tmp_path / "logs").mkdir()
    pq.write_table(records(), tmp_path / "logs" / "predictions.parquet")
    spec = write_spec(
        SPEC + "source: {predictions: logs/predictions.parquet, labels: logs/nowhere.csv}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(elsewhere)
        missing_labels = cli("evaluate", "--spec", spec, "--at", AT.isoformat(), "-f", "json")
        one_line_error(missing_labels, str(tmp_path / "logs" / "nowhere.csv"), "no such file")
        labels = tmp_path / "labels.csv"
        labels.write_text("id,ts,label\np1,2026-03-01T12:00:00Z,1\n", encoding="utf-8")
        result = cli(
            "evaluate", "--spec", spec, "--labels", labels, "--at", AT.isoformat(), "-f", "json"
        )
    assert result.exit_code == 0, result.stderr
    assert result.json()["slos"][0]["sli"]["valid"] == 40.0


def test_a_spec_without_source_needs_data_and_refuses_passwords(
    cli: Callable[..., Run], write_spec: Callable[..., Path]
) -> None:
    one_line_error(
        cli("evaluate", "--spec", write_spec(SPEC)),
        "prediction records: give the records (or source: {predictions: ...} in the spec)",
    )
    secret = write_spec(
        SPEC + "source: {predictions: 'postgres://ml:hunter2-secret@db/prod?table=p'}\n"
    )
    result = cli("evaluate", "--spec", secret)
    one_line_error(result, "source.predictions: a password in the URL is refused")
    assert "hunter2-secret" not in result.stderr
