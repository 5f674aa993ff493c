"""pydio.json files whose main database cannot be found (real v2.1 and v2.2 shapes, broken):
`--database-url` and `--no-database` work around them; without either the error says so."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from conftest_engine import table_rows

from cells_backup.cells.sample import make_sample_installation
from helpers import FAST_KDF, cli_env, run_cli


def edit_config(cells: Path, change) -> None:
    path = cells / "pydio.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config, indent=2))


def dangle_the_ref(config: dict) -> str:
    """v2.2+: ``defaults.database`` is a ``$ref`` to an entry that is gone."""
    key = config["defaults"]["database"]["$ref"].removeprefix("#/databases/")
    del config["databases"][key]
    return key


def init_repo(tmp_path: Path, env) -> str:
    repo = str(tmp_path / "repo")
    run_cli("init", *FAST_KDF, "--repo", repo, env=env, check=True)
    return repo


def test_database_url_backs_up_around_a_dangling_ref(installation, mariadb, tmp_path):
    sample, dbname, base = installation
    cells = base / "cells"
    key = sample.installation.databases[0].key
    edit_config(cells, dangle_the_ref)
    env = cli_env()
    repo = init_repo(tmp_path, env)

    r = run_cli("backup", "--repo", repo, "--cells-dir", str(cells), env=env)
    assert r.code == 1
    assert r.stderr == (f"cells-backup: error: {cells / 'pydio.json'}: defaults.database names databases/{key}, "
                        "which does not exist; give the database with --database-url URL, or back up files only "
                        "with --no-database\n")

    password = quote(mariadb.admin_password, safe="")
    url = f"mysql://{mariadb.admin_user}:{password}@127.0.0.1:{mariadb.port}/{dbname}"
    r = run_cli("backup", "--repo", repo, "--cells-dir", str(cells), "--database-url", url, "--json", env=env)
    assert r.code == 0, r.stderr
    snap = json.loads(r.stdout)["snapshot"]
    assert "database:default" in snap["components"]
    assert any(f"databases/{key}, which does not exist" in w for w in json.loads(r.stdout)["warnings"])
    listed = run_cli("ls", "--repo", repo, snap["id"], "/.cells-backup/databases/default", env=env)
    assert listed.code == 0, listed.stderr
    assert len(listed.stdout.splitlines()) > len(table_rows(mariadb, dbname))  # a part per table, and more

    r = run_cli("inspect", "--cells-dir", str(cells), "--database-url", url, "--json", env=env)
    assert r.code == 0, r.stderr
    db = json.loads(r.stdout)["databases"][0]
    assert db["key"] == "default" and db["tables"] == len(table_rows(mariadb, dbname))


def test_no_database_backs_up_a_dangling_ref_and_a_v21_config_without_its_database(tmp_path):
    env = cli_env()
    repo = init_repo(tmp_path, env)

    v22 = tmp_path / "v22" / "cells"
    make_sample_installation(v22, version="2.2.12")
    edit_config(v22, dangle_the_ref)
    r = run_cli("backup", "--repo", repo, "--cells-dir", str(v22), "--no-database", env=env)
    assert r.code == 0, r.stderr
    assert "which does not exist" in r.stderr

    v21 = tmp_path / "v21" / "cells"
    make_sample_installation(v21, version="2.1.4")
    config = json.loads((v21 / "pydio.json").read_text())
    assert isinstance(config["defaults"]["database"], str)  # the ≤ v2.1 shape: a plain id

    def dangle_the_id(config: dict) -> None:
        config["defaults"]["database"] = "0" * 40

    edit_config(v21, dangle_the_id)
    r = run_cli("backup", "--repo", repo, "--cells-dir", str(v21), "--no-database", env=env)
    assert r.code == 0, r.stderr

    edit_config(v21, lambda config: config["defaults"].pop("database"))
    r = run_cli("backup", "--repo", repo, "--cells-dir", str(v21), env=env)
    assert r.code == 1 and "no defaults.database" in r.stderr and "--no-database" in r.stderr
    r = run_cli("backup", "--repo", repo, "--cells-dir", str(v21), "--no-database", "--json", env=env)
    assert r.code == 0, r.stderr
    assert not [c for c in json.loads(r.stdout)["snapshot"]["components"] if c.startswith("database")]
    snaps = json.loads(run_cli("snapshots", "--repo", repo, "--json", env=env).stdout)
    assert len(snaps) == 3
