"""verify-install and restore judge the database they are given, whatever its index tables look like
(real MariaDB)."""

from __future__ import annotations

import json
import uuid as uuidlib
from urllib.parse import quote

from conftest_engine import admin

from cells_backup.cells.sample import make_sample_installation
from helpers import FAST_KDF, cli_env, run_cli

PRE_2_TREE = """CREATE TABLE {p}_tree (uuid VARCHAR(128) NOT NULL PRIMARY KEY, level SMALLINT NOT NULL,
    hash BIGINT NOT NULL, mpath1 VARCHAR(255) NOT NULL, mpath2 VARCHAR(255) NOT NULL,
    mpath3 VARCHAR(255) NOT NULL, mpath4 VARCHAR(255) NOT NULL, rat BLOB NOT NULL)"""
PRE_2_NODES = """CREATE TABLE {p}_nodes (uuid VARCHAR(128) NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL,
    leaf TINYINT(1), mtime INT NOT NULL, etag VARCHAR(255), size BIGINT, mode VARCHAR(10))"""


def pre_2_installation(tmp_path, mariadb, odd: str | None = None):
    """A sample whose index tables have the Cells 1.x shape (leaf & co. in ``_nodes``); datasource
    ``odd`` gets an index table of no known shape."""
    name = f"cells_{uuidlib.uuid4().hex[:8]}"
    db = {"host": "127.0.0.1", "port": mariadb.port, "user": mariadb.admin_user,
          "password": mariadb.admin_password, "name": name}
    sample = make_sample_installation(tmp_path / "cells", db=db, version="1.6.2")
    with admin(mariadb) as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{name}`")
        for ds in sample.installation.datasources:
            p = f"data_index_{ds.name}_idx"
            if ds.name == odd:
                cur.execute(f"CREATE TABLE {p}_tree (id INT PRIMARY KEY, path TEXT)")
                continue
            cur.execute(PRE_2_TREE.format(p=p))
            cur.execute(PRE_2_NODES.format(p=p))
            for i, (blob, size) in enumerate(sample.blobs(ds.name) if ds.flat else []):
                cur.execute(f"INSERT INTO {p}_tree VALUES (%s, 2, %s, '1.1', '', '', '', '')", (blob, i + 1))
                cur.execute(f"INSERT INTO {p}_nodes VALUES (%s, %s, 1, 0, 'etag', %s, '0644')",
                            (blob, f"file-{i}", size))
    return sample, name


def test_pre_2_index_tables_are_counted_in_their_nodes_table(tmp_path, mariadb):
    sample, name = pre_2_installation(tmp_path, mariadb)
    env = cli_env()
    r = run_cli("verify-install", "--cells-dir", str(tmp_path / "cells"), "-v", env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert "ok: personal: pre-2.0 index, files listed in data_index_personal_idx_nodes\n" in r.stdout
    assert f"ok: personal: 8 indexed files match the blobs in {tmp_path / 'cells' / 'data' / 'personal'}" in r.stdout
    with admin(mariadb, name) as c, c.cursor() as cur:  # one more file in the index than on disk
        cur.execute("INSERT INTO data_index_personal_idx_nodes VALUES ('lost', 'lost', 1, 0, 'e', 1, '0644')")
    r = run_cli("verify-install", "--cells-dir", str(tmp_path / "cells"), env=env)
    assert r.code == 1
    assert "error: personal: index lists 9 files but" in r.stdout and "holds 8 blobs" in r.stdout


def test_an_index_table_of_unknown_shape_is_a_line_in_verify_install_and_restore(tmp_path, mariadb):
    sample, name = pre_2_installation(tmp_path, mariadb, odd="personal")
    env = cli_env()
    note = ("warning: personal: index table data_index_personal_idx_tree has no leaf/uuid columns "
            "(columns: id, path): its files were not compared with the blobs\n")
    r = run_cli("verify-install", "--cells-dir", str(tmp_path / "cells"), env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert note in r.stdout and r.stderr == ""

    repo = str(tmp_path / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    run_cli("--repo", repo, "backup", "--cells-dir", str(tmp_path / "cells"), env=env, check=True)
    url = f"mysql://{mariadb.admin_user}:{quote(mariadb.admin_password, safe='')}@127.0.0.1:{mariadb.port}/{name}_2"
    r = run_cli("--repo", repo, "restore", "latest", "--cells-dir", str(tmp_path / "new"), "--database-url", url,
                env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert note in r.stdout and "internal error" not in r.stderr
    assert r.stdout.rstrip().endswith("installation is whole: Cells can be started")


def test_restore_only_database_judges_the_database_not_a_working_dir(backed_up, mariadb):
    base, repo, name, env = backed_up
    with admin(mariadb, name) as c, c.cursor() as cur:
        cur.execute("DROP TABLE data_index_personal_idx_tree")
    run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), "--tag", "broken", env=env, check=True)
    snaps = [s["id"] for s in json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout)]

    def restore(snapshot: str, database: str):
        url = f"mysql://{mariadb.admin_user}:{quote(mariadb.admin_password, safe='')}@127.0.0.1:{mariadb.port}/" \
              f"{database}"
        # --cells-dir names a place with no installation at all: it is not what is judged
        return run_cli("--repo", repo, "restore", snapshot, "--only", "database", "--database-url", url,
                       "--cells-dir", str(base / "nowhere"), env=env)

    r = restore(snaps[0], f"{name}_a")
    assert r.code == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().endswith("database is whole: every table verified, each datasource's index table present")
    assert "pydio.json" not in r.stdout and not (base / "nowhere").exists()
    r = restore(snaps[1], f"{name}_b")
    assert r.code == 1
    assert "error: personal: index table data_index_personal_idx_tree is missing\n" in r.stdout
    assert r.stdout.rstrip().endswith("database is NOT whole: see the errors above")
    assert "pydio.json" not in r.stdout
