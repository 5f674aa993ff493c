"""A data pack written to disk as its blobs arrive, named by its hash once complete.

Held in memory until full, each pack of a backup cost its size in RAM (up to three at once: one
filling while two were written) and a copy of every stored byte. Here the blobs go through one
1 MiB page-aligned buffer straight to a temp file beside the packs, past the page cache where the
filesystem allows it (`direct_write`), and the pack's BLAKE3 is computed on the way. `commit`
syncs the file and renames it to its name; until then it is a temp file, which listings skip and
`prune` removes, so a crash leaves no torn pack.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import secrets
from collections.abc import Callable

import blake3

from ...errors import BackendError
from .direct_write import PIECE, write_piece

_O_DIRECT = getattr(os, "O_DIRECT", 0)


class PackFile:
    """One pack being written: `write` its bytes in order, then `commit` or `abort`."""

    def __init__(self, root: str, directory: str, temp_suffix: str,
                 fsync_dir: Callable[[str], None]) -> None:
        self._root = root
        self._fsync_dir = fsync_dir
        self._tmp = os.path.join(directory, f"pack-{secrets.token_hex(8)}{temp_suffix}")
        try:
            os.makedirs(directory, exist_ok=True)
            self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise self._failure(exc) from None
        self._flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        self._direct = False
        if _O_DIRECT:
            with contextlib.suppress(OSError):  # a filesystem without direct I/O: written the usual way
                fcntl.fcntl(self._fd, fcntl.F_SETFL, self._flags | _O_DIRECT)
                self._direct = True
        self._buffer = mmap.mmap(-1, PIECE)  # page-aligned, as direct writes want
        self._used = 0
        self._hash = blake3.blake3()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; the disk gets it a whole buffer at a time."""
        try:
            self._hash.update(data)
            self.size += len(data)
            view = memoryview(data)
            while view:
                n = min(PIECE - self._used, len(view))
                self._buffer[self._used : self._used + n] = view[:n]
                self._used += n
                view = view[n:]
                if self._used == PIECE:
                    self._drain()
        except OSError as exc:
            raise self._failure(exc) from None

    def commit(self, name_of: Callable[[str], str]) -> str:
        """Make the pack durable under ``name_of(its hash)``; returns the hash (hex)."""
        try:
            self._drain()
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            hexid = self._hash.hexdigest()
            path = os.path.join(self._root, name_of(hexid))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(self._tmp, path)
            self._fsync_dir(os.path.dirname(path))
        except OSError as exc:
            self.abort()
            raise self._failure(exc) from None
        self._buffer.close()
        return hexid

    def abort(self) -> None:
        """Drop the pack: no temp file is left behind (when the system lets it be removed)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)
        with contextlib.suppress(BufferError):
            self._buffer.close()

    def _drain(self) -> None:
        """Write out the buffer: past the page cache while the filesystem allows it."""
        used, self._used = self._used, 0
        if not used:
            return
        if self._direct:
            try:
                self._direct = write_piece(self._fd, self._buffer, used, self._flags)
                return
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    raise
            fcntl.fcntl(self._fd, fcntl.F_SETFL, self._flags)  # refused after all: the usual way on
            self._direct = False
        view = memoryview(self._buffer)[:used]
        while view:
            view = view[os.write(self._fd, view) :]

    def _failure(self, exc: OSError) -> BackendError:
        if exc.errno == errno.ENOSPC:
            return BackendError(f"no space left on device writing {self._tmp}")
        return BackendError(f"cannot write {self._tmp}: {exc.strerror or exc}")
