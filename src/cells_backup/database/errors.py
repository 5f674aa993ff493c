"""Database errors, one line each, distinct from repository errors.

Every failure of a SQL server, a client tool or a dump stream becomes a `DatabaseError` whose
message says what the administrator must fix (password, host, privileges, database name), so the
CLI can print it without a traceback. `classify_mysql_error` maps server error codes (from PyMySQL
or from the ``ERROR nnnn`` line of the ``mariadb`` client) to those messages.
"""

from __future__ import annotations

import re

from cells_backup.errors import CellsBackupError


class DatabaseError(CellsBackupError):
    """A SQL database could not be read, written or verified."""


# Server / client error codes (MySQL and MariaDB share them).
ER_DBACCESS_DENIED = 1044
ER_ACCESS_DENIED = 1045
ER_BAD_DB = 1049
ER_TABLEACCESS_DENIED = 1142
ER_COLUMNACCESS_DENIED = 1143
ER_SPECIFIC_ACCESS_DENIED = 1227
ER_PROCACCESS_DENIED = 1370
CR_CONNECTION_ERROR = 2002
CR_CONN_HOST_ERROR = 2003
CR_UNKNOWN_HOST = 2005
CR_SERVER_GONE = 2006
CR_SERVER_LOST = 2013

_PRIVILEGE_CODES = {
    ER_DBACCESS_DENIED,
    ER_TABLEACCESS_DENIED,
    ER_COLUMNACCESS_DENIED,
    ER_SPECIFIC_ACCESS_DENIED,
    ER_PROCACCESS_DENIED,
}
_CLIENT_ERROR = re.compile(r"(?:ERROR|error:?)\s*:?\s*(\d{4})")


def classify_mysql_error(code: int | None, detail: str, *, user: str, where: str, database: str) -> str:
    """One-line message for a MySQL/MariaDB failure, chosen by error code."""
    detail = " ".join(detail.split())
    if code == ER_ACCESS_DENIED:
        return f"database authentication failed for user {user} at {where}"
    if code in (CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_UNKNOWN_HOST):
        return f"database server unreachable at {where}: {detail}"
    if code == ER_BAD_DB:
        return f"unknown database {database!r} at {where}"
    if code in _PRIVILEGE_CODES:
        return f"missing database privileges for user {user} on {database!r} at {where}: {detail}"
    if code in (CR_SERVER_GONE, CR_SERVER_LOST):
        return f"lost connection to database server at {where}: {detail}"
    prefix = f"database error {code}" if code else "database error"
    return f"{prefix} at {where}: {detail}"


def code_from_client_stderr(stderr: str) -> int | None:
    """The error code in a ``mariadb``/``mariadb-dump`` stderr text, if there is one."""
    m = _CLIENT_ERROR.search(stderr)
    if m:
        return int(m.group(1))
    # mariadb-dump: "Got error: 1045: "Access denied ..." when trying to connect"
    m = re.search(r"Got error:\s*(\d{4})", stderr)
    return int(m.group(1)) if m else None


def first_line(text: str, limit: int = 300) -> str:
    """The first meaningful stderr line, shortened: error messages stay one line."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.lower().startswith("warning"):
            return line[:limit]
    return text.strip()[:limit]
