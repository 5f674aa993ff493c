"""Storing new blobs: dedup, compress+encrypt on worker threads, fill packs, write index files.

zstd, AES-GCM, BLAKE3 and file I/O all release the GIL, so a couple of worker
threads keep both cores busy while the caller reads and chunks the next file.
Memory is bounded: at most ``max_inflight`` bytes of blobs are queued, and a
pack is written as soon as it reaches the configured size.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .index import DATA, TREE, ChunkIndex, PackEntry, encode_index, merge_index_files
from .pack import PackBuilder, encode_blob
from .repository import Repository, pack_name


@dataclass
class WriteStats:
    blobs_new: int = 0
    blobs_known: int = 0
    bytes_new: int = 0  # plaintext bytes of new blobs
    bytes_stored: int = 0  # bytes of packs written
    packs: int = 0


class BlobWriter:
    """Deduplicating blob sink for one backup (or prune) run."""

    def __init__(self, repo: Repository, *, workers: int | None = None, max_inflight: int = 16 * 1024 * 1024,
                 index: ChunkIndex | None = None) -> None:
        self.repo = repo
        if workers is None:  # a worker that fills a pack also uploads it: more of them for remote storage
            workers = 4 if repo.backend.properties.remote else 2
        self.index = repo.index if index is None else index  # what dedup checks and new blobs go into
        self.stats = WriteStats()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blob")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._budget = threading.Condition()
        self._inflight = 0
        self._max_inflight = max_inflight
        # Trees and data go to separate packs, so listing a snapshot never downloads file data.
        # Data packs streamed to storage as they fill, where the backend can (a local directory).
        self._open_pack = repo.backend.open_pack if repo.backend.properties.streams_pack_files else None
        self._builders = self._new_builders()
        self._unsaved_packs: dict[bytes, list[PackEntry]] = {}
        self._written_index: list[str] = []
        self._error: BaseException | None = None
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.flush()
        else:
            self.close(flush_complete=True)

    # ------------------------------------------------------------- public API
    def save(self, type: int, data: bytes | memoryview, blob: bytes | None = None, level: int | None = None) -> bytes:
        """Store ``data`` unless the repository already has it; returns its id.

        ``data`` is kept as it is until a worker has stored it (no copy): the caller must not
        change it afterwards (the chunker's views are of buffers nothing writes to again).
        `level`: zstd level for this blob instead of the repository's (database dumps use a faster one).
        """
        self._raise_pending_error()
        if blob is None:
            blob = self.repo.blob_id(data)
        with self._lock:
            if not self.index.add(blob, None, 0, 0, len(data), type):
                self.stats.blobs_known += 1
                return blob
        self._queue(type, blob, data, level, None)
        return blob

    def _queue(self, type: int, blob: bytes | None, raw: bytes | memoryview, level: int | None,
               future: Future | None) -> None:
        """Hand a blob to a worker (`_store`) once it fits in the memory bound."""
        with self._budget:
            while self._inflight > 0 and self._inflight + len(raw) > self._max_inflight:
                self._budget.wait()
                self._raise_pending_error()
            self._inflight += len(raw)
        # Counted only once the task is surely submitted: a count without a task would make
        # close() wait forever.
        with self._lock:
            self._pending += 1
        try:
            self._pool.submit(self._store, type, blob, raw, level, future)
        except BaseException:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()
            with self._budget:
                self._inflight -= len(raw)
                self._budget.notify_all()
            raise

    def save_unhashed(self, type: int, data: bytes | memoryview, level: int | None = None) -> Future:
        """Like `save`, but hashed by a worker too: the caller goes on reading and chunking while
        the id is computed; the returned future gives it. ``data`` is kept as `save` keeps it."""
        self._raise_pending_error()
        future: Future = Future()
        self._queue(type, None, data, level, future)
        return future

    def encode(self, data: bytes | memoryview, level: int | None = None) -> bytes:
        """Compress and encrypt a blob; safe from any thread (reader threads use it)."""
        return encode_blob(self.repo.cipher, self._compressor(level), data)

    def add_encoded(self, type: int, blob: bytes, stored: bytes | None, raw_length: int) -> bool:
        """Add a blob already encoded by a reader (``stored`` None: the reader found it known).

        Small files are encoded where they were read; the only hand-off left is one task per
        full pack, instead of one per blob. False when ``stored`` is None and this run does not
        know the blob (a reader process's view is older): the caller stores the data itself.
        """
        self._raise_pending_error()
        with self._lock:
            if stored is None:
                if blob not in self.index:
                    return False
                self.stats.blobs_known += 1
                return True
            if not self.index.add(blob, None, 0, 0, raw_length, type):
                self.stats.blobs_known += 1
                return True
        full = self._append(type, blob, stored, raw_length, count_pending=True)
        if full is not None:
            try:
                self._pool.submit(self._write_pack_task, full)
            except BaseException:  # Ctrl-C lands here too: the pack is dropped, not counted
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
                full.abort()
                raise
        return True

    def _append(self, type: int, blob: bytes, stored: bytes, raw_length: int, *,
                count_pending: bool = False) -> PackBuilder | None:
        """Add a stored blob to the open pack of its type; returns that pack when it is full."""
        with self._lock:
            builder = self._builders[type]
            builder.add(type, blob, stored, raw_length)
            self.stats.blobs_new += 1
            self.stats.bytes_new += raw_length
            if builder.size < self.repo.pack_size:
                return None
            self._builders[type] = self._new_builder(type)
            if count_pending:
                self._pending += 1
            return builder

    def _write_pack_task(self, builder: PackBuilder) -> None:
        try:
            if self._error is None:
                self._write_pack(builder)
        except BaseException as exc:  # surfaced to the caller on its next call
            self._error = self._error or exc
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    @property
    def written_index(self) -> list[str]:
        """Ids of the index files this writer has stored so far."""
        return list(self._written_index)

    def known(self, blob: bytes) -> bool:
        return blob in self.index

    def flush(self) -> list[str]:
        """Wait for queued blobs, write the last pack and index; returns new index file ids."""
        try:
            return self._flush()
        except BaseException:
            self.close()  # the packs left unfinished leave no temp files
            raise

    def _flush(self) -> list[str]:
        self._wait_idle()
        self._raise_pending_error()
        with self._lock:
            builders, self._builders = self._builders, self._new_builders()
        for builder in builders.values():
            if builder.entries:
                self._write_pack(builder)
            else:
                builder.abort()
        self._raise_pending_error()
        self._write_index(final=True)
        self._pool.shutdown(wait=True)
        return list(self._written_index)

    def close(self, flush_complete: bool = False) -> None:
        """Stop after an error: keep what is fully stored (indexed), drop the rest.

        It waits for the workers themselves, not for the count of pending tasks: an error or a
        Ctrl-C in the caller may have come between counting a task and handing it over.
        """
        try:
            self._pool.shutdown(wait=True)
            if flush_complete and self._error is None:
                self._write_index(final=False)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            with self._lock:
                builders, self._builders = self._builders, self._new_builders()
            for builder in builders.values():  # unfinished packs: their temp files go
                builder.abort()

    # --------------------------------------------------------------- internals
    def _raise_pending_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _wait_idle(self) -> None:
        with self._idle:
            while self._pending:
                self._idle.wait()

    def _compressor(self, level: int | None):
        per_level = getattr(self._local, "compressors", None)
        if per_level is None:
            per_level = self._local.compressors = {}
        comp = per_level.get(level)
        if comp is None:
            comp = per_level[level] = self.repo.compressor(level)
        return comp

    def _store(self, type: int, blob: bytes | None, raw: bytes | memoryview, level: int | None,
               future: Future | None) -> None:
        """In a worker: (hash, deduplicate,) compress, encrypt and pack one blob."""
        try:
            if self._error is not None:
                raise self._error
            if blob is None:
                blob = self.repo.blob_id(raw)
                with self._lock:
                    new = self.index.add(blob, None, 0, 0, len(raw), type)
                    if not new:
                        self.stats.blobs_known += 1
                future.set_result(blob)
                if not new:
                    return
            full = self._append(type, blob, self.encode(raw, level), len(raw))
            if full is not None:
                self._write_pack(full)
        except BaseException as exc:  # surfaced to the caller on its next call
            self._error = self._error or exc
            if future is not None and not future.done():
                future.set_exception(exc)
        finally:
            with self._budget:
                self._inflight -= len(raw)
                self._budget.notify_all()
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _new_builders(self) -> dict[int, PackBuilder]:
        return {DATA: self._new_builder(DATA), TREE: self._new_builder(TREE)}

    def _new_builder(self, type: int) -> PackBuilder:
        # Trees stay in memory: their packs are small, and a backend that does not stream pack
        # files (remote, or fault-injecting) gets every pack whole through `write`.
        return PackBuilder(self._open_pack if type == DATA else None)

    def _write_pack(self, builder: PackBuilder) -> None:
        try:
            pack, size = builder.store(self.repo.cipher, self.repo.backend.write, pack_name)
        except BaseException:
            builder.abort()
            raise
        with self._lock:
            for e in builder.entries:
                self.index.add(e.id, pack, e.offset, e.length, e.raw_length, e.type)
            self._unsaved_packs[pack] = builder.entries
            self.stats.bytes_stored += size
            self.stats.packs += 1
        # An index file per pack lets an interrupted run's data be re-used; they are
        # merged into one at the end of a successful run.
        self._write_index(final=False)

    def _write_index(self, final: bool) -> None:
        with self._lock:
            packs, self._unsaved_packs = self._unsaved_packs, {}
        if final and len(self._written_index) > 1:
            # Consolidate this run's index files into one (from their bytes: no object per blob),
            # then drop the partial ones.
            replaced = list(self._written_index)
            plaintexts = [self.repo.read_sealed("index", file_id) for file_id in replaced]
            if packs:
                plaintexts.append(encode_index(packs))
            new_id = self.repo.write_sealed(
                "index", merge_index_files(plaintexts, [bytes.fromhex(r) for r in replaced], "index")
            )
            for file_id in replaced:
                self.repo.backend.delete(f"index/{file_id}")
                self.repo.index_files.discard(file_id)
            self.repo.index_files.add(new_id)
            self._written_index = [new_id]
            return
        if not packs:
            return
        new_id = self.repo.write_sealed("index", encode_index(packs))
        self.repo.index_files.add(new_id)
        with self._lock:
            self._written_index.append(new_id)

