"""Reading a stored file's content as a stream, one verified blob at a time."""

from __future__ import annotations

import io

from .repository import Repository


class BlobStream(io.RawIOBase):
    """Memory stays at one chunk whatever the file size."""

    def __init__(self, repo: Repository, content: list[str]) -> None:
        super().__init__()
        self._repo = repo
        self._ids = iter(content)
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        while not self._buf:
            blob = next(self._ids, None)
            if blob is None:
                return 0
            self._buf = memoryview(self._repo.read_blob(bytes.fromhex(blob)))
        n = min(len(buf), len(self._buf))
        buf[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def open_content(repo: Repository, content: list[str]) -> io.BufferedReader:
    return io.BufferedReader(BlobStream(repo, content), 1024 * 1024)
