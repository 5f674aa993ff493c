"""Restore, probe and export of SQLite databases (the dump is in `sqlite_dump`).

SQLite has one writer at a time, so parts are loaded one after the other (a lock serialises the
threads `restore_database` runs), each in one transaction on its own connection. Statements are
cut from the stream with `sqlite3.complete_statement` (which knows quotes and trigger bodies), so
memory holds one statement, never a part. Verification reads every table back and hashes it the
way the dump did (`sqlite_rows`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.dump import POST_PART
from cells_backup.database.errors import DatabaseError
from cells_backup.database.sqlite_rows import connect, quote_ident, sqlite_error, table_digest, table_exists
from cells_backup.errors import TargetNotEmptyError

READ_SIZE = 1 << 20


def _objects(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(type, name) of what a user created: tables (not shadow ones), views, indexes, triggers."""
    shadow = {r[1] for r in db.execute("PRAGMA main.table_list") if r[2] == "shadow"}
    return [
        (t, n)
        for t, n in db.execute("SELECT type, name FROM main.sqlite_master ORDER BY rowid")
        if not n.startswith("sqlite_") and n not in shadow
    ]


class SQLiteTarget:
    """The SQLite file a restore writes into."""

    loader = "python-sqlite3"

    def __init__(self, conn: ConnectionInfo):
        self.path = conn.database
        self._lock = threading.Lock()

    def prepare(self, manifest: dict, *, force: bool, create: bool) -> None:
        """Create the file if missing; refuse a non-empty one unless `force` (then drop everything)."""
        fresh = not os.path.exists(self.path)
        if fresh and not create:
            raise DatabaseError(f"SQLite database file not found: {self.path}")
        if fresh:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        db = connect(self.path, mode="rwc" if fresh else "rw")
        try:
            objects = _objects(db)
            if objects and not force:
                raise TargetNotEmptyError(
                    f"SQLite database {self.path} is not empty ({len(objects)} objects); use --force to replace it"
                )
            if objects:
                self._drop_all(db, objects)
            if not objects and manifest.get("encoding") and fresh:
                db.execute(f"PRAGMA encoding='{manifest['encoding']}'")
            if manifest.get("journal_mode", "").lower() == "wal":
                db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as e:
            raise sqlite_error(self.path, e) from None
        finally:
            db.close()

    @staticmethod
    def _drop_all(db: sqlite3.Connection, objects: list[tuple[str, str]]) -> None:
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("BEGIN IMMEDIATE")
        for kind in ("view", "trigger", "table"):  # indexes go with their tables
            for t, name in objects:
                if t == kind:
                    db.execute(f"DROP {kind.upper()} IF EXISTS main.{quote_ident(name)}")
        if table_exists(db, "sqlite_sequence"):
            db.execute("DELETE FROM main.sqlite_sequence")
        db.execute("COMMIT")
        db.execute("VACUUM")

    def load_part(self, name: str, stream: BinaryIO) -> None:
        """Execute one part in one transaction; DatabaseError naming the part on failure."""
        with self._lock:
            db = connect(self.path, mode="rw")
            try:
                db.execute("BEGIN IMMEDIATE")
                for stmt in statements(stream.read):
                    db.execute(stmt)
                db.execute("COMMIT")
            except sqlite3.Error as e:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise DatabaseError(f"loading {name} failed: {sqlite_error(self.path, e)}") from None
            finally:
                db.close()

    def table_digest(self, table: str) -> tuple[int, str] | None:
        """(rows, hash) of a restored table, or None if it does not exist."""
        db = connect(self.path, mode="ro")
        try:
            db.execute("BEGIN")
            if not table_exists(db, table):
                return None
            return table_digest(db, table)
        except sqlite3.Error as e:
            raise sqlite_error(self.path, e) from None
        finally:
            db.close()


def statements(read: Callable[[int], bytes]) -> Iterator[str]:
    """Complete SQL statements from a UTF-8 script stream, one at a time.

    A statement ends at a line ending with ``;`` where `sqlite3.complete_statement` agrees (a
    ``;`` inside a string or a trigger body does not end it). Only such lines are checked, so a
    value with many lines costs one check per ``;``-ended line, not one per line.
    """
    pending: list[bytes] = []
    rest = b""
    while True:
        data = read(READ_SIZE)
        if not data:
            break
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        for line in lines:
            pending.append(line)
            if line.rstrip().endswith(b";"):
                text = b"\n".join(pending).decode("utf-8")
                if sqlite3.complete_statement(text):
                    pending = []
                    yield text
    if rest:
        pending.append(rest)
    tail = b"\n".join(pending).decode("utf-8")
    if tail.strip():
        if not sqlite3.complete_statement(tail) and _has_sql(tail):
            raise DatabaseError("SQL script ends inside a statement")
        if _has_sql(tail):
            yield tail


def _has_sql(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


# ---------------------------------------------------------------- probes
def check_connection(conn: ConnectionInfo) -> str:
    """``SQLite <version>`` if the file is a readable SQLite database."""
    db = connect(conn.database, mode="ro")
    try:
        db.execute("SELECT count(*) FROM main.sqlite_master").fetchone()
        return "SQLite " + db.execute("SELECT sqlite_version()").fetchone()[0]
    except sqlite3.Error as e:
        raise sqlite_error(conn.database, e) from None
    finally:
        db.close()


def is_empty(conn: ConnectionInfo) -> bool:
    """True if the file is missing or holds no table, view, index or trigger."""
    if not os.path.exists(conn.database):
        return True
    db = connect(conn.database, mode="ro")
    try:
        return not _objects(db)
    except sqlite3.Error as e:
        raise sqlite_error(conn.database, e) from None
    finally:
        db.close()


def table_info(conn: ConnectionInfo, tables: Iterable[str]) -> dict[str, dict]:
    """{table: {"exists": bool, "rows": int}} with exact row counts."""
    db = connect(conn.database, mode="ro")
    try:
        db.execute("BEGIN")
        result = {}
        for t in tables:
            if table_exists(db, t):
                n = db.execute(f"SELECT count(*) FROM main.{quote_ident(t)}").fetchone()[0]
                result[t] = {"exists": True, "rows": int(n)}
            else:
                result[t] = {"exists": False, "rows": 0}
        return result
    except sqlite3.Error as e:
        raise sqlite_error(conn.database, e) from None
    finally:
        db.close()


# ---------------------------------------------------------------- export
def export_sqlite(parts: Sequence[tuple[str, Callable[[], BinaryIO]]], manifest: dict, out: BinaryIO) -> None:
    """One script that ``sqlite3 FILE < dump.sql`` loads (new file, or over an earlier load of it).

    One transaction; ``DROP TABLE IF EXISTS`` before each table and ``DROP VIEW IF EXISTS`` before
    the post-schema make it reloadable over itself, like the MySQL export.
    """
    table_of_part = {info["part"]: name for name, info in manifest.get("tables", {}).items()}
    names = {n for n, _ in parts}
    missing = sorted(set(table_of_part) - names)
    if missing:
        raise DatabaseError(f"database dump incomplete: missing part(s) {', '.join(missing[:5])}")
    out.write(
        f"-- cells-backup export of SQLite database {manifest.get('database', '')}\n"
        "-- Load with: sqlite3 FILE < THIS_FILE\n"
        "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n".encode()
    )
    ordered = [p for p in parts if p[0].startswith("tables/")] + [p for p in parts if p[0] == POST_PART]
    for name, opener in ordered:
        if name == POST_PART:
            for view in manifest.get("views", []):
                out.write(f"DROP VIEW IF EXISTS {quote_ident(view)};\n".encode())
        elif name in table_of_part:
            out.write(f"DROP TABLE IF EXISTS {quote_ident(table_of_part[name])};\n".encode())
        stream = opener()
        try:
            shutil.copyfileobj(stream, out, READ_SIZE)
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
    out.write(b"COMMIT;\n")
