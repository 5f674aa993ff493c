"""Restoring small files in worker processes.

A small file is a handful of system calls and a little decoding: too little work to share one
interpreter lock between threads, whose hand-offs at every call cost more than they save. Forked
processes each restore their own batches with a whole core, while the parent walks the trees.
The children start before the restore's threads do (a fork copies only the calling thread), and
share the parent's loaded index and open packs; what each batch gave (counts, errors, warnings,
the files written) comes back to the parent. If a child dies, the parent restores its batches.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from .forked import start_children, stop_children
from .progress import Progress


class Restorer(Protocol):
    """What the workers use of the restorer that owns them (restorer.Restorer): its counters,
    its lock, the directories it created, its per-file hook and the restore of one file."""

    result: Any  # restorer.RestoreResult: files, bytes, errors, warnings
    progress: Progress
    _lock: threading.Lock
    _new_dirs: set[str]
    _on_file: Callable[[str, int], None] | None

    def _restore_file_safe(self, path: str, node: dict) -> None: ...


Batch = list  # [(path, node)], with the directories this restore created that hold them
MAX_QUEUED = 2  # batches sent to one child and not yet answered


def _serve(conn: Connection, restorer: Restorer) -> None:
    """In a child: restore each batch received, answer with what it gave, until told to stop."""
    try:
        _restore_batches(conn, restorer)
    except (EOFError, OSError):  # the parent is gone, or stopped listening
        return


def _restore_batches(conn: Connection, restorer: Restorer) -> None:
    written: list[tuple[str, int]] = []
    restorer._on_file = lambda path, size: written.append((path, size))
    while True:
        message = conn.recv()
        if message is None:
            return
        files, new_dirs = message
        restorer._new_dirs.update(new_dirs)
        result = restorer.result
        result.files = result.bytes = 0
        result.errors, result.warnings = [], []
        written.clear()
        try:
            for path, node in files:
                restorer._restore_file_safe(path, node)
        except BaseException:  # a bug, not a file's failure: the parent redoes the batch
            conn.send(("failed", traceback.format_exc(limit=3)))
            return
        conn.send(("done", (result.files, result.bytes, result.errors, result.warnings, list(written))))


class _Child:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.sent: list[Batch] = []  # batches not yet answered, oldest first
        self.alive = True


class SmallFileWorkers:
    """Child processes restoring batches of small files for ``restorer``."""

    def __init__(self, restorer: Restorer, count: int) -> None:
        self._restorer = restorer
        self._children = [_Child(process, conn) for process, conn in start_children(count, _serve, restorer)]

    def submit(self, files: Batch) -> None:
        """Send a batch to the least busy child (waiting for an answer when all are busy)."""
        new_dirs = {d for path, _node in files if (d := os.path.dirname(path)) in self._restorer._new_dirs}
        self._collect(timeout=0)
        while True:
            live = [c for c in self._children if c.alive]
            if not live:
                self._restore_here(files)
                return
            child = min(live, key=lambda c: len(c.sent))
            if len(child.sent) < MAX_QUEUED:
                break
            self._collect(timeout=None)  # every child is busy: wait for one to answer
        try:
            child.conn.send((files, new_dirs))
        except OSError:
            self._lost(child)
            self._restore_here(files)
            return
        child.sent.append(files)

    def close(self) -> None:
        """Wait for every answer, stop the children and reap them."""
        for child in self._children:
            while child.sent and child.alive:
                self._receive(child)
        stop_children([(c.process, c.conn, c.alive) for c in self._children])

    def _collect(self, timeout: float | None) -> None:
        """Take the answers already there (``timeout`` 0), or wait for at least one."""
        waiting = {c.conn: c for c in self._children if c.alive and c.sent}
        if waiting:
            for conn in wait(list(waiting), timeout):
                self._receive(waiting[conn])

    def _receive(self, child: _Child) -> None:
        try:
            status, payload = child.conn.recv()
        except (EOFError, OSError):
            self._lost(child)
            return
        files = child.sent.pop(0)
        if status != "done":
            self._restorer.result.warnings.append(f"restore worker failed, its files restored again: {payload}")
            self._lost(child)
            self._restore_here(files)
            return
        count, size, errors, warnings, written = payload
        result, progress = self._restorer.result, self._restorer.progress
        with self._restorer._lock:  # the threads restoring large files count under it too
            result.files += count
            result.bytes += size
            progress.files += len(written)
            progress.bytes += size
            result.errors += errors
            result.warnings += warnings
        on_file = self._restorer._on_file
        if on_file is not None:
            for path, length in written:
                on_file(path, length)

    def _lost(self, child: _Child) -> None:
        """A child that died or failed: its unanswered batches are restored here."""
        child.alive = False
        pending, child.sent = child.sent, []
        for files in pending:
            self._restore_here(files)

    def _restore_here(self, files: Batch) -> None:
        for path, node in files:
            if os.path.lexists(path):  # partly done by the child that died: start that file again
                try:
                    os.unlink(path)
                except OSError:
                    pass
            self._restorer._restore_file_safe(path, node)
