"""Writing file data so that runs of zeros become holes, as the original sparse file had them."""

from __future__ import annotations

import os

HOLE = 64 * 1024  # zero runs of this size, aligned within the data, are skipped
_ZEROS = bytes(HOLE)


def write_at(fd: int, data: bytes, offset: int) -> bool:
    """Write ``data`` at ``offset``, leaving aligned 64 KiB runs of zeros unwritten (holes).

    Returns whether the data ended with a hole: the caller then gives the file its length with
    ``ftruncate``, as a hole at the end is no write at all.
    """
    view = memoryview(data)
    if len(data) < HOLE or data.find(_ZEROS[:4096]) < 0:  # common cases: too short, or no long zero run
        _write_all(fd, view, offset)
        return False
    hole = False
    for start in range(0, len(data), HOLE):
        end = min(start + HOLE, len(data))
        hole = end - start == HOLE and data.count(0, start, end) == HOLE
        if not hole:
            _write_all(fd, view[start:end], offset + start)
    return hole


def _write_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        done = os.pwrite(fd, view, offset)
        view = view[done:]
        offset += done
