r"""A table's rows loaded with ``LOAD DATA LOCAL INFILE``, read straight from its INSERT statements.

The server parses ``LOAD DATA`` input about twice as fast as the same rows in ``INSERT``
statements. The rows need no conversion: a dumped row line ``('a\'b',1,NULL,0x00FF),`` is already
a ``LOAD DATA`` line with fields ``TERMINATED BY ','``, ``OPTIONALLY ENCLOSED BY '\''``,
``ESCAPED BY '\\'`` (the dump's escapes are the ones it reads; an unquoted ``NULL`` is NULL), lines
``STARTING BY '('`` (which also skips each ``INSERT INTO `t` VALUES`` line before a row) and
``TERMINATED BY '),\n'`` once each statement's last row ``);`` is rewritten ``),`` — the only
change made to the stream. A raw newline never occurs inside a dumped value (it is written
``\n``), so lines cannot be confused. Binary columns, dumped in hex (``--hex-blob``), are read into
a variable and set with ``UNHEX``.

Used only where that reading is exact: the first statement is a plain ``INSERT INTO `t` VALUES``
(no column list) and no column is generated, invisible, BIT or spatial; anything else is loaded
as the INSERT statements it is. Whatever the path, the restored rows are verified afterwards.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from cells_backup.database.errors import DatabaseError
from cells_backup.database.mysql_keys import CREATE_TABLE

BLOCK = 1 << 20
_COLUMN = re.compile(rb"^  (`(?:[^`]|``)+`) ([a-z]+)")
_BINARY = {b"binary", b"varbinary", b"tinyblob", b"blob", b"mediumblob", b"longblob"}
_NOT_TEXT = {
    b"bit", b"geometry", b"point", b"linestring", b"polygon", b"multipoint", b"multilinestring",
    b"multipolygon", b"geometrycollection",
}  # fmt: skip
_COMPUTED = re.compile(rb" (?:GENERATED ALWAYS|AS \(|INVISIBLE)")


def split_head(head: bytes) -> tuple[bytes, bytes]:
    """(the statements before the first INSERT, the rest) of the start of a table part."""
    i = head.find(b"\nINSERT ")
    return (head, b"") if i < 0 else (head[: i + 1], head[i + 1 :])


def load_statement(head: bytes, data: bytes, path: str) -> bytes | None:
    """The LOAD DATA statement reading `path` for this part's rows, or None if they cannot be read so.

    `head` holds the part's CREATE TABLE statement; `data` starts with its first INSERT line.
    """
    m = CREATE_TABLE.search(head)
    if m is None:
        return None
    table = m.group(1)
    if b"(" in table or not data.startswith(b"INSERT INTO " + table + b" VALUES\n"):
        return None  # a "(" before the row would be taken for the start of the line
    columns, setters = [], []
    for line in m.group(2).split(b"\n"):
        c = _COLUMN.match(line)
        if c is None:
            continue  # a key or constraint
        name, kind = c.groups()
        if kind in _NOT_TEXT or _COMPUTED.search(line):
            return None
        if kind in _BINARY:
            var = b"@cb_%d" % len(columns)
            columns.append(var)
            setters.append(name + b" = UNHEX(SUBSTRING(" + var + b", 3))")
        else:
            columns.append(name)
    if not columns:
        return None
    sql = (
        b"LOAD DATA LOCAL INFILE '" + path.encode() + b"' INTO TABLE " + table + b" CHARACTER SET utf8mb4"
        b" FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\\'' ESCAPED BY '\\\\'"
        b" LINES STARTING BY '(' TERMINATED BY '),\\n' (" + b", ".join(columns) + b")"
    )
    if setters:
        sql += b" SET " + b", ".join(setters)
    return sql + b";\n"


def feed_rows(first: bytes, stream: BinaryIO, out: BinaryIO, *, head_line: bytes = b"", tail: bytes = b"") -> None:
    """Write a part's INSERT statements (`first`, the rest of `stream`, then `tail`) as LOAD DATA input.

    `first` starts at a line start; `head_line` is the part's INSERT line (by default the first
    line of `first`). Raises DatabaseError on a line that is neither a row, that INSERT line nor
    blank: such a part is not the dump this loader expects.
    """
    head_line = head_line or first[: first.find(b"\n") + 1]
    carry = first
    pending_tail = tail
    while True:
        data = stream.read(BLOCK)
        if not data and pending_tail:
            data, pending_tail = pending_tail, b""
        buf = carry + data if data else carry
        end = buf.rfind(b"\n") + 1 if data else len(buf)
        block, carry = buf[:end], buf[end:]
        _check_lines(block, head_line)
        out.write(block.replace(b");\n", b"),\n"))
        if not data:
            return


def _check_lines(block: bytes, head_line: bytes) -> None:
    """Every line of `block` (whole lines) is a row, an INSERT head or blank."""
    lines = block.count(b"\n") + (not block.endswith(b"\n") and bool(block))
    rows = block.count(b"\n(") + block.startswith(b"(")
    heads = block.count(b"\n" + head_line) + block.startswith(head_line)
    if rows + heads == lines:
        return
    for line in block.splitlines():  # blank lines (or something else): look line by line
        if line and not line.startswith(b"(") and line + b"\n" != head_line and line.strip():
            raise DatabaseError(f"unexpected statement in the rows of table {table_name(head_line)}: {line[:60]!r}")


def table_name(head_line: bytes) -> str:
    return head_line[len(b"INSERT INTO ") : -len(b" VALUES\n")].decode("utf-8", "replace")

