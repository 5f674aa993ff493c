"""The file trees a restore writes, and where each `--map OLD=NEW` sends them.

A map moves the files it names, not only the paths in pydio.json: a folder inside a component
(``data/`` inside the working dir, the v2 default) is cut out of that component's step and
restored as a step of its own at NEW. A map that names nothing of the snapshot is refused, and
so is one that would split a datasource folder from the ``.minio.sys`` beside it. The whole plan
(trees, databases, document store, config edits) is described here too, for the restore and the
checks made before it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..cells import render_diff
from ..cells.dsn import mask_dsn
from ..cells.model import Installation
from ..cells.plan import MINIO_SYS
from ..cells.rewrite import ConfigEdit, map_path
from ..database.dsn import ConnectionInfo
from ..errors import UsageError

Select = Callable[[str], bool]


@dataclass
class TreeStep:
    source: str  # path in the snapshot
    dest: str  # where it goes
    what: str
    select: Select | None = None  # snapshot-relative "/a/b" -> restore it?


def parse_maps(maps: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in maps:
        old, sep, new = item.partition("=")
        if not sep or not old.startswith("/") or not new.startswith("/"):
            raise UsageError(f"--map {item!r}: expected /old/path=/new/path")
        out.append((os.path.normpath(old), os.path.normpath(new)))
    return out


def without(inner_roots: list[str]) -> Select | None:
    """A select that leaves out ``inner_roots`` ("/data", ...) and everything below them."""
    if not inner_roots:
        return None
    return lambda rel: not any(rel == r or rel.startswith(r + "/") for r in inner_roots)


def _both(first: Select | None, second: Select | None) -> Select | None:
    if first is None or second is None:
        return first or second
    return lambda rel: first(rel) and second(rel)


def skip_done(step: TreeStep, earlier: list[TreeStep]) -> TreeStep:
    """Leave out what an earlier step (the vault key, a mapped folder) restores inside this tree."""
    inner = [e.source[len(step.source):] for e in earlier if e.source.startswith(step.source + "/")]
    if not inner:
        return step
    return TreeStep(step.source, step.dest, step.what, _both(without(inner), step.select))


def _inside(path: str, root: str) -> bool:
    return path.startswith(root.rstrip("/") + "/")


def split_mapped(steps: list[TreeStep], user_maps: list[tuple[str, str]]) -> list[TreeStep]:
    """``steps`` with each mapped folder that lies inside a step's tree restored on its own, at NEW.

    Outer maps first, so a map inside a mapped folder splits that folder's step in turn.
    """
    out = list(steps)
    for old, new in sorted(user_maps, key=lambda m: len(m[0])):
        for i, step in enumerate(out):
            if not _inside(old, step.source):
                continue
            inner = old[len(step.source.rstrip("/")):]
            if step.dest.rstrip("/") + inner == new:
                continue  # the map sends it where its tree goes anyway
            base = step.select
            if base is not None and not base(inner):
                continue  # this step does not restore that folder (e.g. --only config and data/)
            out[i] = TreeStep(step.source, step.dest, step.what, _both(without([inner]), base))
            child = None if base is None else (lambda rel, inner=inner, base=base: base(inner + rel))
            out.append(TreeStep(old, new, f"{step.what}: {inner.lstrip('/')} (--map)", child))
            break
    return out


def mappable_paths(inst: Installation, components: Iterable[dict], extra_paths: Iterable[str]) -> list[str]:
    """What an administrator may move with --map: the snapshot's trees and datasource folders."""
    paths = {str(inst.working_dir), *(c["path"] for c in components), *extra_paths}
    for ds in inst.local_datasources():
        paths.update(p for p in (ds.parent_folder,) if p)
    return sorted(os.path.normpath(p) for p in paths)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, str):
        yield node


def check_maps(user_maps: list[tuple[str, str]], inst: Installation, exists: Callable[[str], bool],
               config: dict[str, Any], mappable: list[str]) -> None:
    """Refuse (exit 2) a map that names nothing of the snapshot, or one inside a datasource folder.

    ``exists`` says whether a path is in the snapshot; ``config`` is its pydio.json (a map may
    also only move a path the config names, such as a TLS file kept elsewhere).
    """
    values = list(_strings(config))
    for old, new in user_maps:
        if not exists(old) and not any(map_path(v, [(old, new)]) != v for v in values):
            raise UsageError(f"--map {old}={new}: {old} is not in this snapshot; paths that can be mapped: "
                             + ", ".join(mappable))
        parent = next((p for p in _datasource_parents(inst) if _inside(old, p)), None)
        if parent is not None:
            raise UsageError(f"--map {old}={new}: {old} is inside {parent}, which keeps its datasources together "
                             f"with their {MINIO_SYS}; map {parent} as a whole")


def _datasource_parents(inst: Installation) -> list[str]:
    return sorted({os.path.normpath(ds.parent_folder) for ds in inst.local_datasources() if ds.parent_folder})


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

    def render(self, step_notes: list[str] | None = None) -> str:
        """The plan for a human; ``step_notes`` (one per tree step) are appended to its line."""
        lines = [f"working dir: {self.new_working_dir}"]
        notes = step_notes or [""] * len(self.trees)
        lines += [f"restore {t.source} -> {t.dest}  ({t.what}){note}"
                  for t, note in zip(self.trees, notes, strict=True)]
        lines += [f"load database {d.key[:12]} ({len(d.manifest.get('tables', {}))} tables) -> "
                  f"{d.target.redacted()}" for d in self.databases]
        if self.documents is not None:
            lines.append(f"load documents ({self.documents.manifest.get('documents', 0)}) with mongorestore -> "
                         f"{mask_dsn(self.documents.uri)}")
        lines.append("pydio.json edits:" if self.edits else "pydio.json: no edits")
        if self.edits:
            lines.append(render_diff(self.edits))
        return "\n".join(lines)
