"""Is Cells running on this installation right now?

Copying BoltDB files while Cells holds them corrupts the copy, and restoring under a running
Cells destroys its state (REFERENCE §5, §6.6). BoltDB takes an exclusive flock on every open
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


def _probe_targets(binds: Iterable[str]) -> list[tuple[str, int, str]]:
    out = []
    for bind in binds:
        host, _, port = bind.rpartition(":")
        if not port.isdigit():
            continue
        host = host.strip("[]")
        out.append(("::1" if host == "::1" else "127.0.0.1", int(port), bind))
        if host not in WILDCARDS and host not in ("127.0.0.1", "::1", "localhost"):
            try:
                socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
                out.append((host, int(port), bind))
            except OSError:
                pass  # a name: resolving it could hang; loopback was probed already
    return list(dict.fromkeys(out))


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def detect_running(inst: Installation, timeout: float = 0.3) -> RunningStatus:
    """Probe BoltDB locks and site binds; any hit means Cells (or a leftover process) is running."""
    evidence = [f"{f} is locked by another process (BoltDB open)" for f in bolt_files(inst) if lock_held(f)]
    binds = [b for site in inst.sites for b in site.binds] or [DEFAULT_BIND]
    for host, port, bind in _probe_targets(binds):
        if port_open(host, port, timeout):
            evidence.append(f"something accepts connections on {host}:{port} (site bind {bind})")
    return RunningStatus(running=bool(evidence), evidence=evidence)
