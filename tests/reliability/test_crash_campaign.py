"""SIGKILL at random moments of backup, restore, prune, copy and key changes.

Short mode (CI): a few kills per operation. Long mode: set CELLS_BACKUP_CRASH_ITERATIONS=200
(see docs/RELIABILITY.md). After every kill: `check` passes, every snapshot that existed
restores bit-exact, and the next run of the same operation completes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from helpers import FAST_KDF, cli_env, run_cli, spawn_cli, tree_state

ITERATIONS = int(os.environ.get("CELLS_BACKUP_CRASH_ITERATIONS", "3"))
SEED = int(os.environ.get("CELLS_BACKUP_CRASH_SEED", "1"))


def corpus(root: Path, rng: random.Random, files: int = 40) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"f{i:03d}").write_bytes(os.urandom(rng.choice([1000, 100_000, 900_000, 2_500_000])))


def timed(args: list[str], env: dict) -> float:
    started = time.monotonic()
    r = run_cli(*args, env=env)
    assert r.code == 0, r.stderr
    return time.monotonic() - started


def kill_at(args: list[str], env: dict, delay: float) -> int | None:
    proc = spawn_cli(*args, env=env)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return None if killed else proc.returncode


def snapshot_states(repo: str, env: dict, out: Path) -> dict[str, dict]:
    states = {}
    for s in json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout):
        target = out / f"r{len(list(out.glob('*'))) if out.exists() else 0}"
        r = run_cli("--repo", repo, "restore", s["id"], "--target", str(target), env=env)
        assert r.code == 0, r.stdout + r.stderr
        states[s["id"]] = tree_state(target)
    return states


@pytest.fixture
def world(tmp_path):
    env = cli_env()
    rng = random.Random(SEED)
    repo = str(tmp_path / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    src = tmp_path / "src"
    corpus(src, rng)
    return env, rng, repo, src, tmp_path


def test_kill_during_backup(world):
    env, rng, repo, src, tmp = world
    args = ["--repo", repo, "backup", "--no-cells", "--extra-path", str(src)]
    full = timed(args, env)
    before = snapshot_states(repo, env, tmp / "before")
    for i in range(ITERATIONS):
        corpus(src / f"round{i}", rng, files=10)
        kill_at(args, env, rng.uniform(0.05, 1.0) * full)
        assert run_cli("--repo", repo, "check", env=env).code == 0
    assert run_cli(*args, env=env).code == 0
    after = snapshot_states(repo, env, tmp / "after")
    assert all(after[sid] == state for sid, state in before.items())


def test_kill_during_restore(world):
    env, rng, repo, src, tmp = world
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    target = tmp / "target"
    args = ["--repo", repo, "restore", "latest", "--target", str(target), "--force"]
    full = timed(args, env)
    for _ in range(ITERATIONS):
        kill_at(args, env, rng.uniform(0.05, 1.0) * full)
        assert run_cli("--repo", repo, "check", env=env).code == 0
    assert run_cli(*args, env=env).code == 0
    assert tree_state(target / str(src).lstrip("/")) == tree_state(src)


def test_kill_during_prune(world):
    env, rng, repo, src, tmp = world
    for i in range(4):
        corpus(src / f"gen{i}", rng, files=8)
        run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
        if i >= 1:
            for f in (src / f"gen{i - 1}").iterdir():
                f.unlink()
    ids = [s["id"] for s in json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout)]
    for sid in ids[:2]:
        os.unlink(Path(repo) / "snapshots" / sid)
    before = snapshot_states(repo, env, tmp / "before")
    args = ["--repo", repo, "prune", "--max-unused", "0%"]
    for _ in range(ITERATIONS):
        kill_at(args, env, rng.uniform(0.05, 0.8))
        assert run_cli("--repo", repo, "check", env=env).code == 0
    assert run_cli(*args, env=env).code == 0
    assert snapshot_states(repo, env, tmp / "after") == before


def test_kill_during_copy(world):
    env, rng, repo, src, tmp = world
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    target = str(tmp / "copy-target")
    args = ["--repo", repo, "copy", "--to-repo", target]
    for _ in range(ITERATIONS):
        kill_at(args, env, rng.uniform(0.05, 1.0))
        if Path(target, "config").exists():
            assert run_cli("--repo", target, "check", env=env).code == 0
    assert run_cli(*args, env=env).code == 0
    assert snapshot_states(target, env, tmp / "t") and run_cli("--repo", target, "check", "--read-data",
                                                               env=env).code == 0


def test_kill_during_password_change(world, tmp_path):
    env, rng, repo, src, tmp = world
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    new = tmp_path / "new-password"
    new.write_text("new secret\n")
    os.chmod(new, 0o600)
    for _ in range(ITERATIONS):
        kill_at(["--repo", repo, "key", "passwd", "--new-password-file", str(new)], env, rng.uniform(0.01, 0.4))
        old_ok = run_cli("--repo", repo, "snapshots", env=env).code == 0
        new_ok = run_cli("--repo", repo, "snapshots", env=cli_env(password="new secret")).code == 0
        assert old_ok or new_ok, "no password opens the repository any more"
        if new_ok:
            return  # the change went through: done
    assert run_cli("--repo", repo, "key", "passwd", "--new-password-file", str(new), env=env).code == 0
    assert run_cli("--repo", repo, "snapshots", env=cli_env(password="new secret")).code == 0
