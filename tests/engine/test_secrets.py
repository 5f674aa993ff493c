"""Secrets never leave in clear: not in child processes' argv, output, JSON or logs; the repository
holds pydio.json and the vault only encrypted."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from conftest_engine import admin

from helpers import FAST_KDF, cli_env, run_cli, spawn_cli

REPO_PASSWORD = "repo-secret-Xy7#q"


def _all_cmdlines() -> list[bytes]:
    lines = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                lines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
            except OSError:
                continue
    return lines


def test_no_secret_in_argv_output_logs_or_repository(installation, mariadb, tmp_path):
    sample, dbname, base = installation
    with admin(mariadb, dbname) as c, c.cursor() as cur:  # enough rows that the dump takes a while
        cur.execute("CREATE TABLE filler (id INT PRIMARY KEY, v VARCHAR(200))")
        cur.execute("INSERT INTO filler SELECT seq, REPEAT('x', 150) FROM seq_1_to_300000")
    env = cli_env(password=REPO_PASSWORD)
    repo = str(base / "repo")
    log = tmp_path / "cells-backup.log"
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    secrets = [REPO_PASSWORD.encode(), mariadb.admin_password.encode()]
    seen: list[bytes] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.extend(line for line in _all_cmdlines() if any(s in line for s in secrets))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    children_seen = []
    try:
        proc = spawn_cli("--repo", repo, "--log-file", str(log), "-v", "backup", "--cells-dir", str(base / "cells"),
                         "--json", env=env)
        while proc.poll() is None:
            children_seen += [c for c in _all_cmdlines() if b"mariadb-dump" in c or b"mysqldump" in c]
            time.sleep(0.01)
        out, err = proc.communicate()
    finally:
        stop.set()
        watcher.join()
    assert proc.returncode == 0, err
    assert children_seen, "the dump client was never seen running: the test proves nothing"
    assert seen == []
    for text in (out, err, log.read_bytes() if log.exists() else b""):
        assert not any(s in text for s in secrets)
    # the repository never holds pydio.json (which has the DSN password) or the vault in clear
    for f in Path(repo).rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert mariadb.admin_password.encode() not in data
            assert b'"databases"' not in data and b"keyring.master" not in data
    # files the repository writes are private
    assert all((f.stat().st_mode & 0o077) == 0 for f in Path(repo).rglob("*") if f.is_file())
    r = run_cli("--repo", repo, "restore", "latest", "--dry-run", "--json", env=env)
    assert mariadb.admin_password not in r.stdout + r.stderr
