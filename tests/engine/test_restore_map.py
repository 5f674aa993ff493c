"""`restore --map OLD=NEW` moves the files it names, not only pydio.json's paths (real MariaDB)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from helpers import run_cli, tree_state


@pytest.fixture
def moved(backed_up, mariadb):
    """(base, repository, URL of a new database, env) after one backup."""
    base, repo, dbname, env = backed_up
    url = f"mysql://{mariadb.admin_user}:{quote(mariadb.admin_password, safe='')}@127.0.0.1:{mariadb.port}/" \
          f"{dbname}_moved"
    return base, repo, url, env


def test_a_folder_inside_the_working_dir_is_restored_where_the_map_sends_it(moved):
    base, repo, url, env = moved
    wd, new_wd, new_data = base / "cells", base / "srv" / "cells", base / "big-disk" / "cells-data"
    args = ["--repo", repo, "restore", "latest", "--cells-dir", str(new_wd), "--map", f"{wd / 'data'}={new_data}",
            "--map", f"{base / 'storage'}={base / 'srv' / 'storage'}", "--database-url", url]

    dry = run_cli(*args, "--dry-run", env=env)
    assert dry.code == 0, dry.stderr
    assert f"restore {wd / 'data'} -> {new_data}  (workdir: data (--map))" in dry.stdout
    assert f'"{wd / "data"}" -> "{new_data}"' in dry.stdout  # LocalFolder rewritten to the same place
    assert not new_wd.exists() and not new_data.exists()

    r = run_cli(*args, env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().endswith("installation is whole: Cells can be started")
    assert tree_state(new_data) == tree_state(wd / "data")  # bytes, modes and times, .minio.sys included
    assert (new_data / ".minio.sys" / "format.json").read_bytes() == (wd / "data/.minio.sys/format.json").read_bytes()
    assert not (new_wd / "data").exists()
    assert (new_wd / "cells-vault-key").read_bytes() == (wd / "cells-vault-key").read_bytes()
    config = json.loads((new_wd / "pydio.json").read_text())
    assert config["services"]["pydio.grpc.data.objects.local1"]["LocalFolder"] == str(new_data)
    assert config["services"]["pydio.grpc.data.sync.pydiods1"]["StorageConfiguration"]["folder"] == \
        str(new_data / "pydiods1")

    check = run_cli("verify-install", "--cells-dir", str(new_wd), "-v", env=env)
    assert check.code == 0, check.stdout
    assert f"ok: pydiods1: folder {new_data / 'pydiods1'} exists" in check.stdout
    assert "ok: personal: 8 indexed files match the blobs in" in check.stdout
    assert check.stdout.rstrip().endswith("installation is whole")


def test_a_map_of_nothing_in_the_snapshot_exits_2_naming_what_can_be_mapped(moved):
    base, repo, url, env = moved
    wd = base / "cells"
    for dry in ([], ["--dry-run"]):
        r = run_cli("--repo", repo, "restore", "latest", "--cells-dir", str(base / "new"),
                    "--map", f"{wd / 'datas'}={base / 'elsewhere'}", *dry, env=env)
        assert r.code == 2
        assert r.stderr == (f"cells-backup: error: --map {wd / 'datas'}={base / 'elsewhere'}: {wd / 'datas'} is not "
                            f"in this snapshot; paths that can be mapped: {wd}, {wd / 'data'}, {base / 'storage'}\n")
    assert not (base / "new").exists() and not (base / "elsewhere").exists()


def test_a_map_that_would_split_a_datasource_from_its_minio_sys_is_refused(moved):
    base, repo, url, env = moved
    inner = base / "cells" / "data" / "pydiods1"
    r = run_cli("--repo", repo, "restore", "latest", "--cells-dir", str(base / "new"),
                "--map", f"{inner}={base / 'elsewhere'}", env=env)
    assert r.code == 2
    assert r.stderr == (f"cells-backup: error: --map {inner}={base / 'elsewhere'}: {inner} is inside "
                        f"{base / 'cells' / 'data'}, which keeps its datasources together with their .minio.sys; "
                        f"map {base / 'cells' / 'data'} as a whole\n")
    assert not (base / "new").exists()


def test_only_data_and_only_config_follow_the_map_too(moved):
    base, repo, url, env = moved
    wd, new_wd, new_data = base / "cells", base / "srv" / "cells", base / "big-disk" / "cells-data"
    common = ["--repo", repo, "restore", "latest", "--cells-dir", str(new_wd), "--map", f"{wd / 'data'}={new_data}",
              "--map", f"{base / 'storage'}={base / 'srv' / 'storage'}"]
    r = run_cli(*common, "--only", "data", env=env)
    assert tree_state(new_data) == tree_state(wd / "data"), r.stdout + r.stderr
    assert not new_wd.exists()
    r = run_cli(*common, "--only", "config", env=env)
    assert (new_wd / "cells-vault-key").read_bytes() == (wd / "cells-vault-key").read_bytes(), r.stderr
    assert not (new_wd / "data").exists()
    assert json.loads((new_wd / "pydio.json").read_text())["services"]["pydio.grpc.data.objects.local1"][
        "LocalFolder"] == str(new_data)
