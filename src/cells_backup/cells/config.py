"""Reading and writing pydio.json, and telling which version shape it has.

Every failure is a one-line CellsBackupError naming the file: a backup or restore built on a
half-understood config would be silently wrong (docs/ARCHITECTURE.md, invariant 6).
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from ..errors import CellsBackupError
from .model import SHAPE_LEGACY, SHAPE_V2_V4, SHAPE_V5

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+.~][0-9A-Za-z.+~-]*)?$")
_SCHEMED_SQL = re.compile(r"^(mysql|mysql\+tls|postgres|postgresql|sqlite|sqlite3)://", re.I)


def read_pydio_json(path: Path) -> dict[str, Any]:
    """Parse pydio.json; refuse anything that is not a readable JSON object."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise CellsBackupError(f"{path}: file not found") from None
    except OSError as exc:
        raise CellsBackupError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CellsBackupError(f"{path}: not UTF-8 text (byte {exc.start}); damaged file?") from None
    if not text.strip():
        raise CellsBackupError(f"{path}: file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CellsBackupError(
            f"{path}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); truncated or damaged?"
        ) from None
    if not isinstance(data, dict):
        raise CellsBackupError(f"{path}: top level is a JSON {type(data).__name__}, expected an object")
    return data


def parse_version(value: Any, path: Path | str = "pydio.json") -> tuple[int, int, int] | None:
    """``"4.4.13"`` → (4, 4, 13); None when absent; error when present but not a version."""
    if value is None or value == "":
        return None
    m = _VERSION.match(value) if isinstance(value, str) else None
    if not m:
        raise CellsBackupError(f'{path}: unknown "version" format {value!r}')
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def default_database_key(data: dict[str, Any], path: Path | str = "pydio.json") -> str | None:
    """Key in ``databases`` named by ``defaults.database`` (id string ≤ v2.1, ``$ref`` later)."""
    defaults = data.get("defaults")
    if not isinstance(defaults, dict):
        return None
    return ref_key(defaults.get("database"), path, "defaults.database")


def ref_key(value: Any, path: Path | str, where: str) -> str | None:
    """Resolve a ``{"$ref": "#/databases/<id>"}`` or a plain id string to the id."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("$ref"), str):
        ref = value["$ref"]
        prefix = "#/databases/"
        if not ref.startswith(prefix) or len(ref) == len(prefix):
            raise CellsBackupError(f"{path}: {where} refers to {ref!r}, expected '#/databases/<id>'")
        return ref[len(prefix) :]
    raise CellsBackupError(f"{path}: {where} has an unknown shape ({json.dumps(value)[:60]})")


def config_shape(data: dict[str, Any], path: Path | str = "pydio.json") -> str:
    """Which layout the file uses; decided from structure first, version second.

    ≤ v2.1: ``defaults.database`` is an id string. v5: SQL DSNs carry a scheme (migration 4.9.90).
    Anything in between is the v2.2–v4 layout.
    """
    version = parse_version(data.get("version"), path)
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    if isinstance(defaults.get("database"), str):
        return SHAPE_LEGACY
    key = default_database_key(data, path)
    databases = data.get("databases") if isinstance(data.get("databases"), dict) else {}
    entry = databases.get(key) if key else None
    dsn = entry.get("dsn") if isinstance(entry, dict) else None
    if isinstance(dsn, str) and _SCHEMED_SQL.match(dsn):
        return SHAPE_V5
    if version and version[0] >= 5:
        return SHAPE_V5
    if version and version < (2, 2, 0) and "sites" not in defaults:
        return SHAPE_LEGACY
    return SHAPE_V2_V4


def dumps_like_cells(data: dict[str, Any]) -> str:
    """JSON the way Cells writes pydio.json: 2-space indent, UTF-8, key order kept."""
    return json.dumps(data, indent=2, ensure_ascii=False)


def save_pydio_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (temp file, fsync, rename, fsync dir), keeping the file's mode.

    A crash leaves the old or the new pydio.json, never half of one; a new file gets 0600
    because it holds the database password in clear.
    """
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o600
    text = dumps_like_cells(data)
    if path.exists() and path.read_bytes().endswith(b"\n"):
        text += "\n"
    try:
        write_atomic(path, text.encode("utf-8"), mode)
    except OSError as exc:
        raise CellsBackupError(f"{path}: cannot write ({exc.strerror or exc})") from None
