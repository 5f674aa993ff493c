"""Reading source files for the archiver: ahead of time in threads, whole or as full-sized reads.

Reads wait for the disk, not the CPU, and release the GIL: a few reader threads keep a cold
disk busy while the archiver hashes and stores what was already read.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

SMALL_FILE = 1024 * 1024  # files up to this size are read ahead by reader threads
READ_THREADS = 3  # reads wait for the disk: a few threads keep it busy; more only fight for the GIL
Slurp = tuple  # (data, stat after reading, error, prepared): what a reader thread hands back


def open_for_read(path: str) -> int:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:  # O_NOATIME needs ownership; fall back to a plain open
        return os.open(path, flags)


def _slurp(path: str, size: int, prepare: Callable[[bytes], object] | None) -> Slurp:
    """Read a whole small file, and ``prepare`` it (hash, encode) in this reader thread."""
    try:
        fd = open_for_read(path)
    except OSError as exc:
        return b"", None, exc, None
    try:
        parts = []
        while True:
            block = os.read(fd, max(size + 1, 65536))
            if not block:
                break
            parts.append(block)
        data = b"".join(parts)
        after = os.fstat(fd)
    except OSError as exc:
        return b"", os.fstat(fd), exc, None
    finally:
        os.close(fd)
    return data, after, None, prepare(data) if prepare is not None else None


class PrefetchWindow:
    """Reads the next small files of a directory ahead of the archiver, within a memory bound.

    Files go to the reader threads in small batches: a task per file costs more in thread
    hand-offs than reading a small file does.
    """

    MAX_BYTES = 16 * 1024 * 1024
    MAX_FILES = 96
    BATCH_FILES = 8
    BATCH_BYTES = 512 * 1024

    def __init__(self, pool: ThreadPoolExecutor, wanted: list[int], items: list,
                 prepare: Callable[[bytes], object] | None = None) -> None:
        self._pool = pool
        self._prepare = prepare
        self._wanted = wanted
        self._items = items
        self._next = 0
        self._futures: dict[int, tuple[Future, int]] = {}  # item index -> (batch future, position)
        self._bytes = 0

    def _read_batch(self, batch: list[tuple[str, int]]) -> list[Slurp]:
        return [_slurp(path, size, self._prepare) for path, size in batch]

    def _pump(self) -> None:
        while (self._next < len(self._wanted) and len(self._futures) < self.MAX_FILES
               and self._bytes < self.MAX_BYTES):
            indices, batch, size = [], [], 0
            while (self._next < len(self._wanted) and len(batch) < self.BATCH_FILES
                   and size < self.BATCH_BYTES):
                i = self._wanted[self._next]
                self._next += 1
                child, st = self._items[i][1], self._items[i][2]
                indices.append(i)
                batch.append((child, st.st_size))
                size += st.st_size
            future = self._pool.submit(self._read_batch, batch)
            for position, i in enumerate(indices):
                self._futures[i] = (future, position)
            self._bytes += size

    def take(self, i: int) -> Slurp | None:
        self._pump()
        entry = self._futures.pop(i, None)
        if entry is None:
            return None
        future, position = entry
        self._bytes -= self._items[i][2].st_size
        result = future.result()[position]
        self._pump()
        return result


def read_full(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end: raw streams and pipes return short reads."""
    data = stream.read(size)
    if data is None or len(data) >= size or not data:
        return data or b""
    parts = [data]
    got = len(data)
    while got < size:
        more = stream.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class Prepend(io.RawIOBase):
    """A stream that first returns ``head`` and then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        if hasattr(self._stream, "readinto"):
            return self._stream.readinto(buf) or 0
        data = self._stream.read(len(buf))
        buf[: len(data)] = data
        return len(data)
