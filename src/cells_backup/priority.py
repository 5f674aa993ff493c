"""Let a database dump client and its server have the CPU first while a dump streams.

On a small machine the server, its dump client and this process share the cores; the dump (and
its open transaction) ends sooner when the processing of its output waits its turn instead, and
that processing catches up from the pipe. Linux keeps a nice value per thread: every thread of
this process is lowered, the already started dump client is not, and threads started meanwhile
inherit the lower priority. The previous values are put back at the end where the system allows
it (raising priority again needs root; otherwise the rest of the run stays lowered).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

DUMP_NICENESS = 10


def _threads() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]  # not Linux: 0 is the calling process


def _set(tid: int, value: int) -> None:
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, value)


@contextlib.contextmanager
def yield_cpu(increment: int = DUMP_NICENESS) -> Iterator[None]:
    """Lower this process's threads by `increment` nice levels for the duration."""
    try:
        before = os.getpriority(os.PRIO_PROCESS, 0)
    except (OSError, AttributeError):
        yield
        return
    lowered = min(before + increment, 19)
    for tid in _threads():
        _set(tid, lowered)
    try:
        yield
    finally:
        for tid in _threads():
            _set(tid, before)
