"""Finding a Cells working directory and the folders/keys Cells relocates through its environment.

Mirrors Cells itself (docs/CELLS.md §1.1): ``CELLS_WORKING_DIR`` (legacy ``PYDIO_*`` copied over
``CELLS_*``), then the per-OS user config folder, then ``/var/cells`` (the production layout).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import unquote, urlsplit

from ..errors import CellsBackupError

CONFIG_NAME = "pydio.json"
VAULT_NAME = "pydio-vault.json"
KEY_NAME = "cells-vault-key"
LOCATION_VARS = (
    "CELLS_WORKING_DIR",
    "CELLS_DATA_DIR",
    "CELLS_LOG_DIR",
    "CELLS_SERVICES_DIR",
    "CELLS_KEYRING",
    "CELLS_CONFIG",
    "CELLS_VAULT",
)


def cells_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment as Cells sees it: any non-empty ``PYDIO_X`` overrides ``CELLS_X`` (initEnvPrefixes)."""
    source = dict(os.environ if env is None else env)
    out = dict(source)
    for key, value in source.items():
        if key.startswith("PYDIO_") and value and "=" not in value:
            out["CELLS_" + key[len("PYDIO_") :]] = value
    return out


def default_working_dirs(env: Mapping[str, str], platform: str, home: str) -> list[str]:
    """The OS default working dir(s) Cells would use, most likely first."""
    if platform.startswith("linux") or platform.startswith("freebsd"):
        xdg = env.get("XDG_CONFIG_HOME") or str(PurePosixPath(home) / ".config")
        return [str(PurePosixPath(xdg) / "pydio" / "cells")]
    if platform == "darwin":
        return [str(PurePosixPath(home) / "Library" / "Application Support" / "Pydio" / "cells")]
    if platform.startswith("win"):
        appdata = env.get("APPDATA") or str(PureWindowsPath(home) / "AppData" / "Roaming")
        return [str(PureWindowsPath(appdata) / "Pydio" / "cells")]
    return [str(PurePosixPath(home) / ".config" / "pydio" / "cells")]


def find_working_dir(
    explicit: str | None = None,
    env: Mapping[str, str] | None = None,
    platform: str | None = None,
    home: str | None = None,
) -> Path:
    """The working dir of the installation to act on; first candidate holding a pydio.json wins.

    An explicit ``--cells-dir`` or ``CELLS_WORKING_DIR`` is final: when it has no pydio.json we
    fail instead of quietly backing up some other installation found further down the list.
    """
    cenv = cells_env(env)
    platform = platform or sys.platform
    home = home or cenv.get("HOME") or cenv.get("USERPROFILE") or str(Path.home())
    tried: list[str] = []
    if explicit:
        candidates, final = [explicit], True
    elif cenv.get("CELLS_WORKING_DIR"):
        candidates, final = [cenv["CELLS_WORKING_DIR"]], True
    else:
        candidates, final = [*default_working_dirs(cenv, platform, home), "/var/cells"], False
    for candidate in candidates:
        path = Path(os.path.abspath(Path(candidate).expanduser()))  # absolute, symlinks kept as configured
        if (path / CONFIG_NAME).is_file():
            return path
        tried.append(str(path))
    how = "--cells-dir" if explicit else "CELLS_WORKING_DIR" if final else "defaults"
    raise CellsBackupError(
        f"no Cells working directory found (no {CONFIG_NAME} in {', '.join(tried)} [{how}]); "
        "use --cells-dir or set CELLS_WORKING_DIR"
    )


@dataclass
class Locations:
    """Where Cells keeps each part, after the environment has had its say."""

    config_path: Path
    vault_file: Path
    data_dir: Path
    services_dir: Path
    log_dir: Path
    key_file: Path | None
    key_location: str | None
    env: dict[str, str] = field(default_factory=dict)


def _file_url_path(url: str) -> Path | None:
    """``file:///x/y?keyring=true`` → /x/y; a bare path is accepted as is; other schemes → None."""
    if "://" not in url:
        return Path(url)
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    return Path(unquote(parts.netloc + parts.path))


def resolve_locations(working_dir: Path, env: Mapping[str, str] | None = None) -> Locations:
    """Apply ``CELLS_DATA_DIR`` / ``LOG_DIR`` / ``SERVICES_DIR`` / ``KEYRING`` / ``CONFIG`` / ``VAULT``."""
    cenv = cells_env(env)
    wd = Path(working_dir)
    used = {k: cenv[k] for k in LOCATION_VARS if cenv.get(k)}
    config_path = wd / CONFIG_NAME
    if cenv.get("CELLS_CONFIG"):
        found = _file_url_path(cenv["CELLS_CONFIG"])
        if found is None:
            raise CellsBackupError(
                f"CELLS_CONFIG={cenv['CELLS_CONFIG']}: configuration held outside files is not supported"
            )
        config_path = found if found.suffix == ".json" else found / CONFIG_NAME
    vault_file = config_path.parent / VAULT_NAME
    vault_url = cenv.get("CELLS_VAULT", "")
    if vault_url and vault_url != "detect":
        found = _file_url_path(vault_url)
        if found is not None:
            vault_file = found
    key_file: Path | None = wd / KEY_NAME
    key_location: str | None = None
    keyring = cenv.get("CELLS_KEYRING")
    if keyring:
        key_file = _file_url_path(keyring)
        if key_file is None:
            key_location = keyring.split("?", 1)[0]
    return Locations(
        config_path=config_path,
        vault_file=vault_file,
        data_dir=Path(cenv.get("CELLS_DATA_DIR") or wd / "data"),
        services_dir=Path(cenv.get("CELLS_SERVICES_DIR") or wd / "services"),
        log_dir=Path(cenv.get("CELLS_LOG_DIR") or wd / "logs"),
        key_file=key_file,
        key_location=key_location,
        env=used,
    )
