"""SQLite dump, split per table, consistent while Cells keeps writing, with no copy of the file.

How it is consistent: one read transaction on the live file (``BEGIN``, then every read). In WAL
mode (what a busy database should use) the transaction reads one snapshot while writers go on
committing; in rollback-journal mode its shared lock makes writers wait until the dump ends. Either
way every table, row count and hash comes from the same point in time.

Why not the online backup API (``src.backup(mem)``): it copies the whole database into memory (or
a temp file) first; a Cells database can be gigabytes, and the design keeps memory bounded and
never writes the dump to disk. Streaming rows out of one read transaction gives the same snapshot
with memory bounded by one batch of rows. The cost, in WAL mode, is that the WAL cannot be
checkpointed past our snapshot until the dump ends (it grows meanwhile; SQLite trims it later).

Parts: ``tables/<t>.sql`` holds the ``CREATE TABLE`` text stored in ``sqlite_master`` and one
``INSERT INTO "t" VALUES(...);`` per row (the format of ``sqlite3 .dump`` and ``iterdump``), rows in
rowid order (primary key order for WITHOUT ROWID tables) so an unchanged table dumps to the same
bytes. ``schema/post.sql`` holds indexes, triggers and views (creation order), the
``sqlite_sequence`` counters of AUTOINCREMENT tables (they must be set after the rows, whose
inserts move them), ``PRAGMA user_version`` and ``ANALYZE`` if the source had statistics.
Limitation shared with ``.dump``: rowids of tables without an INTEGER PRIMARY KEY are renumbered.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.dump import POST_PART, DatabaseDump, table_part_name
from cells_backup.database.errors import DatabaseError
from cells_backup.database.sqlite_rows import (
    ALGORITHM,
    RowSetHasher,
    connect,
    literal,
    quote_ident,
    select_rows,
    sqlite_error,
    user_tables,
)

CHUNK = 256 * 1024
SEQUENCE = "sqlite_sequence"


@dataclass
class SQLiteFacts:
    """What the read transaction saw of the schema."""

    version: str
    encoding: str
    journal_mode: str
    user_version: int
    tables: list[tuple[str, str, bool, str]]  # name, type, without_rowid, CREATE sql
    post: list[tuple[str, str, str]] = field(default_factory=list)  # type, name, sql
    has_sequence: bool = False
    has_stats: bool = False


def open_sqlite_dump(conn: ConnectionInfo) -> SQLiteDump:
    """Open the file read-only and start the read transaction (fails now if it is unreadable)."""
    path = conn.database
    if not os.path.isfile(path):
        raise DatabaseError(f"SQLite database file not found: {path}")
    db = connect(path, mode="ro")
    try:
        db.execute("BEGIN")
        facts = _read_facts(db)
    except sqlite3.Error as e:
        db.close()
        raise sqlite_error(path, e) from None
    return SQLiteDump(conn, db, facts)


def _read_facts(db: sqlite3.Connection) -> SQLiteFacts:
    master = db.execute("SELECT type, name, tbl_name, sql FROM main.sqlite_master ORDER BY rowid").fetchall()
    sql_of = {name: sql for typ, name, _t, sql in master if typ == "table"}
    facts = SQLiteFacts(
        version=db.execute("SELECT sqlite_version()").fetchone()[0],
        encoding=db.execute("PRAGMA main.encoding").fetchone()[0],
        journal_mode=db.execute("PRAGMA main.journal_mode").fetchone()[0],
        user_version=db.execute("PRAGMA main.user_version").fetchone()[0],
        tables=[(n, t, wr, sql_of[n]) for n, t, wr in user_tables(db)],
        has_sequence=SEQUENCE in sql_of,
        has_stats="sqlite_stat1" in sql_of,
    )
    facts.post = [
        (typ, name, sql) for typ, name, _t, sql in master if typ in ("index", "trigger", "view") and sql is not None
    ]
    return facts


class SQLiteDump(DatabaseDump):
    """Per-table SQL from one read transaction on the live file."""

    kind = "sqlite"

    def __init__(self, conn: ConnectionInfo, db: sqlite3.Connection, facts: SQLiteFacts):
        super().__init__(conn)
        self._db: sqlite3.Connection | None = db
        self.facts = facts
        self._manifest.update(
            server_version=f"SQLite {facts.version}",
            charset=facts.encoding,
            collation="",
            encoding=facts.encoding,
            journal_mode=facts.journal_mode,
            user_version=facts.user_version,
            tool="python-sqlite3",
            consistent=True,
            hash_algorithm=ALGORITHM,
            views=[n for t, n, _ in facts.post if t == "view"],
            triggers=[n for t, n, _ in facts.post if t == "trigger"],
            indexes=[n for t, n, _ in facts.post if t == "index"],
            routines=[],
            events=[],
        )

    def _generate(self) -> Iterator[tuple[str, Iterator[bytes]]]:
        for name, ttype, without_rowid, sql in self.facts.tables:
            yield table_part_name(name), self._table_chunks(name, ttype, without_rowid, sql)
        yield POST_PART, self._post_chunks()

    def _rows(self, sql: str) -> Iterator[list]:
        if self._db is None:
            raise DatabaseError(self._fail("dump closed"))
        try:
            cur = self._db.execute(sql)
            while rows := cur.fetchmany(1000):
                yield rows
        except sqlite3.Error as e:
            raise DatabaseError(self._fail(str(sqlite_error(self.conn.database, e)))) from None

    def _fail(self, msg: str) -> str:
        self.fail(msg)
        return msg

    def _table_chunks(self, table: str, ttype: str, without_rowid: bool, sql: str) -> Iterator[bytes]:
        hasher = RowSetHasher()
        q = quote_ident(table)
        yield f"-- Table {q}\n{sql};\n".encode()
        head = f"INSERT INTO {q} VALUES("
        out: list[str] = []
        size = 0
        for rows in self._rows(select_rows(table, without_rowid, ttype == "virtual")):
            hasher.add_rows(rows)
            for row in rows:
                line = head + ",".join([literal(v) for v in row]) + ");\n"
                out.append(line)
                size += len(line)
            if size >= CHUNK:
                yield "".join(out).encode("utf-8")
                out, size = [], 0
        out.append("\n")
        yield "".join(out).encode("utf-8")
        self._record(table, hasher, table_part_name(table))

    def _record(self, table: str, hasher: RowSetHasher, part: str) -> None:
        self._manifest["tables"][table] = {"rows": hasher.rows, "hash": hasher.hexdigest(), "part": part}

    def _post_chunks(self) -> Iterator[bytes]:
        out = ["-- Indexes, triggers and views\n"]
        out += [f"{sql};\n" for _t, _n, sql in self.facts.post]
        if self.facts.has_sequence:
            hasher = RowSetHasher()
            out.append(f"DELETE FROM {quote_ident(SEQUENCE)};\n")
            head = f"INSERT INTO {quote_ident(SEQUENCE)} VALUES("
            for rows in self._rows(f"SELECT * FROM main.{quote_ident(SEQUENCE)}"):
                hasher.add_rows(rows)
                out += [head + ",".join(map(literal, r)) + ");\n" for r in rows]
            self._record(SEQUENCE, hasher, POST_PART)
        out.append(f"PRAGMA user_version={int(self.facts.user_version)};\n")
        if self.facts.has_stats:
            out.append("ANALYZE;\n")
        self._end_transaction()
        yield "".join(out).encode("utf-8")

    def _end_transaction(self) -> None:
        try:
            if self._db is not None:
                self._db.execute("COMMIT")
        except sqlite3.Error as e:
            raise DatabaseError(self._fail(str(sqlite_error(self.conn.database, e)))) from None

    def _finish(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
