"""A file's contents in the repository: reused, read and chunked here, or taken from a reader.

`FileContents` is the file half of the `archiver.Archiver` (which inherits it; the methods are
called directly from the archiver's loops, no layer in between): an unchanged file keeps the
parent's blob ids, a hard link the ids of its first path, a small file the blobs a reader
already encoded (`fileread`, `read_workers`), and a large or failed one is read here and cut by
FastCDC, its chunks hashed by the writer's workers (`PendingContent`). A file that changes
while it is read is reported, not retried.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pyfastcdc import FastCDC

from .chunker import stream_chunks
from .fileread import GONE, SMALL, Answer, open_for_read, open_large
from .index import DATA
from .progress import Progress
from .repository import Repository
from .scanner import unchanged_content
from .writer import BlobWriter


@dataclass
class ArchiveSummary:
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs: int = 0
    total_files: int = 0
    total_bytes: int = 0
    data_added: int = 0
    data_stored: int = 0
    blobs_new: int = 0
    duration: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class PendingContent(list):
    """The futures of a file's blob ids, while the writer's workers hash its chunks."""

    def ids(self) -> list[str]:
        return [future.result().hex() for future in self]


class FileContents:
    """Storing files' contents; the state it uses is set up by `archiver.Archiver`."""

    repo: Repository
    writer: BlobWriter
    progress: Progress
    summary: ArchiveSummary
    _cdc: FastCDC
    _min_chunk: int
    _hardlinks: dict[tuple[int, int], list[str]]
    _error: Callable[[str, str], None]

    def _count_reused(self, path: str, files: int, size: int) -> None:
        self.progress.current = path
        self.progress.files += files
        self.progress.bytes += size
        self.summary.total_files += files
        self.summary.total_bytes += size
        self.summary.files_unmodified += files

    def _file_content(self, path: str, st: os.stat_result, prev: dict | None,
                      prefetched: Answer | None = None,
                      reused: list[str] | None = None) -> tuple[list[str], int] | None:
        link_key = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
        if link_key is not None and link_key in self._hardlinks:
            self.summary.files_unmodified += 1
            self.progress.bytes += st.st_size
            return self._hardlinks[link_key], st.st_size
        if reused is None and prefetched is None:
            reused = unchanged_content(self.repo.index, st, prev)
        if reused is not None:
            self.summary.files_unmodified += 1
            self.progress.bytes += st.st_size
            result = reused, st.st_size
        else:
            read = self._read_file(path, st) if prefetched is None else self._store_prefetched(path, st, prefetched)
            if read is None:
                return None
            if prev is None:
                self.summary.files_new += 1
            else:
                self.summary.files_changed += 1
            result = read
        if link_key is not None:
            self._hardlinks[link_key] = result[0]
        return result

    def _check_unchanged_while_read(self, path: str, st: os.stat_result, after: os.stat_result, size: int) -> None:
        if after.st_ino != st.st_ino:
            self._error(path, "replaced while being read; this snapshot has the newer file")
        elif after.st_mtime_ns != st.st_mtime_ns or after.st_size != size:
            self._error(path, "changed while being read; the stored copy may be inconsistent")

    def _read_file(self, path: str, st: os.stat_result) -> tuple[list[str], int] | None:
        try:
            fd = open_for_read(path)
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                self._error(path, f"cannot open: {exc.strerror}")
            return None
        try:
            with open_large(fd, st.st_size) as f:
                content, size = self._store_file(f)
            self._check_unchanged_while_read(path, st, os.fstat(fd), size)
            return content, size
        except OSError as exc:
            self._error(path, f"read error: {exc.strerror}")
            return None
        finally:
            os.close(fd)

    def _cut(self, data: bytes) -> list:
        """A whole file's chunks (for readers, which encode small files whole)."""
        if len(data) < self._min_chunk:  # smaller than any chunk: one blob, no chunker needed
            return [data]
        return [c.data for c in self._cdc.cut_buf(data)]

    def _store_prefetched(self, path: str, st: os.stat_result, answer: Answer) -> tuple[list[str], int] | None:
        if answer[0] == GONE:
            return None
        if answer[0] != SMALL:  # large (hinted), or failed: read here, and errors reported
            return self._read_file(path, st)
        _kind, _before, _xattrs, after, size, blobs = answer
        content = []
        for blob, length, stored in blobs:
            if not self.writer.add_encoded(DATA, blob, stored, length):
                return self._read_file(path, st)  # known to its reader, not here (yet): read again
            content.append(blob.hex())
        self.progress.bytes += size
        self._check_unchanged_while_read(path, st, os.stat_result(after), size)
        return content, size

    def _store_stream(self, stream: BinaryIO, level: int | None = None) -> tuple[list[str], int]:
        """Chunk, hash and store a stream (a database dump); memory stays within a few max-chunk sizes."""
        content: list[str] = []
        size = 0
        for data in self._chunks(stream):
            content.append(self.writer.save(DATA, data, level=level).hex())
            size += len(data)
        return content, size

    def _store_file(self, stream: BinaryIO) -> tuple[PendingContent, int]:
        """Chunk and store a file's contents; the writer's workers hash the chunks, and the ids are
        collected when the directory's tree is written (`PendingContent`)."""
        pending = PendingContent()
        size = 0
        for data in self._chunks(stream):
            pending.append(self.writer.save_unhashed(DATA, data))
            size += len(data)
        return pending, size

    def _chunks(self, stream: BinaryIO) -> Iterator[memoryview]:
        for chunk in stream_chunks(self._cdc, stream):
            yield chunk
            self.progress.bytes += len(chunk)
