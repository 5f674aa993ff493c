"""Restoring files from a remote repository pack by pack: each needed pack is read once.

Reading whole packs into a cache costs memory (several 16 MiB packs at a time, more while the next
ones download) and a fresh buffer per pack that the kernel must fault in page by page. Here the
bytes each pack holds for the restore are streamed once, front to back: every blob is decoded as
soon as its bytes have arrived and written at once to each place in each file that holds it.
Memory is a few streamed chunks per pack in flight; a file is finished (length, metadata) when its
last blob is written, whichever pack brought it.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import BackendError, CellsBackupError
from .repository import Repository, pack_name
from .sparse import write_at

PACKS_IN_FLIGHT = 2  # packs streamed at once: network waits overlap decoding and writes
GAP = 1024 * 1024  # needed blobs of a pack closer than this are read in one request
ATTEMPTS = 3  # streams cut in a row with no blob handled before a run is given up
LOCK_STRIPES = 64  # files share locks: a million files to restore need no million locks
_REOPEN = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(eq=False, slots=True)
class _File:
    path: str
    node: dict
    size: int
    remaining: int  # blob places not yet written (or given up)
    created: bool = False
    ends_in_hole: bool = False
    failure: str | None = None  # why the file is not restored; "" when that was already reported


@dataclass(eq=False, slots=True)
class _Need:
    """One stored blob of a pack and every (file, offset) its plain bytes go to."""

    blob: bytes
    offset: int
    length: int
    raw_length: int
    places: list[tuple[_File, int]] = field(default_factory=list)


class PackOrderRestore:
    """Collect files with `add`, then `run` writes them all, reading each pack once.

    ``create(path, node)`` makes the new file and gives its descriptor (None: not to be restored, the
    reason already reported); ``finish(path, node, fd, size)`` applies metadata and counts the
    file; ``error(path, message)`` reports a file that could not be restored.
    """

    def __init__(
        self,
        repo: Repository,
        *,
        create: Callable[[str, dict], int | None],
        finish: Callable[[str, dict, int, int], None],
        error: Callable[[str, str], None],
        packs_in_flight: int = PACKS_IN_FLIGHT,
    ) -> None:
        self.repo = repo
        self._create = create
        self._finish = finish
        self._error = error
        self._packs_in_flight = packs_in_flight
        self._packs: dict[bytes, dict[bytes, _Need]] = {}  # in the order the files first need them
        self._locks = [threading.Lock() for _ in range(LOCK_STRIPES)]

    def add(self, path: str, node: dict) -> None:
        content = node.get("content") or []
        places: list[tuple[bytes, object, int]] = []
        offset = 0
        for blob_hex in content:
            blob = bytes.fromhex(blob_hex)
            loc = self.repo.index.get(blob)
            if loc is None:
                self._error(path, f"not restored, its data is damaged: blob {blob_hex[:16]} is not in any index")
                return
            places.append((blob, loc, offset))
            offset += loc.raw_length
        file = _File(path, node, offset, len(places))
        if not places:
            self._finish_empty(file)
            return
        for blob, loc, at in places:
            needs = self._packs.setdefault(loc.pack, {})
            need = needs.get(blob)
            if need is None:
                need = needs[blob] = _Need(blob, loc.offset, loc.length, loc.raw_length)
            need.places.append((file, at))

    def run(self) -> None:
        packs, self._packs = self._packs, {}
        if not packs:
            return
        with ThreadPoolExecutor(max_workers=self._packs_in_flight, thread_name_prefix="restore-pack") as pool:
            for future in [pool.submit(self._restore_pack, pack, needs) for pack, needs in packs.items()]:
                future.result()

    # ------------------------------------------------------------ reading
    def _restore_pack(self, pack: bytes, needs: dict[bytes, _Need]) -> None:
        ordered = sorted(needs.values(), key=lambda need: need.offset)
        run: list[_Need] = []
        for need in ordered:
            if run and need.offset - (run[-1].offset + run[-1].length) > GAP:
                self._restore_run(pack, run)
                run = []
            run.append(need)
        self._restore_run(pack, run)

    def _restore_run(self, pack: bytes, run: list[_Need]) -> None:
        """Stream the bytes from the first to the last blob of ``run``; a stream cut short is
        resumed from the first blob not yet written, until ATTEMPTS cuts in a row bring none."""
        name = pack_name(pack)
        left = deque(run)
        fruitless = 0
        while left:
            before = len(left)
            try:
                self._stream(name, left)
            except BackendError as exc:
                fruitless = 1 if len(left) < before else fruitless + 1
                if fruitless < ATTEMPTS:
                    continue
                for need in left:
                    self._give_up(need, f"not restored, its data could not be read: {exc}")
                return
            for need in left:  # the stream ended before these
                self._give_up(need, f"not restored, its data is damaged: {name}: truncated "
                                    f"(blob {need.blob.hex()[:16]})")
            return

    def _stream(self, name: str, left: deque[_Need]) -> None:
        """Decode and write the blobs of ``left`` as their bytes arrive, taking each one out of
        ``left`` once it is handled."""
        if not left:
            return
        start = left[0].offset
        end = left[-1].offset + left[-1].length
        buf = bytearray()
        buf_start = start
        for chunk in self.repo.read_stream(name, start, end - start):
            buf += chunk
            while left and left[0].offset + left[0].length <= buf_start + len(buf):
                need = left.popleft()
                at = need.offset - buf_start
                with memoryview(buf) as view, view[at : at + need.length] as stored:
                    try:
                        data = self.repo.open_stored(need.blob, stored, need.raw_length, name)
                    except CellsBackupError as exc:
                        data = None
                        failure = f"not restored, its data is damaged: {exc}"
                if data is None:
                    self._give_up(need, failure)
                else:
                    self._deliver(need, data)
                del buf[: at + need.length]  # cheap: a bytearray drops its front without copying
                buf_start = need.offset + need.length

    # ------------------------------------------------------------ writing
    def _deliver(self, need: _Need, data: bytes) -> None:
        for file, offset in need.places:
            if file.failure is not None:
                self._place_done(file)
                continue
            try:
                self._write(file, offset, data)
            except OSError as exc:
                file.failure = f"cannot write: {exc.strerror}"
                self._place_done(file)

    def _write(self, file: _File, offset: int, data: bytes) -> None:
        """Write one blob's bytes into ``file``; the writer of its last blob finishes it."""
        with self._locks[hash(file) % LOCK_STRIPES]:
            if file.created:
                fd = os.open(file.path, _REOPEN)
            else:
                fd = self._create(file.path, file.node)
                file.created = fd is not None
                if fd is None:
                    file.failure = ""  # not to be restored, and already reported
        if fd is None:
            self._place_done(file)
            return
        try:
            if write_at(fd, data, offset) and offset + len(data) == file.size:
                file.ends_in_hole = True
            if self._place_done(file, fd):
                fd = -1
        finally:
            if fd >= 0:
                os.close(fd)

    def _give_up(self, need: _Need, failure: str) -> None:
        for file, _ in need.places:
            if file.failure is None:
                file.failure = failure
            self._place_done(file)

    def _place_done(self, file: _File, fd: int = -1) -> bool:
        """Count one place of ``file`` as written or given up; the last one finishes the file
        (with ``fd`` when the caller has it open; then returns True, having closed it)."""
        with self._locks[hash(file) % LOCK_STRIPES]:
            file.remaining -= 1
            if file.remaining:
                return False
        if file.failure is not None:
            if fd >= 0:
                os.close(fd)
            self._discard(file)
            return fd >= 0
        try:
            if fd < 0:
                fd = os.open(file.path, _REOPEN)
            try:
                if file.ends_in_hole:
                    os.ftruncate(fd, file.size)  # a trailing hole is only a seek: give the file its length
                self._finish(file.path, file.node, fd, file.size)
            finally:
                os.close(fd)
        except OSError as exc:
            file.failure = f"cannot write: {exc.strerror}"
            self._discard(file)
        return True

    def _finish_empty(self, file: _File) -> None:
        fd = self._create(file.path, file.node)
        if fd is None:
            return
        try:
            self._finish(file.path, file.node, fd, 0)
        finally:
            os.close(fd)

    def _discard(self, file: _File) -> None:
        """No half-written file is left looking restored."""
        if file.created:
            try:
                os.unlink(file.path)
            except OSError:
                pass
        if file.failure:
            self._error(file.path, file.failure)
