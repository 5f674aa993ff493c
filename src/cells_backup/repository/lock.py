"""Repository locks: shared for backups (they only add), exclusive for prune and key changes.

A lock is an encrypted object ``locks/<random>`` naming host, pid and time,
refreshed while held. A lock is stale when its holder is gone: same host and
the pid is not alive, or it was not refreshed for ``STALE_AFTER`` seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from datetime import UTC, datetime

from ..errors import AlreadyExistsError, IntegrityError, NotFoundError, RepositoryLockedError
from .crypto import open_sealed
from .repository import Repository

REFRESH_EVERY = 120.0
STALE_AFTER = 30 * 60.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lock:
    """A held lock; use as a context manager."""

    def __init__(self, repo: Repository, exclusive: bool, purpose: str) -> None:
        self.repo = repo
        self.exclusive = exclusive
        self.purpose = purpose
        self.name = f"locks/{secrets.token_hex(16)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _doc(self) -> bytes:
        return json.dumps({
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "epoch": time.time(),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "exclusive": self.exclusive,
            "purpose": self.purpose,
        }).encode()

    def _write(self, create: bool = False) -> None:
        try:
            # Create-only the first time (If-None-Match on S3); the name is random, so an
            # "already exists" can only be our own write acknowledged late.
            self.repo.backend.write(self.name, self.repo.seal(self._doc()), exclusive=create)
        except AlreadyExistsError:
            if not create:
                raise

    def acquire(self, wait: float = 0.0) -> Lock:
        deadline = time.monotonic() + wait
        while True:
            self._write(create=True)
            conflict = self._conflict()
            if conflict is None:
                break
            self.repo.backend.delete(self.name)
            if time.monotonic() >= deadline:
                raise RepositoryLockedError(
                    f"repository is locked by {conflict} (if that process is gone, run `unlock`)"
                )
            time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))
        self._thread = threading.Thread(target=self._refresh, name="lock-refresh", daemon=True)
        self._thread.start()
        return self

    def _conflict(self) -> str | None:
        for name, info in read_locks(self.repo):
            if name == self.name or info is None or is_stale(info):
                continue
            if self.exclusive or info.get("exclusive"):
                kind = "an exclusive" if info.get("exclusive") else "a"
                return (f"{kind} lock for {info.get('purpose', '?')} held by pid {info.get('pid')} "
                        f"on {info.get('hostname')} since {info.get('time')}")
        return None

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_EVERY):
            try:
                self._write()
            except Exception:  # a failed refresh is retried; the lock only grows stale
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.repo.backend.delete(self.name)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_locks(repo: Repository) -> list[tuple[str, dict | None]]:
    locks = []
    for name, _size in repo.backend.list("locks/"):
        try:
            info = json.loads(open_sealed(repo.cipher, repo.backend.read(name), name))
        except (NotFoundError, IntegrityError, ValueError):
            info = None  # unreadable: gone meanwhile or damaged; never blocks
        locks.append((name, info))
    return locks


def is_stale(info: dict) -> bool:
    age = time.time() - float(info.get("epoch", 0))
    if age > STALE_AFTER:
        return True
    return info.get("hostname") == socket.gethostname() and not _pid_alive(int(info.get("pid", 0)))


def remove_stale_locks(repo: Repository, *, all_locks: bool = False) -> list[str]:
    removed = []
    for name, info in read_locks(repo):
        if all_locks or info is None or is_stale(info):
            repo.backend.delete(name)
            removed.append(name)
    return removed
