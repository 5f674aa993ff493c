"""Error types shared by every layer, each tied to the exit code the CLI promises.

The CLI turns any `CellsBackupError` into one line on stderr and its `exit_code`;
anything else is a bug and is reported as such.
"""

from __future__ import annotations


class ExitCode:
    OK = 0
    ERROR = 1
    USAGE = 2
    PARTIAL = 3
    NO_REPOSITORY = 10
    LOCKED = 11
    WRONG_PASSWORD = 12
    CELLS_RUNNING = 13
    NOT_EMPTY = 14


class CellsBackupError(Exception):
    """An expected failure with a message meant for the administrator."""

    exit_code = ExitCode.ERROR


class UsageError(CellsBackupError):
    exit_code = ExitCode.USAGE


class RepositoryNotFoundError(CellsBackupError):
    exit_code = ExitCode.NO_REPOSITORY


class RepositoryLockedError(CellsBackupError):
    exit_code = ExitCode.LOCKED


class WrongPasswordError(CellsBackupError):
    exit_code = ExitCode.WRONG_PASSWORD


class CellsRunningError(CellsBackupError):
    exit_code = ExitCode.CELLS_RUNNING


class TargetNotEmptyError(CellsBackupError):
    exit_code = ExitCode.NOT_EMPTY


class IntegrityError(CellsBackupError):
    """Stored data failed verification (hash, authentication tag or structure)."""


class BackendError(CellsBackupError):
    """The storage backend failed (I/O error, network, permissions)."""


class NotFoundError(BackendError):
    """The named object does not exist in the backend."""


class AlreadyExistsError(BackendError):
    """A create-only write found the object already present."""
