"""Reaching a MySQL/MariaDB server: PyMySQL connections and client-tool command lines.

Two rules live here so no other module has to remember them:

* the password never appears in argv (other users can read /proc/*/cmdline): client tools get a
  ``--defaults-extra-file`` written with mode 0600 into a private 0700 temp dir, removed afterwards;
* every failure to connect becomes a one-line `DatabaseError` (auth, unreachable, unknown db).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.errors import DatabaseError, classify_mysql_error

CONNECT_TIMEOUT = 10


def mysql_error(conn: ConnectionInfo, exc: BaseException, database: str | None = None) -> DatabaseError:
    """DatabaseError with the one-line message for a PyMySQL exception."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    detail = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    db = conn.database if database is None else database
    return DatabaseError(classify_mysql_error(code, detail, user=conn.user, where=conn.where, database=db))


def connect(
    conn: ConnectionInfo, *, database: str | None = None, raw: bool = False, streaming: bool = False
) -> pymysql.connections.Connection:
    """A PyMySQL connection in utf8mb4 with UTC session time (like mysqldump's --tz-utc).

    `raw` returns every value as the server's text bytes (no decoding, no conversion): the form
    the row hash is defined on. `streaming` makes the default cursor unbuffered (SSCursor).
    """
    kwargs: dict = {
        "user": conn.user,
        "password": conn.password,
        "database": conn.database if database is None else (database or None),
        "charset": "utf8mb4",
        "connect_timeout": CONNECT_TIMEOUT,
        "autocommit": True,
        "init_command": "SET time_zone='+00:00'",
        "max_allowed_packet": 1 << 30,
        "local_infile": False,
    }
    if conn.unix_socket:
        kwargs["unix_socket"] = conn.unix_socket
    else:
        kwargs["host"], kwargs["port"] = conn.host, conn.port
    if conn.tls:
        verify = conn.tls in ("true", "verify")
        ca = conn.params.get("ssl-ca") or conn.params.get("sslrootcert")
        kwargs["ssl"] = {"ca": ca} if ca else {}
        kwargs["ssl_verify_cert"] = verify
        kwargs["ssl_verify_identity"] = verify
    else:  # like Cells (go-sql-driver: no TLS unless asked); also spares a TLS context per connection
        kwargs["ssl_disabled"] = True
    if raw:
        kwargs["use_unicode"] = False
        kwargs["conv"] = {}
    if streaming:
        kwargs["cursorclass"] = pymysql.cursors.SSCursor
    try:
        return pymysql.connect(**kwargs)
    except pymysql.MySQLError as e:
        raise mysql_error(conn, e, database=kwargs["database"] or "") from None
    except OSError as e:  # TLS setup, socket path errors
        raise DatabaseError(f"database server unreachable at {conn.where}: {e}") from None


def quote_ident(name: str) -> str:
    """A backquoted MySQL identifier."""
    return "`" + name.replace("`", "``") + "`"


# ---------------------------------------------------------------- client tools


@functools.lru_cache(maxsize=8)
def find_tool(*names: str) -> str | None:
    """Absolute path of the first of `names` on PATH (mariadb-dump before mysqldump)."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def dump_tool() -> str | None:
    """mariadb-dump or mysqldump, if installed."""
    return find_tool("mariadb-dump", "mysqldump")


def client_tool() -> str | None:
    """mariadb or mysql command-line client, if installed."""
    return find_tool("mariadb", "mysql")


@functools.lru_cache(maxsize=8)
def is_mariadb_tool(path: str) -> bool:
    """MariaDB and Oracle MySQL tools differ in a few options (ssl, sandbox, column statistics).

    A ``mariadb-*`` tool is MariaDB's; a ``mysql*`` one may be either (MariaDB installs them as
    links), so it is asked for its version.
    """
    if os.path.basename(path).startswith("mariadb"):
        return True
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return True
    return "mariadb" in out.lower()


def option_value(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@contextmanager
def defaults_file(conn: ConnectionInfo, tool: str) -> Iterator[str]:
    """A private option file holding host, user and password for a client tool; removed on exit."""
    lines = ["[client]", f"user={option_value(conn.user)}", f"password={option_value(conn.password)}"]
    if conn.unix_socket:
        lines += ["host=localhost", f"socket={option_value(conn.unix_socket)}"]
    else:
        lines += [f"host={option_value(conn.host)}", f"port={conn.port}", "protocol=TCP"]
    mariadb = is_mariadb_tool(tool)
    if conn.tls:
        lines.append("ssl" if mariadb else "ssl-mode=REQUIRED")
        if conn.tls in ("true", "verify"):
            lines.append("ssl-verify-server-cert" if mariadb else "ssl-mode=VERIFY_IDENTITY")
        ca = conn.params.get("ssl-ca")
        if ca:
            lines.append(f"ssl-ca={option_value(ca)}")
    elif mariadb:
        lines.append("skip-ssl")
    else:
        lines.append("ssl-mode=DISABLED")
    tmpdir = tempfile.mkdtemp(prefix="cells-backup-db-")
    path = os.path.join(tmpdir, "client.cnf")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        yield path
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
