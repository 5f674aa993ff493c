"""Freeing space: delete packs no snapshot needs and repack mostly-unused ones.

Crash-safe order: new packs, then one index file that supersedes every old one, then the old
index files are deleted, and only then the packs. A kill at any moment leaves every snapshot
whole; what is left over (unindexed packs, superseded index files) is removed by the next run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import CellsBackupError
from .index import ChunkIndex, PackEntry, decode_index, encode_index
from .progress import Progress
from .repository import Repository, pack_name
from .writer import BlobWriter


@dataclass
class PrunePlan:
    used_blobs: int = 0
    keep_packs: list[bytes] = field(default_factory=list)
    delete_packs: list[bytes] = field(default_factory=list)  # nothing in them is used
    repack_packs: list[bytes] = field(default_factory=list)  # partly used, worth rewriting
    orphan_packs: list[str] = field(default_factory=list)  # in data/ but in no index
    bytes_unused: int = 0
    bytes_freed_estimate: int = 0

    def to_dict(self) -> dict:
        return {
            "used_blobs": self.used_blobs,
            "keep_packs": len(self.keep_packs),
            "delete_packs": len(self.delete_packs),
            "repack_packs": len(self.repack_packs),
            "orphan_packs": len(self.orphan_packs),
            "bytes_unused": self.bytes_unused,
            "bytes_freed_estimate": self.bytes_freed_estimate,
        }


def used_blobs(repo: Repository) -> set[bytes]:
    """Every blob (trees and data) some snapshot needs; refuses when a tree cannot be read."""
    used: set[bytes] = set()
    damaged: list[str] = []
    snapshots = repo.list_snapshots(damaged=damaged)
    if damaged:
        raise CellsBackupError(f"refusing to prune: unreadable snapshot(s): {damaged[0]} (run `check`)")
    seen: set[str] = set()
    for tree_hex, nodes in repo.walk_trees([s.tree for s in snapshots], seen):
        if isinstance(nodes, CellsBackupError):
            raise CellsBackupError(f"refusing to prune: {nodes} (run `check`)") from None
        used.add(bytes.fromhex(tree_hex))
        for node in nodes:
            if node["type"] == "file":
                used.update(bytes.fromhex(c) for c in node.get("content", []))
    return used


def plan_prune(repo: Repository, used: set[bytes], *, max_unused: float = 0.1) -> PrunePlan:
    """Decide per pack: keep, delete, or repack when more than ``max_unused`` of it is unused."""
    plan = PrunePlan(used_blobs=len(used))
    per_pack: dict[bytes, list[int]] = {}  # pack -> [used bytes, unused bytes]
    for blob, loc in repo.index.items():
        if loc is None:
            continue
        counts = per_pack.setdefault(loc.pack, [0, 0])
        counts[0 if blob in used else 1] += loc.length
    for pack, (used_bytes, unused_bytes) in per_pack.items():
        plan.bytes_unused += unused_bytes
        if used_bytes == 0:
            plan.delete_packs.append(pack)
            plan.bytes_freed_estimate += unused_bytes
        elif unused_bytes > max_unused * (used_bytes + unused_bytes):
            plan.repack_packs.append(pack)
            plan.bytes_freed_estimate += unused_bytes
        else:
            plan.keep_packs.append(pack)
    indexed = {pack_name(p) for p in per_pack}
    plan.orphan_packs = [name for name, _ in repo.backend.list("data/") if name not in indexed]
    return plan


def execute_prune(repo: Repository, plan: PrunePlan, used: set[bytes],
                  say: Callable[[str], None] | None = None, progress: Progress | None = None) -> dict:
    """Repack, write the new index, delete; ``progress`` counts the packs repacked or deleted
    and their bytes."""
    say = say or (lambda _m: None)
    progress = progress or Progress()
    old_index = repo.index
    old_files = sorted(repo.index_files)
    keep = set(plan.keep_packs)
    repack = set(plan.repack_packs)

    # The new index: entries of kept packs, then repacked blobs as they are written.
    kept_entries: dict[bytes, list[PackEntry]] = {}
    new_index = ChunkIndex()
    to_copy: list[tuple[bytes, int, bytes]] = []
    pack_bytes: dict[bytes, int] = {}  # stored bytes of each indexed pack
    for blob, loc in old_index.items():
        if loc is None:
            continue
        if loc.pack in keep:
            kept_entries.setdefault(loc.pack, []).append(PackEntry(loc.type, blob, loc.offset, loc.length,
                                                                   loc.raw_length))
            new_index.add(blob, loc.pack, loc.offset, loc.length, loc.raw_length, loc.type)
        elif loc.pack in repack and blob in used:
            to_copy.append((blob, loc.type, loc.pack))
        pack_bytes[loc.pack] = pack_bytes.get(loc.pack, 0) + loc.length
    to_copy.sort(key=lambda item: item[2])  # pack by pack: a pack is done when its last blob is
    gone = plan.delete_packs + plan.repack_packs
    progress.unit = "packs"
    progress.set_totals(len(gone) + len(plan.orphan_packs), sum(pack_bytes.get(p, 0) for p in gone))

    say(f"repacking {len(to_copy)} blobs from {len(repack)} packs")
    written: dict[bytes, list[PackEntry]] = {}
    if to_copy:
        with BlobWriter(repo, index=new_index) as writer:
            for i, (blob, kind, pack) in enumerate(to_copy):
                writer.save(kind, repo.read_blob(blob), blob)  # read via the old index
                if i + 1 == len(to_copy) or to_copy[i + 1][2] != pack:
                    progress.files += 1
                    progress.bytes += pack_bytes[pack]
        written_ids = writer.written_index
        for file_id in written_ids:
            packs, _ = decode_index(repo.read_sealed("index", file_id), f"index/{file_id}")
            written.update(packs)
        old_files += written_ids
    repo.index = new_index

    say("writing the new index")
    merged = {**kept_entries, **written}
    new_id = repo.write_sealed("index", encode_index(merged, supersedes=[bytes.fromhex(f) for f in old_files]))
    for file_id in old_files:
        if file_id != new_id:
            repo.backend.delete(f"index/{file_id}")
    repo.index_files = {new_id}

    say("deleting unused packs")
    deleted = 0
    repacked = {pack for _blob, _kind, pack in to_copy}
    for pack in gone:
        repo.backend.delete(pack_name(pack))
        deleted += 1
        if pack not in repacked:  # counted when its blobs were copied
            progress.files += 1
            progress.bytes += pack_bytes.get(pack, 0)
    for name in plan.orphan_packs:
        repo.backend.delete(name)
        deleted += 1
        progress.files += 1
    removed_tmp = repo.backend.remove_temp_files()
    return {"packs_deleted": deleted, "packs_written": len(written), "blobs_repacked": len(to_copy),
            "temp_files_removed": removed_tmp}
