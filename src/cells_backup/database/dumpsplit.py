"""Cut a mariadb-dump/mysqldump output stream at its section markers, in big blocks.

The client announces each table with a three-line comment (``--`` / ``-- Table structure for
table `t``` / ``--``), views, routines and events likewise, and ends the dump body with the
``SET TIME_ZONE=@OLD_TIME_ZONE`` line. `pieces` yields the stream as content pieces and markers,
in order, without splitting row data into lines in Python: the body of each ``INSERT`` statement
is skipped with ``bytes.find`` (`_Scanner`), markers are checked with a regex at the start of the
few other lines, and each content piece ends at a line end, so row data can be counted and hashed
per piece (`dumphash`). A marker can straddle two reads: the last lines
of a read that could begin one are held back until the next read completes or rules it out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

BLOCK = 1 << 18
TRAILER = b"/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n"
_MARKER = re.compile(
    rb"--\n-- (?:Table structure for table `((?:[^`]|``)*)`"
    rb"|((?:Temporary table|Final view) structure for view |Dumping (?:events|routines) for database )"
    rb"[^\n]*)\n--\n"
)
_PARTIAL = re.compile(rb"--\n(?:-- [^\n]*\n)?\Z")
_HOLD_WINDOW = 8192  # a marker is a few hundred bytes at most


@dataclass(frozen=True)
class Marker:
    """A section boundary: a table (with its name), another section to skip, or the trailer."""

    kind: str  # "table", "skip" or "trailer"
    table: str = ""


Piece = tuple[bytes, Marker | None]


def pieces(read: Callable[[int], bytes]) -> Iterator[Piece]:
    """The stream as ``(content, None)`` and ``(b"", marker)`` items, in stream order.

    Content pieces start at a line start and end at a line end, except the very last one when the
    stream is cut in the middle of a line. `read(n)` returns b"" at the end of the stream.
    """
    scanner = _Scanner()
    carry = b""  # the start of a line (or of a marker) that the next read completes
    long_line: list[bytes] = []  # reads with no line end in them (a line longer than a read)
    while True:
        data = read(BLOCK)
        if not data:
            rest = b"".join([carry, *long_line])
            if rest:
                yield rest, None
            return
        end = data.rfind(b"\n") + 1
        if end == 0:
            long_line.append(data)
            continue
        if long_line:
            carry, long_line = b"".join([carry, *long_line]), []
        # One copy per block: the carried line start and this block up to its last line end.
        buf = b"".join((carry, memoryview(data)[:end])) if carry or end < len(data) else data
        carry = data[end:]
        pos = yield from scanner.scan(buf)
        hold = _partial_marker_start(buf, pos)
        if hold < len(buf):
            if hold > pos:
                yield buf[pos:hold], None
            carry = buf[hold:] + carry
        elif pos < len(buf):
            yield buf[pos:], None


class _Scanner:
    """Finds the markers of whole-line blocks, skipping the body of INSERT statements.

    Row data is most of a dump and cannot hold a marker: a statement starts with a line
    ``INSERT ...`` and ends at the first ``);`` followed by a line end (values never hold a raw
    line end: the client escapes it), so it is skipped by looking for ``;`` alone (memchr
    speed) instead of searching every byte for the markers. Other lines (a few per table) are
    looked at one by one. A statement may go on in the next block: the state is kept.
    """

    __slots__ = ("in_statement",)

    def __init__(self) -> None:
        self.in_statement = False

    def scan(self, buf: bytes) -> Iterator[Piece]:
        """Yield the content and complete markers of `buf`; return where the unmarked tail starts."""
        pos = 0
        i = 0
        n = len(buf)
        while i < n:
            if self.in_statement:
                i = _statement_end(buf, i)
                if i < 0:
                    break
                self.in_statement = False
                continue
            if buf.startswith(b"INSERT ", i):
                self.in_statement = True
                continue
            marker = None
            if buf.startswith(b"--\n-- ", i):
                m = _MARKER.match(buf, i)
                if m is not None:
                    stop = m.end()
                    if m.group(1) is not None:
                        marker = Marker("table", m.group(1).replace(b"``", b"`").decode("utf-8"))
                    else:
                        marker = Marker("skip")
            elif buf.startswith(TRAILER, i):
                marker, stop = Marker("trailer"), i + len(TRAILER)
            if marker is not None:
                if i > pos:
                    yield buf[pos:i], None
                yield b"", marker
                pos = i = stop
                continue
            i = buf.find(b"\n", i) + 1
            if i == 0:
                break
        return pos


def _statement_end(buf: bytes, i: int) -> int:
    """Where the line after the statement going on at `i` starts (after ``);\\n``), or -1."""
    while True:
        j = buf.find(b";", i)
        if j < 0:
            return -1
        if buf[j + 1 : j + 2] == b"\n" and j > 0 and buf[j - 1] == 0x29:  # ")"
            return j + 2
        i = j + 1


def _partial_marker_start(buf: bytes, pos: int) -> int:
    """Where the tail of `buf` (after `pos`) may begin a marker completed by the next read."""
    lo = max(pos, len(buf) - _HOLD_WINDOW)
    at = buf.rfind(b"--\n", lo)
    while at >= lo:
        if (at == 0 or buf[at - 1] == 0x0A) and _PARTIAL.match(buf, at):
            return at
        at = buf.rfind(b"--\n", lo, at)
    return len(buf)
