"""A flat datasource keeps every file in one directory: memory must not grow by kilobytes per entry.

Peak memory of real backups and restores (the child's own maximum RSS, from wait4) of a directory
of 60,000 entries, against the same runs on 1,000: the difference per extra entry must stay well
under the 2-3 KiB per entry a directory held as Python objects costs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import FAST_KDF, cli_env, run_cli

ENTRIES = 60_000


def peak_mib(env: dict, tmp_path: Path, *args: str) -> float:
    """Run one command; return its peak RSS in MiB (ru_maxrss of that very child)."""
    with open(tmp_path / "out.txt", "wb") as out, open(tmp_path / "err.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "cells_backup", *args], env=env, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, (tmp_path / "err.txt").read_text()
    return usage.ru_maxrss / 1024


def make_flat(path: Path, count: int) -> None:
    path.mkdir()
    for i in range(count):
        (path / f"0f3c9a2e-5b1d-4c7e-9a8b-{i:012d}").write_bytes(b"%d" % (i % 7))


def test_memory_per_entry_of_a_huge_directory_stays_small(tmp_path):
    env = cli_env()
    peaks = {}
    for count in (1_000, ENTRIES):
        source = tmp_path / f"flat-{count}"
        make_flat(source, count)
        repo = str(tmp_path / f"repo-{count}")
        run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
        backup = ("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), "--json")
        first = peak_mib(env, tmp_path, *backup)
        again = peak_mib(env, tmp_path, *backup)  # unchanged: the parent's listing and the new one
        target = tmp_path / f"restored-{count}"
        restore = peak_mib(env, tmp_path, "--repo", repo, "restore", "latest", "--target", str(target))
        assert len(os.listdir(target / str(source).lstrip("/"))) == count
        peaks[count] = (first, again, restore)
    extra = ENTRIES - 1_000
    per_entry = [round((peaks[ENTRIES][i] - peaks[1_000][i]) * 1024 * 1024 / extra) for i in (0, 1, 2)]
    assert max(per_entry) < 1200, f"bytes of peak memory per entry (first, unchanged, restore): {per_entry}"
