"""Split a MySQL script stream into statements, the way the ``mariadb`` client does.

Used by the native loader when no ``mariadb`` client is installed, so that the same parts load
either way. Understands quotes (``'``, ``"``, backquotes, with backslash escapes), ``--``/``#``
comments, ``/* */`` comments (``/*!`` conditional ones are statement text) and the client's
``DELIMITER`` command (used in ``schema/post.sql``). Memory holds one statement at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from cells_backup.database.errors import DatabaseError

READ_SIZE = 1 << 20
_QUOTE_END = {
    b"'": re.compile(rb"[^'\\]*(?:\\.[^'\\]*)*'", re.S),
    b'"': re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.S),
    b"`": re.compile(rb"[^`]*`", re.S),
}
_DELIMITER_CMD = re.compile(rb"[ \t\r\n]*DELIMITER[ \t]+(\S+)[ \t]*\r?\n", re.I)


def _special(delim: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"['\"`#]|/\*|--[ \t\r\n]|" + re.escape(delim))


def split_statements(read: Callable[[int], bytes]) -> Iterator[bytes]:
    """Yield each statement (without its delimiter) read from `read(n)` until it returns b""."""
    buf = b""
    start = pos = 0  # statement start, scan position
    content = False  # the current statement has more than whitespace and comments
    eof = False
    delim = b";"
    special = _special(delim)

    def more() -> bool:
        nonlocal buf, start, pos, eof
        if eof:
            return False
        data = read(READ_SIZE)
        if not data:
            eof = True
            return False
        buf = buf[start:] + data
        pos -= start
        start = 0
        return True

    while True:
        if not content:
            m = _DELIMITER_CMD.match(buf, pos)
            if m:
                delim = m.group(1)
                special = _special(delim)
                start = pos = m.end()
                continue
            tail = buf[pos : pos + 4096].lstrip()
            if b"\n" not in tail and b"DELIMITER".startswith(tail[:9].upper()) and more():
                continue  # a DELIMITER command may still be arriving
        m = special.search(buf, pos)
        if m is None:
            if more():
                continue
            break
        if buf[pos : m.start()].strip():
            content = True
        tok = m.group()
        if tok in _QUOTE_END:
            end = _QUOTE_END[tok].match(buf, m.end())
            while end is None:
                if not more():
                    raise DatabaseError("SQL script ends inside a quoted string")
                m = special.search(buf, pos)
                end = _QUOTE_END[tok].match(buf, m.end())
            content = True
            pos = end.end()
        elif tok == b"/*":
            close = buf.find(b"*/", m.end())
            while close < 0:
                if not more():
                    raise DatabaseError("SQL script ends inside a comment")
                m = special.search(buf, pos)
                close = buf.find(b"*/", m.end())
            if buf[m.end() : m.end() + 1] == b"!" or buf[m.end() : m.end() + 2] == b"M!":
                content = True
            pos = close + 2
        elif tok in (b"#",) or tok.startswith(b"--"):
            eol = buf.find(b"\n", m.start())
            while eol < 0:
                if not more():
                    eol = len(buf)
                    break
                m = special.search(buf, pos)
                eol = buf.find(b"\n", m.start())
            pos = eol + 1 if eol < len(buf) else eol
        else:  # the delimiter
            if content:
                yield buf[start : m.start()].strip()
            start = pos = m.end()
            content = False
    if buf[start:].strip() and content:
        yield buf[start:].strip()
