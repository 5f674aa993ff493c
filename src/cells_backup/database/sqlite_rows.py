r"""SQLite values as SQL literals, their row hash, and connections that read them losslessly.

Shared by the dump (`sqlite_dump`) and the restore (`sqlite_load`): both sides must read values
the same way and hash them the same way, or a correct restore would fail its verification.

Reading: TEXT is decoded with ``surrogateescape`` (`text_factory`) so a value that is not valid
UTF-8 comes back byte for byte instead of failing the dump; BLOBs stay ``bytes``, so the type of
every value is known without asking SQLite for ``typeof()``.

Hash (``sqlite-rowset-blake2b256-v1``): each value is tagged with its storage class (``N`` NULL,
``I`` integer in decimal, ``R`` real as 8 IEEE-754 big-endian bytes, ``T`` text as UTF-8 bytes,
``B`` blob bytes), length-prefixed (8 bytes big-endian) and concatenated; the row digest is
BLAKE2b-256 of that and the table hash the sum of row digests modulo 2**256 (row order does not
matter, as for MySQL in `rowhash`). The storage class is part of the hash because SQLite keeps it
per value: a restore that turned ``'1'`` into ``1`` would be a different database.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import struct
from collections.abc import Iterable, Sequence
from hashlib import blake2b
from urllib.parse import quote

from cells_backup.database.errors import DatabaseError

ALGORITHM = "sqlite-rowset-blake2b256-v1"
TIMEOUT = 30.0
_MOD = 1 << 256
_UNSAFE_TEXT = re.compile("[\x00\r\ud800-\udfff]")
_text = functools.partial(str, encoding="utf-8", errors="surrogateescape")


def quote_ident(name: str) -> str:
    """An SQLite identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def literal(v: object) -> str:
    """`v` as an SQL literal that SQLite reads back as the same value and storage class.

    Text holding NUL or bytes that are not UTF-8 cannot be a quoted literal (the statement would be
    cut at NUL, or not be UTF-8): it is written as ``CAST(X'..' AS TEXT)``, and so is text holding
    CR, which the ``sqlite3`` shell drops from CR LF line ends when it reads a script. Infinities have no
    literal; ``1e999`` overflows to them. NaN never reaches us (SQLite stores it as NULL).
    """
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return "NULL" if v != v else ("1e999" if v > 0 else "-1e999")
        return repr(v)
    if isinstance(v, str):
        if _UNSAFE_TEXT.search(v):
            return "CAST(X'" + v.encode("utf-8", "surrogateescape").hex().upper() + "' AS TEXT)"
        return "'" + v.replace("'", "''") + "'"
    return "X'" + bytes(v).hex().upper() + "'"  # type: ignore[arg-type]


def _value(v: object) -> bytes:
    if v is None:
        return b"N"
    if isinstance(v, int):
        return b"I" + str(v).encode()
    if isinstance(v, float):
        return b"R" + struct.pack(">d", v)
    if isinstance(v, str):
        return b"T" + v.encode("utf-8", "surrogateescape")
    return b"B" + bytes(v)  # type: ignore[arg-type]


class RowSetHasher:
    """Row count and order-independent hash of SQLite rows (see module docstring)."""

    __slots__ = ("rows", "_sum")

    def __init__(self) -> None:
        self.rows = 0
        self._sum = 0

    def add_rows(self, rows: Iterable[Sequence[object]]) -> None:
        total, n = self._sum, 0
        for row in rows:
            parts = []
            for v in row:
                b = _value(v)
                parts.append(len(b).to_bytes(8, "big"))
                parts.append(b)
            total += int.from_bytes(blake2b(b"".join(parts), digest_size=32).digest(), "big")
            n += 1
        self.rows += n
        self._sum = total % _MOD

    def hexdigest(self) -> str:
        return f"{self._sum:064x}"


def connect(path: str, *, mode: str) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN/COMMIT), usable from any thread.

    `mode`: ``ro`` (dump, probes: never creates nor writes the file), ``rw`` or ``rwc`` (restore).
    """
    uri = "file:" + quote(os.path.abspath(path)) + f"?mode={mode}"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=TIMEOUT, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        raise sqlite_error(path, e) from None
    db.text_factory = _text
    return db


def sqlite_error(path: str, e: BaseException) -> DatabaseError:
    """One-line message for an SQLite failure."""
    text = str(e)
    low = text.lower()
    if "unable to open" in low:
        if not os.path.exists(path):
            return DatabaseError(f"SQLite database file not found: {path}")
        return DatabaseError(f"cannot open SQLite database {path}: permission denied or missing WAL files")
    if "not a database" in low or "malformed" in low:
        return DatabaseError(f"not a valid SQLite database: {path} ({text})")
    if "locked" in low or "busy" in low:
        return DatabaseError(f"SQLite database {path} is locked by another process (waited {TIMEOUT:.0f} s)")
    if "readonly" in low or "read-only" in low:
        return DatabaseError(f"SQLite database {path} is read-only: {text}")
    return DatabaseError(f"SQLite error on {path}: {text}")


def user_tables(db: sqlite3.Connection) -> list[tuple[str, str, bool]]:
    """(name, type, without_rowid) of every table of ``main`` that holds data of its own.

    ``type`` is ``table`` or ``virtual``; shadow tables (the storage of virtual tables) and SQLite's
    own ``sqlite_*`` tables are left out: they are rebuilt from the virtual tables' rows or by
    SQLite itself. Sorted by name so that dumps of an unchanged database are identical.
    """
    rows = db.execute("PRAGMA main.table_list").fetchall()
    out = []
    for _schema, name, ttype, _ncol, wr, _strict in rows:
        if ttype in ("table", "virtual") and not name.startswith("sqlite_"):
            out.append((name, ttype, bool(wr)))
    return sorted(out)


def table_exists(db: sqlite3.Connection, table: str) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()
    return row is not None


def select_rows(table: str, without_rowid: bool, virtual: bool) -> str:
    """The SELECT that reads a table in a stable order (rowid, or primary key for WITHOUT ROWID)."""
    sql = f"SELECT * FROM main.{quote_ident(table)}"
    return sql if without_rowid or virtual else sql + " ORDER BY _rowid_"


def table_digest(db: sqlite3.Connection, table: str) -> tuple[int, str]:
    """(rows, hash) of a table read through `db` (inside the caller's transaction, if any)."""
    hasher = RowSetHasher()
    cur = db.execute(f"SELECT * FROM main.{quote_ident(table)}")
    while rows := cur.fetchmany(2000):
        hasher.add_rows(rows)
    return hasher.rows, hasher.hexdigest()
