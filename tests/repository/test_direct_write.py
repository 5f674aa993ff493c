"""Packs written past the page cache come back byte for byte, whatever their length."""

from __future__ import annotations

import os

import pytest

from cells_backup.repository.backends.direct_write import ALIGN, DIRECT_MIN, PIECE, write_direct
from cells_backup.repository.backends.local import LocalBackend


@pytest.mark.parametrize("size", [DIRECT_MIN, DIRECT_MIN + 1, DIRECT_MIN + PIECE - 1, 5 * PIECE + ALIGN + 7])
def test_direct_write_keeps_every_byte(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "pack"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        direct = write_direct(fd, data)
    finally:
        os.close(fd)
    # Either it went past the page cache and every byte is there (no padding left), or the
    # filesystem refused and nothing was written, for the caller to write the usual way.
    assert path.read_bytes() == (data if direct else b"")


def test_small_objects_are_left_to_the_usual_write(tmp_path):
    fd = os.open(tmp_path / "index", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        assert write_direct(fd, b"x" * (DIRECT_MIN - 1)) is False
    finally:
        os.close(fd)
    assert (tmp_path / "index").read_bytes() == b""


def test_local_backend_stores_large_objects_exactly(tmp_path):
    backend = LocalBackend(str(tmp_path / "repo"))
    data = os.urandom(DIRECT_MIN + 12345)
    backend.write("data/ab/abcdef", data)
    assert backend.read("data/ab/abcdef") == data
    assert backend.read_range("data/ab/abcdef", DIRECT_MIN, 12345) == data[DIRECT_MIN:]
