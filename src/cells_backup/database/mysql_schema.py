"""What a MySQL/MariaDB database holds besides rows: server facts, tables, and the post-schema.

The post-schema (views, triggers, routines, events) is generated here from ``SHOW CREATE ...`` for
both the client-tool and the native dump, so ``schema/post.sql`` has one format. Definers are
removed: on a new server the original definer (often ``root@localhost`` or the old Cells user) may
not exist and creating objects for another account needs SUPER; without a DEFINER clause they are
owned by the restoring user, which is the Cells user. DDL is not transactional in MySQL, so this
view of the schema is taken just before the data transaction starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pymysql

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.errors import DatabaseError
from cells_backup.database.mysql_client import connect, mysql_error, quote_ident

_DEFINER = re.compile(
    r"\s*DEFINER\s*=\s*(?:`(?:[^`]|``)*`|'[^']*'|[^\s@]+)@(?:`(?:[^`]|``)*`|'[^']*'|[^\s*/]+)", re.I
)
BINARY_TYPES = {
    "binary",
    "varbinary",
    "tinyblob",
    "blob",
    "mediumblob",
    "longblob",
    "bit",
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
}
NUMERIC_TYPES = {
    "tinyint",
    "smallint",
    "mediumint",
    "int",
    "integer",
    "bigint",
    "decimal",
    "float",
    "double",
    "real",
}


@dataclass
class DatabaseFacts:
    """Server and database facts recorded in the manifest and used to plan the dump."""

    server_version: str
    charset: str
    collation: str
    tables: list[str]
    views: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    routines: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    post_sql: bytes = b""


def strip_definer(sql: str) -> str:
    """The statement without its DEFINER=user@host clause."""
    return _DEFINER.sub("", sql, count=1)


def _column_values(cur, query: str, args) -> list[str]:
    cur.execute(query, args)
    return [row[0] for row in cur.fetchall()]


def read_facts(conn: ConnectionInfo) -> DatabaseFacts:
    """Connect (failing with a clear message) and collect facts and the post-schema SQL."""
    db = conn.database
    c = connect(conn)
    try:
        with c.cursor() as cur:
            cur.execute("SELECT VERSION()")
            version = cur.fetchone()[0]
            cur.execute(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA"
                " WHERE SCHEMA_NAME=%s",
                (db,),
            )
            row = cur.fetchone()
            if row is None:
                raise DatabaseError(f"unknown database {db!r} at {conn.where}")
            tables = _column_values(
                cur,
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s"
                " AND TABLE_TYPE IN ('BASE TABLE','SYSTEM VERSIONED')"
                " ORDER BY TABLE_NAME",
                (db,),
            )
            facts = DatabaseFacts(server_version=version, charset=row[0], collation=row[1], tables=tables)
            facts.post_sql = _post_schema(cur, db, facts).encode("utf-8")
    except pymysql.MySQLError as e:
        raise mysql_error(conn, e) from None
    finally:
        c.close()
    return facts


def _sql_mode_stmt(mode: str) -> str:
    return f"/*!50003 SET SESSION sql_mode = '{mode}' */;;\n"


def _post_schema(cur, db: str, facts: DatabaseFacts) -> str:
    out = ["--\n-- Post-schema: views, triggers, routines, events (cells-backup)\n--\n\n", "DELIMITER ;;\n"]
    q = quote_ident(db)
    facts.views = _column_values(
        cur,
        "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA=%s ORDER BY TABLE_NAME",
        (db,),
    )
    defs: dict[str, str] = {}
    for name in facts.views:
        cur.execute(f"SHOW CREATE VIEW {q}.{quote_ident(name)}")
        defs[name] = strip_definer(cur.fetchone()[1])
    for name in _views_in_dependency_order(defs):
        out.append(f"DROP VIEW IF EXISTS {quote_ident(name)};;\n{defs[name]};;\n")
    # Built from information_schema rather than SHOW CREATE TRIGGER, whose "original statement" may
    # name the old database (CREATE TRIGGER olddb.t ... ON olddb.table) and break a restore under a new name.
    cur.execute(
        "SELECT TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_STATEMENT,"
        " SQL_MODE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA=%s"
        " ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
        (db,),
    )
    for name, timing, event, table, body, mode in cur.fetchall():
        facts.triggers.append(name)
        out.append(
            _sql_mode_stmt(mode) + f"DROP TRIGGER IF EXISTS {quote_ident(name)};;\n"
            f"CREATE TRIGGER {quote_ident(name)} {timing} {event} ON {quote_ident(table)}"
            f" FOR EACH ROW {body};;\n"
        )
    cur.execute(
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s"
        " ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
        (db,),
    )
    for rtype, name in cur.fetchall():
        cur.execute(f"SHOW CREATE {rtype} {q}.{quote_ident(name)}")
        row = cur.fetchone()
        if row[2] is None:
            raise DatabaseError(
                f"missing database privileges to read the definition of {rtype.lower()} {name!r}"
            )
        facts.routines.append(f"{rtype.lower()}:{name}")
        out.append(
            _sql_mode_stmt(row[1])
            + f"DROP {rtype} IF EXISTS {quote_ident(name)};;\n"
            + strip_definer(row[2])
            + ";;\n"
        )
    facts.events = _column_values(
        cur,
        "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s ORDER BY EVENT_NAME",
        (db,),
    )
    for name in facts.events:
        cur.execute(f"SHOW CREATE EVENT {q}.{quote_ident(name)}")
        row = cur.fetchone()
        out.append(
            _sql_mode_stmt(row[1])
            + f"DROP EVENT IF EXISTS {quote_ident(name)};;\n"
            + strip_definer(row[3])
            + ";;\n"
        )
    out.append("DELIMITER ;\n")
    return "".join(out)


def _views_in_dependency_order(defs: dict[str, str]) -> list[str]:
    """Views sorted so that a view comes after the views its definition names."""
    deps = {name: {o for o in defs if o != name and quote_ident(o) in body} for name, body in defs.items()}
    done: list[str] = []
    while deps:
        ready = sorted(n for n, d in deps.items() if d <= set(done))
        if not ready:  # a cycle cannot exist in MySQL; keep name order if detection was fooled
            ready = sorted(deps)
        for n in ready:
            done.append(n)
            del deps[n]
    return done


@dataclass
class TableShape:
    """Columns to dump (generated ones excluded) and the order that makes output deterministic."""

    columns: list[str]
    binary: list[bool]
    numeric: list[bool]
    order_by: list[str]
    has_generated: bool


def table_shape(cur, db: str, table: str) -> TableShape:
    """Column list and row order of a table, from information_schema."""
    cur.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION",
        (db, table),
    )
    cols, binary, numeric, generated = [], [], [], False
    for name, dtype, extra in cur.fetchall():
        name, dtype, extra = (_s(name), _s(dtype).lower(), _s(extra).upper())
        if "GENERATED" in extra or "VIRTUAL" in extra or "PERSISTENT" in extra:
            generated = True
            continue
        cols.append(name)
        binary.append(dtype in BINARY_TYPES)
        numeric.append(dtype in NUMERIC_TYPES)
    cur.execute(
        "SELECT INDEX_NAME, COLUMN_NAME, NON_UNIQUE, NULLABLE FROM information_schema.STATISTICS"
        " WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s ORDER BY INDEX_NAME='PRIMARY' DESC, INDEX_NAME,"
        " SEQ_IN_INDEX",
        (db, table),
    )
    indexes: dict[str, list] = {}
    for index, col, non_unique, nullable in cur.fetchall():
        index = _s(index)
        indexes.setdefault(index, []).append((_s(col), int(non_unique), _s(nullable)))
    order: list[str] = []
    for entries in indexes.values():
        if entries[0][1] == 0 and all(n != "YES" for _, _, n in entries):
            order = [c for c, _, _ in entries]
            break
    return TableShape(cols, binary, numeric, order, generated)


def _s(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes | bytearray) else ("" if v is None else str(v))
