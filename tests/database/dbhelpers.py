"""Small helpers shared by the database tests: dump into memory, compare two databases."""

from __future__ import annotations

import io
import itertools
import os

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.registry import open_dump
from dbserver import MariaDBServer


def dump_to_memory(conn: ConnectionInfo, tool: str = "auto") -> tuple[dict[str, bytes], dict]:
    """All parts of a dump as bytes (what the repository would store), and the manifest."""
    dump = open_dump(conn, tool)
    parts: dict[str, bytes] = {}
    for part in dump.parts():
        chunks = []
        while chunk := part.read(65536):
            chunks.append(chunk)
        parts[part.name] = b"".join(chunks)
    dump.close()
    return parts, dump.manifest()


def openers(parts: dict[str, bytes]) -> list[tuple[str, object]]:
    """(name, opener) pairs as restore_database takes them."""
    return [(name, (lambda data=data: io.BytesIO(data))) for name, data in parts.items()]


def base_tables(server: MariaDBServer, db: str) -> list[str]:
    with server.root() as c, c.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s"
            " AND TABLE_TYPE='BASE TABLE' ORDER BY TABLE_NAME",
            (db,),
        )
        return [r[0] for r in cur.fetchall()]


def checksums(server: MariaDBServer, db: str) -> dict[str, int]:
    """CHECKSUM TABLE of every base table."""
    result = {}
    with server.root(db) as c, c.cursor() as cur:
        for t in base_tables(server, db):
            cur.execute(f"CHECKSUM TABLE `{t}` EXTENDED")
            result[t] = cur.fetchone()[1]
    return result


def rows(server: MariaDBServer, db: str, table: str, order: str) -> list[tuple]:
    with server.root(db) as c, c.cursor() as cur:
        cur.execute("SET time_zone='+00:00'")
        cur.execute(f"SELECT * FROM `{table}` ORDER BY {order}")
        return list(cur.fetchall())


ROW_BY_ROW = {  # tables compared value by value, beyond CHECKSUM TABLE
    "enc_legacy_nodes": "node_id",
    "idm_user_attributes": "uuid, name",
    "data_index_personal_idx_tree": "uuid",
    "idm_frontend_sessions": "id",
    "idm_acl_nodes": "id",
    "data_meta": "node_id, namespace",
    "enc_node_keys": "id",
}


def create_statements(server: MariaDBServer, db: str) -> dict[str, str]:
    with server.root(db) as c, c.cursor() as cur:
        out = {}
        for table in base_tables(server, db):
            cur.execute(f"SHOW CREATE TABLE `{table}`")
            out[table] = cur.fetchone()[1]
        return out


def assert_same_database(server: MariaDBServer, src: str, dst: str) -> None:
    assert base_tables(server, src) == base_tables(server, dst)
    assert create_statements(server, src) == create_statements(server, dst)
    assert checksums(server, src) == checksums(server, dst)
    for table, order in ROW_BY_ROW.items():
        if table in base_tables(server, src):
            assert rows(server, src, table, order) == rows(server, dst, table, order), table


_names = itertools.count()


def new_db_name(prefix: str = "db") -> str:
    """A database name no other test of this run uses."""
    return f"{prefix}{os.getpid()}_{next(_names)}"
