"""A full disk and a read-only repository: a clear error, nothing stored before is damaged,
temporary files are cleaned up, and the next run succeeds once there is room."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers import FAST_KDF, cli_env, run_cli, tree_state


@pytest.fixture
def small_fs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True)
    assert r.returncode == 0, f"cannot mount a tmpfs: {r.stderr.decode()}"
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_fails_cleanly_and_keeps_earlier_snapshots(small_fs, tmp_path):
    env = cli_env()
    repo = str(small_fs / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "small").write_bytes(os.urandom(2_000_000))
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    (src / "big").write_bytes(os.urandom(40_000_000))  # more than the filesystem holds
    r = run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env)
    assert r.code == 1
    assert "no space left" in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not list(Path(repo).rglob("*.tmp")), "temporary files were left behind"
    assert run_cli("--repo", repo, "check", "--read-data", env=env).code == 0
    out = tmp_path / "out"
    assert run_cli("--repo", repo, "restore", "latest", "--target", str(out), env=env).code == 0
    assert tree_state(out / str(src).lstrip("/") / "small") == tree_state(src / "small")
    # room again: prune drops what the failed run left, the next backup works
    (src / "big").unlink()
    assert run_cli("--repo", repo, "prune", env=env).code == 0
    assert run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env).code == 0


def test_read_only_repository_gives_a_clear_error(small_fs, tmp_path):
    env = cli_env()
    repo = str(small_fs / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    try:
        r = run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env)
        assert r.code == 1 and "Read-only file system" in r.stderr and "Traceback" not in r.stderr
        # reading still works
        assert run_cli("--repo", repo, "snapshots", env=env).code == 0
        out = tmp_path / "out"
        assert run_cli("--repo", repo, "restore", "latest", "--target", str(out), env=env).code == 0
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)


def test_full_disk_as_restore_target_reports_and_keeps_the_repository(small_fs, tmp_path):
    env = cli_env()
    repo = str(tmp_path / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(8):
        (src / f"f{i}").write_bytes(os.urandom(5_000_000))
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    r = run_cli("--repo", repo, "restore", "latest", "--target", str(small_fs / "out"), env=env)
    assert r.code == 1 and "Traceback" not in r.stderr
    assert "No space left on device" in r.stdout + r.stderr
    assert run_cli("--repo", repo, "check", "--read-data", env=env).code == 0
    # what did fit is complete, byte for byte; the rest is reported and not left half-written
    restored = small_fs / "out" / str(src).lstrip("/")
    kept = list(restored.iterdir())
    assert len(kept) < 8
    for f in kept:
        assert f.read_bytes() == (src / f.name).read_bytes()
    for f in set(src.iterdir()) - {src / k.name for k in kept}:
        assert str(restored / f.name) in r.stdout
