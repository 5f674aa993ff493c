from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import FAST_KDF, cli_env, run_cli


@pytest.fixture
def env() -> dict[str, str]:
    return cli_env()


@pytest.fixture
def repo(tmp_path: Path, env: dict[str, str]) -> str:
    path = str(tmp_path / "repo")
    run_cli("--repo", path, "init", *FAST_KDF, env=env, check=True)
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small tree with the kinds of entries a server has."""
    src = tmp_path / "src"
    (src / "dir" / "sub").mkdir(parents=True)
    (src / "empty-dir").mkdir()
    (src / "a.txt").write_text("hello\n")
    (src / "dir" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024) + b"\0" * (2 * 1024 * 1024))
    (src / "dir" / "sub" / "name with spaces and ünïcode ✓").write_text("x" * 1000)
    (src / "empty").write_bytes(b"")
    os.link(src / "a.txt", src / "dir" / "hardlink-to-a")
    os.symlink("../a.txt", src / "dir" / "link")
    os.symlink("/nonexistent/target", src / "dangling")
    os.chmod(src / "dir" / "big.bin", 0o640)
    os.utime(src / "a.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    return src
