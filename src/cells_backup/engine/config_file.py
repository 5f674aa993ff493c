"""The TOML config file: keys mirror the command-line flags (see README)."""

from __future__ import annotations

import os
import tomllib

from ..errors import CellsBackupError

DEFAULT_LOCATIONS = ("/etc/cells-backup/config.toml", "~/.config/cells-backup/config.toml")


def load_config(path: str | None) -> dict:
    """Parse ``path`` (or the first default location that exists); {} when there is none."""
    if path is None:
        for candidate in DEFAULT_LOCATIONS:
            candidate = os.path.expanduser(candidate)
            if os.path.isfile(candidate):
                path = candidate
                break
        else:
            return {}
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise CellsBackupError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise CellsBackupError(f"config file {path}: {exc}") from None
    except OSError as exc:
        raise CellsBackupError(f"config file {path}: {exc.strerror}") from None
