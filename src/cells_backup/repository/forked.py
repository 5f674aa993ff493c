"""Forked helper processes, each on a pipe to the parent (backup readers, restore workers).

A fork copies only the calling thread and shares the parent's loaded index and keys. Stopping
is the parent's business: a child ignores Ctrl-C (the terminal sends it to the whole process
group) and ends when its pipe closes; SIGINT stays blocked from before the fork until the child
ignores it, so a Ctrl-C in between reaches only the parent.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def start_children(count: int, target: Callable[..., None], *args: object) -> list[tuple[BaseProcess, Connection]]:
    """``count`` daemon children, each running ``target(conn, *args)``; with the parent's ends."""
    context = multiprocessing.get_context("fork")
    children = []
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for _ in range(count):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_run, args=(target, child_end, *args), daemon=True)
            process.start()
            child_end.close()
            children.append((process, parent_end))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return children


def _run(target: Callable[..., None], conn: Connection, *args: object) -> None:
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
