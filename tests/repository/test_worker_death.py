"""A backup's reader processes and a restore's worker processes end with the main process, even
when it is SIGKILLed (the OOM killer, `kill -9`, a timeout): within 2 seconds none is left holding
packs and source files open, and the next backup or restore of the same repository works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cells_backup.repository import forked
from helpers import FAST_KDF, cli_env, run_cli, tree_state

GRACE = 2.0  # seconds the workers have to end once the main process is dead
START_TIMEOUT = 60.0  # for the workers to appear, on a loaded machine


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0], fields[19]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _forked_children(pid: int) -> dict[int, str]:
    """The children of ``pid`` that are forks of it (same command line: not a `du` walker or a
    database client), with their start times."""
    found = {}
    for entry in os.listdir("/proc"):
        stat = _stat(int(entry)) if entry.isdigit() else None
        if stat and stat[0] == pid and stat[1] != "Z" and _cmdline(int(entry)) == _cmdline(pid):
            found[int(entry)] = stat[2]
    return found


def _running(children: dict[int, str]) -> list[int]:
    """Those of ``children`` still running (a zombie waiting for its new parent is not)."""
    return [pid for pid, started in children.items()
            if (stat := _stat(pid)) is not None and stat[2] == started and stat[1] != "Z"]


def _survivors(children: dict[int, str]) -> list[int]:
    """The children still running GRACE seconds after their parent died."""
    deadline = time.monotonic() + GRACE
    while (left := _running(children)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def _kill_when_workers_run(args: list[str], env: dict[str, str], count: int) -> dict[int, str]:
    """Run the CLI in a session of its own, SIGKILL it once ``count`` workers run; their pids."""
    proc = subprocess.Popen([sys.executable, "-m", "cells_backup", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while len(workers := _forked_children(proc.pid)) < count:
            assert proc.poll() is None, f"ended before its workers ran: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "the worker processes never started"
            time.sleep(0.005)
        proc.kill()
        proc.wait()
        assert proc.returncode == -signal.SIGKILL  # killed mid-run, not ended on its own
        return workers
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def _kill_running(children: dict[int, str]) -> None:
    """What a failing test would leave behind."""
    for pid in _running(children):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def many_files(tmp_path: Path) -> Path:
    """Enough small files (about 6,000) for a backup or a restore to take a second or more."""
    src = tmp_path / "src"
    for d in range(30):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(200):
            (src / f"d{d}" / f"f{i}").write_bytes(os.urandom(1500))
    return src


@pytest.fixture
def repo(tmp_path: Path) -> str:
    path = str(tmp_path / "repo")
    run_cli("--repo", path, "init", *FAST_KDF, check=True)
    return path


def test_readers_end_when_a_backup_is_killed_and_the_next_backup_works(many_files, repo, tmp_path):
    env = cli_env()
    args = ["--repo", repo, "backup", "--no-cells", "--extra-path", str(many_files)]
    readers = _kill_when_workers_run(args, env, count=2)
    try:
        assert _survivors(readers) == []
    finally:
        _kill_running(readers)
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
    workers = _kill_when_workers_run(args, env, count=2)
    try:
        assert _survivors(workers) == []
    finally:
        _kill_running(workers)
    run_cli(*args, "--force", env=env, check=True)
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
    children: dict[int, str] = {}
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        children.update((pid, stat[2]) for pid in pids if (stat := _stat(pid)))
        assert len(children) == 2
        time.sleep(0.2)
        assert _running(children) == pids  # alive while the parent is, its forking thread ended or not
        parent.kill()
        parent.wait()
        assert _survivors(children) == []
    finally:
        parent.kill()
        parent.wait()
        _kill_running(children)
        parent.stdout.close()


def test_a_child_whose_parent_died_before_it_started_does_nothing():
    """The parent may die between the fork and the child's asking for the signal."""
    called = []
    forked._run(called.append, "conn", [], os.getppid() + 1, None)
    assert called == []
