"""Row count and content hash of a table, computable both from a dump and from a live table.

Definition (``rowset-blake2b256-v1``): each row is the sequence of its column values as the server
sends them in the text protocol (bytes in utf8mb4, hex-decoded for binary columns, ``None`` for
NULL); a row's digest is BLAKE2b-256 over ``0x00`` for NULL or ``0x01 + len(8 bytes) + bytes`` per
value; the table hash is the sum of the row digests modulo 2**256. The sum makes the hash
independent of row order, so a restored table is verified with a plain ``SELECT *`` (no sort), and
the per-value form makes it independent of how a dump tool quotes values (``'..'``, ``0x..``, bare
numbers).

Why parse the dump instead of counting on the server: MySQL cannot share a snapshot between two
sessions, so the only rows guaranteed to be the ones dumped are the rows in the dump stream itself.
`TableHasher.add_insert_line` reads the ``INSERT ... VALUES (...),(...);`` lines that mysqldump,
mariadb-dump and our native dumper write (with ``--hex-blob``).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from hashlib import blake2b

from cells_backup.database.errors import DatabaseError

ALGORITHM = "rowset-blake2b256-v1"
_MOD = 1 << 256

_STR = rb"'[^'\\]*(?:\\.[^'\\]*)*'"
_VALUE_NC = rb"(?:" + _STR + rb"|0x[0-9A-Fa-f]+|NULL|[-+0-9.eE]+)"
_TUPLE = re.compile(rb"\((" + _VALUE_NC + rb"(?:," + _VALUE_NC + rb")*)\)", re.S)
_VALUE = re.compile(rb"'([^'\\]*(?:\\.[^'\\]*)*)'|0x([0-9A-Fa-f]+)|(NULL)|([-+0-9.eE]+)", re.S)
_IDENT = rb"`(?:[^`]|``)*`"
_VALUES_KW = re.compile(
    rb"(?:INSERT|REPLACE)\s+(?:IGNORE\s+)?INTO\s+" + _IDENT + rb"\s*(?:\((?:[^)`]|" + _IDENT + rb")*\)\s*)?VALUES\s*",
    re.I,
)
_ESCAPE = re.compile(rb"\\(.)", re.S)
_UNESCAPE = {
    b"0": b"\x00", b"b": b"\x08", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"Z": b"\x1a",
    b"%": b"\\%", b"_": b"\\_",
}


def _unescape(m: re.Match) -> bytes:
    c = m.group(1)
    return _UNESCAPE.get(c, c)


def row_digest(values: Sequence[bytes | None]) -> int:
    """The digest of one row as an integer (see module docstring)."""
    h = blake2b(digest_size=32)
    for v in values:
        if v is None:
            h.update(b"\x00")
        else:
            h.update(b"\x01" + len(v).to_bytes(8, "big"))
            h.update(v)
    return int.from_bytes(h.digest(), "big")


class TableHasher:
    """Accumulates row count and rowset hash for one table."""

    __slots__ = ("rows", "_sum")

    def __init__(self) -> None:
        self.rows = 0
        self._sum = 0

    def add_row(self, values: Sequence[bytes | None]) -> None:
        self.rows += 1
        self._sum = (self._sum + row_digest(values)) % _MOD

    def hexdigest(self) -> str:
        return f"{self._sum:064x}"

    def add_insert_line(self, line: bytes) -> None:
        """Count and hash every row tuple of one ``INSERT INTO ... VALUES (...),...;`` statement."""
        kw = _VALUES_KW.match(line)
        if kw is None:
            raise DatabaseError("dump stream corrupt: INSERT statement without VALUES")
        pos = kw.end()
        end = len(line.rstrip(b"\r\n; \t"))
        total = self._sum
        rows = 0
        for m in _TUPLE.finditer(line, pos):
            if m.start() != pos:
                break
            h = blake2b(digest_size=32)
            for s, hx, null, num in _VALUE.findall(m.group(1)):
                if null:
                    h.update(b"\x00")
                    continue
                if hx:
                    v = binascii.unhexlify(hx)
                elif num:
                    v = num
                elif b"\\" in s:
                    v = _ESCAPE.sub(_unescape, s)
                else:
                    v = s
                h.update(b"\x01" + len(v).to_bytes(8, "big"))
                h.update(v)
            total += int.from_bytes(h.digest(), "big")
            rows += 1
            pos = m.end()
            if pos < end and line[pos : pos + 1] == b",":
                pos += 1
        if pos != end or rows == 0:
            raise DatabaseError(f"dump stream corrupt: cannot parse INSERT values near byte {pos}")
        self.rows += rows
        self._sum = total % _MOD
