"""Turning directory trees (and streams) into tree blobs and a snapshot.

Unchanged files are recognised from the parent snapshot (same size, mtime,
ctime and inode, and all their blobs still indexed) and are not read again, so
an incremental run over an unchanged tree only reads directories.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

from pyfastcdc import FastCDC

from . import tree
from .fileread import (
    READ_THREADS,
    SMALL_FILE,
    PrefetchWindow,
    Prepend,
    Slurp,
    open_for_read,
    read_full,
)
from .fsmeta import base_node, group_name, node_type, read_xattrs, user_name
from .index import DATA, TREE
from .parent_nodes import FILE_NODE_KEYS, ParentListing, same_inode_state
from .repository import Repository
from .snapshot import Snapshot
from .writer import BlobWriter

ExcludeFn = Callable[[str, bool], bool]


# Streams (database dumps) are text: zstd level 1 packs them as small as level 3, twice as fast.
STREAM_LEVEL = 1


@dataclass
class VirtualDir:
    """A directory of files made from streams (e.g. a database dump), placed at ``path``.

    ``entries`` yields (relative name, stream) pairs in the producer's order; each stream is
    read to its end before the next pair is asked for, so a producer can be one pipe. Streams
    are read after every real tree, ``early`` ones before the others.
    """

    path: str
    entries: Callable[[], Iterator[tuple[str, BinaryIO]]]
    mode: int = 0o700
    early: bool = False


@dataclass
class Progress:
    files: int = 0
    dirs: int = 0
    bytes: int = 0
    expected_bytes: int = 0  # from the parent snapshot, for an ETA
    current: str = ""
    started: float = field(default_factory=time.monotonic)


@dataclass
class ArchiveSummary:
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs: int = 0
    total_files: int = 0
    total_bytes: int = 0
    data_added: int = 0
    data_stored: int = 0
    blobs_new: int = 0
    duration: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _stream_rank(trie: _Trie) -> int:
    """0: real trees only; 1: holds an early stream; 2: holds other streams."""
    if trie.virtual is not None:
        return 1 if trie.virtual.early else 2
    return min((rank for c in trie.children.values() if (rank := _stream_rank(c))), default=0)


class _Trie:
    __slots__ = ("children", "real", "virtual")

    def __init__(self) -> None:
        self.children: dict[str, _Trie] = {}
        self.real: str | None = None
        self.virtual: VirtualDir | None = None


DIR_BATCH = 4096  # entries of a directory handled at a time: memory stays flat in huge directories


def _split(path: str) -> list[str]:
    return [p for p in os.path.normpath(path).split(os.sep) if p]


class Archiver:
    def __init__(
        self,
        repo: Repository,
        writer: BlobWriter,
        *,
        parent: Snapshot | None = None,
        exclude: ExcludeFn | None = None,
        progress: Progress | None = None,
        warn: Callable[[str], None] | None = None,
        on_files_done: Callable[[], None] | None = None,
    ) -> None:
        self.repo = repo
        self._on_files_done = on_files_done
        self.writer = writer
        self.parent = parent
        self.exclude = exclude
        self.progress = progress or Progress()
        self.summary = ArchiveSummary()
        self.errors: list[dict] = []
        self._warn = warn or (lambda _msg: None)
        chunker = repo.config["chunker"]
        self._cdc = FastCDC(chunker["avg"], min_size=chunker["min"], max_size=chunker["max"],
                            seed=chunker["seed"])
        self._max_chunk = chunker["max"]
        self._min_chunk = chunker["min"]
        self._readers = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="read")
        self._hardlinks: dict[tuple[int, int], list[str]] = {}

    # ------------------------------------------------------------------ entry
    def archive(self, paths: Iterable[str], virtual: Iterable[VirtualDir] = ()) -> str:
        """Archive ``paths`` (absolute) and ``virtual`` directories; returns the root tree id."""
        started = time.monotonic()
        root = _Trie()
        for path in paths:
            node = root
            for part in _split(os.path.abspath(path)):
                node = node.children.setdefault(part, _Trie())
            node.real = os.path.abspath(path)
        for vf in virtual:
            node = root
            for part in _split(vf.path):
                node = node.children.setdefault(part, _Trie())
            node.virtual = vf
        parent_root = self.parent.tree if self.parent else None
        try:
            tree_id = self._archive_trie(root, "/", parent_root)
            self._files_done()
        finally:
            self._readers.shutdown(wait=True, cancel_futures=True)
        self.summary.duration = time.monotonic() - started
        return tree_id

    # ---------------------------------------------------------------- helpers
    def _files_done(self) -> None:
        """Called once, when every real path is read and before the first stream."""
        callback, self._on_files_done = self._on_files_done, None
        if callback is not None:
            callback()

    def _error(self, path: str, message: str) -> None:
        self.errors.append({"path": path, "error": message})
        self._warn(f"{path}: {message}")

    def _parent_nodes(self, subtree: str | None) -> dict[str, dict]:
        return {node["name"]: node for node, _text in tree.iter_encoded(self._parent_blob(subtree))}

    def _save_tree(self, nodes: list[dict]) -> str:
        return self.writer.save(TREE, tree.encode_tree(nodes)).hex()

    def _archive_trie(self, trie: _Trie, path: str, parent_subtree: str | None) -> str:
        parent_nodes = self._parent_nodes(parent_subtree)
        nodes = []
        # Real trees before streams: a caller may restart a service once the files are read
        # (`on_files_done`) while the streams (a database dump in its own snapshot) go on.
        for name, child in sorted(trie.children.items(), key=lambda kv: (_stream_rank(kv[1]), kv[0])):
            child_path = os.path.join(path, name)
            prev = parent_nodes.get(name)
            if child.real is not None:
                node = self._archive_path(child.real, name, prev)
            elif child.virtual is not None:
                self._files_done()
                node = self._archive_virtual(child.virtual, name)
            else:
                node = self._synthetic_dir(child_path, name)
                node["subtree"] = self._archive_trie(
                    child, child_path, prev.get("subtree") if prev and prev["type"] == tree.DIR else None
                )
            if node is not None:
                nodes.append(node)
        return self._save_tree(nodes)

    def _synthetic_dir(self, path: str, name: str) -> dict:
        try:
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                return base_node(name, st, tree.DIR)
        except OSError:
            pass
        now = time.time_ns()
        return {"name": name, "type": tree.DIR, "mode": 0o700, "uid": os.getuid(), "gid": os.getgid(),
                "user": "", "group": "", "mtime": now, "ctime": now, "inode": 0, "dev": 0}

    def _archive_path(self, path: str, name: str, prev: dict | None) -> dict | None:
        try:
            st = os.lstat(path)
        except OSError as exc:
            self._error(path, f"cannot read: {exc.strerror}")
            return None
        return self._archive_entry(path, name, st, prev)

    def _archive_entry(self, path: str, name: str, st: os.stat_result, prev: dict | None,
                       prefetched: Slurp | None = None, xattrs: dict | None = None,
                       reused: list[str] | None = None) -> dict | None:
        kind = node_type(st.st_mode)
        if kind is None:
            self._error(path, "unknown file type, skipped")
            return None
        node = base_node(name, st, kind)
        if xattrs is None:
            xattrs = read_xattrs(path)
        if xattrs:
            node["xattrs"] = xattrs
        self.progress.current = path
        if kind == tree.DIR:
            node["subtree"] = self._archive_dir(path, prev.get("subtree") if prev and prev["type"] == kind else None)
            self.progress.dirs += 1
            self.summary.dirs += 1
        elif kind == tree.FILE:
            content = self._file_content(path, st, prev, prefetched, reused)
            if content is None:
                return None
            node["content"], node["size"] = content
            self.progress.files += 1
            self.summary.total_files += 1
            self.summary.total_bytes += node["size"]
        elif kind == tree.SYMLINK:
            try:
                node["target"] = os.readlink(path)
            except OSError as exc:
                self._error(path, f"cannot read link: {exc.strerror}")
                return None
        elif kind == tree.SOCKET:
            self._warn(f"{path}: socket recorded, not restorable as such")
        return node

    def _archive_dir(self, path: str, parent_subtree: str | None) -> str:
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            self._error(path, f"cannot list directory: {exc.strerror}")
            return self._save_tree([])
        # The parent's listing and this one are both sorted by name: they are walked side by side,
        # and each node is encoded as soon as it is known, so a directory of a million entries
        # holds their text (about 300 bytes each), not a dict per entry.
        parent = ParentListing(self._parent_blob(parent_subtree))
        out = tree.start_encoded()
        prefix = path if path.endswith(os.sep) else path + os.sep
        for start in range(0, len(names), DIR_BATCH):
            self._archive_batch(path, prefix, names[start : start + DIR_BATCH], parent, out)
        del parent
        # Unchanged: the same bytes as the parent's tree, i.e. its id, which the writer knows.
        return self.writer.save(TREE, tree.end_encoded(out)).hex()

    def _archive_batch(self, path: str, prefix: str, names: list[str], parent: ParentListing,
                       out: bytearray) -> None:
        """Stat, compare and store the entries ``names`` of a directory; append their nodes to ``out``."""
        # Stats one by one: on a cold cache a directory's inodes come in together with the first
        # one, and threads here cost more in hand-offs than they save.
        encoded: list[str | int] = []  # a node's text, or the number of an item still to store
        items = []
        reused = reused_bytes = 0
        for name in names:
            child = prefix + name
            try:
                st = os.lstat(child)
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError):  # vanished since the listing: simply not here
                    self._error(child, f"cannot read: {exc.strerror}")
                continue
            if self.exclude is not None and self.exclude(child, stat.S_ISDIR(st.st_mode)):
                continue
            prev, prev_text = parent.find(name)
            if prev is not None and same_inode_state(prev, st):
                # Writing an xattr moves ctime: same inode and ctime means the same xattrs.
                xattrs = prev.get("xattrs", {})
                if st.st_nlink == 1 and self._reusable_file(prev, st):
                    encoded.append(prev_text)  # unchanged: the parent's node, field for field
                    reused += 1
                    reused_bytes += st.st_size
                    continue
            else:
                xattrs = read_xattrs(child)
            content = self._unchanged(st, prev) if stat.S_ISREG(st.st_mode) else None
            encoded.append(len(items))
            items.append((name, child, st, prev, xattrs, content))
        if reused:
            self._count_reused(path, reused, reused_bytes)
        window = PrefetchWindow(self._readers, [
            i for i, (_n, _child, st, _prev, _x, content) in enumerate(items)
            if content is None and stat.S_ISREG(st.st_mode) and st.st_size <= SMALL_FILE and st.st_nlink == 1
        ], items, self._prepare_small)
        stored: list[str | None] = []
        for i, (name, child, st, prev, xattrs, content) in enumerate(items):
            node = self._archive_entry(child, name, st, prev, window.take(i), xattrs, content)
            stored.append(None if node is None else tree.encode_node(node))
        first = out.endswith(b"[")
        for text in encoded:
            if not isinstance(text, str):
                text = stored[text]
                if text is None:
                    continue
            if not first:
                out += b","
            first = False
            out += text.encode()

    def _parent_blob(self, subtree: str | None) -> bytes:
        if not subtree:
            return b""
        try:
            return self.repo.read_blob(bytes.fromhex(subtree))
        except Exception:  # a damaged parent only costs re-reading files
            return b""

    # ------------------------------------------------------------------ files
    def _reusable_file(self, prev: dict, st: os.stat_result) -> bool:
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
        has_stored, fromhex = self.repo.index.has_stored, bytes.fromhex
        return all(has_stored(fromhex(blob)) for blob in prev.get("content", ()))

    def _count_reused(self, path: str, files: int, size: int) -> None:
        self.progress.current = path
        self.progress.files += files
        self.progress.bytes += size
        self.summary.total_files += files
        self.summary.total_bytes += size
        self.summary.files_unmodified += files

    def _unchanged(self, st: os.stat_result, prev: dict | None) -> list[str] | None:
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
        index = self.repo.index
        if all(index.has_stored(bytes.fromhex(c)) for c in content):
            return content
        return None

    def _file_content(self, path: str, st: os.stat_result, prev: dict | None,
                      prefetched: Slurp | None = None, reused: list[str] | None = None) -> tuple[list[str], int] | None:
        link_key = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
        if link_key is not None and link_key in self._hardlinks:
            self.summary.files_unmodified += 1
            return self._hardlinks[link_key], st.st_size
        if reused is None and prefetched is None:
            reused = self._unchanged(st, prev)
        if reused is not None:
            self.summary.files_unmodified += 1
            self.progress.bytes += st.st_size
            result = reused, st.st_size
        else:
            read = self._read_file(path, st) if prefetched is None else self._store_prefetched(path, st, prefetched)
            if read is None:
                return None
            if prev is None:
                self.summary.files_new += 1
            else:
                self.summary.files_changed += 1
            result = read
        if link_key is not None:
            self._hardlinks[link_key] = result[0]
        return result

    def _check_unchanged_while_read(self, path: str, st: os.stat_result, after: os.stat_result, size: int) -> None:
        if after.st_ino != st.st_ino:
            self._error(path, "replaced while being read; this snapshot has the newer file")
        elif after.st_mtime_ns != st.st_mtime_ns or after.st_size != size:
            self._error(path, "changed while being read; the stored copy may be inconsistent")

    def _read_file(self, path: str, st: os.stat_result) -> tuple[list[str], int] | None:
        try:
            fd = open_for_read(path)
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                self._error(path, f"cannot open: {exc.strerror}")
            return None
        try:
            with io.FileIO(fd, "rb", closefd=False) as f:
                content, size = self._store_stream(f)
            self._check_unchanged_while_read(path, st, os.fstat(fd), size)
            return content, size
        except OSError as exc:
            self._error(path, f"read error: {exc.strerror}")
            return None
        finally:
            os.close(fd)

    def _prepare_small(self, data: bytes) -> tuple[bytes, bytes | None] | None:
        """In a reader thread: hash a file that is one blob, and encode it unless already stored."""
        if not data or len(data) >= self._min_chunk:
            return None
        blob = self.repo.blob_id(data)
        return blob, None if blob in self.writer.index else self.writer.encode(data)

    def _store_prefetched(self, path: str, st: os.stat_result, slurp: Slurp) -> tuple[list[str], int] | None:
        data, after, exc, prepared = slurp
        if exc is not None:
            if not isinstance(exc, FileNotFoundError):
                verb = "open" if after is None else "read"
                self._error(path, f"cannot {verb}: {exc.strerror}")
            return None
        if prepared is not None:  # one blob, hashed and encoded by the reader thread
            blob, stored = prepared
            content = [self.writer.add_encoded(DATA, blob, stored, data).hex()]
        elif len(data) < self._min_chunk:  # smaller than any chunk: one blob, no chunker needed
            content = [self.writer.save(DATA, data).hex()] if data else []
        else:
            content = [self.writer.save(DATA, c.data).hex() for c in self._cdc.cut_buf(data)]
        self.progress.bytes += len(data)
        self._check_unchanged_while_read(path, st, after, len(data))
        return content, len(data)

    def _store_stream(self, stream: BinaryIO, level: int | None = None) -> tuple[list[str], int]:
        """Chunk, hash and store a stream; memory stays within a few max-chunk sizes."""
        content: list[str] = []
        size = 0
        save = functools.partial(self.writer.save, level=level)
        first = read_full(stream, self._max_chunk)
        if len(first) < self._max_chunk:
            chunks = self._cdc.cut_buf(first) if first else ()
            for chunk in chunks:
                data = chunk.data
                content.append(save(DATA, data).hex())
                size += chunk.length
            self.progress.bytes += size
            return content, size
        rest = Prepend(first, stream)
        for chunk in self._cdc.cut_stream(rest):
            content.append(save(DATA, chunk.data).hex())
            size += chunk.length
            self.progress.bytes += chunk.length
        return content, size

    def _archive_virtual(self, vd: VirtualDir, name: str) -> dict:
        now = time.time_ns()
        root: dict[str, dict] = {}
        for rel, stream in vd.entries():
            parts = [p for p in rel.split("/") if p]
            folder = root
            for part in parts[:-1]:
                folder = folder.setdefault(part, {})
            with stream:
                content, size = self._store_stream(stream, STREAM_LEVEL)
            self.progress.files += 1
            self.summary.total_files += 1
            self.summary.total_bytes += size
            folder[parts[-1]] = self._stream_node(parts[-1], 0o600, now, content=content, size=size)
        node = self._stream_node(name, vd.mode, now, type=tree.DIR)
        node["subtree"] = self._save_virtual_tree(root, vd.mode, now)
        return node

    def _save_virtual_tree(self, folder: dict, mode: int, now: int) -> str:
        nodes = []
        for name, item in folder.items():
            if item.get("type") == tree.FILE and "content" in item:
                nodes.append(item)
            else:
                node = self._stream_node(name, mode, now, type=tree.DIR)
                node["subtree"] = self._save_virtual_tree(item, mode, now)
                nodes.append(node)
        return self._save_tree(nodes)

    @staticmethod
    def _stream_node(name: str, mode: int, now: int, type: str = tree.FILE, **more: object) -> dict:
        return {"name": name, "type": type, "mode": mode, "uid": os.getuid(), "gid": os.getgid(),
                "user": "", "group": "", "mtime": now, "ctime": now, "inode": 0, "dev": 0, **more}
