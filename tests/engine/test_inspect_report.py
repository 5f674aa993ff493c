"""`inspect` (and `backup`) tell the administrator what a backup will hold and what is wrong
with it before anything is restored: datasources, the database's size, a vault the key cannot open."""

from __future__ import annotations

import json
import os
import re
import sqlite3

from conftest_engine import table_rows

from cells_backup.cells.sample import make_sample_installation
from cells_backup.cells.vault import encode_key_file
from helpers import FAST_KDF, cli_env, run_cli


def test_inspect_text_lists_datasources_and_the_database_with_its_size(installation, mariadb):
    sample, dbname, base = installation
    env = cli_env()
    r = run_cli("inspect", "--cells-dir", str(base / "cells"), env=env)
    assert r.code == 0, r.stderr
    rows = table_rows(mariadb, dbname)
    for ds in sample.installation.datasources:
        files = sum(len(names) for _d, _s, names in os.walk(ds.folder))
        layout = "flat" if ds.flat else "structured"
        assert re.search(rf"^{re.escape(ds.name)} +{layout} +{re.escape(ds.folder)} +{files} +\S+ \S*B$",
                         r.stdout, re.M), (ds.name, r.stdout)
    key = sample.installation.databases[0].key[:12]
    line = next(line for line in r.stdout.splitlines() if line.startswith(key))
    fields = line.split()
    assert fields[1] == "mysql"
    assert fields[3:5] == [str(len(rows)), str(sum(len(v) for v in rows.values()))]
    assert fields[6].endswith("B")  # size on the server, e.g. "160.0 KiB"

    doc = json.loads(run_cli("inspect", "--cells-dir", str(base / "cells"), "--json", env=env).stdout)
    db = doc["databases"][0]
    assert (db["tables"], db["rows"]) == (len(rows), sum(len(v) for v in rows.values()))
    assert db["bytes"] > 0
    personal = next(d for d in doc["datasources"] if d["name"] == "personal")
    assert personal["flat"] is True and personal["files"] > 0 and personal["bytes"] > 0


def test_a_vault_the_key_cannot_open_is_a_warning_of_inspect_and_backup(installation, tmp_path):
    _sample, _dbname, base = installation
    cells = base / "cells"
    key = cells / "cells-vault-key"
    key.chmod(0o600)
    key.write_bytes(encode_key_file(os.urandom(50)))  # another installation's key
    env = cli_env()
    expected = "the master key does not decrypt entry"

    r = run_cli("inspect", "--cells-dir", str(cells), env=env)
    assert r.code == 0, r.stderr
    warning = next(line for line in r.stdout.splitlines() if expected in line)
    assert warning.startswith(f"warning: {cells / 'pydio-vault.json'}: the master key does not decrypt entry ")
    assert warning.endswith(f"find the key file that belongs to this vault and put it at {key}")
    doc = json.loads(run_cli("inspect", "--cells-dir", str(cells), "--json", env=env).stdout)
    assert any(expected in w for w in doc["warnings"])

    repo = str(tmp_path / "repo")
    run_cli("init", *FAST_KDF, "--repo", repo, env=env, check=True)
    r = run_cli("backup", "--repo", repo, "--cells-dir", str(cells), "--no-database", "--json", env=env)
    assert r.code == 0, r.stderr
    assert any(line.startswith("warning: ") and expected in line for line in r.stderr.splitlines())
    assert any(expected in w for w in json.loads(r.stdout)["warnings"])


def test_a_matching_vault_and_key_give_no_vault_warning(installation):
    _sample, _dbname, base = installation
    r = run_cli("inspect", "--cells-dir", str(base / "cells"), "--json", env=cli_env())
    assert r.code == 0, r.stderr
    assert not [w for w in json.loads(r.stdout)["warnings"] if "vault" in w]


def test_inspect_counts_a_v5_sqlite_database(tmp_path):
    db_path = tmp_path / "cells" / "cells.sqlite"
    make_sample_installation(tmp_path / "cells", version="5.0.2", db={"engine": "sqlite", "path": str(db_path)})
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE idm_user_attributes (uuid TEXT, name TEXT)")
        db.executemany("INSERT INTO idm_user_attributes VALUES (?, ?)", [(f"u{i}", "x") for i in range(7)])
        db.execute("CREATE TABLE data_index_pydiods1_idx_tree (uuid TEXT PRIMARY KEY)")
        db.execute("INSERT INTO data_index_pydiods1_idx_tree VALUES ('root')")
    r = run_cli("inspect", "--cells-dir", str(tmp_path / "cells"), "--json", env=cli_env())
    assert r.code == 0, r.stderr
    db = json.loads(r.stdout)["databases"][0]
    assert (db["kind"], db["tables"], db["rows"], db["bytes"]) == ("sqlite", 2, 8, db_path.stat().st_size)
