"""Restoring a Cells installation, on the same server or a new one, and proving it whole.

Order matters (docs/ARCHITECTURE.md, invariant 5: restore never destroys): refusals are
decided before anything is written; the vault key is written first; files, then the config
rewrite, then the database; finally `verify-install` runs on the result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..cells import (
    RewriteRequest,
    apply_edits,
    plan_rewrite,
    retarget_dsn,
    save_pydio_json,
    verify_installation,
)
from ..cells.dsn import mask_dsn
from ..cells.model import Installation
from ..cells.rewrite import ConfigEdit, map_path
from ..cells.verify import VerifyReport, verify_database
from ..database.dsn import parse_database_url, parse_pydio_dsn
from ..errors import CellsBackupError
from ..repository.progress import Progress
from ..repository.reader import StoredContent, open_content
from ..repository.repository import Repository
from ..repository.restorer import Restorer, RestoreResult, find_node
from ..repository.snapshot import Snapshot
from ..wording import plural
from .dbcheck import index_table_checker
from .restore_preflight import StepSummary, preflight, summarize, walk_plan
from .restore_steps import (
    DatabaseStep,
    DocumentsStep,
    RestorePlan,
    TreeStep,
    check_maps,
    mappable_paths,
    parse_maps,
    skip_done,
    split_mapped,
    without,
)

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


def _snapshot_config(repo: Repository, snap: Snapshot, config_path: str) -> dict:
    node = find_node(repo, snap.tree, config_path)
    if node is None or node["type"] != "file":
        raise CellsBackupError(f"snapshot {snap.short_id} has no {config_path}")
    with open_content(repo, node.get("content", [])) as f:
        return json.loads(f.read())


def plan_restore(repo: Repository, snap: Snapshot, req: InstallationRestoreRequest) -> RestorePlan:
    """Everything the restore will do, decided from the snapshot alone; nothing is touched yet."""
    repo.load_index()
    inst = Installation.from_dict(snap.extra["installation"])
    old_wd = str(inst.working_dir)
    user_maps = parse_maps(req.maps)
    config = _snapshot_config(repo, snap, str(inst.config_path)) if user_maps or req.only in (None, "config") else {}
    if user_maps:
        components = snap.extra.get("components", [])
        check_maps(user_maps, inst, lambda p: find_node(repo, snap.tree, p) is not None, config,
                   mappable_paths(inst, components, snap.extra.get("extra_paths", [])))
    new_wd = os.path.abspath(req.cells_dir) if req.cells_dir else map_path(old_wd, user_maps)
    path_map = ([(old_wd, new_wd)] if new_wd != old_wd else []) + user_maps
    trees = [] if req.only == "database" else split_mapped(_plan_trees(repo, snap, inst, req.only, path_map),
                                                           user_maps)
    databases = _plan_databases(snap, inst, req, path_map) if req.only in (None, "database") else []
    documents = _plan_documents(snap, inst, req) if req.only in (None, "database") else None
    if req.only == "database" and not databases and documents is None:
        raise CellsBackupError(f"snapshot {snap.short_id} holds no database")
    edits: list[ConfigEdit] = []
    if req.only in (None, "config"):
        default = inst.default_database
        dsn = retarget_dsn(default.dsn, req.database_url) if req.database_url and default else None
        edits = plan_rewrite(config, inst, RewriteRequest(
            path_map=path_map, external_url=req.external_url, bind=req.bind, peer_address=req.peer_address,
            clear_peer_address=req.clear_peer_address, database_dsn=dsn))
    return RestorePlan(inst, path_map, new_wd, trees, databases, edits, documents)


def _plan_trees(repo: Repository, snap: Snapshot, inst: Installation, only: str | None,
                path_map: list[tuple[str, str]]) -> list[TreeStep]:
    """The file trees of ``--only`` (all of them without it), each with where it goes."""
    if only not in (None, *ONLY_CHOICES):
        path = "/" + only.strip("/")
        if find_node(repo, snap.tree, path) is None:
            raise CellsBackupError(f"{path} is not in snapshot {snap.short_id}")
        return [TreeStep(path, map_path(path, path_map), "path")]
    data_roots = sorted({ds.parent_folder for ds in inst.local_datasources() if ds.parent_folder})
    trees: list[TreeStep] = []
    if inst.key_file is not None and only in (None, "config"):
        trees.append(TreeStep(str(inst.key_file), map_path(str(inst.key_file), path_map), "vault key (first)"))
    for comp in snap.extra.get("components", []):
        src = comp["path"]
        dest = map_path(src, path_map)
        in_data = [r for r in data_roots if r == src or r.startswith(src + "/")]
        if only == "config":
            if comp["kind"] != "datasource-parent":
                inner = [r[len(src):] for r in in_data if r != src]
                trees.append(TreeStep(src, dest, comp["name"] + " (config only)", without(inner)))
        elif only == "data":
            if comp["kind"] == "datasource-parent":
                trees.append(TreeStep(src, dest, comp["name"]))
            else:
                trees += [TreeStep(r, map_path(r, path_map), "datasources") for r in in_data if r != src]
        else:
            trees.append(TreeStep(src, dest, comp["name"]))
    if only is None:
        trees += [TreeStep(extra, map_path(extra, path_map), "extra path")
                  for extra in snap.extra.get("extra_paths", [])]
    return trees


def _plan_databases(snap: Snapshot, inst: Installation, req: InstallationRestoreRequest,
                    path_map: list[tuple[str, str]]) -> list[DatabaseStep]:
    refs = {ref.key: ref for ref in inst.sql_databases()}
    databases = []
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
    return databases


def _plan_documents(snap: Snapshot, inst: Installation, req: InstallationRestoreRequest) -> DocumentsStep | None:
    saved = snap.extra.get("documents")
    if not saved or req.skip_documents:
        return None
    uri = req.documents_url or inst.document_store
    if not uri:
        raise CellsBackupError(f"snapshot {snap.short_id} holds a MongoDB archive; give --documents-url")
    archive = f"{saved['path']}/{saved['manifest'].get('archive', 'mongodump.archive')}"
    return DocumentsStep(archive, uri, saved["manifest"])


@dataclass
class DryRun:
    plan: RestorePlan
    checks: list[str]  # the pre-flight checks that passed
    steps: list[StepSummary]
    paths: list[str] | None  # every destination, when asked for


def dry_run(repo: Repository, snap: Snapshot, req: InstallationRestoreRequest, *, list_files: bool = False) -> DryRun:
    """The plan and the real run's pre-flight checks (raising as it would), writing nothing."""
    plan = plan_restore(repo, snap, req)
    mongorestore = _mongorestore(plan)
    checks = preflight(plan, req.force)
    if mongorestore:
        checks.append(f"mongorestore found: {mongorestore}")
    paths: list[str] | None = [] if list_files else None
    return DryRun(plan, checks, summarize(repo, snap, plan.trees, paths), paths)


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


def _file_totals(repo: Repository, snap: Snapshot, trees: list[TreeStep]) -> tuple[int, int]:
    """The regular files and bytes the tree steps restore (their trees read, not their data)."""
    files = size = 0
    for _i, _dest, node in walk_plan(repo, snap, trees):
        if node["type"] == "file":
            files += 1
            size += int(node.get("size", 0))
    return files, size


def restore_installation(
    repo: Repository, snap: Snapshot, req: InstallationRestoreRequest, *, info: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> InstallationRestoreResult:
    """``progress``, when given, gets the files and bytes of the tree steps, then counts them."""
    info = info or (lambda _m: None)
    plan = plan_restore(repo, snap, req)
    mongorestore = _mongorestore(plan)  # missing: stop before anything is written
    preflight(plan, req.force)
    restorer = Restorer(repo, owner=req.owner, overwrite=req.force, progress=progress)
    steps = [skip_done(step, plan.trees[:i]) for i, step in enumerate(plan.trees)]
    if progress is not None:
        progress.set_totals(*_file_totals(repo, snap, plan.trees))
    for step in steps:
        info(f"restoring {step.source} -> {step.dest}")
        _restore_tree_step(repo, snap, step, restorer)
    if plan.edits:
        config_path = Path(plan.new_working_dir) / "pydio.json"
        from ..cells import read_pydio_json

        save_pydio_json(config_path, apply_edits(read_pydio_json(config_path), plan.edits))
        info(f"rewrote {plural(len(plan.edits), 'setting')} in {config_path}")
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
    result.whole = not restorer.result.errors
    if req.only in (None, "config", "data", "database"):
        report = _verify(plan, req.only)
        result.verify = report.to_dict()
        result.whole = result.whole and report.whole
    return result


def _verify(plan: RestorePlan, only: str | None) -> VerifyReport:
    """verify-install on what was restored: with --only database, the database alone (its index
    tables), not a working dir this restore did not touch."""
    target = plan.databases[0].target if plan.databases else None
    check = index_table_checker(target) if target is not None and target.kind == "mysql" else None
    if only == "database":
        return verify_database(plan.installation, check) if check is not None else VerifyReport()
    return verify_installation(Path(plan.new_working_dir), database_check=check)
