"""The database side of `verify-install`: do the index tables exist, and how many files do they list.

Index tables come in more than one shape: since Cells 2 the ``<prefix>_tree`` table holds
``leaf``; before, ``leaf``/``mtime``/``etag``/``size``/``mode`` lived in ``<prefix>_nodes``
beside it. A table of a shape neither has is reported as a note, never as a failure of the check.
"""

from __future__ import annotations

from collections.abc import Callable

import pymysql

from ..database.dsn import ConnectionInfo

NEEDED = {"uuid", "leaf"}


def index_table_checker(conn: ConnectionInfo) -> Callable[[list[str], set[str]], dict]:
    """A ``database_check`` for `cells.verify_installation` (see its contract)."""

    def check(tables: list[str], counted: set[str]) -> dict:
        from ..database.mysql_client import connect, mysql_error

        c = connect(conn)
        try:
            with c.cursor() as cur:
                cur.execute("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s",
                            (conn.database,))
                columns: dict[str, set[str]] = {}
                for table, column in cur.fetchall():
                    columns.setdefault(table, set()).add(column.lower())
                return {table: _table_report(cur, table, columns, table in counted) for table in tables}
        except pymysql.MySQLError as e:
            raise mysql_error(conn, e) from None
        finally:
            c.close()

    return check


def _leaf_table(table: str, columns: dict[str, set[str]]) -> str | None:
    """Where ``table``'s files are listed: itself, its pre-2.0 ``_nodes`` sibling, or nowhere known."""
    if columns.get(table, set()) >= NEEDED:
        return table
    nodes = table[: -len("_tree")] + "_nodes" if table.endswith("_tree") else None
    return nodes if nodes and columns.get(nodes, set()) >= NEEDED else None


def _table_report(cur, table: str, columns: dict[str, set[str]], counted: bool) -> dict:
    if table not in columns:
        return {"exists": False, "leaf_rows": None, "sample_uuids": []}
    if not counted:  # a full scan each: only where the files are compared
        return {"exists": True, "leaf_rows": None, "sample_uuids": []}
    source = _leaf_table(table, columns)
    if source is None:
        return {"exists": True, "leaf_rows": None, "sample_uuids": [],
                "note": f"index table {table} has no leaf/uuid columns (columns: "
                        f"{', '.join(sorted(columns[table]))}): its files were not compared with the blobs"}
    from ..database.mysql_client import quote_ident

    q = quote_ident(source)
    try:
        cur.execute(f"SELECT COUNT(*) FROM {q} WHERE leaf = 1")
        leaf = int(cur.fetchone()[0])
        cur.execute(f"SELECT uuid FROM {q} WHERE leaf = 1 ORDER BY RAND() LIMIT 20")
        sample = [r[0].decode() if isinstance(r[0], bytes) else str(r[0]) for r in cur.fetchall()]
    except pymysql.MySQLError as e:  # a damaged or odd table: a line in the report, the other tables still checked
        return {"exists": True, "leaf_rows": None, "sample_uuids": [],
                "note": f"cannot count the files of {source}: {e.args[-1] if e.args else e}"}
    report = {"exists": True, "leaf_rows": leaf, "sample_uuids": sample}
    if source != table:
        report["shape"] = f"pre-2.0 index, files listed in {source}"
    return report
