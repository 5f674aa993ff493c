"""An installation's backup or restore SIGKILLed while its database client runs (the OOM killer,
`kill -9`, a timeout): the client ends by itself (a dump whose reader is gone, a loader whose
input ends), the worker processes with it, and the next backup or restore works."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import quote

from conftest_engine import admin, table_rows

from helpers import FAST_KDF, cli_env, run_cli
from proc_children import children, cmdline, kill_running, kill_when, survivors

DUMP_CLIENTS = {b"mariadb-dump", b"mysqldump"}
LOAD_CLIENTS = {b"mariadb", b"mysql"}


def _add_bulk_table(mariadb, database: str) -> None:
    """200k rows: a dump or a load that takes long enough to be killed in the middle of it."""
    with admin(mariadb, database) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE bulk (id INT PRIMARY KEY, v VARCHAR(200))")
        cur.execute("INSERT INTO bulk SELECT seq, REPEAT('b', 150) FROM seq_1_to_200000")


def _kill_while_client_runs(args: list[str], env: dict[str, str], clients: set[bytes]) -> tuple[dict, dict]:
    """Run the CLI in a session of its own and SIGKILL it once one of ``clients`` runs; the
    database clients and the worker processes (forks of the CLI) it had then."""
    proc = subprocess.Popen([sys.executable, "-m", "cells_backup", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)

    def client_running(pid: int) -> dict[int, str]:
        return children(pid, lambda child: os.path.basename((cmdline(child) or [b""])[0]) in clients)

    found = kill_when(proc, client_running)
    return found, children(proc.pid, lambda child: cmdline(child) == cmdline(proc.pid))


def _env(base) -> dict[str, str]:
    """The CLI's environment, its temporary files under the test's directory: a killed run leaves
    its client option file behind (nothing removes it)."""
    tmp = base / "tmp"
    tmp.mkdir(exist_ok=True)
    return cli_env(TMPDIR=str(tmp))


def _url(mariadb, database: str) -> str:
    return (f"mysql://{mariadb.admin_user}:{quote(mariadb.admin_password, safe='')}@127.0.0.1:{mariadb.port}"
            f"/{database}")


def test_a_killed_backup_leaves_no_dump_client_and_the_next_backup_works(installation, mariadb):
    _sample, dbname, base = installation
    _add_bulk_table(mariadb, dbname)
    env = _env(base)
    repo = str(base / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    args = ["--repo", repo, "backup", "--cells-dir", str(base / "cells")]
    clients, workers = _kill_while_client_runs(args, env, DUMP_CLIENTS)
    try:
        assert survivors(clients | workers) == []
    finally:
        kill_running(clients | workers)
    run_cli(*args, env=env, check=True)
    run_cli("--repo", repo, "check", env=env, check=True)


def test_a_killed_restore_leaves_no_load_client_and_the_next_restore_works(installation, mariadb):
    _sample, dbname, base = installation
    _add_bulk_table(mariadb, dbname)
    rows = table_rows(mariadb, dbname)
    env = _env(base)
    repo = str(base / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), env=env, check=True)
    new_db = f"{dbname}_again"
    args = ["--repo", repo, "restore", "latest", "--only", "database", "--database-url", _url(mariadb, new_db)]
    clients, workers = _kill_while_client_runs(args, env, LOAD_CLIENTS)
    try:
        assert survivors(clients | workers) == []
    finally:
        kill_running(clients | workers)
    with admin(mariadb) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s", (new_db,))
        half_loaded = cur.fetchone()[0] > 0
    again = run_cli(*args, env=env)  # what an admin sees first
    if half_loaded:  # killed after the first table was created: the database is not empty any more
        assert again.code == 14, again.stderr
        run_cli(*args, "--force", env=env, check=True)
    else:  # killed (on a loaded machine) before the client created a table: nothing to refuse
        assert again.code == 0, again.stderr
    assert table_rows(mariadb, new_db) == rows
