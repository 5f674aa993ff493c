"""Reading a stored file's content as a stream, one verified blob at a time."""

from __future__ import annotations

import io
from collections.abc import Callable

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


class StoredContent:
    """Opens a stored file's content whole, or as consecutive slices that parallel readers share.

    The slices follow chunk boundaries, balanced by size; read one after the other they give
    exactly the whole content.
    """

    def __init__(self, repo: Repository, content: list[str]) -> None:
        self._repo = repo
        self._content = content

    def __call__(self) -> io.BufferedReader:
        return open_content(self._repo, self._content)

    def sizes(self) -> list[int]:
        """Plain size of each chunk (0 where the index does not know it)."""
        out = []
        for blob in self._content:
            loc = self._repo.index.get(bytes.fromhex(blob))
            out.append(loc.raw_length if loc else 0)
        return out

    def split(self, n: int, min_bytes: int = 0) -> list[Callable[[], io.BufferedReader]]:
        """At most `n` openers of consecutive runs of chunks, of about equal size (and at least
        `min_bytes` each, so a small content stays in one piece)."""
        sizes = self.sizes()
        total = sum(sizes)
        if min_bytes:
            n = max(1, min(n, total // min_bytes))
        runs: list[list[str]] = [[]]
        done = 0
        for blob, size in zip(self._content, sizes, strict=True):
            if runs[-1] and len(runs) < n and done >= total * len(runs) / n:
                runs.append([])
            runs[-1].append(blob)
            done += size
        return [lambda run=run: open_content(self._repo, run) for run in runs]
