"""Running the service safely: authentication off only on loopback and never leaving tokens
behind, a damaged database file named in one line with what to do, and a server fault still
answered with the JSON error envelope."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import free_port

SPEC = """
service: ops
slos:
  - {name: uptime, dimension: availability, objective: {target: 0.99}}
"""


def _mlslo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("mlslo"))
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_no_auth_is_refused_off_loopback(write_spec, tmp_path):
    run = _mlslo(
        "serve",
        "--spec",
        str(write_spec(SPEC)),
        "--db",
        str(tmp_path / "x.duckdb"),
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
        "--no-auth",
    )
    assert run.returncode == 2
    assert run.stderr.startswith("error: --no-auth: serving without tokens is only allowed on a")
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "x.duckdb").exists()


def test_no_auth_manages_no_tokens(live_server):
    live = live_server(SPEC, auth=False)
    with live.client(token=None) as http:
        created = http.post("/api/v1/tokens", json={"scope": "admin", "name": "sneaky"})
        listed = http.get("/api/v1/tokens")
        revoked = http.delete("/api/v1/tokens/1")
        status = http.get("/api/v1/slos")
    for refused in (created, listed, revoked):
        assert refused.status_code == 403, refused.text
        assert "--no-auth" in refused.json()["errors"][0]["message"]
    assert status.status_code == 200
    assert [t.name for t in live.service.store.tokens.all()] == ["test admin"]


def _damaged(tmp_path: Path) -> Path:
    """A real store whose blocks are then damaged on disk."""
    from mlslo.server.store import Store
    from mlslo.spec import parse_spec

    path = tmp_path / "damaged.duckdb"
    store = Store.open(path, parse_spec(SPEC))
    store.db.run("CREATE TABLE filler AS SELECT range AS i, 'x' || range AS s FROM range(200000)")
    store.db.checkpoint()
    store.close()
    data = bytearray(path.read_bytes())
    for i in range(20_000, len(data), 7919):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "command",
    [["token", "list"], ["serve", "--spec", "SPEC", "--port", "PORT"], ["store", "check"]],
    ids=["token", "serve", "store-check"],
)
def test_a_damaged_database_is_one_line_naming_the_file(tmp_path, write_spec, command):
    path = _damaged(tmp_path)
    args = [{"SPEC": str(write_spec(SPEC)), "PORT": str(free_port())}.get(a, a) for a in command]
    run = _mlslo(*args, "--db", str(path))
    assert run.returncode == 2, run.stdout + run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: ")
    assert "restore it from a backup" in line
    assert "internal error" not in line


def test_store_check_reads_every_table_of_a_good_store(tmp_path):
    from mlslo.server.store import Store
    from mlslo.spec import parse_spec

    path = tmp_path / "good.duckdb"
    Store.open(path, parse_spec(SPEC)).close()
    run = _mlslo("store", "check", "--db", str(path))
    assert run.returncode == 0, run.stderr
    assert "predictions     0 rows" in run.stdout
    assert "PROBLEM" not in run.stdout
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE t (i INTEGER)")
    con.close()
    refused = _mlslo("token", "list", "--db", str(other))
    assert refused.returncode == 2 and "not an mlslo store" in refused.stderr
    assert duckdb.connect(str(other)).execute(
        "SELECT count(*) FROM duckdb_tables()"
    ).fetchone() == (1,)


def test_a_server_fault_is_still_the_json_envelope(live_server):
    live = live_server(SPEC)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    live.service.evaluate = broken  # type: ignore[method-assign]
    with live.client() as http:
        answer = http.get("/api/v1/slos")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("application/json")
    (error,) = answer.json()["errors"]
    assert error["message"] == "internal error (RuntimeError); the server log has the details"
