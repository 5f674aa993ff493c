"""Reading source files for the archiver: small ones whole and ahead of time (hashed and
encoded by the reader), large ones hinted to the kernel and then streamed in full-sized reads,
the largest past the page cache when it does not hold them (`open_large`).

`read_small` is what a reader does with one file, in a thread here (`ReadAhead`, where processes
cannot be forked) or in a worker process (`read_workers`).
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import stat
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .fsmeta import read_xattrs

SMALL_FILE = 1024 * 1024  # files below this size are read whole (and encoded) ahead of the archiver
READ_THREADS = 2  # reads wait for the disk: a few threads keep it busy; more only fight for the GIL
HINT_BYTES = 8 * 1024 * 1024  # of a larger file, the part the kernel is asked to read ahead
WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None) if hasattr(os, "posix_fadvise") else None
UNCACHED_MIN = 32 * 1024 * 1024  # files from this size are read past the page cache when it lacks them
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)

# What reading a file ahead gives the archiver (a tuple: it crosses process boundaries, cheaply):
#   (SMALL, stat before, xattrs, stat after, size, blobs) -- blobs: [(id, length, stored or None)],
#       stored None when the repository already had the blob;
#   (LARGE, stat, xattrs) -- SMALL_FILE or more: hinted to the kernel, for the archiver to stream;
#   (GONE,) -- vanished since it was listed; (FAILED,) -- the archiver reads it itself, and reports.
# ``stat before`` and ``xattrs`` are None when the caller already has them (`read_small` meta=False).
# Stats are plain tuples of every field (`stat_fields`; `os.stat_result(t)` rebuilds one): a third
# of the cost of pickling stat results.
SMALL, LARGE, GONE, FAILED = range(4)
Answer = tuple


def stat_fields(st: os.stat_result) -> tuple:
    seq, named = st.__reduce__()[1]
    return seq + tuple(named.values())


@dataclass
class BlobCoder:
    """What turns a small file's contents into stored blobs, in a reader thread or process."""

    blob_id: Callable[[bytes], bytes]
    encode: Callable[[bytes], bytes | bytearray]
    known: Callable[[bytes], bool]  # already in the repository: not encoded again
    cut: Callable[[bytes], list]  # a whole file into chunks (memoryviews)


def open_for_read(path: str) -> int:
    # O_NONBLOCK: a fifo put in a file's place must not hang the reader (no effect on files).
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        return os.open(path, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:  # O_NOATIME needs ownership; fall back to a plain open
        return os.open(path, flags)


def read_small(path: str, coder: BlobCoder, meta: bool, sent: set[bytes] | None = None,
               opened: int | OSError | None = None) -> Answer:
    """Read a small file whole and encode its blobs; a larger one is only hinted (`Answer`).

    ``sent``: blobs encoded by this reader before, which need not be encoded again (a worker
    process, whose ``coder.known`` is the index as it was when the process started).
    ``opened``: the file already opened by the caller (its descriptor, closed here), or the error
    opening it gave.
    """
    try:
        if isinstance(opened, OSError):
            raise opened
        fd = open_for_read(path) if opened is None else opened
    except FileNotFoundError:
        return (GONE,)
    except OSError:
        return (FAILED,)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced since it was listed: the archiver looks again
            return (FAILED,)
        xattrs = read_xattrs(fd) if meta else None
        data = b""
        if st.st_size < SMALL_FILE:
            want = max(st.st_size + 1, 65536)
            data = os.read(fd, want)
            if len(data) == want:  # it grew since: read on to its end, or leave it to the archiver
                parts, total = [data], len(data)
                while total < SMALL_FILE and (block := os.read(fd, want)):
                    parts.append(block)
                    total += len(block)
                data = b"".join(parts)
        if st.st_size >= SMALL_FILE or len(data) >= SMALL_FILE:
            if WILLNEED is not None and st.st_size < UNCACHED_MIN:  # the largest may skip the cache
                os.posix_fadvise(fd, 0, HINT_BYTES, WILLNEED)
            return (LARGE, stat_fields(st) if meta else None, xattrs)
        after = stat_fields(os.fstat(fd))
    except OSError:
        return (FAILED,)
    finally:
        os.close(fd)
    blobs = []
    for chunk in coder.cut(data) if data else ():
        blob = coder.blob_id(chunk)
        if coder.known(blob) or (sent is not None and blob in sent):
            blobs.append((blob, len(chunk), None))
        else:
            blobs.append((blob, len(chunk), coder.encode(chunk)))
            if sent is not None:
                sent.add(blob)
    return (SMALL, stat_fields(st) if meta else None, xattrs, after, len(data), blobs)


class ReadSlot:
    """One file queued for reading ahead; ``result`` is its `Answer` once read."""

    __slots__ = ("path", "size", "result", "owner")

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self.result: Answer | None = None
        self.owner: int | None = None  # the worker process it was sent to (`read_workers`)


class ReadAhead:
    """Reads small files in reader threads, in the order the archiver will ask for them,
    across directories, within a memory bound.

    The scanner queues files as it walks ahead; the archiver takes them in the same order. Reader
    threads take files in small batches: a hand-off per file costs more than reading one does.
    Every queued slot must be taken (that is what gives its bytes back). Sizes must be known
    (`needs_stat`): they are what the memory bound counts.
    """

    MAX_BYTES = 16 * 1024 * 1024
    MAX_FILES = 128  # read and not yet taken: small files cost more in objects than in bytes
    BATCH_FILES = 8
    BATCH_BYTES = 512 * 1024
    LOW_FILES = 32  # fewer queued than this: `hungry`
    needs_stat = True

    def __init__(self, threads: int, coder: BlobCoder, name: str = "read") -> None:
        self._coder = coder
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

    def add(self, path: str, size: int | None) -> ReadSlot:
        """Queue a file: read whole if small, else hinted to the kernel for the archiver."""
        slot = ReadSlot(path, size if size is not None and size < SMALL_FILE else 0)
        with self._lock:
            self._queue.append(slot)
            if len(self._queue) == 1 and not self._full():
                self._work.notify()
        return slot

    def hungry(self) -> bool:
        """Few files queued for the reader threads: the scanner should walk on."""
        return len(self._queue) < self.LOW_FILES

    def take(self, slot: ReadSlot, meanwhile: Callable[[], bool] | None = None) -> Answer:
        """The file's `Answer`, once its reader thread has it; while it is not there,
        ``meanwhile`` is called until it says it has nothing more to do."""
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
        return result

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
            results = [read_small(slot.path, self._coder, meta=False) for slot in batch]
            with self._lock:
                for slot, result in zip(batch, results, strict=True):
                    slot.result = result
                if self._wanted is not None and self._wanted.result is not None:
                    self._done.notify()


def open_large(fd: int, size: int) -> io.RawIOBase:
    """A stream of an open file for the archiver, which reads it once, in page-aligned blocks.

    A large file the page cache does not hold is read past it (O_DIRECT): the disk writes into
    the chunker's block, and the kernel neither copies it nor fills and then evicts pages for it,
    pushing out what the server itself keeps cached. A file whose start is cached (the page
    after the part readers hint) is read the usual way, as is any file where the system refuses
    direct reads.
    """
    if size >= UNCACHED_MIN and _O_DIRECT and _RWF_NOWAIT and not _cached(fd):
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)
        except OSError:  # a filesystem without direct I/O
            pass
        else:
            return _Uncached(fd, flags)
    return io.FileIO(fd, "rb", closefd=False)


def _cached(fd: int) -> bool:
    """Whether the page cache holds the file's page after the part readers hint (`_open_ahead`);
    a read that may not wait for the disk tells (the kernel then reads only a few pages around
    it into the cache)."""
    try:
        os.preadv(fd, [bytearray(1)], SMALL_FILE, _RWF_NOWAIT)
    except BlockingIOError:
        return False
    except OSError:  # not supported here: read it the usual way
        return True
    return True


class _Uncached(io.RawIOBase):
    """Direct reads of a file; should one be refused (an unaligned end, a filesystem that only
    pretends), the file is read the usual way from where it stopped."""

    def __init__(self, fd: int, flags: int) -> None:
        self._fd = fd
        self._flags = flags  # without O_DIRECT

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        try:
            return os.readv(self._fd, [buf])
        except OSError as exc:
            if exc.errno != errno.EINVAL or self._flags is None:
                raise
        fcntl.fcntl(self._fd, fcntl.F_SETFL, self._flags)
        self._flags = None
        return os.readv(self._fd, [buf])

    def close(self) -> None:
        if self._flags is not None:  # the descriptor is the caller's: leave it as it was given
            fcntl.fcntl(self._fd, fcntl.F_SETFL, self._flags)
            self._flags = None
        super().close()
