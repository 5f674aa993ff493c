"""Restoring a Cells installation, on the same server or a new one, and proving it whole.

Order matters (DESIGN invariant 5): refusals are decided before anything is written; the
vault key is written first; files, then the config rewrite, then the database; finally
`verify-install` runs on the result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..cells import (
    RewriteRequest,
    apply_edits,
    detect_running,
    load_installation,
    plan_rewrite,
    render_diff,
    retarget_dsn,
    save_pydio_json,
    verify_installation,
)
from ..cells.dsn import mask_dsn
from ..cells.model import Installation
from ..cells.rewrite import ConfigEdit, map_path
from ..database.dsn import ConnectionInfo, parse_database_url, parse_pydio_dsn
from ..errors import CellsBackupError, CellsRunningError, TargetNotEmptyError, UsageError
from ..repository.progress import Progress
from ..repository.reader import StoredContent, open_content
from ..repository.repository import Repository
from ..repository.restorer import Restorer, RestoreResult, find_node
from ..repository.snapshot import Snapshot
from .dbcheck import index_table_checker

ONLY_CHOICES = ("config", "data", "database")


@dataclass
class InstallationRestoreRequest:
    cells_dir: str | None = None
    maps: list[str] = field(default_factory=list)
    database_url: str | None = None
    external_url: str | None = None
    bind: str | None = None
    peer_address: str | None = None
    clear_peer_address: bool = False
    only: str | None = None
    owner: tuple[int, int] | None = None
    dry_run: bool = False
    force: bool = False
    documents_url: str | None = None  # load the MongoDB archive there instead of the recorded DSN
    skip_documents: bool = False


@dataclass
class TreeStep:
    source: str  # path in the snapshot
    dest: str  # where it goes
    what: str
    select: Callable[[str], bool] | None = None


@dataclass
class DatabaseStep:
    key: str
    source: str
    target: ConnectionInfo
    manifest: dict


@dataclass
class DocumentsStep:
    """The MongoDB archive of the snapshot, loaded with mongorestore into the document store."""

    source: str  # the archive's path in the snapshot
    uri: str
    manifest: dict


@dataclass
class RestorePlan:
    installation: Installation
    path_map: list[tuple[str, str]]
    new_working_dir: str
    trees: list[TreeStep]
    databases: list[DatabaseStep]
    edits: list[ConfigEdit]
    documents: DocumentsStep | None = None

    def describe(self) -> dict:
        return {
            "working_dir": self.new_working_dir,
            "path_map": [{"old": o, "new": n} for o, n in self.path_map],
            "files": [{"from": t.source, "to": t.dest, "what": t.what} for t in self.trees],
            "databases": [{"key": d.key, "to": d.target.redacted(), "tables": len(d.manifest.get("tables", {}))}
                          for d in self.databases],
            "config_edits": [e.to_dict() for e in self.edits],
            "documents": None if self.documents is None else {
                "to": mask_dsn(self.documents.uri), "documents": self.documents.manifest.get("documents", 0)},
        }

    def render(self) -> str:
        lines = [f"working dir: {self.new_working_dir}"]
        lines += [f"restore {t.source} -> {t.dest}  ({t.what})" for t in self.trees]
        lines += [f"load database {d.key[:12]} ({len(d.manifest.get('tables', {}))} tables) -> "
                  f"{d.target.redacted()}" for d in self.databases]
        if self.documents is not None:
            lines.append(f"load documents ({self.documents.manifest.get('documents', 0)}) with mongorestore -> "
                         f"{mask_dsn(self.documents.uri)}")
        lines.append("pydio.json edits:" if self.edits else "pydio.json: no edits")
        if self.edits:
            lines.append(render_diff(self.edits))
        return "\n".join(lines)


def parse_maps(maps: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in maps:
        old, sep, new = item.partition("=")
        if not sep or not old.startswith("/") or not new.startswith("/"):
            raise UsageError(f"--map {item!r}: expected /old/path=/new/path")
        out.append((old.rstrip("/") or "/", new.rstrip("/") or "/"))
    return out


def _snapshot_config(repo: Repository, snap: Snapshot, config_path: str) -> dict:
    node = find_node(repo, snap.tree, config_path)
    if node is None or node["type"] != "file":
        raise CellsBackupError(f"snapshot {snap.short_id} has no {config_path}")
    with open_content(repo, node.get("content", [])) as f:
        return json.loads(f.read())


def plan_restore(repo: Repository, snap: Snapshot, req: InstallationRestoreRequest) -> RestorePlan:
    repo.load_index()
    inst = Installation.from_dict(snap.extra["installation"])
    old_wd = str(inst.working_dir)
    new_wd = os.path.abspath(req.cells_dir) if req.cells_dir else old_wd
    path_map = ([(old_wd, new_wd)] if new_wd != old_wd else []) + parse_maps(req.maps)
    only = req.only
    components = snap.extra.get("components", [])
    data_roots = sorted({ds.parent_folder for ds in inst.local_datasources() if ds.parent_folder})

    trees: list[TreeStep] = []
    if only not in ("database",):
        if inst.key_file is not None and only in (None, "config"):
            trees.append(TreeStep(str(inst.key_file), map_path(str(inst.key_file), path_map), "vault key (first)"))
        for comp in components:
            src = comp["path"]
            dest = map_path(src, path_map)
            in_data = [r for r in data_roots if r == src or r.startswith(src + "/")]
            if only == "config":
                if comp["kind"] == "datasource-parent":
                    continue
                inner = [r[len(src):] for r in in_data if r != src]
                trees.append(TreeStep(src, dest, comp["name"] + " (config only)", _without(inner)))
            elif only == "data":
                if comp["kind"] == "datasource-parent":
                    trees.append(TreeStep(src, dest, comp["name"]))
                else:
                    for root in in_data:
                        if root != src:
                            trees.append(TreeStep(root, map_path(root, path_map), "datasources"))
            elif only is None:
                trees.append(TreeStep(src, dest, comp["name"]))
        if only is None:
            for extra in snap.extra.get("extra_paths", []):
                trees.append(TreeStep(extra, map_path(extra, path_map), "extra path"))
        elif only not in ONLY_CHOICES:
            path = "/" + only.strip("/")
            if find_node(repo, snap.tree, path) is None:
                raise CellsBackupError(f"{path} is not in snapshot {snap.short_id}")
            trees = [TreeStep(path, map_path(path, path_map), "path")]

    databases: list[DatabaseStep] = []
    if only in (None, "database"):
        refs = {ref.key: ref for ref in inst.sql_databases()}
        for i, (key, info) in enumerate(snap.extra.get("databases", {}).items()):
            if i == 0 and req.database_url:
                target = parse_database_url(req.database_url)
            elif key in refs:
                target = parse_pydio_dsn(refs[key].driver, refs[key].dsn)
            else:
                raise CellsBackupError(f"no connection known for database {key}; give --database-url")
            if target.kind == "sqlite" and target.database:
                target = replace(target, database=map_path(target.database, path_map))
            databases.append(DatabaseStep(key, info["path"], target, info["manifest"]))
    documents = None
    saved = snap.extra.get("documents")
    if only in (None, "database") and saved and not req.skip_documents:
        uri = req.documents_url or inst.document_store
        if not uri:
            raise CellsBackupError(f"snapshot {snap.short_id} holds a MongoDB archive; give --documents-url")
        archive = f"{saved['path']}/{saved['manifest'].get('archive', 'mongodump.archive')}"
        documents = DocumentsStep(archive, uri, saved["manifest"])
    if only == "database" and not databases and documents is None:
        raise CellsBackupError(f"snapshot {snap.short_id} holds no database")

    edits: list[ConfigEdit] = []
    if only in (None, "config"):
        config = _snapshot_config(repo, snap, str(inst.config_path))
        default = inst.default_database
        dsn = retarget_dsn(default.dsn, req.database_url) if req.database_url and default else None
        edits = plan_rewrite(config, inst, RewriteRequest(
            path_map=path_map, external_url=req.external_url, bind=req.bind, peer_address=req.peer_address,
            clear_peer_address=req.clear_peer_address, database_dsn=dsn))
    return RestorePlan(inst, path_map, new_wd, trees, databases, edits, documents)


def _without(inner_roots: list[str]) -> Callable[[str], bool] | None:
    if not inner_roots:
        return None
    return lambda rel: not any(rel == r or rel.startswith(r + "/") for r in inner_roots)


def refuse_unsafe(plan: RestorePlan, force: bool) -> None:
    """Exit 13/14 conditions, checked before anything is written."""
    config = Path(plan.new_working_dir) / "pydio.json"
    if config.exists():
        try:
            status = detect_running(load_installation(Path(plan.new_working_dir)))
        except CellsBackupError:
            status = None
        if status is not None and status.running:
            raise CellsRunningError(
                f"Cells is running in {plan.new_working_dir} ({'; '.join(status.evidence[:2])}); stop it first"
            )
    if force:
        return
    busy = []
    for step in plan.trees:
        dest = step.dest
        if os.path.isdir(dest) and os.listdir(dest) or os.path.lexists(dest) and not os.path.isdir(dest):
            busy.append(dest)
    if busy:
        raise TargetNotEmptyError(f"restore target not empty: {', '.join(busy[:5])} (use --force to restore over it)")
    if plan.databases:
        from ..database.probe import is_empty

        for step in plan.databases:
            if not is_empty(step.target):
                raise TargetNotEmptyError(
                    f"database {step.target.redacted()} is not empty (use --force to replace its tables)")


def destinations(repo: Repository, snap: Snapshot, plan: RestorePlan) -> Iterator[str]:
    """Every path a restore of ``plan`` would write, in order (for --dry-run)."""
    for i, step in enumerate(plan.trees):
        step = _skip_done(step, plan.trees[:i])
        node = find_node(repo, snap.tree, step.source)
        if node is None:
            continue
        if node["type"] != "dir":
            yield step.dest
            continue
        yield step.dest + "/"
        for rel, child in repo.walk(node["subtree"], "/"):
            if step.select is None or step.select(rel):
                yield os.path.join(step.dest, rel.lstrip("/")) + ("/" if child["type"] == "dir" else "")


def _skip_done(step: TreeStep, earlier: list[TreeStep]) -> TreeStep:
    """Leave out what an earlier step (the vault key) already restored inside this tree."""
    inner = [e.source[len(step.source):] for e in earlier if e.source.startswith(step.source + "/")]
    if not inner:
        return step
    keep = _without(inner)
    base = step.select
    return TreeStep(step.source, step.dest, step.what,
                    lambda rel: keep(rel) and (base is None or base(rel)))


def _restore_tree_step(repo: Repository, snap: Snapshot, step: TreeStep, restorer: Restorer) -> None:
    node = find_node(repo, snap.tree, step.source)
    if node is None:
        restorer.result.errors.append({"path": step.source, "error": "not in the snapshot"})
        return
    if node["type"] == "dir":
        restorer.restore_tree(node["subtree"], step.dest, root_node=node, select=step.select)
        return
    parent_src, name = step.source.rsplit("/", 1)
    parent = find_node(repo, snap.tree, parent_src or "/")
    restorer.restore_tree(parent["subtree"], os.path.dirname(step.dest),
                          select=lambda rel, name=name: rel == "/" + name)


def database_parts(repo: Repository, snap: Snapshot, root: str) -> list[tuple[str, Callable]]:
    node = find_node(repo, snap.tree, root)
    if node is None:
        raise CellsBackupError(f"snapshot {snap.short_id}: database dump {root} is missing")
    found = []
    for path, n in repo.walk(node["subtree"], ""):
        if n["type"] == "file":
            found.append((n.get("size", 0), path.lstrip("/"), StoredContent(repo, n.get("content", []))))
    # Largest first: with tables loaded in parallel, the biggest one decides when the load ends.
    found.sort(key=lambda item: -item[0])
    return [(name, opener) for _size, name, opener in found]


def _mongorestore(plan: RestorePlan) -> str:
    if plan.documents is None:
        return ""
    from ..database.mongo import find_tool

    tool = find_tool("mongorestore")
    if tool is None:
        raise CellsBackupError("this snapshot holds the MongoDB document store and mongorestore is not installed; "
                               "install the MongoDB Database Tools and restore again")
    return tool


def _restore_documents(repo: Repository, snap: Snapshot, step: DocumentsStep, tool: str, force: bool,
                       info: Callable[[str], None]) -> dict:
    from ..database.mongo import restore_documents

    node = find_node(repo, snap.tree, step.source)
    if node is None:
        raise CellsBackupError(f"snapshot {snap.short_id}: {step.source} is missing")
    info(f"loading documents into {mask_dsn(step.uri)}")
    with open_content(repo, node.get("content", [])) as archive:
        return restore_documents(step.uri, archive, step.manifest, tool=tool, drop=force)


@dataclass
class InstallationRestoreResult:
    plan: RestorePlan
    files: RestoreResult
    databases: list[dict] = field(default_factory=list)
    documents: dict | None = None
    verify: dict | None = None
    whole: bool = True


def _files_of_step(repo: Repository, snap: Snapshot, step: TreeStep) -> tuple[int, int]:
    """The files and bytes a tree step restores (its trees read, not its data)."""
    node = find_node(repo, snap.tree, step.source)
    if node is None or node["type"] != "dir":
        return (1, int(node.get("size", 0))) if node is not None and node["type"] == "file" else (0, 0)
    files = size = 0
    for rel, child in repo.walk(node["subtree"], "/"):
        if child["type"] == "file" and (step.select is None or step.select(rel)):
            files += 1
            size += int(child.get("size", 0))
    return files, size


def restore_installation(
    repo: Repository, snap: Snapshot, req: InstallationRestoreRequest, *, info: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> InstallationRestoreResult:
    """``progress``, when given, gets the files and bytes of the tree steps, then counts them."""
    info = info or (lambda _m: None)
    plan = plan_restore(repo, snap, req)
    mongorestore = _mongorestore(plan)  # missing: stop before anything is written
    refuse_unsafe(plan, req.force)
    restorer = Restorer(repo, owner=req.owner, overwrite=req.force, progress=progress)
    steps = [_skip_done(step, plan.trees[:i]) for i, step in enumerate(plan.trees)]
    if progress is not None:
        counts = [_files_of_step(repo, snap, step) for step in steps]
        progress.set_totals(sum(f for f, _b in counts), sum(b for _f, b in counts))
    for step in steps:
        info(f"restoring {step.source} -> {step.dest}")
        _restore_tree_step(repo, snap, step, restorer)
    if plan.edits:
        config_path = Path(plan.new_working_dir) / "pydio.json"
        from ..cells import read_pydio_json

        save_pydio_json(config_path, apply_edits(read_pydio_json(config_path), plan.edits))
        info(f"rewrote {len(plan.edits)} setting(s) in {config_path}")
    db_reports = []
    for step in plan.databases:
        from ..database.load import restore_database

        info(f"loading database into {step.target.redacted()}")
        report = restore_database(step.target, database_parts(repo, snap, step.source), step.manifest,
                                  force=req.force)
        db_reports.append(report.to_dict())
    result = InstallationRestoreResult(plan, restorer.result, db_reports)
    if plan.documents is not None:
        result.documents = _restore_documents(repo, snap, plan.documents, mongorestore, req.force, info)
    if req.only in (None, "config", "data", "database"):
        target = plan.databases[0].target if plan.databases else None
        check = index_table_checker(target) if target is not None and target.kind == "mysql" else None
        report = verify_installation(Path(plan.new_working_dir), database_check=check)
        result.verify = report.to_dict()
        result.whole = report.whole and not restorer.result.errors
    else:
        result.whole = not restorer.result.errors
    return result
