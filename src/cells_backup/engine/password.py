"""Where the repository password comes from: file, command, environment, generated file or prompt.

Never from argv: a password on a command line is visible to every user via ps.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import CellsBackupError


@dataclass
class PasswordSource:
    file: str | None = None
    command: str | None = None

    @classmethod
    def from_env(cls, file: str | None, command: str | None, env: dict | None = None) -> PasswordSource:
        env = os.environ if env is None else env
        return cls(
            file=file or env.get("CELLS_BACKUP_PASSWORD_FILE") or None,
            command=command or env.get("CELLS_BACKUP_PASSWORD_COMMAND") or None,
        )


def default_password_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "cells-backup" / "password"


def read_password_file(path: str | Path) -> bytes:
    try:
        st = os.stat(path)
        if st.st_mode & stat.S_IROTH:
            raise CellsBackupError(f"password file {path} is readable by every user; chmod 600 it first")
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CellsBackupError(f"password file {path} does not exist") from None
    except PermissionError:
        raise CellsBackupError(f"password file {path} is not readable by this user") from None
    password = data.rstrip(b"\r\n")
    if not password:
        raise CellsBackupError(f"password file {path} is empty")
    return password


def run_password_command(command: str) -> bytes:
    try:
        proc = subprocess.run(command, shell=True, capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise CellsBackupError("password command did not finish within 120 s") from None
    if proc.returncode != 0:
        raise CellsBackupError(f"password command failed with exit code {proc.returncode}")
    password = proc.stdout.rstrip(b"\r\n")
    if not password:
        raise CellsBackupError("password command printed nothing")
    return password


def get_password(source: PasswordSource, *, prompt: str = "Repository password: ", confirm: bool = False) -> bytes:
    """The password from the first configured source, else the generated file, else a prompt."""
    if source.file:
        return read_password_file(source.file)
    if source.command:
        return run_password_command(source.command)
    env_password = os.environ.get("CELLS_BACKUP_PASSWORD")
    if env_password:
        return env_password.encode()
    default = default_password_file()
    if default.exists():
        return read_password_file(default)
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("Again: ") != first:
            raise CellsBackupError("the passwords did not match")
        if not first:
            raise CellsBackupError("an empty password is not allowed")
        return first.encode()
    raise CellsBackupError(
        "no password given: use --password-file, --password-command or CELLS_BACKUP_PASSWORD_FILE"
    )


def has_explicit_source(source: PasswordSource) -> bool:
    return bool(source.file or source.command or os.environ.get("CELLS_BACKUP_PASSWORD"))


def generate_password_file(path: Path | None = None) -> tuple[bytes, Path]:
    """Create a strong random password in a 0600 file; refuses to overwrite one."""
    path = path or default_password_file()
    password = secrets.token_urlsafe(32).encode()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CellsBackupError(f"{path} already exists; use it with --password-file") from None
    with os.fdopen(fd, "wb") as f:
        f.write(password + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return password, path
