"""The one small interface between the repository and a place that stores bytes.

Objects are named by slash-separated relative names such as ``config``,
``keys/<id>``, ``data/<2 hex>/<id>``, ``index/<id>``, ``snapshots/<id>``,
``locks/<id>``. Every write is atomic: a reader sees the whole object or none.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class Backend(Protocol):
    """Contract kept by every backend (local directory, S3, fault-injecting wrappers).

    Errors: `cells_backup.errors.NotFoundError` for a missing object,
    `AlreadyExistsError` for a create-only write that lost the race,
    `BackendError` for anything else (with a one-line message).
    """

    location: str

    def exists_repository(self) -> bool:
        """True when a repository ``config`` object is present."""
        ...

    def read(self, name: str) -> bytes:
        """Whole object."""
        ...

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``; a negative offset counts from the end."""
        ...

    def write(self, name: str, data: bytes | memoryview, *, exclusive: bool = False) -> None:
        """Store atomically and durably; with ``exclusive``, fail if the name exists."""
        ...

    def delete(self, name: str) -> None:
        """Remove; a missing object is not an error."""
        ...

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(name, size) of every object whose name starts with ``prefix`` (e.g. ``"data/"``)."""
        ...

    def size(self, name: str) -> int:
        """Size in bytes; NotFoundError when absent."""
        ...

    def close(self) -> None:
        ...
