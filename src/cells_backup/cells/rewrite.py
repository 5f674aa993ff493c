"""Config edits that make an installation work on another host or in another folder.

A restore on a new server (or ``rehost``) must change exactly what ties pydio.json to the old
host (docs/CELLS.md §6): absolute paths (datasource folders, objects LocalFolder, bolt/bleve/sqlite
files, TLS certificates), the site's external URL and binds (``defaults.url*`` ≤ v2.1), the
datasources' PeerAddress and the SQL DSN. Everything else must stay byte-for-byte the same, so
edits are planned as a list the admin can read (``render_diff``) before they are applied.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import CellsBackupError, UsageError
from .config import default_database_key, read_pydio_json, save_pydio_json
from .dsn import mask_dsn
from .model import SHAPE_LEGACY, Installation
from .parse import peer_address_paths

DEFAULT_BIND = "0.0.0.0:8080"


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()  # "old" of an added key, "new" of a removed key


@dataclass
class RewriteRequest:
    """What must change. ``database_dsn`` is already in this config's DSN shape (see dsn.retarget_dsn)."""

    path_map: list[tuple[str, str]] = field(default_factory=list)
    external_url: str | None = None
    bind: str | None = None  # "host:port"
    peer_address: str | None = None
    clear_peer_address: bool = False
    database_dsn: str | None = None


@dataclass
class ConfigEdit:
    json_path: list[str | int]
    old: Any
    new: Any

    @property
    def op(self) -> str:
        return "add" if self.old is ABSENT else "delete" if self.new is ABSENT else "set"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form with DSN passwords masked (for ``--dry-run --json``)."""
        out: dict[str, Any] = {"path": list(self.json_path), "op": self.op}
        if self.old is not ABSENT:
            out["old"] = _masked(self.old)
        if self.new is not ABSENT:
            out["new"] = _masked(self.new)
        return out


def check_external_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host: what Cells needs as a site's public URL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--external-url {url!r}: expected a URL with scheme and host, "
                         "e.g. https://cells.example.com")
    return url


def check_bind(bind: str) -> str:
    """``bind`` if it is HOST:PORT (IPv6 hosts in brackets), the form of a site's Binds."""
    host, sep, port = bind.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not bare or "[" in bare or "/" in bare or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--bind {bind!r}: expected HOST:PORT, e.g. 0.0.0.0:8080")
    return bind


def map_path(value: str, path_map: list[tuple[str, str]]) -> str:
    """Rewrite an absolute path (or ``scheme://`` + path) that starts with a mapped prefix.

    Prefixes match whole path components: ``/var/cells`` maps ``/var/cells/data`` but not
    ``/var/cellsdata``. The longest matching prefix wins.
    """
    scheme, sep, body = value.partition("://")
    prefix, body = (scheme + sep, body) if sep and "/" not in scheme else ("", value)
    for old, new in sorted(path_map, key=lambda p: len(p[0]), reverse=True):
        old_n = old.rstrip("/")
        if not old_n:
            continue
        if body == old_n or body.startswith(old_n + "/"):
            return prefix + new.rstrip("/") + body[len(old_n) :]
    return value


def _leaves(node: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, [*path, key])
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, [*path, i])
    elif isinstance(node, str):
        yield path, node


def _get(config: Any, path: list[str | int]) -> Any:
    node = config
    for key in path:
        if (
            isinstance(node, dict)
            and key in node
            or isinstance(node, list)
            and isinstance(key, int)
            and 0 <= key < len(node)
        ):
            node = node[key]
        else:
            return ABSENT
    return node


class _Plan:
    """Edits keyed by path, so two reasons to touch one value make one edit."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.edits: dict[tuple[str | int, ...], ConfigEdit] = {}

    def set(self, path: list[str | int], new: Any) -> None:
        key = tuple(path)
        old = self.edits[key].old if key in self.edits else _get(self.config, path)
        if old == new or (old is ABSENT and new is ABSENT):
            self.edits.pop(key, None)
            return
        self.edits[key] = ConfigEdit(list(path), old, new)


def plan_rewrite(config: dict[str, Any], inst: Installation, request: RewriteRequest) -> list[ConfigEdit]:
    """The edits ``request`` needs on ``config`` (the parsed pydio.json of ``inst``)."""
    plan = _Plan(config)
    if request.path_map:
        for path, value in _leaves(config, []):
            mapped = map_path(value, request.path_map)
            if mapped != value:
                plan.set(path, mapped)
    _plan_site(plan, config, inst, request)
    if request.clear_peer_address or request.peer_address:
        for path, _value in peer_address_paths(config):
            plan.set(path, ABSENT if request.clear_peer_address else request.peer_address)
    if request.database_dsn:
        key = default_database_key(config, inst.config_path)
        old = _get(config, ["databases", key, "dsn"])
        for db_key, entry in (config.get("databases") or {}).items():
            if db_key == key or (
                isinstance(entry, dict) and entry.get("dsn") == old and _is_sql(inst, db_key)
            ):
                plan.set(["databases", db_key, "dsn"], request.database_dsn)
    return list(plan.edits.values())


def _is_sql(inst: Installation, key: str) -> bool:
    return any(d.key == key and d.role in ("default", "sql") for d in inst.databases)


def _plan_site(plan: _Plan, config: dict[str, Any], inst: Installation, req: RewriteRequest) -> None:
    if not req.external_url and not req.bind:
        return
    defaults = config.get("defaults") if isinstance(config.get("defaults"), dict) else {}
    sites = defaults.get("sites")
    if inst.config_shape == SHAPE_LEGACY and sites is None:
        if req.external_url:
            old_url = defaults.get("url")
            plan.set(["defaults", "url"], req.external_url)
            if isinstance(old_url, str) and old_url:
                # ≤ v2.1 repeats the public URL in OAuth/dex settings: change every occurrence.
                base = old_url.rstrip("/")
                for path, value in _leaves(config, []):
                    if value == old_url or value.startswith(base + "/"):
                        plan.set(path, req.external_url.rstrip("/") + value[len(base) :])
        if req.bind:
            old = defaults.get("urlInternal")
            scheme = urlsplit(old).scheme if isinstance(old, str) and "://" in old else "http"
            plan.set(["defaults", "urlInternal"], f"{scheme}://{req.bind}")
        return
    if isinstance(sites, list) and sites and isinstance(sites[0], dict):
        if req.external_url:
            plan.set(["defaults", "sites", 0, "ReverseProxyURL"], req.external_url)
        if req.bind:
            plan.set(["defaults", "sites", 0, "Binds"], [req.bind])
        return
    site: dict[str, Any] = {"Binds": [req.bind or DEFAULT_BIND], "TLSConfig": {"SelfSigned": {}}}
    if req.external_url:
        site["ReverseProxyURL"] = req.external_url
    plan.set(["defaults", "sites"], [site])


def apply_edits(config: dict[str, Any], edits: list[ConfigEdit]) -> dict[str, Any]:
    """A new config with ``edits`` applied; refuses if a value is not what the plan expected."""
    out = copy.deepcopy(config)
    for edit in edits:
        current = _get(out, edit.json_path)
        if current != edit.old and not (current is ABSENT and edit.old is ABSENT):
            raise CellsBackupError(
                f"pydio.json changed since the edits were planned ({format_path(edit.json_path)})"
            )
        parent = _get(out, edit.json_path[:-1])
        if parent is ABSENT:
            raise CellsBackupError(f"cannot edit {format_path(edit.json_path)}: its parent does not exist")
        last = edit.json_path[-1]
        if edit.new is ABSENT:
            del parent[last]
        else:
            parent[last] = copy.deepcopy(edit.new)
    return out


def format_path(path: list[str | int]) -> str:
    """``services["pydio.grpc.data.sync.x"].StorageConfiguration.folder`` style."""
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        elif key.replace("_", "").replace("-", "").isalnum() and key.isascii():
            out += f".{key}" if out else key
        else:
            out += f"[{json.dumps(key)}]"
    return out


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_dsn(value)
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    return value


def render_diff(edits: list[ConfigEdit]) -> str:
    """One human-readable line per edit; DSN passwords shown as ***."""
    lines = []
    for e in edits:
        path = format_path(e.json_path)
        old, new = ("" if v is ABSENT else json.dumps(_masked(v), ensure_ascii=False) for v in (e.old, e.new))
        if e.op == "add":
            lines.append(f"+ {path}: {new}")
        elif e.op == "delete":
            lines.append(f"- {path}: {old} (removed)")
        else:
            lines.append(f"~ {path}: {old} -> {new}")
    return "\n".join(lines)


@dataclass
class RehostResult:
    edits: list[ConfigEdit]
    config_path: Path
    backup_path: Path | None  # None on dry run or when nothing changed


def rehost_in_place(
    working_dir: Path,
    request: RewriteRequest,
    *,
    env: dict[str, str] | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RehostResult:
    """Rewrite an installation's pydio.json for this host, keeping ``pydio.json.<YYYYmmdd-HHMMSS>.bak``.

    The caller is expected to have checked that Cells is stopped (running.detect_running).
    """
    from .load import load_installation

    inst = load_installation(Path(working_dir), env)
    config = read_pydio_json(inst.config_path)
    edits = plan_rewrite(config, inst, request)
    if dry_run or not edits:
        return RehostResult(edits, inst.config_path, None)
    new_config = apply_edits(config, edits)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    backup = inst.config_path.with_name(f"{inst.config_path.name}.{stamp}.bak")
    n = 1
    while backup.exists():
        backup = inst.config_path.with_name(f"{inst.config_path.name}.{stamp}-{n}.bak")
        n += 1
    try:
        shutil.copy2(inst.config_path, backup)
    except OSError as exc:
        raise CellsBackupError(
            f"cannot keep a copy of {inst.config_path} as {backup}: {exc.strerror}"
        ) from None
    save_pydio_json(inst.config_path, new_config)
    return RehostResult(edits, inst.config_path, backup)
