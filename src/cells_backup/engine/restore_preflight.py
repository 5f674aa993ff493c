"""What a restore checks before it writes anything, and what `restore --dry-run` shows of it.

The dry run runs the very checks of the real run (docs/ARCHITECTURE.md, invariant 5: restore
never destroys): Cells running in the target (exit 13), a target folder or database not empty
without --force (exit 14), a database that cannot be reached or refuses the credentials (exit 1,
even with --force: files written for a database that cannot be loaded would be half a restore).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..cells import detect_running, load_installation
from ..errors import CellsBackupError, CellsRunningError, TargetNotEmptyError
from ..repository.repository import Repository
from ..repository.restorer import find_node
from ..repository.snapshot import Snapshot
from .restore_steps import DatabaseStep, RestorePlan, TreeStep, skip_done


def preflight(plan: RestorePlan, force: bool) -> list[str]:
    """Raise on what forbids the restore; otherwise return one line per check that passed."""
    checked = [_not_running(plan.new_working_dir)]
    busy = [s.dest for s in plan.trees if _occupied(s.dest)]
    if busy and not force:
        raise TargetNotEmptyError(f"restore target not empty: {', '.join(busy[:5])} (use --force to restore over it)")
    if busy:
        checked.append(f"not empty, files there are replaced (--force): {', '.join(busy[:5])}")
    elif plan.trees:
        checked.append("every target folder is new or empty")
    checked += [_database_ready(step, force) for step in plan.databases]
    return checked


def _not_running(working_dir: str) -> str:
    if not (Path(working_dir) / "pydio.json").exists():
        return f"Cells is not running in {working_dir} (no installation there yet)"
    try:
        status = detect_running(load_installation(Path(working_dir)))
    except CellsBackupError:
        return f"Cells is not running in {working_dir} (its pydio.json does not load)"
    if status.running:
        raise CellsRunningError(f"Cells is running in {working_dir} ({'; '.join(status.evidence[:2])}); stop it first")
    return f"Cells is not running in {working_dir}"


def _occupied(dest: str) -> bool:
    if os.path.isdir(dest):
        return bool(os.listdir(dest))
    return os.path.lexists(dest)


def _database_ready(step: DatabaseStep, force: bool) -> str:
    """Connect as the load will (bad credentials or no server: DatabaseError, exit 1) and look for tables."""
    from ..database.probe import is_empty

    where = step.target.redacted()
    if force and step.target.kind == "sqlite":  # a file, replaced whole: even a damaged one
        return f"database {where}: the file is replaced (--force)"
    if is_empty(step.target):
        return f"database {where} reachable, and empty or new"
    if not force:
        raise TargetNotEmptyError(f"database {where} is not empty (use --force to replace its tables)")
    return f"database {where} reachable, not empty: its tables are replaced (--force)"


@dataclass
class StepSummary:
    step: TreeStep
    files: int = 0
    dirs: int = 0
    bytes: int = 0

    def to_dict(self) -> dict:
        return {"from": self.step.source, "to": self.step.dest, "what": self.step.what, "files": self.files,
                "dirs": self.dirs, "bytes": self.bytes}


def walk_plan(repo: Repository, snap: Snapshot, trees: list[TreeStep]) -> Iterator[tuple[int, str, dict]]:
    """(step index, destination, snapshot node) of everything the restore writes, in order.

    Directories' destinations end with "/".
    """
    for i, step in enumerate(trees):
        step = skip_done(step, trees[:i])
        node = find_node(repo, snap.tree, step.source)
        if node is None:
            continue
        if node["type"] != "dir":
            yield i, step.dest, node
            continue
        yield i, step.dest + "/", node
        for rel, child in repo.walk(node["subtree"], "/"):
            if step.select is None or step.select(rel):
                yield i, os.path.join(step.dest, rel.lstrip("/")) + ("/" if child["type"] == "dir" else ""), child


def summarize(repo: Repository, snap: Snapshot, trees: list[TreeStep],
              paths: list[str] | None = None) -> list[StepSummary]:
    """Files, directories and bytes each step writes; every destination appended to ``paths`` if given."""
    sums = [StepSummary(step) for step in trees]
    for i, dest, node in walk_plan(repo, snap, trees):
        if node["type"] == "dir":
            sums[i].dirs += 1
        else:
            sums[i].files += 1
            sums[i].bytes += node.get("size", 0)
        if paths is not None:
            paths.append(dest)
    return sums
