"""The progress line of an installation's backup and restore, on a pseudo-terminal."""

from __future__ import annotations

import re
import sqlite3

from cells_backup.cells.sample import make_sample_installation
from helpers import FAST_KDF, cli_env, run_cli
from terminal import last_frame, run_on_terminal


def test_installation_restore_counts_the_files_of_its_steps(tmp_path):
    db_path = tmp_path / "cells" / "cells.sqlite"
    make_sample_installation(tmp_path / "cells", version="5.0.2", db={"engine": "sqlite", "path": str(db_path)},
                             external_parent=tmp_path / "storage")
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE idm_user_attributes (uuid TEXT, name TEXT, value BLOB)")
    env = cli_env()
    repo = str(tmp_path / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    backup = run_on_terminal("--repo", repo, "backup", "--cells-dir", str(tmp_path / "cells"), env=env)
    assert backup.code == 0, backup.terminal
    # A first backup: the walkers counted the installation's files (excluded ones too: an estimate)
    m = re.match(r"backup\s+(\d+)%\s+files (\d+)/(\d+)\s+\S+ \S+/\S+ \S+", last_frame(backup, "backup"))
    assert m and 80 <= int(m[1]) <= 100 and 0 < int(m[2]) <= int(m[3]), backup.frames()

    restore = run_on_terminal("--repo", repo, "restore", "latest", "--cells-dir", str(tmp_path / "new"), "--map",
                              f"{tmp_path / 'storage'}={tmp_path / 'storage2'}", env=env)
    assert restore.code == 0, restore.stdout + restore.terminal
    assert "installation is whole" in restore.stdout
    line = last_frame(restore, "restore")
    m = re.match(r"restore\s+100%\s+files (\d+)/\1\s+(\S+ \S+)/\2\s", line)
    assert m and int(m[1]) > 5, line
    # the steps' messages are printed above the line, as on a pipe
    assert "restoring " in restore.terminal and "loading database into" in restore.terminal


def test_backup_with_hooks_counts_the_second_pass_from_zero(tmp_path):
    """With stop and start hooks the files are read while Cells runs, then again once it is
    stopped: the line counts the second pass from zero, of what the first one stored."""
    make_sample_installation(tmp_path / "cells", external_parent=tmp_path / "storage")
    env = cli_env()
    repo = str(tmp_path / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    run = run_on_terminal("--repo", repo, "backup", "--cells-dir", str(tmp_path / "cells"), "--no-database",
                          "--stop-command", "true", "--start-command", "true", env=env)
    assert run.code == 0, run.stdout + run.terminal
    assert "stopping Cells" in run.frames()
    new, changed, unmodified = map(int, re.search(r"files: (\d+) new, (\d+) changed, (\d+) unmodified",
                                                  run.stdout).groups())
    stored = new + changed + unmodified
    assert stored > 10
    # Both passes went over every file; counted on, the second would end at twice as many.
    assert re.match(rf"backup\s+100%\s+files {stored}/{stored}\s", last_frame(run, "backup")), run.frames()
