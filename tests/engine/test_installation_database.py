"""End to end with the real MariaDB: back up an installation twice, restore the first snapshot
on a "new server" (new working dir, new external parent, new database, new URL and bind)."""

from __future__ import annotations

import json
import os
import stat
import time
from contextlib import contextmanager
from urllib.parse import quote

from conftest_engine import admin, table_rows

from cells_backup.cells import backup_plan, load_installation
from cells_backup.database.mysql_client import option_value
from cells_backup.engine.installation_backup import InstallationBackupRequest, backup_installation
from cells_backup.repository.archiver import Archiver
from helpers import FAST_KDF, cli_env, fast_repository, json_leaves, run_cli, tree_state


def add_bulk_table(mariadb, database: str) -> None:
    """100k rows: far more than a pipe and the socket buffers hold, so a dump left unread blocks."""
    with admin(mariadb, database) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE bulk (id INT PRIMARY KEY, v VARCHAR(200))")
        cur.execute("INSERT INTO bulk SELECT seq, REPEAT('b', 150) FROM seq_1_to_100000")


@contextmanager
def server_variable(mariadb, name: str, value: int):
    """A global server variable set for the duration of a block (the test server is private)."""
    with admin(mariadb) as c, c.cursor() as cur:
        cur.execute(f"SELECT @@GLOBAL.{name}")
        saved = cur.fetchone()[0]
        cur.execute(f"SET GLOBAL {name} = {value}")
        try:
            yield
        finally:
            cur.execute(f"SET GLOBAL {name} = {int(saved)}")


def test_backup_twice_restore_first_on_new_server(installation, mariadb, tmp_path):
    sample, dbname, base = installation
    env = cli_env()
    repo = str(base / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    wd, storage = base / "cells", base / "storage"
    files_a = {"wd": tree_state(wd), "storage": tree_state(storage)}
    config_a = json.loads((wd / "pydio.json").read_text())
    rows_a = table_rows(mariadb, dbname)

    r = run_cli("--repo", repo, "backup", "--cells-dir", str(wd), "--tag", "first", "--json", env=env)
    assert r.code == 0, r.stderr
    first = json.loads(r.stdout)["snapshot"]["id"]

    # the installation lives on: files and rows change
    next(p for p in (wd / "data" / "pydiods1").rglob("*") if p.is_file() and p.name != ".pydio").write_text("v2")
    (storage / "archive" / "new-blob").write_bytes(os.urandom(5000))
    with admin(mariadb, dbname) as c, c.cursor() as cur:
        cur.execute("INSERT INTO idm_user_attributes VALUES ('u3', 'profile', 'standard')")
        cur.execute("UPDATE idm_user_attributes SET value = 'changed' WHERE uuid = 'u2'")
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(wd), "--json", env=env)
    assert r.code == 0, r.stderr
    second = json.loads(r.stdout)["snapshot"]
    assert second["summary"]["files_unmodified"] > 0

    # diff names the changed file and table
    d = json.loads(run_cli("--repo", repo, "diff", first, second["id"], "--json", env=env).stdout)
    assert any(t["table"] == "idm_user_attributes" for t in d["tables"])
    assert any(e["path"].endswith("new-blob") for e in d["added"])

    new_wd, new_storage, new_db = base / "srv" / "cells", base / "srv" / "storage", f"{dbname}_new"
    url = f"mysql://{mariadb.admin_user}:{quote(mariadb.admin_password, safe='')}@127.0.0.1:{mariadb.port}/{new_db}"
    args = ["--repo", repo, "restore", first, "--cells-dir", str(new_wd), "--map", f"{storage}={new_storage}",
            "--database-url", url, "--external-url", "https://cells.new.example", "--bind", "127.0.0.1:8443"]
    dry = run_cli(*args, "--dry-run", env=env)
    assert dry.code == 0, dry.stderr
    assert mariadb.admin_password not in dry.stdout + dry.stderr  # the diff masks the DSN password
    assert not new_wd.exists()

    r = run_cli(*args, "--json", env=env)
    assert r.code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["whole"] is True, doc["verify"]
    assert all(t["hash_ok"] for db in doc["databases"] for t in db["tables"])

    # files bit-identical to the first state (minus what the backup excludes by design)
    restored = tree_state(new_wd)
    plan = backup_plan(load_installation(wd))[0]
    expected = {k: v for k, v in files_a["wd"].items()
                if plan.excluded_by(k, v[0] == stat.S_IFDIR) is None and k != "pydio.json"}
    assert {k: v for k, v in restored.items() if k != "pydio.json"} == expected
    assert restored["pydio.json"][:2] == files_a["wd"]["pydio.json"][:2]  # same type and mode
    assert tree_state(new_storage) == files_a["storage"]
    # database equal to the first state
    assert table_rows(mariadb, new_db) == rows_a
    # pydio.json differs only in what had to change
    config_new = json.loads((new_wd / "pydio.json").read_text())
    sites = config_new["defaults"]["sites"][0]
    assert sites["ReverseProxyURL"] == "https://cells.new.example" and sites["Binds"] == ["127.0.0.1:8443"]
    dsn = config_new["databases"][next(k for k in config_a["databases"] if k == sample.installation.databases[0].key
                                       or len(k) == 40)]["dsn"]
    assert new_db in dsn and str(mariadb.port) in dsn
    changed = [tuple(e["path"]) for e in doc["plan"]["config_edits"]]
    old_leaves, new_leaves = dict(json_leaves(config_a)), dict(json_leaves(config_new))
    differing = {p for p in set(old_leaves) | set(new_leaves) if old_leaves.get(p) != new_leaves.get(p)}
    assert differing
    for path in differing:
        assert any(path[: len(c)] == c for c in changed), f"{path} changed but is not a planned edit"
    for path in changed:
        assert path[-1] in ("Binds", "ReverseProxyURL", "dsn", "folder", "LocalFolder") or "Binds" in path, path
    # verify-install on its own agrees
    r = run_cli("verify-install", "--cells-dir", str(new_wd), env=env)
    assert r.code == 0, r.stdout
    # restoring again into the same place is refused (target and database are not empty)
    r = run_cli(*args, env=env)
    assert r.code == 14


def test_unchanged_tables_add_almost_nothing_and_sql_export_loads(installation, mariadb, tmp_path):
    sample, dbname, base = installation
    env = cli_env()
    repo = str(base / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    wd = base / "cells"
    run_cli("--repo", repo, "backup", "--cells-dir", str(wd), env=env, check=True)
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(wd), "--json", env=env)
    summary = json.loads(r.stdout)["snapshot"]["summary"]
    assert summary["data_added"] < 16 * 1024  # tree blobs only: no table data again
    out = tmp_path / "cells.sql"
    assert run_cli("--repo", repo, "dump", "latest", "--database", "-o", str(out), env=env).code == 0
    import subprocess

    with admin(mariadb) as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{dbname}_sql`")
    with open(out, "rb") as f:
        proc = subprocess.run(["mariadb", "-h", "127.0.0.1", "-P", str(mariadb.port), "-u", mariadb.admin_user,
                               f"-p{mariadb.admin_password}", f"{dbname}_sql"], stdin=f, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert table_rows(mariadb, f"{dbname}_sql") == table_rows(mariadb, dbname)


def test_wrong_database_password_is_one_clear_line(installation, mariadb):
    sample, dbname, base = installation
    env = cli_env()
    repo = str(base / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    url = f"mysql://{mariadb.admin_user}:wrong@127.0.0.1:{mariadb.port}/{dbname}"
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), "--database-url", url, env=env)
    assert r.code == 1
    assert r.stderr.count("\n") == 1 and "authentication failed" in r.stderr and "wrong" not in r.stderr
    assert json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout) == []


def test_hooks_restart_cells_before_the_dump_ends_and_the_dump_is_from_the_stop(installation, mariadb, tmp_path):
    """Cells is started as soon as the files are read; the database dump goes on from the snapshot taken
    while Cells was stopped, so rows written after the restart are not in this backup."""
    sample, dbname, base = installation
    with admin(mariadb, dbname) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE bulk (id INT PRIMARY KEY, v VARCHAR(200))")
        cur.execute("INSERT INTO bulk SELECT seq, REPEAT('y', 150) FROM seq_1_to_200000")
    before = table_rows(mariadb, dbname)
    cnf = tmp_path / "client.cnf"
    cnf.write_text(f"[client]\nuser={mariadb.admin_user}\npassword={option_value(mariadb.admin_password)}\n"
                   f"host=127.0.0.1\nport={mariadb.port}\n")
    os.chmod(cnf, 0o600)
    log = tmp_path / "hooks.log"
    start = (f"echo start >> {log}; mariadb --defaults-extra-file={cnf} {dbname} "
             "-e \"INSERT INTO idm_user_attributes VALUES ('late', 'profile', 'written after the restart')\"")
    env = cli_env()
    repo = str(base / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), "--stop-command",
                f"echo stop >> {log}", "--start-command", start, "--json", env=env)
    assert r.code == 0, r.stderr
    assert log.read_text().split() == ["stop", "start"]
    snap = json.loads(r.stdout)["snapshot"]
    assert 0 <= snap["summary"]["downtime"] < snap["summary"]["duration"]
    new_db = f"{dbname}_stop"
    url = f"mysql://{mariadb.admin_user}:{quote(mariadb.admin_password, safe='')}@127.0.0.1:{mariadb.port}/{new_db}"
    r = run_cli("--repo", repo, "restore", "latest", "--only", "database", "--database-url", url, env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert table_rows(mariadb, new_db) == before  # the late row is not there
    assert any(row[0] == "late" for row in table_rows(mariadb, dbname)["idm_user_attributes"])


def test_a_long_stop_does_not_time_out_the_dump(installation, mariadb, tmp_path, monkeypatch):
    """While Cells is stopped the files are checked before the dump is opened: a dump client kept
    waiting on a full pipe is dropped by the server after net_write_timeout (60 s by default), so a
    long check of the files (many changes, a slow disk) must not happen with the dump open."""
    sample, dbname, base = installation
    add_bulk_table(mariadb, dbname)
    before = table_rows(mariadb, dbname)
    stopped = tmp_path / "stopped"
    slow_dirs: list[str] = []
    check_dir = Archiver._archive_dir

    def slow_disk(self, path, parent_subtree):  # a slow file check while Cells is stopped
        if stopped.exists() and not slow_dirs:
            slow_dirs.append(path)
            time.sleep(3)
        return check_dir(self, path, parent_subtree)

    monkeypatch.setattr(Archiver, "_archive_dir", slow_disk)
    repo_dir = base / "repo"
    repo = fast_repository(repo_dir)
    with server_variable(mariadb, "net_write_timeout", 1):
        result = backup_installation(repo, InstallationBackupRequest(
            cells_dir=str(base / "cells"), stop_command=f"touch {stopped}", start_command="true"))
    assert slow_dirs and result.downtime >= 3
    env = cli_env()
    new_db = f"{dbname}_slow"
    url = f"mysql://{mariadb.admin_user}:{quote(mariadb.admin_password, safe='')}@127.0.0.1:{mariadb.port}/{new_db}"
    r = run_cli("--repo", str(repo_dir), "restore", "latest", "--only", "database", "--database-url", url,
                env=dict(env, CELLS_BACKUP_PASSWORD="pw"))
    assert r.code == 0, r.stdout + r.stderr
    assert table_rows(mariadb, new_db) == before


def test_a_pause_in_the_rows_does_not_time_out_the_load(installation, mariadb, tmp_path, monkeypatch):
    """Rows reach LOAD DATA as the repository gives them; a remote repository retrying for longer
    than the server's net_read_timeout (30 s by default) must not cut the load."""
    from cells_backup.database import mysql_load
    from cells_backup.engine.installation_restore import InstallationRestoreRequest, restore_installation

    sample, dbname, base = installation
    add_bulk_table(mariadb, dbname)
    before = table_rows(mariadb, dbname)
    repo = fast_repository(base / "repo")
    backup_installation(repo, InstallationBackupRequest(cells_dir=str(base / "cells")))

    paused: list[int] = []
    feed_rows = mysql_load.feed_rows

    class Pausing:
        def __init__(self, stream):
            self.stream = stream

        def read(self, n=-1):
            if not paused:
                paused.append(n)
                time.sleep(3)
            return self.stream.read(n)

    def pausing_feed(first, stream, out, **kw):
        return feed_rows(first, Pausing(stream), out, **kw)

    monkeypatch.setattr(mysql_load, "feed_rows", pausing_feed)
    new_db = f"{dbname}_pause"
    url = f"mysql://{mariadb.admin_user}:{quote(mariadb.admin_password, safe='')}@127.0.0.1:{mariadb.port}/{new_db}"
    snap = repo.list_snapshots()[-1]
    with server_variable(mariadb, "net_read_timeout", 1):
        result = restore_installation(repo, snap, InstallationRestoreRequest(only="database", database_url=url))
    assert paused and result.whole
    assert table_rows(mariadb, new_db) == before


def test_with_two_databases_no_dump_waits_on_another(installation, mariadb, tmp_path, monkeypatch):
    """With stop/start hooks and two SQL databases, the second dump is opened only when the first
    is stored (and Cells stays stopped until then): opened together, the second would wait on its
    full pipe while the first is read, and the server drops it after net_write_timeout."""
    from cells_backup.engine import installation_backup

    sample, dbname, base = installation
    other = f"{dbname}_second"
    with admin(mariadb) as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{other}`")
    for db in (dbname, other):
        add_bulk_table(mariadb, db)
    config_path = base / "cells" / "pydio.json"
    config = json.loads(config_path.read_text())
    dsn = f"{mariadb.admin_user}:{mariadb.admin_password}@tcp(127.0.0.1:{mariadb.port})/{other}"
    config["databases"]["z" * 40] = {"driver": "mysql", "dsn": dsn}
    config_path.write_text(json.dumps(config))
    expected = {dbname: table_rows(mariadb, dbname), other: table_rows(mariadb, other)}

    entries = installation_backup.DumpStream.entries
    slow_first: list[str] = []

    def slow_to_store(self):  # the first database takes long to store its last part
        for name, stream in entries(self):
            if name == "schema/post.sql" and not slow_first:
                slow_first.append(self.source.key)
                time.sleep(3)
            yield name, stream

    monkeypatch.setattr(installation_backup.DumpStream, "entries", slow_to_store)
    repo_dir = base / "repo"
    repo = fast_repository(repo_dir)
    log = tmp_path / "hooks.log"
    with server_variable(mariadb, "net_write_timeout", 1):
        result = backup_installation(repo, InstallationBackupRequest(
            cells_dir=str(base / "cells"), stop_command=f"echo stop >> {log}", start_command=f"echo start >> {log}"))
    assert slow_first and result.downtime >= 3  # Cells stayed stopped while the first was stored
    assert log.read_text().split() == ["stop", "start"]
    assert sorted(result.snapshot.extra["databases"]) == sorted([slow_first[0], "z" * 40])
    with admin(mariadb) as c, c.cursor() as cur:
        cur.execute(f"DROP DATABASE `{other}`")  # restored where pydio.json says, the first one elsewhere
    url = f"mysql://{mariadb.admin_user}:{quote(mariadb.admin_password, safe='')}@127.0.0.1:{mariadb.port}"
    r = run_cli("--repo", str(repo_dir), "restore", "latest", "--only", "database", "--database-url",
                f"{url}/{dbname}_two", env=dict(cli_env(), CELLS_BACKUP_PASSWORD="pw"))
    assert r.code == 0, r.stdout + r.stderr
    assert table_rows(mariadb, f"{dbname}_two") == expected[dbname]
    assert table_rows(mariadb, other) == expected[other]
