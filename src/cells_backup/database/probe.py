"""Quick questions about a live database, for `inspect`, `restore` and `verify-install`."""

from __future__ import annotations

from collections.abc import Iterable

import pymysql

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.errors import DatabaseError
from cells_backup.database.mysql_client import connect, mysql_error, quote_ident


def _require_mysql(conn: ConnectionInfo) -> None:
    if conn.kind != "mysql":
        raise DatabaseError(f"{conn.kind} databases are not supported yet")


def check_connection(conn: ConnectionInfo) -> str:
    """Connect to the database and return the server version; DatabaseError says why not."""
    _require_mysql(conn)
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
    _require_mysql(conn)
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
    _require_mysql(conn)
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
