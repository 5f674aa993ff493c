"""A Cells v5 installation on SQLite: the whole installation, database included, round trips."""

from __future__ import annotations

import json
import sqlite3

from cells_backup.cells.sample import make_sample_installation
from helpers import FAST_KDF, cli_env, run_cli, tree_state


def rows(path) -> dict:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: db.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}


def test_v5_sqlite_installation_round_trip(tmp_path):
    db_path = tmp_path / "cells" / "cells.sqlite"
    sample = make_sample_installation(tmp_path / "cells", version="5.0.2",
                                      db={"engine": "sqlite", "path": str(db_path)},
                                      external_parent=tmp_path / "storage")
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        for ds in sample.installation.datasources:
            db.execute(f"CREATE TABLE data_index_{ds.name}_idx_tree (uuid TEXT PRIMARY KEY, leaf INT, name TEXT)")
            db.executemany(f"INSERT INTO data_index_{ds.name}_idx_tree VALUES (?, 1, ?)",
                           [(u, f"f{i}") for i, (u, _s) in enumerate(sample.blobs(ds.name) if ds.flat else [])])
        db.execute("CREATE TABLE idm_user_attributes (uuid TEXT, name TEXT, value BLOB)")
        db.execute("INSERT INTO idm_user_attributes VALUES ('u1', 'émoji 😀', X'00FF10')")
    expected = rows(db_path)
    env = cli_env()
    repo = str(tmp_path / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(tmp_path / "cells"), "--json", env=env)
    assert r.code == 0, r.stderr
    assert any(c.startswith("database:") for c in json.loads(r.stdout)["snapshot"]["components"])
    r = run_cli("--repo", repo, "restore", "latest", "--cells-dir", str(tmp_path / "new"), "--map",
                f"{tmp_path / 'storage'}={tmp_path / 'storage2'}", "--json", env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["whole"] is True
    assert rows(tmp_path / "new" / "cells.sqlite") == expected
    assert tree_state(tmp_path / "storage2") == tree_state(tmp_path / "storage")
