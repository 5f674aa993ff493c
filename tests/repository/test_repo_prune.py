"""prune frees space, survives SIGKILL at any moment, and repair rebuilds a lost index."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

from helpers import run_cli, spawn_cli, tree_state


def du(path: str) -> int:
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True).stdout.split()[0])


def build_history(repo: str, env: dict, tmp_path: Path, rounds: int = 6) -> tuple[Path, list[str]]:
    """Several snapshots of a changing tree; returns the tree and snapshot ids (oldest first)."""
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(7)
    for i in range(rounds):
        for j in range(3):
            (src / f"r{i}-{j}.bin").write_bytes(os.urandom(rng.choice([300_000, 2_000_000, 6_000_000])))
        if i >= 2:
            for old in sorted(src.glob(f"r{i - 2}-*")):
                old.unlink()
        run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    snaps = json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout)
    return src, [s["id"] for s in snaps]


def forget_ids(repo: str, ids: list[str]) -> None:
    for sid in ids:
        os.unlink(Path(repo) / "snapshots" / sid)


def restore_all(repo: str, env: dict, tmp_path: Path, ids: list[str], tag: str) -> dict[str, dict]:
    states = {}
    for sid in ids:
        out = tmp_path / f"{tag}-{sid[:8]}"
        r = run_cli("--repo", repo, "restore", sid, "--target", str(out), env=env)
        assert r.code == 0, r.stdout + r.stderr
        states[sid] = tree_state(out)
    return states


def test_prune_after_forgetting_half_shrinks_and_keeps_the_rest(repo, env, tmp_path):
    src, ids = build_history(repo, env, tmp_path)
    keep = ids[3:]
    expected = restore_all(repo, env, tmp_path, keep, "before")
    size_before = du(repo)
    r = run_cli("--repo", repo, "forget", "--keep-last", "3", "--prune", "--max-unused", "0%", "--json", env=env)
    assert r.code == 0, r.stderr
    assert sorted(json.loads(r.stdout)["removed"]) == sorted(ids[:3])
    # rounds 0 and 1 are referenced by no remaining snapshot; round 2 still is (snapshot 3 holds it)
    assert du(repo) < size_before * 0.75
    assert run_cli("--repo", repo, "check", "--read-data", env=env).code == 0
    assert restore_all(repo, env, tmp_path, keep, "after") == expected


def test_prune_killed_at_random_points_loses_nothing(repo, env, tmp_path):
    src, ids = build_history(repo, env, tmp_path)
    keep = ids[2:]
    expected = restore_all(repo, env, tmp_path, keep, "before")
    forget_ids(repo, ids[:2])
    rng = random.Random(3)
    for attempt in range(6):
        proc = spawn_cli("--repo", repo, "prune", "--max-unused", "0%", env=env)
        time.sleep(rng.uniform(0.05, 1.2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        r = run_cli("--repo", repo, "check", env=env)
        assert r.code == 0, f"attempt {attempt}: {r.stdout}{r.stderr}"
    r = run_cli("--repo", repo, "prune", "--max-unused", "0%", env=env)
    assert r.code == 0, r.stderr
    assert run_cli("--repo", repo, "check", "--read-data", env=env).code == 0
    assert restore_all(repo, env, tmp_path, keep, "after") == expected
    # a second prune has nothing left to do
    doc = json.loads(run_cli("--repo", repo, "prune", "--json", env=env).stdout)
    assert doc["plan"]["delete_packs"] == 0 and doc["plan"]["orphan_packs"] == 0


def test_repair_after_deleting_every_index_file(repo, env, tmp_path):
    src, ids = build_history(repo, env, tmp_path, rounds=3)
    expected = restore_all(repo, env, tmp_path, ids, "before")
    for f in (Path(repo) / "index").iterdir():
        f.unlink()
    assert run_cli("--repo", repo, "check", env=env).code == 1
    r = run_cli("--repo", repo, "repair", env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert run_cli("--repo", repo, "check", "--read-data", env=env).code == 0
    assert restore_all(repo, env, tmp_path, ids, "after") == expected


def test_backup_while_prune_holds_the_lock_waits_or_exits_11(repo, env, tmp_path):
    src, ids = build_history(repo, env, tmp_path, rounds=2)
    from cells_backup.repository.backends.local import LocalBackend
    from cells_backup.repository.lock import Lock
    from cells_backup.repository.repository import Repository

    held = Lock(Repository.open(LocalBackend(repo), b"correct horse"), exclusive=True, purpose="prune").acquire()
    try:
        r = run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), "--lock-wait", "0.5", env=env)
        assert r.code == 11
        r = run_cli("--repo", repo, "prune", env=env)
        assert r.code == 11
    finally:
        held.release()
    assert run_cli("--repo", repo, "check", env=env).code == 0
