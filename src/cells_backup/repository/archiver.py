"""Turning directory trees (and streams) into tree blobs and a snapshot.

Unchanged files are recognised from the parent snapshot (same size, mtime,
ctime and inode, and all their blobs still indexed) and are not read again, so
an incremental run over an unchanged tree only reads directories. How a file's contents are
stored (reused, taken from a reader, or read and chunked) is `file_contents.FileContents`.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pyfastcdc import FastCDC

from . import tree
from .file_contents import ArchiveSummary, FileContents, PendingContent
from .fileread import FAILED, GONE, READ_THREADS, Answer, BlobCoder, ReadAhead
from .forked import can_fork
from .fsmeta import base_node, node_type, read_xattrs
from .index import TREE
from .progress import Progress
from .read_workers import READ_PROCESSES, ReadWorkers
from .repository import Repository
from .scanner import ScannedBatch, Scanner
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


def _split(path: str) -> list[str]:
    return [p for p in os.path.normpath(path).split(os.sep) if p]


class Archiver(FileContents):
    """Walks the real trees (with the scanner and the readers) and the streams into trees."""

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
        self._min_chunk = chunker["min"]
        self._read_ahead: ReadAhead | ReadWorkers | None = None  # while `archive` runs
        self._scanner: Scanner | None = None  # while a real directory tree is archived
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
        coder = BlobCoder(self.repo.blob_id, self.writer.encode, self.writer.known, self._cut)
        self._read_ahead = (ReadWorkers(READ_PROCESSES, coder) if READ_PROCESSES and can_fork()
                            else ReadAhead(READ_THREADS, coder))
        try:
            tree_id = self._archive_trie(root, "/", parent_root)
            self._files_done()
        finally:
            self._read_ahead.close()
            self._read_ahead = None
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
        node = self._archive_entry(path, name, st, prev)
        if node is not None and isinstance(node.get("content"), PendingContent):
            node["content"] = node["content"].ids()
        return node

    def _archive_entry(self, path: str, name: str, st: os.stat_result, prev: dict | None,
                       prefetched: Answer | None = None, xattrs: dict | None = None,
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
        if self._scanner is not None:  # inside a tree the scanner walks: its next batches are ours
            return self._archive_scanned(path)
        assert self._read_ahead is not None
        self._scanner = Scanner(path, parent_subtree, index=self.repo.index, read_parent=self._parent_blob,
                                read_ahead=self._read_ahead, exclude=self.exclude, progress=self.progress)
        try:
            return self._archive_scanned(path)
        finally:
            scanner, self._scanner = self._scanner, None
            scanner.close()

    def _archive_scanned(self, path: str) -> str:
        # Each node is encoded as soon as it is known (an unchanged one is the parent's text), so a
        # directory of a million entries holds their text (about 300 bytes each), not a dict per entry.
        assert self._scanner is not None
        out = tree.start_encoded()
        while True:
            batch = self._scanner.next_batch()
            if batch.path != path:
                raise RuntimeError(f"scanner out of step: {batch.path} while archiving {path}")
            self._store_batch(batch, out)
            if batch.last:
                break
        # Unchanged: the same bytes as the parent's tree, i.e. its id, which the writer knows.
        return self.writer.save(TREE, tree.end_encoded(out)).hex()

    def _store_batch(self, batch: ScannedBatch, out: bytearray) -> None:
        """Store the entries of a scanned batch (files first, then directories, as the scanner
        queued their reads); append their nodes to ``out`` in name order."""
        for path, message in batch.errors:
            self._error(path, message)
        if batch.reused:
            self._count_reused(batch.path, batch.reused, batch.reused_bytes)
        items = batch.items
        dirs = [i for i, item in enumerate(items) if item[2] is not None and stat.S_ISDIR(item[2].st_mode)]
        stored: list[str | None] = [None] * len(items)
        read_ahead = self._read_ahead
        scan_ahead = self._scanner.scan_ahead
        waiting: list[tuple[int, dict]] = []  # files whose blob ids the workers are still hashing
        for i in [i for i, item in enumerate(items) if item[2] is None or not stat.S_ISDIR(item[2].st_mode)] + dirs:
            name, child, st, prev, xattrs, content, slot = items[i]
            if read_ahead.hungry():  # keep the readers fed
                scan_ahead()
            prefetched = read_ahead.take(slot, scan_ahead) if slot is not None else None
            if st is None:  # a new file the scanner did not stat: its reader did
                node = self._archive_unstated(child, name, prefetched)
            else:
                node = self._archive_entry(child, name, st, prev, prefetched, xattrs, content)
            if node is None:
                continue
            if isinstance(node.get("content"), PendingContent):
                waiting.append((i, node))
            else:
                stored[i] = tree.encode_node(node)
        for i, node in waiting:
            node["content"] = node["content"].ids()
            stored[i] = tree.encode_node(node)
        first = out.endswith(b"[")
        for text in batch.encoded:
            if not isinstance(text, str):
                text = stored[text]
                if text is None:
                    continue
            if not first:
                out += b","
            first = False
            out += text.encode()

    def _archive_unstated(self, path: str, name: str, answer: Answer) -> dict | None:
        if answer[0] == GONE:
            return None
        if answer[0] != FAILED:
            st = os.stat_result(answer[1])
            self.progress.bytes_total += st.st_size  # its size, which the scanner did not know
            return self._archive_entry(path, name, st, None, answer, answer[2])
        # Stat'ed and read here, errors reported; a directory now (the scanner listed a file) is
        # not walked: the scanner, which walks ahead, did not.
        try:
            st = os.lstat(path)
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                self._error(path, f"cannot read: {exc.strerror}")
            return None
        if stat.S_ISDIR(st.st_mode):
            self._error(path, "became a directory during the backup; left out of this snapshot")
            return None
        return self._archive_entry(path, name, st, None)

    def _parent_blob(self, subtree: str | None) -> bytes:
        if not subtree:
            return b""
        try:
            return self.repo.read_blob(bytes.fromhex(subtree))
        except Exception:  # a damaged parent only costs re-reading files
            return b""

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
