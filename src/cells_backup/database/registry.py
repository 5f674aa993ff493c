"""Which engine dumps a connection's database: the one place that chooses among the engines'
modules (they import the shared part of `dump`, and only this module imports them)."""

from __future__ import annotations

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.dump import DatabaseDump
from cells_backup.database.errors import DatabaseError


def open_dump(conn: ConnectionInfo, tool: str = "auto") -> DatabaseDump:
    """A dump of the database `conn` names.

    `tool`: "auto" (mariadb-dump/mysqldump if installed, else native driver), "native", or the
    name/path of a dump client; PostgreSQL always uses pg_dump (a path may be given), SQLite the
    stdlib. The connection is checked here, so a wrong password fails at once.
    """
    if conn.kind == "mysql":
        from cells_backup.database import mysql_dump

        return mysql_dump.open_mysql_dump(conn, tool)
    if conn.kind == "sqlite":
        from cells_backup.database import sqlite_dump

        return sqlite_dump.open_sqlite_dump(conn)
    if conn.kind == "postgres":
        from cells_backup.database import postgres_dump

        return postgres_dump.open_postgres_dump(conn, tool)
    raise DatabaseError(f"dumping {conn.kind} databases is not supported yet")
