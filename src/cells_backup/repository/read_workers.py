"""Reading, hashing and encoding small files in worker processes during a backup.

A small file is a handful of system calls and a few microseconds of hashing, compressing and
encrypting. Reader threads spend more than that handing the interpreter lock to each other and
to the archiver, whose own system calls then wait for it too. Forked children each read whole
batches with an interpreter of their own and send back, per file, its metadata and the stored
form of its blobs (`fileread.Answer`), ready for a pack. They share the index as it was at the
fork; what they encoded since, each remembers (up to SENT_MAX blobs), and the archiver drops what
another child already gave it. A child that dies or fails costs only speed: the archiver reads
its files itself.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from .fileread import FAILED, SMALL, SMALL_FILE, WILLNEED, Answer, BlobCoder, ReadSlot, open_for_read, read_small
from .forked import start_children, stop_children

READ_PROCESSES = 2
BATCH_FILES = 32  # files sent to a child at a time
MAX_QUEUED = 4  # batches sent to one child and not yet received
MAX_HELD = 16 * 1024 * 1024  # file bytes received ahead of the archiver, beyond which children wait
DRAIN_EVERY = 8  # files taken between looks for answers that are ready
# Requests waiting in a child's pipe stay below a pipe's buffer (64 KiB): the archiver never
# blocks sending to a child that is itself blocked sending its answers.
MAX_REQUEST_BYTES = 32 * 1024
ANSWER_BYTES = 1024 * 1024  # a child sends what it has once it holds this much encoded data
SENT_MAX = 65536  # blob ids a child remembers having encoded (about 8 MiB), not one per file


def _serve(conn: Connection, coder: BlobCoder) -> None:
    """In a child: answer each batch of paths, in parts of about ANSWER_BYTES."""
    try:
        _answer_batches(conn, coder)
    except (EOFError, OSError):  # the archiver is gone, or stopped listening
        return


def _open_ahead(path: str) -> int | OSError:
    """Open a file of the batch and ask the kernel to read it in now: a batch's reads then wait
    for the disk together, not one after the other."""
    try:
        fd = open_for_read(path)
    except OSError as exc:
        return exc
    if WILLNEED is not None:
        try:
            os.posix_fadvise(fd, 0, SMALL_FILE, WILLNEED)
        except OSError:
            pass
    return fd


def _answer_batches(conn: Connection, coder: BlobCoder) -> None:
    sent: set[bytes] = set()
    while (paths := conn.recv()) is not None:
        if len(sent) > SENT_MAX:  # forgetting costs only encoding a duplicate again
            sent.clear()
        answers: list[Answer] = []
        held = 0
        opened = [_open_ahead(path) for path in paths]
        for path, fd in zip(paths, opened, strict=True):
            try:
                answer = read_small(path, coder, meta=True, sent=sent, opened=fd)
            except Exception:  # a bug, not the file's fault: the archiver reads it itself
                answer = (FAILED,)
            answers.append(answer)
            if answer[0] == SMALL:
                held += answer[4]
                if held >= ANSWER_BYTES:
                    conn.send(answers)
                    answers, held = [], 0
        conn.send(answers)


class _Child:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.waiting: deque[ReadSlot] = deque()  # sent and not yet answered, in order
        self.batches: deque[list[int]] = deque()  # [files not yet answered, request bytes] per batch
        self.request_bytes = 0  # of the unanswered batches
        self.alive = True


class ReadWorkers:
    """Child processes reading the files queued by the scanner, answered in the order queued.

    The same calls as `fileread.ReadAhead`; sizes need not be known (`needs_stat` False): a new
    file is not even stat'ed by the scanner, the child's fstat after opening it serves.
    """

    needs_stat = False

    def __init__(self, count: int, coder: BlobCoder) -> None:
        self._children = [_Child(process, conn) for process, conn in start_children(count, _serve, coder)]
        self._pending: list[ReadSlot] = []  # queued, not yet sent
        self._next = 0  # batches go round the children, so answers come back in order
        self._held = 0  # bytes of the answers received and not yet taken
        self._taken = 0

    def add(self, path: str, size: int | None) -> ReadSlot:
        slot = ReadSlot(path, 0)
        self._pending.append(slot)
        if len(self._pending) >= BATCH_FILES:
            self._send(force=False)
        return slot

    def hungry(self) -> bool:
        """Too few files queued to keep the children busy: the scanner should walk on."""
        return len(self._pending) < BATCH_FILES and any(
            c.alive and len(c.batches) < MAX_QUEUED for c in self._children)

    def take(self, slot: ReadSlot, meanwhile: Callable[[], bool] | None = None) -> Answer:
        """The file's `Answer`; while it is not there, ``meanwhile`` is called until it says it has
        nothing more to do."""
        while slot.result is None:
            if slot.owner is None:  # not sent yet: send it, and what is queued before it
                self._send(force=True)
                continue
            child = self._children[slot.owner]
            if meanwhile is not None and not child.conn.poll():
                if not meanwhile():
                    meanwhile = None
                continue
            self._receive(child)
        result, slot.result = slot.result, None
        if result[0] == SMALL:
            self._held -= result[4]
        self._taken += 1
        if not self._taken % DRAIN_EVERY:
            self._drain()
        return result

    def close(self) -> None:
        """Stop the children and reap them; unanswered files are dropped."""
        stop_children([(c.process, c.conn, c.alive) for c in self._children], timeout=1)
        self._pending.clear()

    # ---------------------------------------------------------------- internals
    def _send(self, force: bool) -> None:
        """Send pending files in batches, round the children; ``force``: all of them, waiting for
        answers where every child is busy."""
        while self._pending:
            if not any(c.alive for c in self._children):
                for slot in self._pending:  # no child left: the archiver reads them itself
                    slot.result = (FAILED,)
                    slot.owner = -1
                self._pending.clear()
                return
            number = self._next
            child = self._children[number]
            if not child.alive:
                self._next = (number + 1) % len(self._children)
                continue
            if not force and len(self._pending) < BATCH_FILES:
                return
            batch = self._pending[:BATCH_FILES]
            paths = [slot.path for slot in batch]
            size = sum(len(p) for p in paths) + 16 * len(paths)
            if child.batches and (len(child.batches) >= MAX_QUEUED or child.request_bytes + size > MAX_REQUEST_BYTES):
                if not force:
                    return
                self._receive(child)  # its oldest answers: the next ones the archiver takes
                continue
            try:
                child.conn.send(paths)
            except OSError:
                self._lost(child)
                continue
            del self._pending[: len(batch)]
            for slot in batch:
                slot.owner = number
            child.waiting.extend(batch)
            child.batches.append([len(batch), size])
            child.request_bytes += size
            self._next = (number + 1) % len(self._children)

    def _drain(self) -> None:
        """Take in the answers that are ready (a child blocked sending one reads nothing more),
        and send what waits, while the bytes held ahead stay within MAX_HELD."""
        for child in self._children:
            while child.batches and self._held < MAX_HELD and child.conn.poll():
                self._receive(child)
        if self._pending:
            self._send(force=False)

    def _receive(self, child: _Child) -> None:
        """One answer message from ``child`` (blocking), into its oldest waiting slots."""
        try:
            answers = child.conn.recv()
        except (EOFError, OSError):
            self._lost(child)
            return
        batches = child.batches
        for answer in answers:
            child.waiting.popleft().result = answer
            if answer[0] == SMALL:
                self._held += answer[4]
            batches[0][0] -= 1
            if not batches[0][0]:
                child.request_bytes -= batches.popleft()[1]

    def _lost(self, child: _Child) -> None:
        """A child that died or failed: what it was sent is read by the archiver."""
        child.alive = False
        for slot in child.waiting:
            slot.result = (FAILED,)
        child.waiting.clear()
        child.batches.clear()
        child.request_bytes = 0
