"""What a backup of an installation must take, what it may skip, and what the admin must know.

Rules come from docs/CELLS.md §1.2, §3, §4.3 and §6: the working dir minus regenerable parts, every
local datasource together with its parent's ``.minio.sys``, nothing of remote storage.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dsn import mask_dsn
from .model import Installation

MINIO_SYS = ".minio.sys"


@dataclass(frozen=True)
class Exclude:
    """A pattern relative to a component root, with why it is safe to leave out.

    Segments are matched one by one (``*`` never crosses ``/``); a trailing ``/`` limits the
    pattern to directories. Anything below a matching directory is excluded too.
    """

    pattern: str
    reason: str

    def matches(self, relpath: str, is_dir: bool = False) -> bool:
        dir_only = self.pattern.endswith("/")
        pat = [p for p in self.pattern.strip("/").split("/") if p]
        parts = [p for p in relpath.replace(os.sep, "/").strip("/").split("/") if p]
        if not pat or len(parts) < len(pat):
            return False
        head = parts[: len(pat)]
        if not all(fnmatch.fnmatchcase(s, p) for s, p in zip(head, pat, strict=True)):
            return False
        return not dir_only or len(parts) > len(pat) or is_dir


@dataclass
class Component:
    """One file tree of the backup. ``includes`` restricts it to some top-level entries."""

    name: str
    kind: str  # workdir | services-dir | datasource-parent | file
    path: Path
    reason: str
    excludes: list[Exclude] = field(default_factory=list)
    includes: list[str] | None = None

    def excluded_by(self, relpath: str, is_dir: bool = False) -> Exclude | None:
        """The exclude rule that drops ``relpath`` (relative to ``path``), if any."""
        parts = relpath.replace(os.sep, "/").strip("/").split("/")
        if self.includes is not None and parts[0] and parts[0] not in self.includes:
            return Exclude(parts[0], "not a datasource of this installation")
        return next((e for e in self.excludes if e.matches(relpath, is_dir)), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": str(self.path),
            "reason": self.reason,
            "excludes": [{"pattern": e.pattern, "reason": e.reason} for e in self.excludes],
            "includes": self.includes,
        }


@dataclass(frozen=True)
class Skipped:
    """Something of the installation the backup does not take, and why."""

    name: str
    reason: str


SERVICE_EXCLUDES = (
    (
        "pydio.grpc.search/*.bleve",
        "search index (searchengine.bleve / search.bleve): rebuilt by "
        "`cells admin resync --service=pydio.grpc.search --path=/`",
    ),
    ("pydio.grpc.log/*.bleve", "system log index (syslog.bleve): logs only"),
    ("pydio.grpc.jobs/tasklogs.bleve", "jobs task logs index (v5): logs only"),
    ("pydio.grpc.data.objects/*/config.json", "MinIO config, rewritten from pydio.json at every start"),
)


def _inside(path: Path | str, root: Path) -> str | None:
    """``path`` relative to ``root`` (posix form), or None when it is not inside it."""
    try:
        rel = Path(os.path.normpath(path)).relative_to(os.path.normpath(root))
    except ValueError:
        return None
    return rel.as_posix()


def _prefixed(rel: str, pattern: str) -> str:
    return pattern if rel in ("", ".") else f"{rel}/{pattern}"


def backup_plan(inst: Installation, extra_excludes: Iterable[str] = ()) -> list[Component]:
    """The file trees a backup must read, each with its default excludes and reasons.

    ``extra_excludes``: relative patterns apply to the working dir; absolute paths apply to the
    component that contains them.
    """
    wd = inst.working_dir
    work = Component("workdir", "workdir", wd, "pydio.json, vault, key, certs, embedded service databases")
    components = [work]
    log_rel = _inside(inst.log_dir, wd)
    if log_rel not in (None, ".", ""):
        work.excludes.append(Exclude(f"{log_rel}/", "Cells logs: not needed to restore"))
    services_rel = _inside(inst.services_dir, wd)
    services = work
    if services_rel is None:
        services = Component(
            "services", "services-dir", inst.services_dir, "embedded service databases (CELLS_SERVICES_DIR)"
        )
        components.append(services)
    for pattern, reason in SERVICE_EXCLUDES:
        services.excludes.append(Exclude(_prefixed(services_rel or "", pattern), reason))
    if inst.key_file is not None and _inside(inst.key_file, wd) is None:
        components.append(
            Component("keyfile", "file", inst.key_file, "master key (CELLS_KEYRING) outside the working dir")
        )

    parents: dict[str, list[str]] = {}
    for ds in inst.local_datasources():
        if not ds.parent_folder or _inside(ds.parent_folder, wd) is not None:
            continue
        parents.setdefault(os.path.normpath(ds.parent_folder), []).append(ds.name)
    for parent, names in parents.items():
        buckets = sorted(
            {
                ds.bucket
                for ds in inst.local_datasources()
                if ds.parent_folder and os.path.normpath(ds.parent_folder) == parent and ds.bucket
            }
        )
        components.append(
            Component(
                f"datasource-parent:{parent}",
                "datasource-parent",
                Path(parent),
                f"datasources {', '.join(names)} and their shared {MINIO_SYS}",
                includes=[*buckets, MINIO_SYS],
            )
        )

    for pattern in extra_excludes:
        _attach_exclude(components, pattern)
    return components


def _attach_exclude(components: list[Component], pattern: str) -> None:
    reason = "excluded by configuration"
    if not os.path.isabs(pattern):
        components[0].excludes.append(Exclude(pattern.replace(os.sep, "/"), reason))
        return
    best = max(
        (c for c in components if c.kind != "file" and _inside(pattern, c.path) not in (None, ".")),
        key=lambda c: len(str(c.path)),
        default=None,
    )
    if best is not None:
        best.excludes.append(Exclude(_inside(pattern, best.path) or "", reason))


def not_backed_up(inst: Installation) -> list[Skipped]:
    """What the backup leaves out on purpose: remote datasources and a key held elsewhere."""
    out = [
        Skipped(
            f"datasource {ds.name}",
            f"{ds.storage_type} storage: the data lives in the remote bucket, "
            "only its configuration is backed up",
        )
        for ds in inst.datasources
        if not ds.is_local
    ]
    if inst.key_location:
        out.append(Skipped("master key", f"held outside the working dir: {inst.key_location}"))
    return out


def warnings(inst: Installation) -> list[str]:
    """Things an administrator must know before trusting a backup of this installation."""
    out = list(inst.notes)
    if inst.key_location:
        out.append(
            f"master key is held outside the working dir ({inst.key_location}): back it up separately, "
            "without it the vault and encrypted datasources cannot be read"
        )
    if inst.vault_file is None:
        out.append("no pydio-vault.json next to pydio.json: vaulted secrets (datasource keys) are missing")
    if inst.document_store:
        out.append(f"MongoDB document store {mask_dsn(inst.document_store)}: backed up with mongodump and restored "
                   "with mongorestore (MongoDB Database Tools), which must be installed")
    for ds in inst.datasources:
        if not ds.is_local:
            out.append(f"datasource {ds.name} is on {ds.storage_type} storage: its files are not backed up")
            continue
        if ds.folder and not os.path.isdir(ds.folder):
            out.append(f"datasource {ds.name}: folder {ds.folder} does not exist")
        if ds.parent_folder and not os.path.isdir(os.path.join(ds.parent_folder, MINIO_SYS)):
            out.append(
                f"datasource {ds.name}: no {MINIO_SYS} in {ds.parent_folder}; object metadata will be "
                "missing and a resync is needed after restore"
            )
        if ds.encryption_mode and ds.encryption_mode != "CLEAR":
            out.append(
                f"datasource {ds.name} is encrypted ({ds.encryption_mode}): restoring it needs the "
                "master key and the database's key tables from the same backup"
            )
    return out
