"""Writing large objects past the page cache (O_DIRECT), through a small aligned buffer.

A backup writes each pack once and does not read it back. Copied into the page cache, a pack
costs more CPU than some of its compression does on a virtual machine, whose fresh pages are
expensive to touch, and it pushes the source files' pages out for nothing. Written with O_DIRECT
the disk takes it from one reused 1 MiB buffer per thread. Where the filesystem refuses O_DIRECT
(tmpfs, some network filesystems) the caller writes it the usual way.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading

ALIGN = 4096  # O_DIRECT wants offsets, lengths and buffer addresses aligned to the block size
PIECE = 1024 * 1024
DIRECT_MIN = 4 * PIECE  # smaller objects (index files, snapshots, trees of a small run) go the usual way
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_local = threading.local()


def _buffer() -> mmap.mmap:
    buf = getattr(_local, "buffer", None)
    if buf is None:
        buf = _local.buffer = mmap.mmap(-1, PIECE)  # page-aligned, and reused: no new pages per write
    return buf


def write_piece(fd: int, buffer: mmap.mmap, used: int, flags: int) -> bool:
    """Write ``buffer[:used]`` at ``fd``'s position past the page cache (``fd`` has O_DIRECT,
    ``flags`` are its flags without it). A last, partial page is padded for the disk and cut off
    again: the file ends as if only ``used`` bytes were written. A short write (a full disk) turns
    O_DIRECT off and writes the rest the usual way, which reports ENOSPC; returns whether O_DIRECT
    is still on. A refused write (EINVAL) raises, with nothing written."""
    size = -(-used // ALIGN) * ALIGN
    if size > used:
        buffer[used:size] = bytes(size - used)
    written = os.write(fd, memoryview(buffer)[:size])
    if written >= used:
        if size > used:
            os.ftruncate(fd, os.lseek(fd, used - written, os.SEEK_CUR))
        return True
    fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    rest = memoryview(buffer)[written:used]
    while rest:
        rest = rest[os.write(fd, rest) :]
    return False


def write_direct(fd: int, data: bytes | memoryview) -> bool:
    """Write ``data`` to the empty file ``fd`` bypassing the page cache; False, with the file left
    empty and ``fd`` as it was, when this filesystem or platform does not allow it."""
    if not _O_DIRECT or len(data) < DIRECT_MIN:
        return False
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)
    except OSError:
        return False
    view = memoryview(data).cast("B")
    buf = _buffer()
    try:
        for start in range(0, len(view), PIECE):
            piece = view[start : start + PIECE]
            buf[: len(piece)] = piece
            if not write_piece(fd, buf, len(piece), flags):  # a full disk: the rest says so
                rest = view[start + len(piece) :]
                while rest:
                    rest = rest[os.write(fd, rest) :]
                break
        return True
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        return False
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
