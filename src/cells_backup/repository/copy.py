"""Copying snapshots between repositories, moving only the data the target does not have.

When both repositories share the blob-id key (a target created by `copy`), ids are equal and
a blob the target already holds is never read. Otherwise every blob is re-hashed with the
target's key and trees are rewritten with the new ids.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import CellsBackupError
from .index import DATA, TREE
from .progress import Progress
from .repository import Repository
from .snapshot import Snapshot
from .tree import encode_tree
from .writer import BlobWriter


class SnapshotCopier:
    def __init__(self, source: Repository, target: Repository, writer: BlobWriter,
                 progress: Progress | None = None) -> None:
        self.source = source
        self.progress = progress or Progress()
        self.target = target
        self.writer = writer
        self.same_ids = source.master.identity == target.master.identity
        self._translated: dict[str, str] = {}  # source id -> target id (this run)
        self.blobs_copied = 0

    def _blob(self, blob_hex: str, kind: int) -> str:
        if self.same_ids and self.target.index.has_stored(bytes.fromhex(blob_hex)):
            return blob_hex
        done = self._translated.get(blob_hex)
        if done is not None:
            return done
        data = self.source.read_blob(bytes.fromhex(blob_hex))
        new = self.writer.save(kind, data, bytes.fromhex(blob_hex) if self.same_ids else None).hex()
        self._translated[blob_hex] = new
        self.blobs_copied += 1
        if kind == DATA:
            self.progress.files += 1
            self.progress.bytes += len(data)
        return new

    def tree(self, tree_hex: str) -> str:
        nodes = self.source.read_tree(tree_hex)
        for node in nodes:
            if node["type"] == "dir":
                node["subtree"] = self.tree(node["subtree"])
            elif node["type"] == "file":
                node["content"] = [self._blob(b, DATA) for b in node.get("content", [])]
        data = encode_tree(nodes)
        return self.writer.save(TREE, data).hex()


def already_copied(target: Repository) -> set[str]:
    return {s.extra.get("copied_from", "") for s in target.list_snapshots()} - {""}


def data_to_copy(source: Repository, target: Repository, snapshots: list[Snapshot]) -> tuple[int, int]:
    """How many data blobs, and plain bytes, copying ``snapshots`` sends (their trees read
    once more): every distinct one, less those the target holds under the same id."""
    same_ids = source.master.identity == target.master.identity
    blobs: set[bytes] = set()
    for _tree_id, nodes in source.walk_trees([s.tree for s in snapshots], set()):
        if isinstance(nodes, CellsBackupError):
            continue  # the copy itself reports it
        for node in nodes:
            if node["type"] == "file":
                blobs.update(bytes.fromhex(b) for b in node.get("content", []))
    if same_ids:
        blobs = {b for b in blobs if not target.index.has_stored(b)}
    size = sum(loc.raw_length for b in blobs if (loc := source.index.get(b)) is not None)
    return len(blobs), size


def copy_snapshots(source: Repository, target: Repository, snapshots: list[Snapshot],
                   say: Callable[[str], None] | None = None,
                   progress: Progress | None = None) -> list[tuple[str, str]]:
    """Copy each snapshot not yet in the target; returns (source id, target id) pairs.
    ``progress``, when given, gets the totals first and counts the data blobs sent."""
    say = say or (lambda _m: None)
    source.load_index()
    target.load_index()
    done = already_copied(target)
    if progress is not None:
        progress.unit = "blobs"
        progress.set_totals(*data_to_copy(source, target, [s for s in snapshots if s.id not in done]))
    copied = []
    for snap in snapshots:
        if snap.id in done:
            say(f"snapshot {snap.short_id} is already in the target")
            continue
        with BlobWriter(target) as writer:
            copier = SnapshotCopier(source, target, writer, progress)
            tree = copier.tree(snap.tree)
        clone = Snapshot(**{k: v for k, v in snap.__dict__.items() if k != "id"})
        clone.tree = tree
        clone.extra = {**snap.extra, "copied_from": snap.id}
        new_id = target.save_snapshot(clone)
        say(f"copied snapshot {snap.short_id} -> {new_id[:8]} ({copier.blobs_copied} blobs sent)")
        copied.append((snap.id, new_id))
    return copied
