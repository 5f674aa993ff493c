"""`restore --dry-run` runs the real run's pre-flight checks and summarizes per tree (real MariaDB)."""

from __future__ import annotations

import re
import socket
from urllib.parse import quote

import pytest
from conftest_engine import fake_cells

from helpers import run_cli


def db_url(mariadb, database: str, password: str | None = None, port: int | None = None) -> str:
    secret = quote(mariadb.admin_password if password is None else password, safe="")
    return f"mysql://{mariadb.admin_user}:{secret}@127.0.0.1:{port or mariadb.port}/{database}"


def restore_args(base, repo, url, *more):
    return ["--repo", repo, "restore", "latest", "--cells-dir", str(base / "new" / "cells"),
            "--map", f"{base / 'storage'}={base / 'new' / 'storage'}", "--database-url", url, *more]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dry_run_says_which_checks_passed_and_summarizes_each_tree(backed_up, mariadb):
    base, repo, dbname, env = backed_up
    args = restore_args(base, repo, db_url(mariadb, f"{dbname}_new"))
    dry = run_cli(*args, "--dry-run", env=env)
    assert dry.code == 0, dry.stderr
    new_wd = base / "new" / "cells"
    assert not (base / "new").exists()
    assert "pre-flight checks passed (the same as the restore runs first):\n" \
           f"  Cells is not running in {new_wd} (no installation there yet)\n" \
           "  every target folder is new or empty\n" \
           f"  database mysql://{mariadb.admin_user}:***@127.0.0.1:{mariadb.port}/{dbname}_new reachable, " \
           "and empty or new\n" in dry.stdout
    assert dry.stdout.rstrip().endswith("(-v lists every file that would be written)")
    summaries = re.findall(r"^restore (\S+) -> (\S+)  \(.*\): (\d+) files?, (\d+) dirs?, ", dry.stdout, re.M)
    assert [(s, d) for s, d, _f, _d in summaries] == [
        (str(base / "cells" / "cells-vault-key"), str(new_wd / "cells-vault-key")),
        (str(base / "cells"), str(new_wd)), (str(base / "storage"), str(base / "new" / "storage"))]
    assert not any("/data/pydiods1/" in line for line in dry.stdout.splitlines())  # no file listing

    verbose = run_cli(*args, "--dry-run", "-v", env=env)
    listed = verbose.stdout.split("files that would be written:\n", 1)[1].splitlines()

    r = run_cli(*args, env=env)
    assert r.code == 0, r.stdout + r.stderr
    restored_files = int(re.search(r"^restored (\d+) files?", r.stdout, re.M).group(1))
    assert sum(int(f) for _s, _d, f, _n in summaries) == restored_files
    written = [p for root in (new_wd, base / "new" / "storage") for p in [root, *root.rglob("*")]]
    assert sorted(listed) == sorted(str(p) + ("/" if p.is_dir() else "") for p in written)
    assert sum(1 for p in written if not p.is_dir()) == restored_files


def test_non_empty_database_exits_14_in_dry_run_as_in_the_real_run(backed_up, mariadb):
    base, repo, dbname, env = backed_up
    args = restore_args(base, repo, db_url(mariadb, dbname))  # the live database: it has tables
    expected = (f"cells-backup: error: database mysql://{mariadb.admin_user}:***@127.0.0.1:{mariadb.port}/{dbname} "
                "is not empty (use --force to replace its tables)\n")
    for dry in (["--dry-run"], []):
        r = run_cli(*args, *dry, env=env)
        assert (r.code, r.stderr) == (14, expected)
    assert not (base / "new").exists()
    forced = run_cli(*args, "--dry-run", "--force", env=env)
    assert forced.code == 0, forced.stderr
    assert f"/{dbname} reachable, not empty: its tables are replaced (--force)" in forced.stdout


@pytest.mark.parametrize("fault", ["bad credentials", "unreachable"])
def test_database_that_cannot_be_used_exits_1_before_anything_is_written(backed_up, mariadb, fault):
    base, repo, dbname, env = backed_up
    if fault == "bad credentials":
        url, expected = db_url(mariadb, f"{dbname}_new", password="wrong"), "database authentication failed for user"
    else:
        port = closed_port()
        url, expected = db_url(mariadb, f"{dbname}_new", port=port), f"database server unreachable at 127.0.0.1:{port}"
    for more in (["--dry-run"], ["--dry-run", "--force"], ["--force"]):
        r = run_cli(*restore_args(base, repo, url, *more), env=env)
        assert r.code == 1, r.stderr
        assert r.stderr.startswith(f"cells-backup: error: {expected}") and r.stderr.count("\n") == 1
        assert "wrong" not in r.stderr
    assert not (base / "new").exists()  # even --force wrote no file for a database it cannot load


def test_non_empty_target_and_running_cells_in_dry_run(backed_up, mariadb):
    base, repo, dbname, env = backed_up
    (base / "new" / "cells").mkdir(parents=True)
    (base / "new" / "cells" / "keep.txt").write_text("keep")
    r = run_cli(*restore_args(base, repo, db_url(mariadb, f"{dbname}_new"), "--dry-run"), env=env)
    assert r.code == 14
    assert r.stderr == f"cells-backup: error: restore target not empty: {base / 'new' / 'cells'} " \
                       "(use --force to restore over it)\n"
    cells = fake_cells(base / "cells")  # the original, restored in place
    try:
        r = run_cli("--repo", repo, "restore", "latest", "--dry-run", "--force", env=env)
        assert r.code == 13
        assert r.stderr.startswith(f"cells-backup: error: Cells is running in {base / 'cells'} (")
        assert r.stderr.rstrip().endswith("stop it first")
    finally:
        cells.kill()
        cells.wait()
