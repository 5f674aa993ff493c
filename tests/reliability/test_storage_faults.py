"""A full disk and a read-only repository: a clear error, nothing stored before is damaged,
temporary files are cleaned up, and the next run succeeds once there is room."""

from __future__ import annotations

import json
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


def test_permission_denied_in_the_repository_is_one_clear_line(tmp_path):
    """Packs cannot be written (a directory of the repository not writable by the user running the
    backup): one line, exit 1, no temporary files, the earlier snapshot intact, and the next run
    succeeds once the permission is back. Run without the capabilities that let root write anyway."""
    import sys

    env = cli_env()
    repo = tmp_path / "repo"
    run_cli("--repo", str(repo), "init", *FAST_KDF, env=env, check=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("first")
    run_cli("--repo", str(repo), "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    (src / "g").write_bytes(os.urandom(3_000_000))  # new data: a new pack must be written
    data_dirs = [d for d in (repo / "data").iterdir() if d.is_dir()] + [repo / "data"]
    for d in data_dirs:
        os.chmod(d, 0o555)
    try:
        r = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-m",
                            "cells_backup", "--repo", str(repo), "backup", "--no-cells", "--extra-path", str(src)],
                           env=env, capture_output=True, text=True)
    finally:
        for d in data_dirs:
            os.chmod(d, 0o700)
    assert r.returncode == 1, r.stderr
    assert "Permission denied" in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not list(repo.rglob("*.tmp")), "temporary files were left behind"
    snaps = json.loads(run_cli("--repo", str(repo), "snapshots", "--json", env=env).stdout)
    assert len(snaps) == 1
    assert run_cli("--repo", str(repo), "check", "--read-data", env=env).code == 0
    run_cli("--repo", str(repo), "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    out = tmp_path / "out"
    run_cli("--repo", str(repo), "restore", "latest", "--target", str(out), env=env, check=True)
    assert tree_state(out / str(src).lstrip("/")) == tree_state(src)
