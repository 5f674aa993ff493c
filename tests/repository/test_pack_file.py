"""Data packs streamed to disk as their blobs arrive: named by the hash of exactly the bytes
written, whatever the sizes of the pieces, with no temp file left whether the pack is committed,
dropped, or its disk refuses a write; and a backup holds no whole pack in memory."""

from __future__ import annotations

import errno
import os

import blake3
import pytest

from cells_backup.engine.trees import BackupRequest, restore_tree, run_backup
from cells_backup.errors import BackendError
from cells_backup.repository.backends import pack_file
from cells_backup.repository.backends.direct_write import ALIGN, PIECE
from cells_backup.repository.backends.local import LocalBackend
from cells_backup.repository.check import check_repository
from cells_backup.repository.repository import Repository, pack_name
from helpers import tree_state


def _pieces(sizes: list[int]) -> list[bytes]:
    return [os.urandom(n) for n in sizes]


def _temp_files(root) -> list:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("sizes", [
    [1],
    [PIECE],
    [PIECE - 1, 1, PIECE + 1],
    [ALIGN - 3, 7, 3 * PIECE + ALIGN + 5],
    [100_000] * 40 + [17],
])
def test_a_committed_pack_holds_exactly_its_bytes_under_their_hash(tmp_path, sizes):
    backend = LocalBackend(str(tmp_path / "repo"))
    parts = _pieces(sizes)
    sink = backend.open_pack()
    for part in parts:
        sink.write(part)
    data = b"".join(parts)
    assert sink.size == len(data)
    hexid = sink.commit(pack_name)
    assert hexid == blake3.blake3(data).hexdigest()
    assert backend.read(pack_name(hexid)) == data
    assert not _temp_files(tmp_path / "repo")


def test_a_dropped_pack_leaves_nothing(tmp_path):
    backend = LocalBackend(str(tmp_path / "repo"))
    sink = backend.open_pack()
    sink.write(os.urandom(3 * PIECE + 5))
    sink.abort()
    assert not [p for p in (tmp_path / "repo").rglob("*") if p.is_file()]


def test_a_refused_direct_write_goes_on_the_usual_way(tmp_path, monkeypatch):
    """A filesystem that takes O_DIRECT when the file is opened but refuses the writes (some
    network and FUSE filesystems): the pack is written the usual way from there, byte for byte."""
    real_write = os.write
    refused = []

    def write(fd, data):
        if not refused and len(data) % ALIGN == 0:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(pack_file.os, "write", write)
    backend = LocalBackend(str(tmp_path / "repo"))
    parts = _pieces([PIECE + 10, 2 * PIECE, 33])
    sink = backend.open_pack()
    for part in parts:
        sink.write(part)
    hexid = sink.commit(pack_name)
    monkeypatch.undo()
    assert refused
    assert backend.read(pack_name(hexid)) == b"".join(parts)


def test_a_failing_disk_is_one_clear_error_and_leaves_no_temp_file(tmp_path, monkeypatch):
    real_write = os.write
    calls = []

    def write(fd, data):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(pack_file.os, "write", write)
    backend = LocalBackend(str(tmp_path / "repo"))
    sink = backend.open_pack()
    with pytest.raises(BackendError, match="no space left on device writing .*pack-.*\\.tmp"):
        for part in _pieces([PIECE] * 3):
            sink.write(part)
    sink.abort()
    assert not [p for p in (tmp_path / "repo").rglob("*") if p.is_file()]


def test_a_backup_streams_its_data_packs_and_restores_them(tmp_path, monkeypatch):
    """Every data pack of a backup goes through the stream (none is written whole), and the
    result checks, reads back and restores bit-exact."""
    streamed = []
    real_commit = pack_file.PackFile.commit

    def commit(self, name_of):
        streamed.append(self.size)
        return real_commit(self, name_of)

    monkeypatch.setattr(pack_file.PackFile, "commit", commit)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}").write_bytes(os.urandom(900_000 + i * 333_333))
    (src / "small").write_bytes(b"x" * 1000)
    local = LocalBackend(str(tmp_path / "repo"))
    Repository.create(local, b"pw", kdf={"n": 1024, "r": 8, "p": 1}, pack_size=2 * 1024 * 1024)
    repo = Repository.open(local, b"pw")
    snap = run_backup(repo, BackupRequest(paths=[str(src)]))
    data_packs = [size for _name, size in local.list("data/")]
    assert len(streamed) >= 2  # several packs of 2 MiB of file data
    assert len(data_packs) == len(streamed) + 1  # and the one pack of trees, written whole
    assert all(size in data_packs for size in streamed)
    assert check_repository(Repository.open(local, b"pw"), read_data=True).ok
    out = tmp_path / "out"
    restore_tree(Repository.open(local, b"pw"), snap, str(out))
    assert tree_state(out / str(src).lstrip("/")) == tree_state(src)
    assert not _temp_files(tmp_path / "repo")
