"""Reading source files for the archiver: ahead of time in threads, whole or as full-sized reads.

Reads wait for the disk, not the CPU, and release the GIL: two reader threads keep a cold disk
busy while the archiver stores what was already read (more only fight over the GIL).
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import BinaryIO

SMALL_FILE = 1024 * 1024  # files up to this size are read ahead by reader threads
READ_THREADS = 2  # reads wait for the disk: a few threads keep it busy; more only fight for the GIL
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
        want = max(size + 1, 65536)
        data = os.read(fd, want)
        if len(data) == want:  # it grew since it was listed: read on to its end
            parts = [data]
            while block := os.read(fd, want):
                parts.append(block)
            data = b"".join(parts)
        after = os.fstat(fd)
    except OSError as exc:
        return b"", os.fstat(fd), exc, None
    finally:
        os.close(fd)
    return data, after, None, prepare(data) if prepare is not None else None


HINT_BYTES = 8 * 1024 * 1024  # of a large file, the part the kernel is asked to read ahead
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None) if hasattr(os, "posix_fadvise") else None
_HINTED: Slurp = ()


class ReadSlot:
    """One file queued for reading ahead; ``result`` is set once a reader thread has read it.

    A ``hint`` slot is a large file, which the archiver streams itself: the reader thread only
    asks the kernel to start reading its first `HINT_BYTES`, so that it is in memory when the
    archiver gets to it.
    """

    __slots__ = ("path", "size", "result", "hint")

    def __init__(self, path: str, size: int, hint: bool = False) -> None:
        self.path = path
        self.size = size
        self.result: Slurp | None = None
        self.hint = hint


def _hint(path: str) -> Slurp:
    with contextlib.suppress(OSError):
        fd = open_for_read(path)
        try:
            os.posix_fadvise(fd, 0, HINT_BYTES, _WILLNEED)
        finally:
            os.close(fd)
    return _HINTED


class ReadAhead:
    """Reads small files in the order the archiver will ask for them, across directories,
    within a memory bound.

    The scanner queues files as it walks ahead; the archiver takes them in the same order. Reader
    threads take files in small batches: a hand-off per file costs more than reading one does.
    Every queued slot must be taken (that is what gives its bytes back).
    """

    MAX_BYTES = 16 * 1024 * 1024
    MAX_FILES = 128  # read and not yet taken: small files cost more in objects than in bytes
    BATCH_FILES = 8
    BATCH_BYTES = 512 * 1024

    def __init__(self, threads: int, prepare: Callable[[bytes], object] | None = None,
                 name: str = "read") -> None:
        self._prepare = prepare
        self._queue: deque[ReadSlot] = deque()
        self._lock = threading.Lock()
        # Two conditions on one lock, and a wake-up only for who waits: hand-offs between threads
        # cost more than the small reads they carry.
        self._work = threading.Condition(self._lock)  # readers wait here for files or room
        self._done = threading.Condition(self._lock)  # the archiver waits here for its file
        self._wanted: ReadSlot | None = None  # the slot the archiver waits for
        self._bytes = 0  # picked up by a reader thread and not yet taken by the archiver
        self._files = 0  # the same, counted in files
        self._closed = False
        self._threads = [threading.Thread(target=self._run, name=f"{name}_{n}", daemon=True)
                         for n in range(threads)]
        for thread in self._threads:
            thread.start()

    def add(self, path: str, size: int, hint: bool = False) -> ReadSlot | None:
        """Queue a small file to be read, or (``hint``) a large one to be read ahead by the kernel
        (None where the kernel cannot be asked)."""
        if hint:
            if _WILLNEED is None:
                return None
            size = min(size, HINT_BYTES)
        slot = ReadSlot(path, size, hint)
        with self._lock:
            self._queue.append(slot)
            if len(self._queue) == 1 and not self._full():
                self._work.notify()
        return slot

    def queued(self) -> int:
        """Files queued and not yet picked up by a reader thread."""
        return len(self._queue)

    def take(self, slot: ReadSlot, meanwhile: Callable[[], bool] | None = None) -> Slurp | None:
        """The file's contents as read (None for a hint), once its reader thread has them; while
        they are not there, ``meanwhile`` is called until it says it has nothing more to do."""
        with self._lock:
            while slot.result is None:
                if meanwhile is not None:
                    self._lock.release()
                    try:
                        if not meanwhile():
                            meanwhile = None
                    finally:
                        self._lock.acquire()
                    continue
                self._wanted = slot
                self._done.wait()
            self._wanted = None
            full = self._full()
            self._bytes -= slot.size
            self._files -= 1
            if full and not self._full():
                self._work.notify()
            result, slot.result = slot.result, None  # the slot outlives the read: not its bytes
        return None if slot.hint else result

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._queue.clear()
            self._work.notify_all()
        for thread in self._threads:
            thread.join()

    def _full(self) -> bool:
        return self._bytes >= self.MAX_BYTES or self._files >= self.MAX_FILES

    def _next_batch(self) -> list[ReadSlot] | None:
        with self._lock:
            while not self._closed and (not self._queue or self._full()):
                self._work.wait()
            if self._closed:
                return None
            batch, size = [], 0
            while self._queue and len(batch) < self.BATCH_FILES and size < self.BATCH_BYTES:
                slot = self._queue.popleft()
                batch.append(slot)
                size += slot.size
            self._bytes += size
            self._files += len(batch)
            if self._queue and not self._full():
                self._work.notify()  # more to read: another reader can start on it
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            results = [_hint(slot.path) if slot.hint else _slurp(slot.path, slot.size, self._prepare)
                       for slot in batch]
            with self._lock:
                for slot, result in zip(batch, results, strict=True):
                    slot.result = result
                if self._wanted is not None and self._wanted.result is not None:
                    self._done.notify()


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
