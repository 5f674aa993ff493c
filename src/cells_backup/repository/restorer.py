"""Writing a snapshot's trees back to disk, safely.

Safety against a hostile repository: names are validated when trees are
decoded (no ``/``, ``..`` or empty names); every file is created with
O_EXCL|O_NOFOLLOW inside directories this restore created itself; symlinks are
created only after every file and directory, so no path ever traverses a
restored link; hardlinks only point at files this restore wrote.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from .. import allocator
from ..errors import CellsBackupError, IntegrityError
from . import tree
from .forked import can_fork
from .fsmeta import apply_metadata
from .pack_restore import PackOrderRestore
from .progress import Progress
from .repository import Repository
from .restore_workers import SmallFileWorkers
from .sparse import write_at


@dataclass
class RestoreResult:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    errors: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


LARGE_FILE = 1024 * 1024  # files from this size up are restored by all the workers


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Restorer:
    def __init__(
        self,
        repo: Repository,
        *,
        owner: tuple[int, int] | None = None,
        overwrite: bool = False,
        workers: int = 2,
        on_file: Callable[[str, int], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.repo = repo
        self.progress = progress or Progress()  # files and bytes written, added under `_lock`
        self.owner = owner
        self.overwrite = overwrite
        self.is_root = os.geteuid() == 0
        self.result = RestoreResult()
        self._workers = workers
        self._lock = threading.Lock()
        self._on_file = on_file
        self._hardlinks: dict[tuple[int, int], str] = {}
        self._symlinks: list[tuple[str, dict]] = []
        self._links: list[tuple[str, str, int]] = []  # (first path, other name of the same inode, size)
        self._dirs: list[tuple[str, dict]] = []
        self._new_dirs: set[str] = set()  # made by this restore: a file created in one gets our gid
        self._ids = (os.geteuid(), os.getegid())
        self._umask = _current_umask()
        # Remote repository: files are written pack by pack, each pack read once (`PackOrderRestore`).
        self._by_pack = PackOrderRestore(repo, create=self._create, finish=self._finish,
                                         error=self._error) if repo.remote else None

    def _error(self, path: str, message: str) -> None:
        with self._lock:
            self.result.errors.append({"path": path, "error": message})

    # ------------------------------------------------------------------ entry
    def restore_tree(self, tree_id: str, target: str, *, root_node: dict | None = None,
                     select: Callable[[str], bool] | None = None) -> RestoreResult:
        """Restore the children of ``tree_id`` into the directory ``target``.

        ``select`` (snapshot-relative path -> bool) limits the restore to some paths;
        directories on the way to a selected path are always created.
        """
        allocator.keep_blobs_on_heap()
        target = os.path.abspath(target)
        os.makedirs(target, exist_ok=True)
        # Small files of a local repository go to worker processes (forked before any thread of
        # this restore starts): restoring one is a few system calls and little else, and threads
        # doing that hand the GIL over at every call. Without fork, one thread of their own.
        # Larger files (decompression, decryption and writes, without the GIL) use the threads.
        self._small_workers = (SmallFileWorkers(self, self._workers)
                               if self._by_pack is None and self._workers > 1 and can_fork() else None)
        try:
            with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="restore") as pool, \
                    ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-small") as small_pool:
                self._pending: list = []
                self._batch: list[tuple[str, dict]] = []
                self._batch_bytes = 0
                self._pool = pool
                self._small_pool = small_pool
                self._walk(tree_id, target, "", select)
                self._flush_batch()
                self._drain(0)
        finally:
            if self._small_workers is not None:
                self._small_workers.close()
        if self._by_pack is not None:
            self._by_pack.run()
        for first, path, size in self._links:
            self._make_hardlink(first, path, size)
        for path, node in self._symlinks:
            self._make_symlink(path, node)
        for path, node in reversed(self._dirs):
            self.result.warnings += apply_metadata(path, node, owner=self.owner, is_root=self.is_root)
        if root_node is not None:
            self.result.warnings += apply_metadata(target, root_node, owner=self.owner, is_root=self.is_root)
        return self.result

    def _queue_file(self, path: str, node: dict) -> None:
        """Files go to the workers in batches: one task per file would cost more in thread
        hand-offs than restoring a small file does."""
        if self._by_pack is not None:
            self._by_pack.add(path, node)
            return
        size = node.get("size", 0)
        if size >= LARGE_FILE:
            self._submit(self._pool, self._restore_file_safe, path, node)
            return
        self._batch.append((path, node))
        self._batch_bytes += size
        if len(self._batch) >= 64 or self._batch_bytes >= 8 * 1024 * 1024:
            self._flush_batch()

    def _flush_batch(self) -> None:
        if self._batch:
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            if self._small_workers is not None:
                self._small_workers.submit(batch)
            else:
                self._submit(self._small_pool, self._restore_batch, batch)

    def _submit(self, pool: ThreadPoolExecutor, task: Callable, *args: object) -> None:
        self._pending.append(pool.submit(task, *args))
        self._drain(self._workers * 2)

    def _restore_batch(self, batch: list[tuple[str, dict]]) -> None:
        for path, node in batch:
            self._restore_file_safe(path, node)

    def _drain(self, keep: int) -> None:
        """Wait until at most ``keep`` files are queued (a bound on memory, not a batch barrier)."""
        while len(self._pending) > keep:
            done, not_done = wait(self._pending, return_when=FIRST_COMPLETED)
            for fut in done:
                fut.result()
            self._pending = list(not_done)

    def _walk(self, tree_id: str, directory: str, rel: str, select: Callable[[str], bool] | None) -> None:
        try:
            nodes = self.repo.iter_tree(tree_id)  # one node at a time: huge directories stay small
        except CellsBackupError as exc:
            self._error(rel or "/", f"directory contents lost: {exc}")
            return
        while True:
            try:
                node = next(nodes, None)
            except IntegrityError as exc:
                self._error(rel or "/", f"directory contents lost from here on: {exc}")
                return
            if node is None:
                return
            self._walk_node(node, directory, rel, select)

    def _walk_node(self, node: dict, directory: str, rel: str, select: Callable[[str], bool] | None) -> None:
        node_rel = f"{rel}/{node['name']}"
        path = os.path.join(directory, node["name"])
        kind = node["type"]
        if select is not None and not select(node_rel):
            return
        if kind == tree.DIR:
            if not self._make_dir(path):
                return
            self._dirs.append((path, node))
            self.result.dirs += 1
            self._walk(node["subtree"], path, node_rel, select)
        elif kind == tree.FILE:
            link_key = (node.get("dev", 0), node.get("inode", 0)) if node.get("nlink", 1) > 1 else None
            if link_key is not None:
                first = self._hardlinks.setdefault(link_key, path)
                if first != path:
                    self._links.append((first, path, node.get("size", 0)))
                    return
            self._queue_file(path, node)
        elif kind == tree.SYMLINK:
            self._symlinks.append((path, node))
        else:
            self._make_special(path, node)

    # ------------------------------------------------------------ node kinds
    def _clear(self, path: str) -> bool:
        """Make room for ``path`` when overwriting; never follows a link."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return True
        if not self.overwrite:
            self._error(path, "already exists")
            return False
        if stat.S_ISDIR(st.st_mode):
            self._error(path, "a directory is in the way")
            return False
        os.unlink(path)
        return True

    def _make_dir(self, path: str) -> bool:
        try:
            os.mkdir(path, 0o700)
            self._new_dirs.add(path)
            return True
        except FileExistsError:
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                return True
            self._error(path, "exists and is not a directory")
        except OSError as exc:
            self._error(path, f"cannot create directory: {exc.strerror}")
        return False

    @staticmethod
    def _create_mode(node: dict) -> int:
        """A file is created with its own permission bits when its owner may write it (a later
        blob must be able to reopen it), else 0600; set-id bits come after its owner, at the end."""
        mode = node.get("mode", 0o600) & 0o777
        return mode if mode & 0o200 else 0o600

    def _create(self, path: str, node: dict) -> int | None:
        """A new file at ``path``, open for writing; None (reported) when it cannot be made."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        mode = self._create_mode(node)
        try:
            try:
                return os.open(path, flags, mode)  # O_EXCL: never through a link, never over a file
            except FileExistsError:
                if not self._clear(path):
                    return None
                return os.open(path, flags, mode)
        except OSError as exc:
            self._error(path, f"cannot write: {exc.strerror}")
            return None

    def _finish(self, path: str, node: dict, fd: int, size: int) -> None:
        """Metadata on a file whose data is all written, then count it."""
        gid = self._ids[1] if os.path.dirname(path) in self._new_dirs else -1
        created = (self._ids[0], gid, self._create_mode(node) & ~self._umask)
        warnings = apply_metadata(path, node, owner=self.owner, is_root=self.is_root, fd=fd, created=created)
        if warnings:
            with self._lock:
                self.result.warnings += warnings
        self._count(path, size)

    def _restore_file_safe(self, path: str, node: dict) -> None:
        fd = self._create(path, node)
        if fd is None:
            return
        try:
            self._restore_file(path, node, fd)
        except OSError as exc:
            self._error(path, f"cannot write: {exc.strerror}")
            try:
                os.unlink(path)  # no half-written file left looking restored
            except OSError:
                pass

    def _restore_file(self, path: str, node: dict, fd: int) -> None:
        damaged = None
        try:
            offset = 0
            hole_at_end = False
            for blob_hex in node.get("content", []):
                try:
                    data = self.repo.read_blob(bytes.fromhex(blob_hex))
                except CellsBackupError as exc:
                    damaged = str(exc)
                    break
                hole_at_end = write_at(fd, data, offset)  # sparse files stay sparse
                offset += len(data)
            if damaged is None:
                if hole_at_end:
                    os.ftruncate(fd, offset)  # a trailing hole is only a seek: give the file its length
                self._finish(path, node, fd, offset)
        finally:
            os.close(fd)
        if damaged is not None:
            os.unlink(path)
            self._error(path, f"not restored, its data is damaged: {damaged}")

    def _count(self, path: str, size: int, linked: int = 0) -> None:
        """Count a file written (``size`` bytes), or a hard link made to one of ``linked`` bytes."""
        with self._lock:
            self.result.files += 1
            self.result.bytes += size
            self.progress.files += 1
            self.progress.bytes += size + linked
        if self._on_file is not None:
            self._on_file(path, size)

    def _make_hardlink(self, first: str, path: str, size: int) -> None:
        if not os.path.lexists(first) or not self._clear(path):
            self._error(path, f"hard link not restored: {first} is missing")
            return
        try:
            os.link(first, path, follow_symlinks=False)
        except OSError as exc:
            self._error(path, f"cannot create hard link: {exc.strerror}")
            return
        self._count(path, 0, linked=size)

    def _make_symlink(self, path: str, node: dict) -> None:
        if not self._clear(path):
            return
        try:
            os.symlink(node["target"], path)
        except OSError as exc:
            self._error(path, f"cannot create symlink: {exc.strerror}")
            return
        self.result.warnings += apply_metadata(path, node, owner=self.owner, is_root=self.is_root)
        self.result.files += 1

    def _make_special(self, path: str, node: dict) -> None:
        kind = node["type"]
        if not self._clear(path):
            return
        try:
            if kind == tree.FIFO:
                os.mkfifo(path, 0o600)
            elif kind in (tree.CHARDEV, tree.BLOCKDEV) and self.is_root:
                mode = (stat.S_IFCHR if kind == tree.CHARDEV else stat.S_IFBLK) | 0o600
                os.mknod(path, mode, node.get("rdev", 0))
            else:
                self.result.warnings.append(f"{path}: {kind} not restored")
                return
        except OSError as exc:
            self._error(path, f"cannot create {kind}: {exc.strerror}")
            return
        self.result.warnings += apply_metadata(path, node, owner=self.owner, is_root=self.is_root)
        self.result.files += 1


def find_node(repo: Repository, tree_id: str, path: str) -> dict | None:
    """The node at snapshot path ``path`` (``/`` gives a synthetic root), or None."""
    parts = [p for p in path.split("/") if p]
    node: dict | None = {"name": "", "type": tree.DIR, "subtree": tree_id}
    for part in parts:
        if node is None or node["type"] != tree.DIR:
            return None
        node = next((n for n in repo.read_tree(node["subtree"]) if n["name"] == part), None)
    return node
