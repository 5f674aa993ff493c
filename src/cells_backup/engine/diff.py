"""`diff A B`: what changed between two snapshots, files and database tables."""

from __future__ import annotations

from ..repository.repository import Repository
from ..repository.snapshot import Snapshot


def _index(repo: Repository, tree_id: str) -> dict[str, dict]:
    return {path: node for path, node in repo.walk(tree_id)}


def _same(a: dict, b: dict) -> bool:
    keys = ("type", "mode", "uid", "gid", "size", "content", "subtree", "target")
    return all(a.get(k) == b.get(k) for k in keys if k != "subtree")


def diff_snapshots(repo: Repository, a: Snapshot, b: Snapshot) -> dict:
    repo.load_index()
    old, new = _index(repo, a.tree), _index(repo, b.tree)
    added = [{"path": p, "type": n["type"], "size": n.get("size", 0)} for p, n in new.items() if p not in old]
    removed = [{"path": p, "type": n["type"], "size": n.get("size", 0)} for p, n in old.items() if p not in new]
    changed = []
    for path, node in new.items():
        before = old.get(path)
        if before is not None and node["type"] != "dir" and not _same(before, node):
            what = "content" if before.get("content") != node.get("content") else "metadata"
            changed.append({"path": path, "type": node["type"], "what": what,
                            "size_before": before.get("size", 0), "size_after": node.get("size", 0)})
    tables = []
    old_dbs, new_dbs = a.extra.get("databases", {}), b.extra.get("databases", {})
    for key in sorted(set(old_dbs) | set(new_dbs)):
        t_old = old_dbs.get(key, {}).get("manifest", {}).get("tables", {})
        t_new = new_dbs.get(key, {}).get("manifest", {}).get("tables", {})
        for table in sorted(set(t_old) | set(t_new)):
            x, y = t_old.get(table), t_new.get(table)
            if x is None or y is None or x.get("hash") != y.get("hash") or x.get("rows") != y.get("rows"):
                tables.append({"database": key, "table": table, "rows_before": x.get("rows") if x else None,
                               "rows_after": y.get("rows") if y else None})
    return {"from": a.id, "to": b.id, "added": sorted(added, key=lambda e: e["path"]),
            "removed": sorted(removed, key=lambda e: e["path"]), "changed": sorted(changed, key=lambda e: e["path"]),
            "tables": tables}
