r"""Row count and content hash of one table, from the bytes of its dump part, at C speed.

Definition (``dump-blake3-v1``): the hash is BLAKE3 of the table part's bytes from its first
``INSERT`` line to the end of the part without its trailing line ends (what follows a table
differs between a dump of one table and of all), exactly as the dump client wrote them with the fixed
options of `mysql_dump` (``--order-by-primary``, ``--hex-blob``, ``--skip-dump-date``, a fixed
``--net-buffer-length``): the same rows give the same bytes. The row count is the number of rows
in those statements: mariadb-dump (and our native dumper) write one row per line after
``INSERT INTO `t` VALUES``, so it is the number of lines starting with ``(`` (values never hold a
raw newline: it is escaped as ``\n``). Tools that write many rows on one line are counted by
parsing the statements (`rowhash.TableHasher`, count only).

Why bytes and not rows: hashing each row in Python cost five times the dump itself. A restore is
verified by dumping the restored table again with the same client and options (`mysql_load`);
where that cannot give the same bytes (another server version or client), the rows of the stored
part and of the restored table are compared one by one (`rowhash`).
"""

from __future__ import annotations

from blake3 import blake3

from cells_backup.database.rowhash import TableHasher

ALGORITHM = "dump-blake3-v1"


class DataDigest:
    """Row count and hash of one table part, fed its bytes in order.

    Every piece given to `update` must start at the beginning of a line (the splitter cuts the
    stream at line ends); `complete` says whether the last statement was terminated.
    """

    __slots__ = ("rows", "_hash", "_parser", "_tail", "_held")

    def __init__(self) -> None:
        self.rows = 0
        self._hash: blake3 | None = None  # created at the first INSERT line
        self._parser: TableHasher | None = None  # only for many-rows-per-line dumps
        self._tail = b""  # last non-blank bytes of the data, to check the final ';'
        self._held = b""  # line ends not hashed yet: hashed only if more data follows

    def update(self, piece: bytes) -> None:
        """Account for the next bytes of the part."""
        if not piece:
            return
        if self._hash is None:
            start = _first_insert(piece)
            if start < 0:
                return
            piece = piece[start:]
            self._hash = blake3()
            first_line = piece[: piece.find(b"\n")].rstrip()
            if not first_line.endswith(b"VALUES"):
                self._parser = TableHasher(hash_rows=False)
        end = len(piece)
        while end and piece[end - 1] == 0x0A:
            end -= 1
        if end:
            if self._held:
                self._hash.update(self._held)
            self._hash.update(memoryview(piece)[:end])
            self._held = piece[end:]
        else:
            self._held += piece
        if self._parser is not None:
            for line in piece.splitlines(keepends=True):
                self._parser.feed_line(line)
            self.rows = self._parser.rows
        else:
            self.rows += piece.count(b"\n(") + (piece[:1] == b"(")
        stripped = piece.rstrip()
        if stripped:
            self._tail = stripped[-1:]

    @property
    def complete(self) -> bool:
        """False when the data ends inside an INSERT statement (a cut-short dump)."""
        if self._hash is None:
            return True
        if self._parser is not None and self._parser.in_values:
            return False
        return self._tail == b";"

    def hexdigest(self) -> str:
        return (self._hash or blake3()).hexdigest()


def _first_insert(piece: bytes) -> int:
    """Offset of the first line starting with ``INSERT `` in `piece` (a line start), or -1."""
    if piece.startswith(b"INSERT "):
        return 0
    i = piece.find(b"\nINSERT ")
    return i + 1 if i >= 0 else -1
