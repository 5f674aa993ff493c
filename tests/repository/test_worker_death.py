"""A backup's reader processes and a restore's worker processes end with the main process, even
when it is SIGKILLed (the OOM killer, `kill -9`, a timeout): within 2 seconds none is left holding
packs and source files open, and the next backup or restore of the same repository works."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cells_backup.repository import forked
from helpers import FAST_KDF, cli_env, run_cli, tree_state
from proc_children import children, cmdline, kill_running, kill_when, proc_stat, running, survivors


def _kill_when_workers_run(args: list[str], env: dict[str, str]) -> dict[int, str]:
    """Run the CLI in a session of its own, SIGKILL it once its two workers run; their pids.
    Workers are the children that are forks of it (same command line: not a `du` walker)."""
    proc = subprocess.Popen([sys.executable, "-m", "cells_backup", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)

    def two_workers(pid: int) -> dict[int, str]:
        forks = children(pid, lambda child: cmdline(child) == cmdline(pid))
        return forks if len(forks) >= 2 else {}

    return kill_when(proc, two_workers)


@pytest.fixture
def many_files(tmp_path: Path) -> Path:
    """Enough small files (5,000) for a backup or a restore to be killed in the middle of it."""
    src = tmp_path / "src"
    for d in range(25):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(200):
            (src / f"d{d}" / f"f{i}").write_bytes(os.urandom(3000))
    return src


@pytest.fixture
def repo(tmp_path: Path) -> str:
    path = str(tmp_path / "repo")
    run_cli("--repo", path, "init", *FAST_KDF, check=True)
    return path


def test_readers_end_when_a_backup_is_killed_and_the_next_backup_works(many_files, repo, tmp_path):
    env = cli_env()
    args = ["--repo", repo, "backup", "--no-cells", "--extra-path", str(many_files)]
    readers = _kill_when_workers_run(args, env)
    try:
        assert survivors(readers) == []
    finally:
        kill_running(readers)
    run_cli(*args, env=env, check=True)
    run_cli("--repo", repo, "check", env=env, check=True)
    out = tmp_path / "out"
    run_cli("--repo", repo, "restore", "latest", "--target", str(out), env=env, check=True)
    assert tree_state(out / str(many_files).lstrip("/")) == tree_state(many_files)


def test_workers_end_when_a_restore_is_killed_and_the_next_restore_works(many_files, repo, tmp_path):
    env = cli_env()
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(many_files), env=env, check=True)
    target = tmp_path / "target"
    args = ["--repo", repo, "restore", "latest", "--target", str(target)]
    workers = _kill_when_workers_run(args, env)
    try:
        assert survivors(workers) == []
    finally:
        kill_running(workers)
    half_restored = target.exists() and any(target.iterdir())
    again = run_cli(*args, env=env)  # what an admin sees first
    if half_restored:  # killed after its first file: the target is not empty any more
        assert again.code == 14, again.stderr
        run_cli(*args, "--force", env=env, check=True)
    else:  # killed (on a loaded machine) before anything was written: nothing to refuse
        assert again.code == 0, again.stderr
    assert tree_state(target / str(many_files).lstrip("/")) == tree_state(many_files)


# The two ways a child learns of its parent's death, each alone: the kernel's signal (a child
# busy with a file never reads its pipe) and the pipe closing (forked from a thread other than
# the main one, whose end would fire the signal while the process lives on).
PARENT = """
import sys, threading, time
from cells_backup.repository import forked, read_workers

def busy(conn):
    time.sleep(60)

def start():
    global children
    if sys.argv[1] == "busy":
        children = forked.start_children(2, busy)
    else:
        children = forked.start_children(2, read_workers._serve, None)

if sys.argv[1] == "from-a-thread":
    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
else:
    start()
print(" ".join(str(process.pid) for process, _conn in children), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("how", ["busy", "from-a-thread"])
def test_children_end_with_a_killed_parent(how):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, how], env=cli_env(), stdout=subprocess.PIPE,
                              start_new_session=True)
    started: dict[int, str] = {}
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        started.update((pid, stat[2]) for pid in pids if (stat := proc_stat(pid)))
        assert len(started) == 2
        time.sleep(0.2)
        assert running(started) == pids  # alive while the parent is, its forking thread ended or not
        parent.kill()
        parent.wait()
        assert survivors(started) == []
    finally:
        parent.kill()
        parent.wait()
        kill_running(started)
        parent.stdout.close()


def test_a_child_whose_parent_died_before_it_started_does_nothing():
    """The parent may die between the fork and the child's asking for the signal."""
    called = []
    forked._run(called.append, "conn", [], os.getppid() + 1, None)
    assert called == []
