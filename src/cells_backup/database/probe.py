"""Quick questions about a live database, for `inspect`, `restore` and `verify-install`.

MySQL/MariaDB is answered here; SQLite and PostgreSQL by their own modules (same contract).
"""

from __future__ import annotations

from collections.abc import Iterable

import pymysql

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.errors import DatabaseError
from cells_backup.database.mysql_client import connect, mysql_error, quote_ident


def _other_engine(conn: ConnectionInfo):
    """The probe module of a non-MySQL engine, or None for MySQL."""
    if conn.kind == "mysql":
        return None
    if conn.kind == "sqlite":
        from cells_backup.database import sqlite_load

        return sqlite_load
    if conn.kind == "postgres":
        from cells_backup.database import postgres_load

        return postgres_load
    raise DatabaseError(f"{conn.kind} databases are not supported yet")


def check_connection(conn: ConnectionInfo) -> str:
    """Connect to the database and return the server version; DatabaseError says why not."""
    if engine := _other_engine(conn):
        return engine.check_connection(conn)
    c = connect(conn)
    try:
        with c.cursor() as cur:
            cur.execute("SELECT VERSION()")
            return cur.fetchone()[0]
    except pymysql.MySQLError as e:
        raise mysql_error(conn, e) from None
    finally:
        c.close()


def is_empty(conn: ConnectionInfo) -> bool:
    """True if the database is missing or has no table nor view (a safe restore target)."""
    if engine := _other_engine(conn):
        return engine.is_empty(conn)
    c = connect(conn, database="")
    try:
        with c.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (conn.database,)
            )
            return cur.fetchone()[0] == 0
    except pymysql.MySQLError as e:
        raise mysql_error(conn, e) from None
    finally:
        c.close()


def table_info(conn: ConnectionInfo, tables: Iterable[str]) -> dict[str, dict]:
    """{table: {"exists": bool, "rows": int}} with exact row counts (COUNT(*))."""
    if engine := _other_engine(conn):
        return engine.table_info(conn, tables)
    result: dict[str, dict] = {}
    c = connect(conn)
    try:
        with c.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (conn.database,)
            )
            existing = {r[0] for r in cur.fetchall()}
            for t in tables:
                if t in existing:
                    cur.execute(f"SELECT COUNT(*) FROM {quote_ident(t)}")
                    result[t] = {"exists": True, "rows": int(cur.fetchone()[0])}
                else:
                    result[t] = {"exists": False, "rows": 0}
    except pymysql.MySQLError as e:
        raise mysql_error(conn, e) from None
    finally:
        c.close()
    return result
