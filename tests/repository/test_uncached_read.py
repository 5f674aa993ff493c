"""Large files the page cache does not hold are read past it: every byte still arrives, cut where
it always was, and the backup leaves the server's page cache as it found it."""

from __future__ import annotations

import contextlib
import fcntl
import io
import mmap
import os
import random

from pyfastcdc import FastCDC

from cells_backup.engine.trees import BackupRequest, restore_tree, run_backup
from cells_backup.repository import fileread
from cells_backup.repository.chunker import stream_chunks
from cells_backup.repository.fileread import UNCACHED_MIN, open_for_read, open_large
from helpers import fast_repository

CDC = FastCDC(1024 * 1024, min_size=256 * 1024, max_size=4 * 1024 * 1024, seed=99)
SIZE = UNCACHED_MIN + 5 * 4096 + 1234  # not a whole number of pages


def _data(size: int) -> bytes:
    rng = random.Random(size)
    parts = [rng.randbytes(1 << 20) if i % 3 else b"text line\n" * 100_000 for i in range(size // (1 << 20) + 1)]
    return b"".join(parts)[:size]


def _cold_file(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    assert not _cached(path, len(data) // 4)  # the premise: nothing of it left in the page cache


def _cached(path, offset: int) -> bool:
    """Whether the page cache holds that page (asking puts a few pages around it there)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(1)], offset, os.RWF_NOWAIT)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def _large(path):
    """The archiver's stream of a large file; the descriptor must come back as it was given."""
    fd = open_for_read(str(path))
    try:
        with open_large(fd, os.fstat(fd).st_size) as stream:
            yield stream
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
    finally:
        os.close(fd)


def test_a_cold_large_file_is_read_whole_without_filling_the_page_cache(tmp_path):
    data = _data(SIZE)
    path = tmp_path / "disk.img"
    _cold_file(path, data)
    with _large(path) as stream:
        chunks = [bytes(c) for c in stream_chunks(CDC, stream)]
    assert chunks == [bytes(c.data) for c in CDC.cut_stream(io.BytesIO(data))]
    assert not _cached(path, SIZE // 2) and not _cached(path, SIZE - 1)


def test_a_cached_or_smaller_file_is_read_the_usual_way(tmp_path):
    path = tmp_path / "warm.bin"
    path.write_bytes(_data(SIZE))
    path.read_bytes()  # now in the page cache: reading it from there beats the disk
    small = tmp_path / "small.bin"
    _cold_file(small, _data(UNCACHED_MIN - 1))
    for p in (path, small):
        with _large(p) as stream:
            assert isinstance(stream, io.FileIO)


def test_a_refused_direct_read_goes_on_the_usual_way(tmp_path):
    data = _data(SIZE)
    path = tmp_path / "disk.img"
    _cold_file(path, data)
    buf = mmap.mmap(-1, 3 * 4096)
    with _large(path) as stream:
        first = stream.readinto(memoryview(buf)[1 : 1 + 4096])  # unaligned: a direct read is refused
        rest = stream.read()
    assert first == 4096
    assert buf[1 : 1 + 4096] + rest == data


def test_a_backup_of_a_cold_large_file_restores_it_and_leaves_the_cache_cold(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data = _data(SIZE + 777)
    _cold_file(src / "disk.img", data)
    (src / "note.txt").write_bytes(b"beside it")
    repo = fast_repository(tmp_path / "repo")
    snap = run_backup(repo, BackupRequest(paths=[str(src)]))
    assert not _cached(src / "disk.img", len(data) // 2)
    out = tmp_path / "out"
    restore_tree(repo, snap, str(out))
    restored = out / str(src).lstrip("/")
    assert (restored / "disk.img").read_bytes() == data
    assert (restored / "note.txt").read_bytes() == b"beside it"


def test_only_files_from_the_threshold_skip_the_read_ahead_hint(tmp_path, monkeypatch):
    """The readers hint the start of a large file to the kernel, but not of one read past the
    cache: that would read its start twice, and make it look cached."""
    hinted = []
    monkeypatch.setattr(fileread.os, "posix_fadvise", lambda fd, off, n, advice: hinted.append(n))
    coder = fileread.BlobCoder(blob_id=bytes, encode=bytes, known=lambda b: False, cut=lambda d: [d])
    for name, size in (("medium", 2 * fileread.SMALL_FILE), ("large", UNCACHED_MIN)):
        (tmp_path / name).write_bytes(b"\0" * size)
        assert fileread.read_small(str(tmp_path / name), coder, meta=False)[0] == fileread.LARGE
    assert hinted == [fileread.HINT_BYTES]
