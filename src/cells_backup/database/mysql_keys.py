"""Secondary keys built after a table's rows are loaded, not row by row while they arrive.

InnoDB inserting into a table with several secondary indexes updates each of them for every row,
in random order, and thrashes the buffer pool once they outgrow it (Cells' index tables have seven).
``ALTER TABLE ... ADD KEY`` after the load builds each index by one sort instead: on a Cells index
table of 700k rows the load takes a third less time. The restored table is the same: the server
orders keys itself (primary, unique, others), whichever way they were created.

Only plain ``KEY`` and ``UNIQUE KEY`` lines are deferred, and not at all in a table with foreign
keys (InnoDB would create its own index for them) or whose ``AUTO_INCREMENT`` column is not first
in the primary key (the column must be indexed from the start).
"""

from __future__ import annotations

import re
from typing import BinaryIO

HEAD_LIMIT = 1 << 20
_READ = 64 * 1024
# A table part's CREATE TABLE statement: name, the definition lines, the table options.
CREATE_TABLE = re.compile(rb"^CREATE TABLE (`(?:[^`]|``)+`) \(\n(.*?)\n\)([^\n]*);\n", re.S | re.M)
_DEFERRABLE = re.compile(rb"^  (?:UNIQUE )?KEY `")
_AUTO_COLUMN = re.compile(rb"^  (`(?:[^`]|``)+`) [^\n]* AUTO_INCREMENT(?:,|$)")
_PRIMARY_FIRST = re.compile(rb"^  PRIMARY KEY \((`(?:[^`]|``)+`)")


def read_head(stream: BinaryIO) -> bytes:
    """The start of a table part, up to the end of its CREATE TABLE statement (or the first rows)."""
    head = b""
    while len(head) < HEAD_LIMIT:
        data = stream.read(_READ)
        if not data:
            break
        head += data
        if CREATE_TABLE.search(head) or b"\nINSERT " in head:
            break
    return head


def defer_keys(head: bytes) -> tuple[bytes, bytes]:
    """(head without its deferrable key lines, the ALTER TABLE statement adding them back).

    Returns (head, b"") when nothing is deferred.
    """
    m = CREATE_TABLE.search(head)
    if m is None:
        return head, b""
    lines = m.group(2).split(b"\n")
    if any(line.lstrip().startswith((b"CONSTRAINT", b"FOREIGN KEY")) for line in lines):
        return head, b""
    auto = [a.group(1) for line in lines if (a := _AUTO_COLUMN.match(line))]
    primary = [p.group(1) for line in lines if (p := _PRIMARY_FIRST.match(line))]
    if auto and auto != primary:
        return head, b""
    deferred = [line.strip().rstrip(b",") for line in lines if _DEFERRABLE.match(line)]
    if not deferred:
        return head, b""
    kept = [line for line in lines if not _DEFERRABLE.match(line)]
    kept[-1] = kept[-1].rstrip(b",")
    create = b"CREATE TABLE " + m.group(1) + b" (\n" + b"\n".join(kept) + b"\n)" + m.group(3) + b";\n"
    alter = b"ALTER TABLE " + m.group(1) + b" " + b", ".join(b"ADD " + k for k in deferred) + b";\n"
    return head[: m.start()] + create + head[m.end() :], alter
