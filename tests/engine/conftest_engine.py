"""Helpers and fixtures shared by the engine tests: a sample installation backed by the real MariaDB."""

from __future__ import annotations

import subprocess
import sys
import uuid as uuidlib
from pathlib import Path

import pymysql
import pytest

from cells_backup.cells.sample import make_sample_installation
from cells_schema import create_index_tables
from helpers import FAST_KDF, cli_env, run_cli

HOLDER = """
import fcntl, sys, time
f = open(sys.argv[1], "rb")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


def fake_cells(install: Path) -> subprocess.Popen:
    """A process holding BoltDB's exclusive lock, as a running Cells does."""
    db = next(install.glob("services/*/*.db"))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"locked"
    return proc


@pytest.fixture
def install(tmp_path: Path) -> Path:
    """A sample installation without a SQL database."""
    make_sample_installation(tmp_path / "cells", external_parent=tmp_path / "storage")
    return tmp_path / "cells"


@pytest.fixture
def env() -> dict[str, str]:
    return cli_env()


@pytest.fixture
def repo(tmp_path, env) -> str:
    path = str(tmp_path / "repo")
    run_cli("--repo", path, "init", *FAST_KDF, env=env, check=True)
    return path


@pytest.fixture
def backed_up(installation, mariadb):
    """(base dir, repository, database name, env) after one backup of the MariaDB-backed installation."""
    _sample, dbname, base = installation
    env = cli_env()
    repo = str(base / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), env=env, check=True)
    return base, repo, dbname, env


def admin(mariadb, database: str | None = None):
    return pymysql.connect(host="127.0.0.1", port=mariadb.port, user=mariadb.admin_user,
                           password=mariadb.admin_password, database=database, charset="utf8mb4", autocommit=True)


def table_rows(mariadb, database: str) -> dict[str, list[tuple]]:
    with admin(mariadb, database) as c, c.cursor() as cur:
        cur.execute("SHOW TABLES")
        tables = sorted(r[0] for r in cur.fetchall())
        out = {}
        for t in tables:
            cur.execute(f"SELECT * FROM `{t}` ORDER BY 1")
            out[t] = list(cur.fetchall())
        return out


@pytest.fixture
def installation(tmp_path, mariadb):
    name = f"cells_{uuidlib.uuid4().hex[:8]}"
    db = {"host": "127.0.0.1", "port": mariadb.port, "user": mariadb.admin_user,
          "password": mariadb.admin_password, "name": name}
    sample = make_sample_installation(tmp_path / "cells", db=db, external_parent=tmp_path / "storage")
    with admin(mariadb) as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{name}`")
        for ds in sample.installation.datasources:
            prefix = f"data_index_{ds.name}_idx"
            create_index_tables(cur, prefix)
            for i, (blob_uuid, size) in enumerate(sample.blobs(ds.name) if ds.flat else []):
                cur.execute(
                    f"INSERT INTO {prefix}_tree (uuid, level, hash, hash2, mpath1, mpath2, mpath3, mpath4, "
                    "name, leaf, mtime, etag, size, mode) VALUES (%s, 2, %s, '', '1.1', '', '', '', %s, 1, 0, "
                    "'etag', %s, '0644')", (blob_uuid, i + 1, f"file-{i}.txt", size))
        cur.execute("CREATE TABLE idm_user_attributes (uuid VARCHAR(128), name VARCHAR(255), "
                    "value LONGTEXT) CHARACTER SET utf8mb4")
        cur.execute("INSERT INTO idm_user_attributes VALUES ('u1', 'profile', 'admin'), "
                    "('u2', 'displayName', 'Zoë 😀 O''Brien \\\\ back')")
    return sample, name, tmp_path


