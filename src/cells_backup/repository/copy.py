"""Copying snapshots between repositories, moving only the data the target does not have.

When both repositories share the blob-id key (a target created by `copy`), ids are equal and
a blob the target already holds is never read. Otherwise every blob is re-hashed with the
target's key and trees are rewritten with the new ids.
"""

from __future__ import annotations

from collections.abc import Callable

from .index import DATA, TREE
from .repository import Repository
from .snapshot import Snapshot
from .tree import encode_tree
from .writer import BlobWriter


class SnapshotCopier:
    def __init__(self, source: Repository, target: Repository, writer: BlobWriter) -> None:
        self.source = source
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


def copy_snapshots(source: Repository, target: Repository, snapshots: list[Snapshot],
                   say: Callable[[str], None] | None = None) -> list[tuple[str, str]]:
    """Copy each snapshot not yet in the target; returns (source id, target id) pairs."""
    say = say or (lambda _m: None)
    source.load_index()
    target.load_index()
    done = already_copied(target)
    copied = []
    for snap in snapshots:
        if snap.id in done:
            say(f"snapshot {snap.short_id} is already in the target")
            continue
        with BlobWriter(target) as writer:
            copier = SnapshotCopier(source, target, writer)
            tree = copier.tree(snap.tree)
        clone = Snapshot(**{k: v for k, v in snap.__dict__.items() if k != "id"})
        clone.tree = tree
        clone.extra = {**snap.extra, "copied_from": snap.id}
        new_id = target.save_snapshot(clone)
        say(f"copied snapshot {snap.short_id} -> {new_id[:8]} ({copier.blobs_copied} blobs sent)")
        copied.append((snap.id, new_id))
    return copied
