"""A database dump as an ordered sequence of named byte streams (parts), plus a manifest.

Why parts: one part per table means an unchanged table produces byte-identical output across runs
(the repository stores it once) and restore can load tables in parallel. The layout is:

* ``tables/<table>.sql``: ``CREATE TABLE`` and the table's ``INSERT`` statements (no DROP);
* ``schema/post.sql``: views, triggers, routines and events, loaded after every table
  (triggers must not fire during the load; views need their tables). Always present, last.

Part names quote characters outside ``[A-Za-z0-9_$-]`` as ``%XX`` (UTF-8) so any table name is a
safe path. A part is consumed in order and never rewound; nothing is written to disk. After the
last part, `DatabaseDump.close()` raises `DatabaseError` if the dump failed or was cut short, and
`manifest()` describes what was dumped (see `DatabaseDump.manifest`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import Any

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.errors import DatabaseError
from cells_backup.database.stderr_tail import StderrTail

MANIFEST_FORMAT = 1
POST_PART = "schema/post.sql"
_UNSAFE = re.compile(r"[^A-Za-z0-9_$-]")


def table_part_name(table: str) -> str:
    """The part name for a table: ``tables/<quoted name>.sql``."""
    quoted = _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), table)
    return f"tables/{quoted}.sql"


class DumpPart(io.RawIOBase):
    """One named, read-once binary stream, fed lazily from a generator of byte chunks."""

    def __init__(self, name: str, chunks: Iterator[bytes]):
        super().__init__()
        self.name = name
        self._chunks = chunks
        self._buf = memoryview(b"")  # a view: handing bytes on to the caller copies them once
        self._pos = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        """Fill `b` with the next bytes of the part; 0 at the end of the part."""
        view = memoryview(b).cast("B")
        while self._pos >= len(self._buf):
            if self._eof:
                return 0
            try:
                self._buf = memoryview(next(self._chunks))
                self._pos = 0
            except StopIteration:
                self._eof = True
                self._buf, self._pos = memoryview(b""), 0
                return 0
        n = min(len(view), len(self._buf) - self._pos)
        view[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n

    def drain(self) -> None:
        """Consume what the caller did not read (so the next part can start)."""
        if not self._eof:
            for _ in self._chunks:
                pass
            self._eof = True


class DatabaseDump:
    """Base of every dump backend: iterate `parts()`, then `close()`, then read `manifest()`."""

    kind = ""

    def __init__(self, conn: ConnectionInfo):
        self.conn = conn
        self._started = False
        self._closed = False
        self._error: str | None = None
        self._manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "kind": conn.kind,
            "database": conn.database,
            "tables": {},
            "parts": [],
        }
        self._current: DumpPart | None = None

    # -- to implement
    def _generate(self) -> Iterator[tuple[str, Iterator[bytes]]]:
        raise NotImplementedError

    def _finish(self) -> None:
        """Release resources and record an error in `self._error` if the dump failed."""

    def _watch_stderr(self) -> None:
        """Collect the client's stderr (its end) in a thread, so a chatty client never blocks."""
        self._stderr_tail = StderrTail(self._proc.stderr)

    def _wait_client(self) -> tuple[int, str]:
        """Wait for the dump client: (exit status, its stderr)."""
        rc = self._proc.wait()
        tail = getattr(self, "_stderr_tail", None)
        return rc, tail.text() if tail is not None else ""

    def _stop_client(self) -> None:
        """Stop a dump client process (``self._proc``) that has not finished, and release its pipes.

        A client still running here means the dump was abandoned: that is recorded as a failure.
        """
        proc = getattr(self, "_proc", None)
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                self.fail("database dump stopped before completion")
            if proc.stdout:
                proc.stdout.close()
        tail = getattr(self, "_stderr_tail", None)
        if tail is not None:
            tail.text()

    @property
    def pid(self) -> int | None:
        """Process id of the dump client, when one is used (tests kill it)."""
        return None

    # -- public
    def parts(self) -> Iterator[DumpPart]:
        """The parts in order; each must be read (or is drained) before the next is produced."""
        if self._started:
            raise RuntimeError("DatabaseDump.parts() can be iterated only once")
        self._started = True
        try:
            for name, chunks in self._generate():
                part = DumpPart(name, chunks)
                self._current = part
                self._manifest["parts"].append(name)
                yield part
                part.drain()
        except DatabaseError as e:
            self._error = self._error or str(e)
            raise
        finally:
            self._current = None

    def fail(self, message: str) -> None:
        """Record a failure; close() will raise it."""
        self._error = self._error or message

    def close(self) -> None:
        """Stop the dump; raise DatabaseError if it failed or did not complete."""
        if self._closed:
            if self._error:
                raise DatabaseError(self._error)
            return
        self._closed = True
        if not self._started:
            self._error = self._error or "database dump closed before it was read"
        elif POST_PART not in self._manifest["parts"] and not self._error:
            self._error = "database dump closed before all parts were read"
        try:
            self._finish()
        finally:
            if self._error:
                raise DatabaseError(self._error)

    finish = close

    def manifest(self) -> dict[str, Any]:
        """JSON-able description of the dump, complete once `close()` succeeded.

        Keys: format, kind, database, server_version, charset, collation, tool, consistent,
        hash_algorithm, parts (in dump order), tables {name: {rows, hash, part}}, views,
        triggers, routines, events.
        """
        return self._manifest

    def __enter__(self) -> DatabaseDump:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self.close()
            except DatabaseError:
                pass


OpenPart = Callable[[], io.RawIOBase]
