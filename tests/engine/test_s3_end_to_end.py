"""Repositories on a real S3 server (SeaweedFS on loopback): round trip, a server killed
mid-backup, and copy from a local repository."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from urllib.parse import quote

from conftest_engine import table_rows

from helpers import FAST_KDF, cli_env, run_cli, spawn_cli, tree_state


def s3_env(server, fast_fail: bool = False) -> dict:
    env = cli_env(**server.env(fast_fail=fast_fail))
    env.pop("AWS_PROFILE", None)
    return env


def test_cells_backup_and_restore_through_s3(installation, mariadb, s3_server_running, s3_prefix, tmp_path):
    sample, dbname, base = installation
    env = s3_env(s3_server_running)
    repo = s3_server_running.url(s3_prefix)
    assert run_cli("--repo", repo, "init", *FAST_KDF, env=env).code == 0
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), env=env)
    assert r.code == 0, r.stderr
    r = run_cli("--repo", repo, "check", "--read-data", env=env)
    assert r.code == 0, r.stdout + r.stderr
    new_db = f"{dbname}_s3"
    url = f"mysql://{mariadb.admin_user}:{quote(mariadb.admin_password, safe='')}@127.0.0.1:{mariadb.port}/{new_db}"
    r = run_cli("--repo", repo, "restore", "latest", "--cells-dir", str(tmp_path / "new"), "--map",
                f"{base / 'storage'}={tmp_path / 'storage2'}", "--database-url", url, "--json", env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["whole"] is True
    assert tree_state(tmp_path / "storage2") == tree_state(base / "storage")
    assert table_rows(mariadb, new_db) == table_rows(mariadb, dbname)


def test_server_killed_mid_backup_then_next_backup_completes(s3_server_running, s3_prefix, tmp_path):
    server = s3_server_running
    env = s3_env(server, fast_fail=True)
    repo = server.url(s3_prefix)
    src = tmp_path / "data"
    src.mkdir()
    rng = random.Random(5)
    for i in range(60):
        (src / f"f{i}").write_bytes(os.urandom(rng.choice([200_000, 1_500_000, 3_000_000])))
    assert run_cli("--repo", repo, "init", *FAST_KDF, env=env).code == 0
    proc = spawn_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env)
    backend = server.backend(s3_prefix)
    deadline = time.monotonic() + 60
    while not list(backend.list("data/")) and time.monotonic() < deadline:  # the first pack has arrived
        time.sleep(0.05)
    server.kill()
    _out, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 1, err  # the backup failed, cleanly: one line, no traceback
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    server.start()
    r = run_cli("--repo", repo, "check", env=env)
    assert r.code == 0, r.stdout + r.stderr
    r = run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env)
    assert r.code == 0, r.stderr
    out = tmp_path / "out"
    assert run_cli("--repo", repo, "restore", "latest", "--target", str(out), env=env).code == 0
    assert tree_state(out / str(src).lstrip("/")) == tree_state(src)
    assert run_cli("--repo", repo, "check", "--read-data", env=env).code == 0


def test_copy_local_to_s3_then_restore_from_s3(installation, mariadb, s3_server_running, s3_prefix, tmp_path):
    sample, dbname, base = installation
    env = s3_env(s3_server_running)
    local = str(tmp_path / "local-repo")
    assert run_cli("--repo", local, "init", *FAST_KDF, env=env).code == 0
    run_cli("--repo", local, "backup", "--cells-dir", str(base / "cells"), env=env, check=True)
    (base / "storage" / "archive" / "later").write_bytes(b"second snapshot")
    run_cli("--repo", local, "backup", "--cells-dir", str(base / "cells"), env=env, check=True)
    remote = s3_server_running.url(s3_prefix)
    r = run_cli("--repo", local, "copy", "--to-repo", remote, "--json", env=env)
    assert r.code == 0, r.stderr
    assert len(json.loads(r.stdout)["copied"]) == 2
    r = run_cli("--repo", local, "copy", "--to-repo", remote, "--json", env=env)
    assert json.loads(r.stdout)["copied"] == []  # nothing twice
    assert run_cli("--repo", remote, "check", "--read-data", env=env).code == 0
    new_db = f"{dbname}_copy"
    url = f"mysql://{mariadb.admin_user}:{quote(mariadb.admin_password, safe='')}@127.0.0.1:{mariadb.port}/{new_db}"
    r = run_cli("--repo", remote, "restore", "latest", "--cells-dir", str(tmp_path / "from-s3"), "--map",
                f"{base / 'storage'}={tmp_path / 'storage-s3'}", "--database-url", url, "--json", env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert tree_state(tmp_path / "storage-s3") == tree_state(base / "storage")
    assert table_rows(mariadb, new_db) == table_rows(mariadb, dbname)
    key = "cells-vault-key"
    assert (tmp_path / "from-s3" / key).read_bytes() == Path(base / "cells" / key).read_bytes()


class CountingBackend:
    """Forwards to a real backend (its properties too) and counts the bytes of pack data it
    downloads."""

    def __init__(self, backend):
        self._backend = backend
        self.pack_bytes_read = 0

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def read(self, name: str) -> bytes:
        data = self._backend.read(name)
        self.pack_bytes_read += len(data) if name.startswith("data/") else 0
        return data

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        data = self._backend.read_range(name, offset, length)
        self.pack_bytes_read += len(data) if name.startswith("data/") else 0
        return data

    def read_stream(self, name: str, offset: int, length: int):
        for chunk in self._backend.read_stream(name, offset, length):
            self.pack_bytes_read += len(chunk) if name.startswith("data/") else 0
            yield chunk


def test_restore_from_s3_downloads_each_pack_about_once(s3_server_running, s3_prefix, tmp_path):
    """Big files' chunks are spread over packs filled in parallel; small files sit between them."""
    from cells_backup.engine.trees import restore_tree
    from cells_backup.repository.repository import Repository

    src = tmp_path / "src"
    rng = random.Random(7)
    for i in range(6):
        (src / f"big{i}").mkdir(parents=True)
        (src / f"big{i}" / "data.bin").write_bytes(rng.randbytes(12 * 1024 * 1024))
        for j in range(150):
            (src / f"big{i}" / f"small{j}.txt").write_bytes(rng.randbytes(rng.randint(100, 20000)))
    env = s3_env(s3_server_running)
    repo_url = s3_server_running.url(s3_prefix)
    # small packs: many more of them than the restore keeps in memory
    assert run_cli("--repo", repo_url, "init", "--pack-size", "2", *FAST_KDF, env=env).code == 0
    assert run_cli("--repo", repo_url, "backup", "--no-cells", "--extra-path", str(src), env=env).code == 0
    counting = CountingBackend(s3_server_running.backend(s3_prefix))
    repo = Repository.open(counting, b"correct horse")
    packs = sum(size for _name, size in counting.list("data/"))
    snapshot = repo.resolve_snapshot("latest")
    result = restore_tree(repo, snapshot, str(tmp_path / "out"))
    assert not result.errors
    assert tree_state(tmp_path / "out" / str(src).lstrip("/")) == tree_state(src)
    assert counting.pack_bytes_read <= 1.2 * packs, (counting.pack_bytes_read, packs)
