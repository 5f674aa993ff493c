"""Content-defined chunks of a stream, each a view of a buffer that nothing writes to again.

pyfastcdc's stream chunker reads into one reused buffer: every chunk had to be copied out before
the next one was cut, and the unread tail was moved to the buffer's front before each refill
(together about two copies of every byte, in the thread that reads). Here each block is read into
a fresh anonymous mapping and cut in place; the chunks are views of it, which the
writer keeps as they are, and only the block's last, unfinished chunk is copied, to the front of
the next block.

The cut points are the ones pyfastcdc's stream chunker finds: a cut depends only on the bytes from
the chunk's start up to the maximum chunk size, and the chunk that touches the end of a block (the
only one that more data could cut differently) is always cut again in the next block.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator
from typing import BinaryIO

from pyfastcdc import FastCDC

BLOCK = 8 * 1024 * 1024
ALIGN = 4096  # reads past the page cache want page-aligned buffers and lengths
_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)


def _fill(stream: BinaryIO, view: memoryview) -> int:
    """Read until ``view`` is full or the stream ends; raw streams and pipes return short reads."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:  # 0 at the end; None from a non-blocking stream with nothing ready: end too
            break
        got += n
    return got


def stream_chunks(cdc: FastCDC, stream: BinaryIO, block: int = BLOCK) -> Iterator[memoryview]:
    """The chunks of ``stream`` in order; each stays valid for as long as it is referenced.

    Every read goes to a page-aligned place of the block, for a whole number of pages: what
    reads that bypass the page cache (`fileread.open_large`) need.
    """
    block = max(block, 2 * cdc.max_size)  # a carried chunk plus a block always holds a whole chunk
    block = -(-block // ALIGN) * ALIGN
    carry: memoryview | None = None
    while True:
        kept = len(carry) if carry is not None else 0
        head = -(-kept // ALIGN) * ALIGN  # the carried chunk ends where the aligned read starts
        buf = mmap.mmap(-1, head + block, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if _HUGEPAGE is not None:
            with contextlib.suppress(OSError):  # kernels without transparent huge pages refuse it
                buf.madvise(_HUGEPAGE)  # fewer page faults for the fresh block
        view = memoryview(buf)
        if carry is not None:
            view[head - kept : head] = carry
            carry = None
        got = _fill(stream, view[head:])
        last = got < block  # the stream ended in this block
        data = view[head - kept : head + got]
        if data:
            end = len(data)
            for chunk in cdc.cut_buf(data):
                if not last and chunk.offset + chunk.length == end:
                    carry = chunk.data  # may be cut elsewhere once more data follows
                    break
                yield chunk.data
        data.release()
        view.release()  # the chunks' own views keep the mapping alive while they are used
        if last:
            return
