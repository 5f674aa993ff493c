"""The database side of `verify-install`: do the index tables exist, and how many files do they list."""

from __future__ import annotations

from collections.abc import Callable

from ..database.dsn import ConnectionInfo


def index_table_checker(conn: ConnectionInfo) -> Callable[[list[str]], dict]:
    """A ``database_check`` for `cells.verify_installation` (see its contract)."""

    def check(tables: list[str], counted: set[str]) -> dict:
        from ..database.mysql_client import connect, quote_ident

        result: dict[str, dict] = {}
        c = connect(conn)
        try:
            with c.cursor() as cur:
                cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
                            (conn.database,))
                existing = {r[0] for r in cur.fetchall()}
                for table in tables:
                    if table not in existing:
                        result[table] = {"exists": False, "leaf_rows": None, "sample_uuids": []}
                        continue
                    if table not in counted:  # a full scan each: only where the files are compared
                        result[table] = {"exists": True, "leaf_rows": None, "sample_uuids": []}
                        continue
                    q = quote_ident(table)
                    cur.execute(f"SELECT COUNT(*) FROM {q} WHERE leaf = 1")
                    leaf = int(cur.fetchone()[0])
                    cur.execute(f"SELECT uuid FROM {q} WHERE leaf = 1 ORDER BY RAND() LIMIT 20")
                    sample = [r[0].decode() if isinstance(r[0], bytes) else r[0] for r in cur.fetchall()]
                    result[table] = {"exists": True, "leaf_rows": leaf, "sample_uuids": sample}
        finally:
            c.close()
        return result

    return check
