"""Child processes of a process, read from /proc: which run, and which outlive their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

GRACE = 2.0  # seconds children have to end once their parent is dead


def proc_stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0], fields[19]


def cmdline(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:-1]
    except OSError:
        return []


def children(pid: int, which: Callable[[int], bool] = lambda _pid: True) -> dict[int, str]:
    """The running children of ``pid`` that ``which`` accepts, with their start times (a pid
    together with its start time names one process, even once the pid is reused)."""
    found = {}
    for entry in os.listdir("/proc"):
        stat = proc_stat(int(entry)) if entry.isdigit() else None
        if stat and stat[0] == pid and stat[1] != "Z" and which(int(entry)):
            found[int(entry)] = stat[2]
    return found


def running(processes: dict[int, str]) -> list[int]:
    """Those of ``processes`` still running (a zombie waiting for its new parent is not)."""
    return [pid for pid, started in processes.items()
            if (stat := proc_stat(pid)) is not None and stat[2] == started and stat[1] != "Z"]


def survivors(processes: dict[int, str], grace: float = GRACE) -> list[int]:
    """Those of ``processes`` still running after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while (left := running(processes)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def kill_running(processes: dict[int, str]) -> None:
    """What a failing test would leave behind."""
    for pid in running(processes):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_when(proc: subprocess.Popen, wanted: Callable[[int], dict[int, str]], timeout: float = 60.0) -> dict[int, str]:
    """SIGKILL ``proc`` as soon as ``wanted(proc.pid)`` finds the children it waits for; those.
    Fails if ``proc`` ends first: a test meant to kill it mid-run would prove nothing."""
    try:
        deadline = time.monotonic() + timeout
        while not (found := wanted(proc.pid)):
            assert proc.poll() is None, f"ended before it was killed (exit {proc.returncode})"
            assert time.monotonic() < deadline, "the children waited for never started"
            time.sleep(0.005)
        proc.kill()
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"ended before it was killed (exit {proc.returncode})"
        return found
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
