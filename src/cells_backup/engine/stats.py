"""`stats`: how big the repository and its snapshots are, and what dedup and compression save."""

from __future__ import annotations

from ..repository.repository import Repository
from ..repository.snapshot import Snapshot


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def repository_stats(repo: Repository) -> dict:
    repo.load_index()
    snapshots = repo.list_snapshots()
    stored = repo.stored_bytes(packs_only=True)
    unique_raw = 0
    unique_stored = 0
    blobs = 0
    for _blob, loc in repo.index.items():
        if loc is not None:
            blobs += 1
            unique_raw += loc.raw_length
            unique_stored += loc.length
    logical = sum(int(s.summary.get("total_bytes", 0)) for s in snapshots)
    return {
        "snapshots": len(snapshots),
        "logical_size": logical,
        "unique_size": unique_raw,
        "stored_size": stored,
        "blobs": blobs,
        "packs": len(repo.index.packs),
        "dedup_ratio": _ratio(logical, unique_raw),
        "compression_ratio": _ratio(unique_raw, unique_stored),
        "total_ratio": _ratio(logical, stored),
    }


def snapshot_stats(repo: Repository, snapshot: Snapshot) -> dict:
    repo.load_index()
    files = dirs = 0
    logical = 0
    seen: set[str] = set()
    unique_raw = unique_stored = 0
    for _path, node in repo.walk(snapshot.tree):
        if node["type"] == "dir":
            dirs += 1
        elif node["type"] == "file":
            files += 1
            logical += node.get("size", 0)
            for blob in node.get("content", []):
                if blob in seen:
                    continue
                seen.add(blob)
                loc = repo.index.get(bytes.fromhex(blob))
                if loc is not None:
                    unique_raw += loc.raw_length
                    unique_stored += loc.length
    return {
        "id": snapshot.id,
        "files": files,
        "dirs": dirs,
        "logical_size": logical,
        "unique_size": unique_raw,
        "stored_size": unique_stored,
        "chunks": len(seen),
        "dedup_ratio": _ratio(logical, unique_raw),
        "compression_ratio": _ratio(unique_raw, unique_stored),
    }
