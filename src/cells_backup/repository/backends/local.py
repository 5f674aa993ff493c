"""A repository in a local directory (or any mounted filesystem).

Durability: every object is written to a temp file in the same directory,
fsynced, renamed into place, then the directory is fsynced, so a crash leaves
either the old state or the new one, never a torn object.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator

from ...errors import AlreadyExistsError, BackendError, NotFoundError
from .base import Backend, BackendProperties
from .direct_write import write_direct
from .pack_file import PackFile

TEMP_SUFFIX = ".tmp"


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)

_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None) if hasattr(os, "posix_fadvise") else None


class LocalBackend(Backend):
    """Objects are files under ``root``; names map to relative paths."""

    properties = BackendProperties(remote=False, streams_pack_files=True)

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(os.path.expanduser(root))
        self.location = self.root
        # Restores read many blobs from the same packs: keep a few packs open and use pread.
        self._fds: OrderedDict[str, list[int]] = OrderedDict()  # path -> [fd, users]
        self._fd_lock = threading.Lock()

    def _path(self, name: str) -> str:
        if name.startswith("/") or ".." in name.split("/"):
            raise BackendError(f"invalid object name {name!r}")
        return os.path.join(self.root, name)

    def exists_repository(self) -> bool:
        return os.path.isfile(self._path("config"))

    def read(self, name: str) -> bytes:
        path = self._path(name)
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFoundError(f"{name}: not found in {self.root}") from None
        except OSError as exc:
            raise BackendError(f"cannot read {path}: {_describe(exc)}") from None

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        path = self._path(name)
        try:
            if offset < 0:
                with open(path, "rb") as f:
                    f.seek(offset, os.SEEK_END)
                    return f.read(length)
            fd = self._acquire(path)
            try:
                return os.pread(fd, length, offset)
            finally:
                self._release(path)
        except FileNotFoundError:
            raise NotFoundError(f"{name}: not found in {self.root}") from None
        except OSError as exc:
            raise BackendError(f"cannot read {path}: {_describe(exc)}") from None

    def _acquire(self, path: str) -> int:
        """An open fd for ``path`` from a small LRU cache, pinned until `_release`."""
        with self._fd_lock:
            entry = self._fds.get(path)
            if entry is None:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                if _WILLNEED is not None:
                    # The kernel reads the pack ahead: a restore's reads of its many small blobs
                    # find it in memory instead of each waiting for the disk.
                    os.posix_fadvise(fd, 0, 0, _WILLNEED)
                entry = self._fds[path] = [fd, 0]
                self._evict()
            self._fds.move_to_end(path)
            entry[1] += 1
            return entry[0]

    def _release(self, path: str) -> None:
        with self._fd_lock:
            entry = self._fds.get(path)
            if entry is not None:
                entry[1] -= 1
            self._evict()

    def _evict(self) -> None:
        excess = len(self._fds) - 32
        for old in [p for p, (_fd, users) in self._fds.items() if users == 0][:max(excess, 0)]:
            os.close(self._fds.pop(old)[0])

    def _forget_cached(self, path: str) -> None:
        with self._fd_lock:
            entry = self._fds.get(path)
            if entry is not None and entry[1] == 0:
                os.close(self._fds.pop(path)[0])

    def write(self, name: str, data: bytes | memoryview, *, exclusive: bool = False) -> None:
        path = self._path(name)
        directory = os.path.dirname(path)
        tmp = f"{path}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                if not write_direct(fd, data):
                    view = memoryview(data)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            if exclusive:
                # link() fails if the name exists: an atomic create-only publish.
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise AlreadyExistsError(f"{name} already exists") from None
                finally:
                    os.unlink(tmp)
            else:
                os.replace(tmp, path)
            try:
                _fsync_dir(directory)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(path)  # its name may not survive a crash: as if it had not been written
                raise
        except (AlreadyExistsError, NotFoundError):
            raise
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if exc.errno == errno.ENOSPC:
                raise BackendError(f"no space left on device writing {path}") from None
            raise BackendError(f"cannot write {path}: {_describe(exc)}") from None

    def open_pack(self) -> PackFile:
        """A data pack to write as its blobs come (`pack_file`), named once complete."""
        return PackFile(self.root, self._path("data"), TEMP_SUFFIX, _fsync_dir)

    def delete(self, name: str) -> None:
        path = self._path(name)
        self._forget_cached(path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BackendError(f"cannot delete {path}: {_describe(exc)}") from None
        try:
            _fsync_dir(os.path.dirname(path))
        except OSError as exc:
            raise BackendError(f"cannot delete {path}: {_describe(exc)}") from None

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        # Walk from the directory holding the prefix; the prefix may end inside a name.
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self._path(directory) if directory else self.root
        if not os.path.isdir(base):
            if base == self.root and os.path.lexists(base):
                raise BackendError(f"{self.root} is a file, not a directory")
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for filename in sorted(filenames):
                if filename.endswith(TEMP_SUFFIX):
                    continue
                full = os.path.join(dirpath, filename)
                rel = os.path.relpath(full, self.root).replace(os.sep, "/")
                if not rel.startswith(prefix):
                    continue
                try:
                    yield rel, os.stat(full).st_size
                except FileNotFoundError:
                    continue

    def size(self, name: str) -> int:
        try:
            return os.stat(self._path(name)).st_size
        except FileNotFoundError:
            raise NotFoundError(f"{name}: not found in {self.root}") from None
        except OSError as exc:
            raise BackendError(f"cannot stat {name}: {_describe(exc)}") from None

    def remove_temp_files(self) -> int:
        """Delete temp files left by interrupted writes; returns how many."""
        removed = 0
        for dirpath, _dirs, filenames in os.walk(self.root):
            for filename in filenames:
                if filename.endswith(TEMP_SUFFIX):
                    try:
                        os.unlink(os.path.join(dirpath, filename))
                        removed += 1
                    except OSError:
                        pass
        return removed

    def close(self) -> None:
        with self._fd_lock:
            for fd, _users in self._fds.values():
                os.close(fd)
            self._fds.clear()


def _fsync_dir(directory: str) -> None:
    """Make a rename or removal in ``directory`` durable. Filesystems that cannot sync a directory
    say so with EINVAL and are let be; any other error (EIO) is the caller's failure."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EROFS):
            raise
    finally:
        os.close(fd)
