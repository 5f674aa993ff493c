r"""Row count and content hash of a table, computable both from a dump and from a live table.

Definition (``rowset-blake2b256-v1``): each row is the sequence of its column values as the server
sends them in the text protocol (bytes in utf8mb4; NULL distinct from every string). Each value is
written in MySQL's standard escaped form (``mysql_real_escape_string``: ``\0 \n \r \\ \' \" \Z``;
NULL as ``\N``, which no escaped value can be), the values are joined with ``'`` (never unescaped
inside a value, so the encoding is unambiguous), the row digest is BLAKE2b-256 of that, and the
table hash is the sum of row digests modulo 2**256. The sum makes it independent of row order, so
a restored table is verified with a plain ``SELECT *`` (no sort); the escaped form is what
mysqldump already writes between quotes, so the dump side hashes strings without unescaping them,
and the form is independent of how a tool quotes values (``'..'``, ``0x..``, bare numbers).

Why parse the dump instead of counting on the server: MySQL cannot share a snapshot between two
sessions, so the only rows guaranteed to be the ones dumped are the rows in the dump stream itself.
`TableHasher.feed_line` reads the ``INSERT ... VALUES (...),(...);`` lines that mysqldump,
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
BATCH = 1 << 20

_STR = rb"'[^'\\]*(?:\\.[^'\\]*)*'"
_VALUE_NC = rb"(?:" + _STR + rb"|0x[0-9A-Fa-f]+|NULL|[-+0-9.eE]+)"
_TUPLE = re.compile(rb"\((" + _VALUE_NC + rb"(?:," + _VALUE_NC + rb")*)\)", re.S)
_VALUE = re.compile(rb"'([^'\\]*(?:\\.[^'\\]*)*)'|0x([0-9A-Fa-f]+)|(NULL)|([-+0-9.eE]+)", re.S)
_IDENT = rb"`(?:[^`]|``)*`"
_VALUES_KW = re.compile(
    rb"(?:INSERT|REPLACE)\s+(?:IGNORE\s+)?INTO\s+"
    + _IDENT
    + rb"\s*(?:\((?:[^)`]|"
    + _IDENT
    + rb")*\)\s*)?VALUES\s*",
    re.I,
)
_ESCAPES = re.compile(rb"[\x00\n\r\\'\"\x1a]")
_ESCAPE_MAP = {
    b"\x00": b"\\0",
    b"\n": b"\\n",
    b"\r": b"\\r",
    b"\\": b"\\\\",
    b"'": b"\\'",
    b'"': b'\\"',
    b"\x1a": b"\\Z",
}
_NON_STANDARD = re.compile(rb"\\[^0nr\\'\"Z]")
_UNESCAPE_RE = re.compile(rb"\\(.)", re.S)
_UNESCAPE = {
    b"0": b"\x00",
    b"b": b"\x08",
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"Z": b"\x1a",
    b"%": b"\\%",
    b"_": b"\\_",
}
NULL = b"\\N"


def escape(v: bytes) -> bytes:
    """MySQL's standard escaping of a string value (what mysqldump writes between quotes)."""
    if _ESCAPES.search(v) is None:
        return v
    return _ESCAPES.sub(lambda m: _ESCAPE_MAP[m.group()], v)


def _normalize(s: bytes) -> bytes:
    """A dumped string in the standard escaped form, whatever escapes the tool used."""
    raw = _UNESCAPE_RE.sub(lambda m: _UNESCAPE.get(m.group(1), m.group(1)), s)
    return escape(raw)


def _other(hx: bytes, null: bytes) -> bytes:
    if null:
        return NULL
    if hx:
        return escape(binascii.unhexlify(hx))
    return b""  # the empty string ''


def row_digest(values: Sequence[bytes | None]) -> int:
    """The digest of one row of raw values as an integer (see module docstring)."""
    canon = b"'".join([NULL if v is None else escape(v) for v in values])
    return int.from_bytes(blake2b(canon, digest_size=32).digest(), "big")


class TableHasher:
    """Accumulates row count and rowset hash for one table."""

    __slots__ = ("rows", "_sum", "in_values", "_pending", "_pending_size", "_hash_rows")

    def __init__(self, hash_rows: bool = True) -> None:
        self._hash_rows = hash_rows  # False: count rows only
        self.rows = 0
        self._sum = 0
        self.in_values = False  # inside an INSERT whose rows continue on the next lines
        self._pending: list[bytes] = []
        self._pending_size = 0

    def feed_line(self, line: bytes) -> None:
        """Account for one dump line: INSERT heads and row lines count, anything else is ignored.

        mariadb-dump >= 10.11.8 writes one row per line after ``INSERT INTO `t` VALUES``; older
        tools write many rows on one line. Both end the statement with ``;``. Row lines are
        batched (up to ~1 MiB) and parsed together: per-line Python overhead dominated otherwise.
        """
        if self.in_values:
            self._pending.append(line)
            self._pending_size += len(line)
            if line.rstrip().endswith(b";") or self._pending_size >= BATCH:
                self._flush()
        elif line.startswith((b"INSERT", b"REPLACE")):
            kw = _VALUES_KW.match(line)
            if kw is None:
                raise DatabaseError("dump stream corrupt: INSERT statement without VALUES")
            self.in_values = True
            rest = line[kw.end() :]
            if rest.strip():
                self.feed_line(rest)

    def add_row(self, values: Sequence[bytes | None]) -> None:
        self.rows += 1
        self._sum = (self._sum + row_digest(values)) % _MOD

    def hexdigest(self) -> str:
        return f"{self._sum:064x}"

    def _flush(self) -> None:
        buf = b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        stripped = buf.rstrip()
        self.in_values = not stripped.endswith(b";")
        end = len(stripped) - 1 if stripped.endswith((b";", b",")) else len(stripped)
        normalize = b"\\" in buf and _NON_STANDARD.search(buf) is not None
        total = self._sum
        rows = 0
        pos = 0
        findall = _VALUE.findall
        for m in _TUPLE.finditer(buf):
            if m.start() != pos:
                break
            rows += 1
            pos = m.end()
            if buf[pos : pos + 1] == b",":
                pos += 1
                while buf[pos : pos + 1] in (b"\n", b"\r", b" "):
                    pos += 1
            if not self._hash_rows:
                continue
            vals = findall(m.group(1))
            if normalize:
                canon = b"'".join([_normalize(s) if s else (nm or _other(hx, nl)) for s, hx, nl, nm in vals])
            else:
                canon = b"'".join([s or nm or _other(hx, nl) for s, hx, nl, nm in vals])
            total += int.from_bytes(blake2b(canon, digest_size=32).digest(), "big")
        if pos < end or rows == 0:
            raise DatabaseError(f"dump stream corrupt: cannot parse INSERT values near byte {pos}")
        self.rows += rows
        self._sum = total % _MOD
