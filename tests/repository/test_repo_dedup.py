"""Unchanged data is never stored twice: across runs, across files, across hosts' paths."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from helpers import run_cli


def repo_size(path: str) -> int:
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True).stdout.split()[0])


def test_same_100mib_twice_and_two_copies_grow_repository_under_1_percent(repo, env, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    payload = os.urandom(100 * 1024 * 1024)
    (data / "one.bin").write_bytes(payload)
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(data), env=env, check=True)
    first = repo_size(repo)
    assert first > 100 * 1024 * 1024

    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(data), env=env, check=True)
    assert repo_size(repo) - first < first * 0.01

    shutil.copyfile(data / "one.bin", data / "copy.bin")  # a new inode: read again, stored once
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "third.bin").write_bytes(payload)
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(data), "--extra-path", str(other),
            env=env, check=True)
    assert repo_size(repo) - first < first * 0.01


def test_shifted_data_dedups_thanks_to_content_defined_chunks(repo, env, tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    payload = os.urandom(40 * 1024 * 1024)
    (data / "a").write_bytes(payload)
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(data), env=env, check=True)
    first = repo_size(repo)
    Path(data / "a").write_bytes(b"inserted at the front" + payload)
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(data), env=env, check=True)
    assert repo_size(repo) - first < first * 0.15  # only the chunk(s) around the insertion are new
