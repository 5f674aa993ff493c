"""`inspect`: what a backup would take, with sizes, and what the administrator should know."""

from __future__ import annotations

import os

from ..cells import backup_plan, detect_running, find_working_dir, load_installation, not_backed_up, warnings
from ..cells.model import Datasource
from ..cells.vault import vault_problem
from ..errors import CellsBackupError
from .installation_backup import component_excluder, database_sources


def _measure(root: str, excluded) -> tuple[int, int]:
    files = size = 0
    if os.path.isfile(root):
        return 1, os.lstat(root).st_size
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not excluded(os.path.join(dirpath, d), True)]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if excluded(path, False):
                continue
            try:
                size += os.lstat(path).st_size
                files += 1
            except OSError:
                continue
    return files, size


def _datasource(ds: Datasource, excluded) -> dict:
    """A datasource with the files and bytes of its folder (None when not local or missing)."""
    files = size = None
    if ds.is_local and ds.folder and os.path.isdir(ds.folder):
        files, size = _measure(ds.folder, excluded)
    return {"name": ds.name, "type": ds.storage_type, "flat": ds.flat, "folder": ds.folder,
            "parent": ds.parent_folder, "peer_address": ds.peer_address, "files": files, "bytes": size}


def inspect_installation(cells_dir: str | None, database_url: str | None = None) -> dict:
    inst = load_installation(find_working_dir(cells_dir), database_optional=True)  # said as a warning
    components = backup_plan(inst)
    excluded = component_excluder(components)
    comps = []
    for comp in components:
        files, size = _measure(str(comp.path), excluded)
        comps.append({"name": comp.name, "kind": comp.kind, "path": str(comp.path), "reason": comp.reason,
                      "files": files, "bytes": size,
                      "excludes": [{"pattern": e.pattern, "reason": e.reason} for e in comp.excludes]})
    notes = list(warnings(inst))
    if problem := vault_problem(inst.vault_file, inst.key_file):
        notes.append(problem)
    status = detect_running(inst)
    if status.running:
        notes.insert(0, "Cells is running (" + "; ".join(status.evidence[:2]) + "): a backup needs "
                     "--stop-command/--start-command or --live")
    dbs = []
    for source in database_sources(inst, database_url):
        entry = {"key": source.key, "kind": source.conn.kind, "connection": source.conn.redacted()}
        try:
            from ..database.probe import check_connection
            from ..database.summary import database_summary

            entry["server"] = check_connection(source.conn)
            entry |= database_summary(source.conn)
        except CellsBackupError as exc:
            entry["error"] = str(exc)
            notes.append(f"database {source.key[:12]}: {exc}")
        dbs.append(entry)
    return {
        "working_dir": str(inst.working_dir),
        "cells_version": inst.cells_version,
        "config_shape": inst.config_shape,
        "running": status.running,
        "components": comps,
        "databases": dbs,
        "document_store": bool(inst.document_store),
        "sites": [{"binds": s.binds, "external_url": s.external_url, "tls": s.tls} for s in inst.sites],
        "datasources": [_datasource(d, excluded) for d in inst.datasources],
        "not_backed_up": [{"name": s.name, "reason": s.reason} for s in not_backed_up(inst)],
        "warnings": notes,
    }
