"""Backing up and restoring plain directory trees: the engine's generic path.

The Cells-aware commands build on these with the installation's components.
"""

from __future__ import annotations

import fnmatch
import getpass
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import CellsBackupError, TargetNotEmptyError
from ..repository.archiver import Archiver, VirtualDir
from ..repository.lock import Lock
from ..repository.progress import Progress
from ..repository.repository import Repository
from ..repository.snapshot import Snapshot
from ..repository.writer import BlobWriter

if TYPE_CHECKING:
    from ..repository.restorer import RestoreResult

LOCK_WAIT = 30.0


def exclude_matcher(patterns: Iterable[str]) -> Callable[[str, bool], bool] | None:
    """Glob patterns: no slash matches a name anywhere; ``/abs/glob`` an absolute path;
    ``rel/glob`` the end of a path."""
    plain, absolute, relative = [], [], []
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if not pattern:
            continue
        if "/" not in pattern:
            plain.append(pattern)
        elif pattern.startswith("/"):
            absolute.append(pattern)
        else:
            relative.append("*/" + pattern)
    if not (plain or absolute or relative):
        return None

    def excluded(path: str, _is_dir: bool) -> bool:
        name = os.path.basename(path)
        return (
            any(fnmatch.fnmatchcase(name, p) for p in plain)
            or any(fnmatch.fnmatchcase(path, p) for p in absolute)
            or any(fnmatch.fnmatchcase(path, p) for p in relative)
        )

    return excluded


def choose_parent(repo: Repository, paths: list[str], hostname: str) -> Snapshot | None:
    """The latest snapshot of the same paths from this host: its metadata spares re-reading files."""
    wanted = sorted(paths)
    candidates = [s for s in repo.list_snapshots() if s.hostname == hostname and sorted(s.paths) == wanted]
    return candidates[-1] if candidates else None


@dataclass
class BackupRequest:
    paths: list[str]
    virtual: list[VirtualDir] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    exclude_fn: Callable[[str, bool], bool] | None = None
    time: datetime | None = None
    extra: dict = field(default_factory=dict)
    components: list[str] = field(default_factory=list)
    cells_version: str | None = None
    live: bool = False
    lock_wait: float = LOCK_WAIT
    read_ahead: Snapshot | None = None  # what `read_ahead` stored: the parent, its data counted
    started: float | None = None  # time.monotonic() when the whole run began (hooks, read-ahead)


def run_backup(
    repo: Repository,
    request: BackupRequest,
    *,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    before_snapshot: Callable[[Snapshot], None] | None = None,
    on_files_done: Callable[[], None] | None = None,
) -> Snapshot:
    """Archive the request's trees and streams and store the snapshot (written last)."""
    started = request.started or time.monotonic()
    paths = _existing_paths(request)
    with Lock(repo, exclusive=False, purpose="backup").acquire(request.lock_wait):
        repo.load_index()
        parent = request.read_ahead or choose_parent(repo, paths, socket.gethostname())
        _expect(progress, parent)
        tree_id, archiver = _archive(repo, request, paths, parent, request.virtual, progress, warn, on_files_done)
        snapshot = make_snapshot(repo, tree_id, paths, archiver, parent=parent, tags=request.tags,
                                 when=request.time, extra=request.extra)
        if request.read_ahead is not None:  # not a stored snapshot: record the real parent, count its work
            snapshot.parent = request.read_ahead.parent
            merge_read_ahead(snapshot.summary, request.read_ahead.summary)
        snapshot.components = request.components
        snapshot.cells_version = request.cells_version
        snapshot.live = request.live
        if before_snapshot is not None:
            before_snapshot(snapshot)
        snapshot.summary["duration"] = round(time.monotonic() - started, 3)
        repo.save_snapshot(snapshot)
    return snapshot


def _expect(progress: Progress | None, parent: Snapshot | None) -> None:
    """The parent's totals as an estimate of this backup's, for percent and ETA."""
    if parent is not None and progress is not None:
        progress.expected_files = int(parent.summary.get("total_files", 0))
        progress.expected_bytes = int(parent.summary.get("total_bytes", 0))


def merge_read_ahead(summary: dict, ahead: dict) -> None:
    """Count a read-ahead pass into the summary of the pass that followed it.

    The second pass compares with the read-ahead, so what the read-ahead found new or changed
    (compared with the real parent) shows there as unmodified: it is counted as new or changed.
    """
    for key in ("data_added", "blobs_new", "data_stored"):
        summary[key] = summary.get(key, 0) + ahead.get(key, 0)
    moved = ahead.get("files_new", 0) + ahead.get("files_changed", 0)
    summary["files_new"] = summary.get("files_new", 0) + ahead.get("files_new", 0)
    summary["files_changed"] = summary.get("files_changed", 0) + ahead.get("files_changed", 0)
    summary["files_unmodified"] = max(0, summary.get("files_unmodified", 0) - moved)


def make_snapshot(
    repo: Repository,
    tree_id: str,
    paths: list[str],
    archiver: Archiver,
    *,
    parent: Snapshot | None,
    tags: Iterable[str] = (),
    when: datetime | None = None,
    extra: dict | None = None,
) -> Snapshot:
    summary = archiver.summary
    summary.data_added = archiver.writer.stats.bytes_new
    summary.blobs_new = archiver.writer.stats.blobs_new
    summary.data_stored = archiver.writer.stats.bytes_stored
    return Snapshot(
        time=(when or datetime.now(UTC)).astimezone().isoformat(),
        hostname=socket.gethostname(),
        username=getpass.getuser(),
        paths=sorted(paths),
        tree=tree_id,
        parent=parent.id if parent else None,
        tags=sorted(set(tags)),
        partial=bool(archiver.errors),
        errors=archiver.errors[:1000],
        summary=summary.as_dict(),
        program_version=__version__,
        extra=extra or {},
    )


def _existing_paths(request: BackupRequest) -> list[str]:
    for path in request.paths:
        if not os.path.lexists(path):
            raise CellsBackupError(f"{path} does not exist")
    return [os.path.abspath(p) for p in request.paths]


def _archive(repo: Repository, request: BackupRequest, paths: list[str], parent: Snapshot | None,
             virtual: list[VirtualDir], progress: Progress | None, warn: Callable[[str], None] | None,
             on_files_done: Callable[[], None] | None) -> tuple[str, Archiver]:
    """Store the trees (and streams) of a request; returns the root tree id and the archiver."""
    user_exclude = exclude_matcher(request.excludes)
    extra_exclude = request.exclude_fn

    def both(path: str, is_dir: bool) -> bool:
        return user_exclude(path, is_dir) or extra_exclude(path, is_dir)

    exclude = both if user_exclude and extra_exclude else user_exclude or extra_exclude

    with BlobWriter(repo) as writer:
        archiver = Archiver(repo, writer, parent=parent, exclude=exclude, progress=progress, warn=warn,
                            on_files_done=on_files_done)
        tree_id = archiver.archive(paths, virtual)
    return tree_id, archiver


def read_ahead(repo: Repository, request: BackupRequest, progress: Progress | None = None) -> Snapshot:
    """Store the request's files (not its streams) without writing a snapshot.

    Used before Cells is stopped: the snapshot returned, kept in memory, is then the parent of the
    real backup, which re-reads only what changed since, so Cells stays stopped for a quick check
    of the files instead of a full one. What this pass stores is re-used, or removed by `prune`.
    """
    paths = _existing_paths(request)
    with Lock(repo, exclusive=False, purpose="backup").acquire(request.lock_wait):
        repo.load_index()
        parent = choose_parent(repo, paths, socket.gethostname())
        # No estimate from the parent, whose totals count its streams too: the walkers' count is closer.
        tree_id, archiver = _archive(repo, request, paths, parent, [], progress, lambda _m: None, None)
        return make_snapshot(repo, tree_id, paths, archiver, parent=parent, tags=request.tags, when=request.time)


def ensure_empty_target(target: str, force: bool) -> None:
    if os.path.isdir(target) and os.listdir(target) and not force:
        raise TargetNotEmptyError(f"restore target {target} is not empty (use --force to restore into it)")
    if os.path.exists(target) and not os.path.isdir(target):
        raise CellsBackupError(f"restore target {target} exists and is not a directory")


def restore_tree(
    repo: Repository,
    snapshot: Snapshot,
    target: str,
    *,
    only: str | None = None,
    force: bool = False,
    owner: tuple[int, int] | None = None,
    on_file: Callable[[str, int], None] | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore a snapshot (or the subtree ``only``) under ``target``, keeping full paths."""
    from ..repository.restorer import Restorer, find_node  # only restores need it

    ensure_empty_target(target, force)
    repo.load_index()
    select = None
    if progress is not None:
        progress.set_totals(int(snapshot.summary.get("total_files", 0)), int(snapshot.summary.get("total_bytes", 0)))
    if only:
        wanted = "/" + only.strip("/")
        node = find_node(repo, snapshot.tree, wanted)
        if node is None:
            raise CellsBackupError(f"{wanted} is not in snapshot {snapshot.short_id}")
        if progress is not None:
            progress.set_totals(*files_under(repo, node))

        def select(rel: str) -> bool:
            return rel == wanted or rel.startswith(wanted + "/") or wanted.startswith(rel + "/")

    restorer = Restorer(repo, owner=owner, overwrite=force, on_file=on_file, progress=progress)
    return restorer.restore_tree(snapshot.tree, target, select=select)


def files_under(repo: Repository, node: dict) -> tuple[int, int]:
    """How many files and bytes a snapshot's node holds (its trees read, not its data)."""
    if node["type"] != "dir":
        return int(node["type"] == "file"), int(node.get("size", 0))
    files = size = 0
    for _path, child in repo.walk(node["subtree"]):
        if child["type"] == "file":
            files += 1
            size += int(child.get("size", 0))
    return files, size
