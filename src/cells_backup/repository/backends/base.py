"""The one small interface between the repository and a place that stores bytes.

Objects are named by slash-separated relative names such as ``config``,
``keys/<id>``, ``data/<2 hex>/<id>``, ``index/<id>``, ``snapshots/<id>``,
``locks/<id>``. Every write is atomic: a reader sees the whole object or none.

What a backend can do beyond that contract is declared in its `BackendProperties`, so the
repository decides from the declaration, never by probing for attributes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pack_file import PackFile


@dataclass(frozen=True)
class BackendProperties:
    """What a backend declares about itself; the defaults suit any backend."""

    remote: bool = False
    """Objects come over the network: reads fetch whole packs into a cache instead of one
    request per blob, and more writer threads keep uploads busy."""
    streams_pack_files: bool = False
    """`Backend.open_pack` works: data packs go to storage as their blobs come instead of
    being held whole in memory for one `Backend.write`."""


class Backend(ABC):
    """Contract kept by every backend (local directory, S3, fault-injecting wrappers).

    Errors: `cells_backup.errors.NotFoundError` for a missing object,
    `AlreadyExistsError` for a create-only write that lost the race,
    `BackendError` for anything else (with a one-line message).

    The abstract methods are the contract. The others have implementations that serve any
    backend; a backend overrides them where it does better (S3 streams reads and reads without
    a copy; a local directory cleans up after interrupted writes).
    """

    location: str
    properties: BackendProperties = BackendProperties()

    @abstractmethod
    def exists_repository(self) -> bool:
        """True when a repository ``config`` object is present."""

    @abstractmethod
    def read(self, name: str) -> bytes:
        """Whole object."""

    @abstractmethod
    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``; a negative offset counts from the end."""

    @abstractmethod
    def write(self, name: str, data: bytes | memoryview, *, exclusive: bool = False) -> None:
        """Store atomically and durably; with ``exclusive``, fail if the name exists."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove; a missing object is not an error."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(name, size) of every object whose name starts with ``prefix`` (e.g. ``"data/"``)."""

    @abstractmethod
    def size(self, name: str) -> int:
        """Size in bytes; NotFoundError when absent."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and open files."""

    def read_buffer(self, name: str) -> bytes | memoryview:
        """`read`, without a copy where the backend can hand out its own buffer."""
        return self.read(name)

    def read_stream(self, name: str, offset: int, length: int) -> Iterator[bytes]:
        """`read_range` in chunks as they arrive; here one chunk, read when first asked for."""
        yield self.read_range(name, offset, length)

    def open_pack(self) -> PackFile:
        """A data pack to write as its blobs come; only where ``properties.streams_pack_files``."""
        raise NotImplementedError(f"{type(self).__name__} does not stream pack files")

    def remove_temp_files(self) -> int:
        """Delete what interrupted writes left behind; returns how many. Nothing by default:
        a backend whose writes are single requests leaves no debris."""
        return 0
