"""Verifying a repository: structure always, and every stored byte with ``read_data``.

Each problem is reported with the object it was found in and, for lost data,
the snapshots and files it affects, so an administrator knows what to re-back-up.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import CellsBackupError, IntegrityError, UsageError
from .crypto import content_hash
from .keys import list_key_files, parse_key_file, verify_mac
from .pack import decode_blob, decode_header, header_length
from .progress import Progress
from .repository import Repository, pack_name


@dataclass
class CheckReport:
    errors: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    snapshots: int = 0
    packs: int = 0
    packs_read: int = 0
    blobs: int = 0
    trees: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, obj: str, message: str, **more: object) -> None:
        self.errors.append({"object": obj, "error": message, **more})


_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")
_SLICE = re.compile(r"^(\d+)/(\d+)$")


def parse_subset(spec: str) -> Callable[[str], bool]:
    """``"5%"`` picks that share of packs at random; ``"n/t"`` picks slice n of t, so t runs
    (e.g. a daily ``1/7`` .. ``7/7``) read everything once. UsageError when malformed."""
    text = spec.strip() if isinstance(spec, str) else ""
    m = _SLICE.match(text)
    if m:
        n, t = int(m.group(1)), int(m.group(2))
        if not 1 <= n <= t:
            raise UsageError(f"read data subset must be n/t with 1 <= n <= t, got {spec!r}")
        return lambda pack_hex: int(pack_hex[:8], 16) % t == n - 1
    m = _PERCENT.match(text)
    if not m:
        raise UsageError(f"read data subset must be a percentage (\"5%\") or a slice n/t (\"1/7\"), got \"{spec}\"")
    if not 0 < float(m.group(1)) <= 100:
        raise UsageError(f"read data subset must be a percentage above 0 and at most 100, got \"{spec}\"")
    pct = float(m.group(1))
    rng = random.SystemRandom()
    return lambda _pack_hex: rng.random() * 100 < pct


def check_repository(
    repo: Repository,
    *,
    read_data: bool = False,
    subset: str | None = None,
    progress: Callable[[str], None] | None = None,
    data_progress: Progress | None = None,
) -> CheckReport:
    """``progress`` is told each step; ``data_progress`` counts the packs and bytes read."""
    report = CheckReport()
    say = progress or (lambda _msg: None)

    say("keys")
    for name, _size in repo.backend.list("keys/"):
        try:
            key = parse_key_file(name, repo.backend.read(name))
        except CellsBackupError as exc:
            report.error(name, str(exc))
            continue
        if not verify_mac(key, repo.master):
            report.error(name, "key file was modified (authentication code mismatch)")

    say("index")
    for problem in repo.load_index():
        obj, _, msg = problem.partition(": ")
        report.error(obj, msg)

    say("packs")
    stored = dict(repo.backend.list("data/"))
    report.packs = len(stored)
    indexed_packs = {pack_name(p): p for p in repo.index.packs}
    for name in indexed_packs:
        if name not in stored:
            report.error(name, "pack named by the index is missing")
    for name in stored:
        if name not in indexed_packs:
            report.warnings.append(f"{name}: not in any index (left by an interrupted run; `prune` removes it)")

    say("snapshots")
    damaged_snapshots: list[str] = []
    snapshots = repo.list_snapshots(damaged=damaged_snapshots)
    for problem in damaged_snapshots:
        obj, _, msg = problem.partition(": ")
        report.error(obj, msg)
    report.snapshots = len(snapshots)
    missing_blobs: set[bytes] = set()
    seen_trees: set[str] = set()
    for snap in snapshots:
        _walk_trees(repo, snap.tree, snap.short_id, seen_trees, missing_blobs, report)
    report.trees = len(seen_trees)

    damaged_blobs: set[bytes] = set(missing_blobs)
    if read_data or subset:
        choose = parse_subset(subset) if subset else None
        names = [n for n in sorted(stored) if choose is None or choose(n.rsplit("/", 1)[1])]
        if subset and not names and stored:
            names = [sorted(stored)[0]]
        chosen = {name.rsplit("/", 1)[1] for name in names}
        by_pack: dict[str, list] = {}
        for blob, loc in repo.index.items():
            if loc is not None and loc.pack.hex() in chosen:
                by_pack.setdefault(loc.pack.hex(), []).append((blob, loc))
        counted = data_progress or Progress()
        counted.unit = "packs"
        counted.set_totals(len(names), sum(stored[name] for name in names))
        for i, name in enumerate(names):
            say(f"reading pack {i + 1}/{len(names)}")
            damaged_blobs |= _read_pack(repo, name, by_pack.get(name.rsplit("/", 1)[1], []), report)
            report.packs_read += 1
            counted.files += 1
            counted.bytes += stored[name]

    if damaged_blobs:
        _name_affected(repo, snapshots, damaged_blobs, report)
    return report


def _walk_trees(repo: Repository, tree_id: str, snap: str, seen: set[str], missing: set[bytes],
                report: CheckReport) -> None:
    for tid, nodes in repo.walk_trees([tree_id], seen):
        if isinstance(nodes, CellsBackupError):
            report.error(f"tree {tid[:16]}", str(nodes), snapshots=[snap])
            missing.add(bytes.fromhex(tid))
            continue
        for node in nodes:
            for blob_hex in node.get("content", []) if node["type"] == "file" else ():
                blob = bytes.fromhex(blob_hex)
                report.blobs += 1
                if not repo.index.has_stored(blob):
                    if blob not in missing:
                        report.error(f"blob {blob_hex[:16]}", "data blob is in no index", snapshots=[snap])
                    missing.add(blob)


def _read_pack(repo: Repository, name: str, expected: list, report: CheckReport) -> set[bytes]:
    """Verify a whole pack against the index entries for it; returns the ids of damaged blobs."""
    damaged: set[bytes] = set()
    pack_hex = name.rsplit("/", 1)[1]
    try:
        data = repo.backend.read(name)
    except CellsBackupError as exc:
        report.error(name, f"cannot read: {exc}")
        return {blob for blob, _ in expected}
    if content_hash(data) != pack_hex:
        report.error(name, "content does not match its name (damaged)")
    try:
        hlen = header_length(data[-4:], len(data), name)
        decode_header(repo.cipher, data[len(data) - 4 - hlen : len(data) - 4], len(data), name)
    except IntegrityError as exc:
        report.error(name, f"header: {exc}")
    for blob, loc in expected:
        stored = data[loc.offset : loc.offset + loc.length]
        try:
            if len(stored) != loc.length:
                raise IntegrityError(f"{name}: truncated")
            decode_blob(repo.cipher, repo.master.identity, stored, blob, loc.raw_length,
                        f"{name} blob {blob.hex()[:16]}")
        except IntegrityError as exc:
            damaged.add(blob)
            report.error(name, str(exc), blob=blob.hex())
    return damaged


def _name_affected(repo: Repository, snapshots: list, damaged: set[bytes], report: CheckReport) -> None:
    """Attach to the report which snapshots and files the damaged blobs belong to."""
    affected: dict[str, list[str]] = {}
    for snap in snapshots:
        try:
            for path, node in repo.walk(snap.tree):
                ids = node.get("content", []) if node["type"] == "file" else [node["subtree"]]
                if any(bytes.fromhex(b) in damaged for b in ids):
                    affected.setdefault(snap.short_id, []).append(path)
        except CellsBackupError:
            affected.setdefault(snap.short_id, []).append("(tree unreadable)")
    report.error("snapshots", "data lost in these snapshots", affected={k: v[:100] for k, v in affected.items()})


__all__ = ["CheckReport", "check_repository", "list_key_files", "parse_subset"]
