"""Helpers and fixtures shared by the engine tests: a sample installation backed by the real MariaDB."""

from __future__ import annotations

import uuid as uuidlib

import pymysql
import pytest

from cells_backup.cells.sample import make_sample_installation
from cells_schema import create_index_tables


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


