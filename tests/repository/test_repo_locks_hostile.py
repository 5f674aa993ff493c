"""Concurrency, locks, and a hostile repository that tries to write outside the target."""

from __future__ import annotations

import json
import os
import socket
import time

from cells_backup.repository.backends.local import LocalBackend
from cells_backup.repository.lock import Lock
from cells_backup.repository.repository import Repository
from cells_backup.repository.snapshot import Snapshot
from helpers import run_cli, save_tree, spawn_cli, tree_state

PASSWORD = b"correct horse"


def test_two_concurrent_backups_both_succeed(repo, env, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        for i in range(20):
            (d / f"f{i}").write_bytes(os.urandom(500_000))
    procs = [spawn_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(d), env=env) for d in (a, b)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert run_cli("--repo", repo, "check", "--read-data", env=env).code == 0
    snaps = json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout)
    assert len(snaps) == 2
    out = tmp_path / "out"
    for s in snaps:
        run_cli("--repo", repo, "restore", s["id"], "--target", str(out / s["short_id"]), env=env, check=True)
        src = s["paths"][0]
        assert tree_state(out / s["short_id"] / src.lstrip("/")) == tree_state(src)


def test_exclusive_lock_makes_backup_exit_11_then_unlock_clears_stale(repo, env, tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    (src / "f").write_text("x")
    held = Lock(Repository.open(LocalBackend(repo), PASSWORD), exclusive=True, purpose="prune").acquire()
    try:
        r = run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), "--lock-wait", "1", env=env)
        assert r.code == 11
        assert "locked" in r.stderr and "prune" in r.stderr
    finally:
        held.release()
    assert run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env).code == 0


def test_lock_of_dead_process_is_stale(repo, env, tmp_path):
    r = Repository.open(LocalBackend(repo), PASSWORD)
    doc = {"time": "2026-01-01T00:00:00+00:00", "epoch": time.time(), "hostname": socket.gethostname(),
           "pid": 2**22 + 12345, "exclusive": True, "purpose": "prune"}
    r.backend.write("locks/deadbeef", r.seal(json.dumps(doc).encode()))
    src = tmp_path / "s"
    src.mkdir()
    (src / "f").write_text("x")
    assert run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), "--lock-wait", "0",
                   env=env).code == 0
    out = run_cli("--repo", repo, "unlock", "--json", env=env)
    assert json.loads(out.stdout)["removed"] == ["locks/deadbeef"]


def _hostile_snapshot(repo_path: str, nodes: list[dict]) -> str:
    repo = Repository.open(LocalBackend(repo_path), PASSWORD)
    repo.load_index()
    tree_id = save_tree(repo, nodes)
    snap = Snapshot(time="2026-01-01T00:00:00+00:00", hostname="evil", username="evil", paths=["/"], tree=tree_id)
    return repo.save_snapshot(snap)


def _file_node(repo_path: str, name: str, data: bytes) -> dict:
    repo = Repository.open(LocalBackend(repo_path), PASSWORD)
    repo.load_index()
    from cells_backup.repository.index import DATA
    from cells_backup.repository.writer import BlobWriter

    with BlobWriter(repo) as w:
        blob = w.save(DATA, data)
    return {"name": name, "type": "file", "mode": 0o644, "uid": 0, "gid": 0, "mtime": 0, "ctime": 0,
            "inode": 1, "dev": 1, "size": len(data), "content": [blob.hex()]}


def test_names_with_dotdot_or_slash_never_escape(repo, env, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    for evil in ("..", "../outside/pwned", "/abs/pwned", "a/../../pwned"):
        sid = _hostile_snapshot(repo, [_file_node(repo, evil, b"pwned")])
        target = tmp_path / f"target-{abs(hash(evil))}"
        r = run_cli("--repo", repo, "restore", sid, "--target", str(target), env=env)
        assert r.code != 0 and "Traceback" not in r.stderr
        assert "unsafe" in r.stdout + r.stderr or "invalid" in r.stdout + r.stderr
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "pwned").exists()


def test_symlink_in_target_is_not_followed(repo, env, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    inner = _file_node(repo, "f", b"pwned")
    r = Repository.open(LocalBackend(repo), PASSWORD)
    r.load_index()
    sub = save_tree(r, [inner])
    sid = _hostile_snapshot(repo, [
        {"name": "x", "type": "dir", "mode": 0o755, "uid": 0, "gid": 0, "mtime": 0, "ctime": 0, "inode": 2,
         "dev": 1, "subtree": sub},
        {"name": "y", "type": "symlink", "mode": 0o777, "uid": 0, "gid": 0, "mtime": 0, "ctime": 0, "inode": 3,
         "dev": 1, "target": str(outside)},
    ])
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "x")  # planted before the restore
    r = run_cli("--repo", repo, "restore", sid, "--target", str(target), "--force", env=env)
    assert r.code == 1
    assert list(outside.iterdir()) == []
    assert os.readlink(target / "y") == str(outside)  # the symlink itself is restored, never traversed
