"""Find the processes a test session started and left running.

The session puts a unique marker into its environment; every child inherits it, even a daemon that
re-parents itself to PID 1. Children started with a clean environment are found as descendants of
the session's process instead (as long as they did not re-parent).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

MARKER_VAR = "CBTEST_SESSION_MARKER"  # not CELLS_BACKUP_*: helpers.cli_env strips those


@dataclass(frozen=True)
class Leftover:
    pid: int
    cmdline: str


def mark_session() -> str:
    """Put this session's marker into os.environ (inherited by every child from now on)."""
    marker = f"{os.getpid()}-{uuid.uuid4().hex}"
    os.environ[MARKER_VAR] = marker
    return marker


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # gone meanwhile, or not ours to read
        return b""


def _stat(proc: Path) -> tuple[str, int] | None:
    """(state, parent pid) from /proc/<pid>/stat; the command name may hold spaces and parentheses."""
    text = _read(proc / "stat").decode(errors="replace")
    fields = text[text.rfind(")") + 2:].split()
    return (fields[0], int(fields[1])) if len(fields) > 1 else None


def find_leftovers(marker: str) -> list[Leftover]:
    """Live processes (not zombies) carrying the marker or descending from this process, but not itself."""
    me = os.getpid()
    needle = f"{MARKER_VAR}={marker}".encode()
    parents: dict[int, int] = {}
    marked: set[int] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        info = _stat(proc)
        if info is None or info[0] in ("Z", "X"):
            continue
        pid = int(proc.name)
        parents[pid] = info[1]
        if needle in _read(proc / "environ").split(b"\0"):
            marked.add(pid)
    found = []
    for pid in sorted(parents):
        ancestor, seen = parents.get(pid), 0
        while ancestor not in (None, me, 0, 1) and seen < 64:
            ancestor, seen = parents.get(ancestor), seen + 1
        if pid in marked or ancestor == me:
            cmd = _read(Path(f"/proc/{pid}/cmdline")).replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(Leftover(pid, cmd or "?"))
    return found


def kill_all(leftovers: list[Leftover], timeout: float = 5.0) -> None:
    """SIGKILL each leftover and give the kernel a moment to take them away."""
    for left in leftovers:
        try:
            os.kill(left.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for left in leftovers:  # reap those that are this process's own children
            with contextlib.suppress(ChildProcessError):
                os.waitpid(left.pid, os.WNOHANG)
        if not any(_alive(left.pid) for left in leftovers):
            return
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    info = _stat(Path(f"/proc/{pid}"))
    return info is not None and info[0] not in ("Z", "X")
