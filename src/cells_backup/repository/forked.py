"""Forked helper processes, each on a pipe to the parent (backup readers, restore workers).

A fork copies only the calling thread and shares the parent's loaded index and keys. Stopping
is the parent's business: a child ignores Ctrl-C (the terminal sends it to the whole process
group) and ends when its pipe closes; SIGINT stays blocked from before the fork until the child
ignores it, so a Ctrl-C in between reaches only the parent.

A child also ends when the parent dies without stopping it (SIGKILL, the OOM killer): it holds
no end of a pipe but its own, so its next read finds the pipe closed, and on Linux the kernel
kills it at once (``PR_SET_PDEATHSIG``), even in the middle of a batch. Nothing a child does is
worth finishing for a dead parent (a restore cut short is run again with --force anyway), so
the signal is SIGKILL: no handler can delay it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up in the parent: loading a library in a child forked while other
    threads run could wait forever on a lock one of them held."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def start_children(count: int, target: Callable[..., None], *args: object) -> list[tuple[BaseProcess, Connection]]:
    """``count`` daemon children, each running ``target(conn, *args)``; with the parent's ends."""
    context = multiprocessing.get_context("fork")
    # The kernel's signal follows the death of the forking *thread*: only the main thread lives
    # as long as the process. Forked from another thread, a child relies on its pipe alone.
    prctl = _prctl() if threading.current_thread() is threading.main_thread() else None
    parent_pid = os.getpid()
    children: list[tuple[BaseProcess, Connection]] = []
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for _ in range(count):
            parent_end, child_end = context.Pipe()
            # A fork copies every descriptor: the parent's ends this child must not hold open.
            parent_ends = [parent_end, *(conn for _process, conn in children)]
            process = context.Process(target=_run, args=(target, child_end, parent_ends, parent_pid, prctl, *args),
                                      daemon=True)
            process.start()
            child_end.close()
            children.append((process, parent_end))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return children


def _run(target: Callable[..., None], conn: Connection, parent_ends: list[Connection], parent_pid: int,
         prctl: Callable[..., int] | None, *args: object) -> None:
    """In the child, right after the fork: tie its life to the parent's, then serve."""
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        return
    for end in parent_ends:
        end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    target(conn, *args)


def stop_children(children: list[tuple[BaseProcess, Connection, bool]], timeout: float | None = None) -> None:
    """Ask each (process, parent's end, alive) child to end, close its pipe, and reap them all;
    one still running after ``timeout`` (busy with work nobody will take) is killed."""
    for _process, conn, alive in children:
        if alive:
            with contextlib.suppress(OSError):
                conn.send(None)
        conn.close()
    for process, _conn, _alive in children:
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()
