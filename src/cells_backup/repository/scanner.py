"""Walking directories ahead of the archiver: listing, stat, comparison with the parent snapshot.

On a cold disk every small file is a wait, and read in the archiver's own order, directory by
directory, the reads of the next directory start only when it gets there. The scanner walks the
same directories in the order the archiver stores them (a batch's files, then its directories,
depth first) but ahead of it: it lists and stats each directory, tells which entries are unchanged
since the parent snapshot, and queues the files that must be read, so that the reader threads read
across directory boundaries while the archiver stores what came before. It runs in the archiver's
thread, whenever the archiver would otherwise wait for a read: a thread of its own would only add
hand-offs of the interpreter lock, which cost more than the walk.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Callable, Iterator

from . import tree
from .fileread import ReadAhead
from .fsmeta import group_name, read_xattrs, user_name
from .index import ChunkIndex
from .parent_nodes import FILE_NODE_KEYS, ParentListing, same_inode_state
from .progress import Progress
from .read_workers import ReadWorkers

DIR_BATCH = 4096  # entries of a directory handled at a time: memory stays flat in huge directories
AHEAD_ENTRIES = 4096  # entries listed but not yet taken by the archiver, at most

# One entry to store: (name, path, lstat, parent's node or None, xattrs, content if unchanged
# (blob ids) or None, read-ahead slot or None). A new regular file may come with neither lstat nor
# xattrs (None): its reader gives them.
Item = tuple


class ScannedBatch:
    """Up to DIR_BATCH entries of directory ``path``, in name order."""

    __slots__ = ("path", "encoded", "items", "reused", "reused_bytes", "files", "bytes", "errors", "last")

    def __init__(self, path: str) -> None:
        self.path = path
        self.encoded: list[str | int] = []  # a reused node's text, or the number of an item to store
        self.items: list[Item] = []
        self.reused = 0  # unchanged files whose parent node is kept as it is
        self.reused_bytes = 0
        self.files = 0  # regular files among the items (counted for progress, not stored here)
        self.bytes = 0  # their sizes, where the scanner stat'ed them
        self.errors: list[tuple[str, str]] = []  # (path, message), reported by the archiver
        self.last = True  # the directory's last batch


def reusable_file(index: ChunkIndex, prev: dict, st: os.stat_result) -> bool:
    """A parent's file node that this version would write the same for ``st`` (same inode
    state, same fields, same owner names) and whose blobs are all still stored."""
    if (
        prev.get("size") != st.st_size
        or prev["type"] != tree.FILE
        or len(prev) != len(FILE_NODE_KEYS) + ("xattrs" in prev)
        or prev.get("user") != user_name(st.st_uid)
        or prev.get("group") != group_name(st.st_gid)
    ):
        return False
    has_stored, fromhex = index.has_stored, bytes.fromhex
    return all(has_stored(fromhex(blob)) for blob in prev.get("content", ()))


def unchanged_content(index: ChunkIndex, st: os.stat_result, prev: dict | None) -> list[str] | None:
    """The parent's blob ids of a file with the same size, mtime, ctime and inode, if all are stored."""
    if (
        prev is None
        or prev["type"] != tree.FILE
        or prev.get("size") != st.st_size
        or prev.get("mtime") != st.st_mtime_ns
        or prev.get("ctime") != st.st_ctime_ns
        or prev.get("inode") != st.st_ino
    ):
        return None
    content = prev.get("content", [])
    if all(index.has_stored(bytes.fromhex(c)) for c in content):
        return content
    return None


class Scanner:
    """Walks the tree under ``root`` a batch at a time, ahead of the archiver: `next_batch` hands
    the batches over in order, `scan_ahead` walks one more while the archiver would wait."""

    def __init__(self, root: str, parent_subtree: str | None, *, index: ChunkIndex,
                 read_parent: Callable[[str | None], bytes], read_ahead: ReadAhead | ReadWorkers,
                 exclude: Callable[[str, bool], bool] | None, progress: Progress | None = None) -> None:
        self._index = index
        self._progress = progress or Progress()
        self._read_parent = read_parent
        self._read_ahead = read_ahead
        self._exclude = exclude
        self._walker = self._walk(root, parent_subtree)
        self._batches: deque[ScannedBatch] = deque()
        self._ahead = 0  # entries in batches not yet taken

    def next_batch(self) -> ScannedBatch:
        if not self._batches and not self._scan_one():
            raise RuntimeError("the scanner has no more batches")
        batch = self._batches.popleft()
        self._ahead -= len(batch.encoded)
        return batch

    def scan_ahead(self) -> bool:
        """Walk one more batch unless far enough ahead; False when there is nothing to do now."""
        return self._ahead < AHEAD_ENTRIES and self._scan_one()

    def close(self) -> None:
        self._walker.close()

    def _scan_one(self) -> bool:
        batch = next(self._walker, None)
        if batch is None:
            return False
        self._batches.append(batch)
        self._ahead += len(batch.encoded)
        progress = self._progress  # what the archiver has to do grows as the scanner walks ahead
        progress.files_total += batch.reused + batch.files
        progress.bytes_total += batch.reused_bytes + batch.bytes
        return True

    def _walk(self, path: str, parent_subtree: str | None) -> Iterator[ScannedBatch]:
        try:
            with os.scandir(path) as listing:
                names, special = [], set()  # special: not a regular file, by the listing's own type
                for entry in listing:
                    names.append(entry.name)
                    if not entry.is_file(follow_symlinks=False):
                        special.add(entry.name)
            names.sort()
        except OSError as exc:
            batch = ScannedBatch(path)
            batch.errors.append((path, f"cannot list directory: {exc.strerror}"))
            yield batch
            return
        parent = ParentListing(self._read_parent(parent_subtree))
        prefix = path if path.endswith(os.sep) else path + os.sep
        for start in range(0, max(len(names), 1), DIR_BATCH):
            batch = self._scan_batch(path, prefix, names[start : start + DIR_BATCH], special, parent)
            batch.last = start + DIR_BATCH >= len(names)
            yield batch
            # The archiver stores a batch's files, then walks into its directories: same order here.
            for _name, child, st, prev, _x, _c, _slot in batch.items:
                if st is not None and stat.S_ISDIR(st.st_mode):
                    yield from self._walk(child, prev.get("subtree") if prev and prev["type"] == tree.DIR else None)

    def _scan_batch(self, path: str, prefix: str, names: list[str], special: set[str],
                    parent: ParentListing) -> ScannedBatch:
        # Stats one by one: on a cold cache a directory's inodes come in together with the first one.
        batch = ScannedBatch(path)
        encoded, items = batch.encoded, batch.items
        index, exclude, read_ahead = self._index, self._exclude, self._read_ahead
        # A file new since the parent snapshot has nothing to be compared with: where the readers
        # stat what they open, the scanner leaves it to them (stat None in its item).
        unstated = not read_ahead.needs_stat
        files = size = 0
        for name in names:
            child = prefix + name
            prev, prev_text = parent.find(name)
            if prev is None and unstated and name not in special:
                if exclude is None or not exclude(child, False):
                    files += 1
                    encoded.append(len(items))
                    items.append((name, child, None, None, None, None, read_ahead.add(child, None)))
                continue
            try:
                st = os.lstat(child)
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError):  # vanished since the listing: simply not here
                    batch.errors.append((child, f"cannot read: {exc.strerror}"))
                continue
            if exclude is not None and exclude(child, stat.S_ISDIR(st.st_mode)):
                continue
            if prev is not None and same_inode_state(prev, st):
                # Writing an xattr moves ctime: same inode and ctime means the same xattrs.
                xattrs = prev.get("xattrs", {})
                if st.st_nlink == 1 and reusable_file(index, prev, st):
                    encoded.append(prev_text)  # unchanged: the parent's node, field for field
                    batch.reused += 1
                    batch.reused_bytes += st.st_size
                    continue
            else:
                xattrs = read_xattrs(child)
            regular = stat.S_ISREG(st.st_mode)
            content = None
            if regular:
                files += 1
                size += st.st_size
                content = unchanged_content(index, st, prev)
            slot = None
            if content is None and regular and st.st_nlink == 1:
                slot = read_ahead.add(child, st.st_size)
            encoded.append(len(items))
            items.append((name, child, st, prev, xattrs, content, slot))
        batch.files, batch.bytes = files, size
        return batch
