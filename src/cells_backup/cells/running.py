"""Is Cells running on this installation right now?

Copying BoltDB files while Cells holds them corrupts the copy, and restoring under a running
Cells destroys its state (docs/CELLS.md §5). BoltDB takes an exclusive flock on every open
database, so a shared non-blocking flock that fails is hard evidence; a site bind that accepts
connections on loopback is softer evidence (another program may own the port).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .model import Installation

DEFAULT_BIND = "0.0.0.0:8080"
WILDCARDS = {"", "0.0.0.0", "::", "[::]", "*"}


@dataclass
class RunningStatus:
    running: bool
    evidence: list[str] = field(default_factory=list)


def lock_held(path: Path) -> bool:
    """True when another process holds an exclusive flock on ``path`` (as BoltDB does)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def bolt_files(inst: Installation) -> list[Path]:
    """The BoltDB files Cells keeps open while running."""
    files = [inst.working_dir / "configs-versions.db"]
    if inst.services_dir.is_dir():
        files.extend(sorted(inst.services_dir.glob("*/*.db")))
    for ref in inst.databases:
        if ref.engine == "boltdb" and ref.dsn.startswith("/"):
            files.append(Path(ref.dsn.split("?", 1)[0]))
    return [f for f in dict.fromkeys(files) if f.is_file()]


def _bind_ports(binds: Iterable[str]) -> list[tuple[int, str]]:
    out = []
    for bind in binds:
        _host, _, port = bind.rpartition(":")
        if port.isdigit():
            out.append((int(port), bind))
    return list(dict.fromkeys(out))


def listening_ports() -> set[int] | None:
    """TCP ports in LISTEN state on this host, read from /proc (no packet is sent); None off Linux."""
    ports: set[int] = set()
    found = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
            found = True
        except OSError:
            continue
    return ports if found else None


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """Loopback only: a probe must never leave this machine."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def detect_running(inst: Installation, timeout: float = 0.3) -> RunningStatus:
    """Probe BoltDB locks and site binds; any hit means Cells (or a leftover process) is running."""
    evidence = [f"{f} is locked by another process (BoltDB open)" for f in bolt_files(inst) if lock_held(f)]
    binds = [b for site in inst.sites for b in site.binds] or [DEFAULT_BIND]
    listening = listening_ports()
    for port, bind in _bind_ports(binds):
        if listening is not None:
            if port in listening:
                evidence.append(f"a process listens on port {port} (site bind {bind})")
        elif port_open("127.0.0.1", port, timeout):
            evidence.append(f"something accepts connections on 127.0.0.1:{port} (site bind {bind})")
    return RunningStatus(running=bool(evidence), evidence=evidence)
