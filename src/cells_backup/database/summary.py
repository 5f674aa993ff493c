"""How big a live database is, for `inspect`: tables, rows and bytes, for each engine.

Rows are exact counts (``COUNT(*)`` of every table); bytes are what the server stores (data and
indexes; the file for SQLite), not the size of a dump.
"""

from __future__ import annotations

import os

import pymysql

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.errors import DatabaseError
from cells_backup.database.mysql_client import connect, mysql_error, quote_ident

MYSQL_TABLES = (
    "SELECT TABLE_NAME, COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='BASE TABLE'"
)
# One round trip: each table's COUNT(*) run by query_to_xml, summed.
POSTGRES_SUMMARY = (
    "SELECT count(*), COALESCE(sum((xpath('/row/c/text()', query_to_xml(format("
    "'SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text::bigint), 0), "
    "pg_database_size(current_database()) FROM pg_catalog.pg_tables "
    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema');\n"
)


def database_summary(conn: ConnectionInfo) -> dict:
    """{"tables": int, "rows": int, "bytes": int}; DatabaseError says why not."""
    if conn.kind == "mysql":
        return _mysql(conn)
    if conn.kind == "sqlite":
        return _sqlite(conn)
    if conn.kind == "postgres":
        from cells_backup.database.postgres_client import run_psql

        tables, rows, size = run_psql(conn, POSTGRES_SUMMARY).strip().split("|")
        return {"tables": int(tables), "rows": int(rows), "bytes": int(size)}
    raise DatabaseError(f"{conn.kind} databases are not supported yet")


def _mysql(conn: ConnectionInfo) -> dict:
    c = connect(conn)
    try:
        with c.cursor() as cur:
            cur.execute(MYSQL_TABLES, (conn.database,))
            tables = cur.fetchall()
            rows = 0
            for name, _size in tables:
                cur.execute(f"SELECT COUNT(*) FROM {quote_ident(name)}")
                rows += int(cur.fetchone()[0])
    except pymysql.MySQLError as e:
        raise mysql_error(conn, e) from None
    finally:
        c.close()
    return {"tables": len(tables), "rows": rows, "bytes": sum(int(size) for _n, size in tables)}


def _sqlite(conn: ConnectionInfo) -> dict:
    import sqlite3

    from cells_backup.database.sqlite_rows import connect as sqlite_connect
    from cells_backup.database.sqlite_rows import quote_ident as sqlite_ident
    from cells_backup.database.sqlite_rows import sqlite_error

    db = sqlite_connect(conn.database, mode="ro")
    try:
        db.execute("BEGIN")
        names = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        rows = sum(int(db.execute(f"SELECT count(*) FROM main.{sqlite_ident(n)}").fetchone()[0]) for n in names)
    except sqlite3.Error as e:
        raise sqlite_error(conn.database, e) from None
    finally:
        db.close()
    size = sum(os.path.getsize(conn.database + s) for s in ("", "-wal") if os.path.exists(conn.database + s))
    return {"tables": len(names), "rows": rows, "bytes": size}
