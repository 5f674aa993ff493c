"""PostgreSQL dump: one pg_dump stream split per table, counts and hashes from the same snapshot.

Consistency: a ``psql`` session (`SnapshotHolder`) opens ``BEGIN ISOLATION LEVEL REPEATABLE READ,
READ ONLY`` and exports its snapshot (``pg_export_snapshot()``); ``pg_dump --snapshot=<id>`` dumps
exactly that snapshot while the holder, still in its transaction, computes every table's row count
and content hash on the server (`postgres_client.hash_query`), so both describe the same instant
whatever Cells writes meanwhile. The holder stays idle in its transaction until pg_dump is done.
The number of ``COPY`` rows streamed per table must equal the holder's count, or the dump fails.

Layout (one pg_dump process, its plain output split on the fly at its ``-- Name: ...; Type: ...``
comment blocks; pg_dump orders sections strictly: pre-data, data, post-data):

* ``schema/pre.sql``: extensions, types, functions, sequences, tables, views (pre-data). It comes
  first and is loaded first: PostgreSQL tables need their types, sequences and functions, so the
  ``CREATE TABLE`` cannot live in the table parts as it does for MySQL;
* ``tables/<t>.sql``: the table's ``COPY ... FROM stdin`` data (byte-identical while the table is
  unchanged: pg_dump disables synchronized scans); ``<t>`` is the table name, ``schema.table``
  outside ``public``;
* ``schema/post.sql``: sequence values, then constraints, indexes, triggers, foreign keys (post-data).

Every part starts with pg_dump's session header (encoding, ``standard_conforming_strings``,
``search_path``) so each loads alone. Objects are dumped ``--no-owner --no-privileges`` so a restore
works as another user on another server. pg_dump's ``\\restrict`` lines (random per run) are dropped
for determinism; the loader adds its own random key (see `postgres_load`).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.dump import POST_PART, DatabaseDump, table_part_name
from cells_backup.database.errors import DatabaseError
from cells_backup.database.postgres_catalog import FACTS_SQL, table_key
from cells_backup.database.postgres_client import (
    ALGORITHM,
    classify,
    client_env,
    digest_of,
    hash_query,
    require_tool,
)
from cells_backup.database.postgres_holder import SnapshotHolder
from cells_backup.priority import yield_cpu

PRE_PART = "schema/pre.sql"
CHUNK = 256 * 1024
_MARKER_STARTS = (b"-- Name: ", b"-- Data for Name: ", b"-- PostgreSQL database dump complete")
_TYPE = re.compile(rb"; Type: ([A-Z ]+); Schema: ")
_IDENT = rb'(?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*)'
_COPY = re.compile(rb"^COPY (" + _IDENT + rb")\.(" + _IDENT + rb")(?: \(.*\))? FROM stdin;\n$")
_DATA_TYPES = {b"TABLE DATA", b"SEQUENCE SET", b"BLOBS", b"BLOB DATA", b"LARGE OBJECTS"}


def _unquote(ident: bytes) -> str:
    if ident.startswith(b'"'):
        return ident[1:-1].replace(b'""', b'"').decode("utf-8")
    return ident.decode("utf-8")


def open_postgres_dump(conn: ConnectionInfo, tool: str = "auto") -> PostgresDump:
    """Connect (errors now: password, host, database), export a snapshot, list the tables in it."""
    if tool == "native":
        raise DatabaseError("no native PostgreSQL dumper: install the PostgreSQL client (pg_dump)")
    pg_dump = require_tool("pg_dump") if tool in ("auto", "pg_dump") else tool
    holder = SnapshotHolder(conn)
    try:
        holder.start()
        facts = holder.query(FACTS_SQL)
        return PostgresDump(conn, holder, pg_dump, facts)
    except BaseException:
        holder.close()
        raise


class PostgresDump(DatabaseDump):
    """pg_dump --snapshot streamed and split; the holder's counts and hashes in the manifest."""

    kind = "postgres"

    def __init__(self, conn: ConnectionInfo, holder: SnapshotHolder, pg_dump: str, facts: list[list[str]]):
        super().__init__(conn)
        self.holder = holder
        self.pg_dump = pg_dump
        self.tables: list[tuple[str, str]] = []
        info: dict[str, list[str]] = {"views": [], "triggers": [], "routines": []}
        version = encoding = ""
        denied: list[str] = []
        for row in facts:
            if row[0] == "V":
                version, encoding = row[1], row[2]
            elif row[0] == "T":
                self.tables.append((bytes.fromhex(row[1]).decode(), bytes.fromhex(row[2]).decode()))
                if row[3] != "y":
                    denied.append(table_key(*self.tables[-1]))
            else:
                info[{"W": "views", "G": "triggers", "R": "routines"}[row[0]]].append(bytes.fromhex(row[1]).decode())
        if denied:
            raise DatabaseError(
                f"missing database privileges for user {conn.user} on {conn.database!r} at {conn.where}:"
                f" no SELECT on table {denied[0]!r}" + (f" and {len(denied) - 1} more" if len(denied) > 1 else "")
            )
        self._manifest.update(
            server_version=f"PostgreSQL {version}",
            charset=encoding,
            encoding=encoding,
            collation="",
            tool=os.path.basename(pg_dump),
            consistent=True,
            hash_algorithm=ALGORITHM,
            events=[],
            **info,
        )
        self._proc: subprocess.Popen | None = None
        self._stack = contextlib.ExitStack()
        self._back: list[bytes] = []
        self._lines: Iterator[bytes] = iter(())
        self._header = b""
        self._completed = False
        self._streamed: dict[tuple[str, str], int] = {}
        self.restrict = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # ------------------------------------------------------------ process
    def _start(self) -> None:
        env = self._stack.enter_context(client_env(self.conn))
        argv = [
            self.pg_dump,
            f"--snapshot={self.holder.snapshot}",
            "--no-owner",
            "--no-privileges",
            "--no-tablespaces",
            "--no-publications",
            "--no-subscriptions",
            "--no-security-labels",
            "--encoding=UTF8",
            "--lock-wait-timeout=60s",
        ]
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, bufsize=1 << 20
            )
        except OSError as e:
            raise DatabaseError(f"cannot run {self.pg_dump}: {e}") from None
        self._watch_stderr()
        self._stack.enter_context(yield_cpu())  # the client (started above) and its server first
        assert self._proc.stdout
        self._lines = iter(self._proc.stdout.readline, b"")
        self.holder.send("".join(hash_query(f"H{i}", s, t) for i, (s, t) in enumerate(self.tables)) + "SELECT 'E';\n")

    def _process_error(self) -> str | None:
        rc, text = self._wait_client()
        if rc != 0:
            return f"database dump failed (pg_dump exit status {rc}): " + classify(text, self.conn, rc)
        if not self._completed:
            return "database dump cut short: pg_dump output ended before completion"
        return None

    def _failure(self, msg: str | None = None) -> DatabaseError:
        msg = msg or self._process_error() or "database dump cut short"
        self.fail(msg)
        return DatabaseError(msg)

    # ------------------------------------------------------------ lines
    def _next(self) -> bytes:
        if self._back:
            return self._back.pop()
        line = next(self._lines, b"")
        while line.startswith((b"\\restrict ", b"\\unrestrict ")):
            self.restrict = True
            line = next(self._lines, b"")
        return line

    def _marker(self, line: bytes) -> bytes | None:
        """The section type if `line` opens a pg_dump comment block (b"" for the completion block)."""
        if line != b"--\n":
            return None
        nxt = self._next()
        self._back.append(nxt)
        if not nxt.startswith(_MARKER_STARTS):
            return None
        if nxt.startswith(b"-- PostgreSQL database dump complete"):
            return b""
        m = _TYPE.search(nxt)
        return m.group(1) if m else b"OTHER"

    def _until_marker(self, first: bytes = b"") -> Iterator[bytes]:
        """Chunks of lines up to (not including) the next comment block; leaves it to be read."""
        out, size = [first] if first else [], len(first)
        while True:
            line = self._next()
            if not line:
                break
            if line.startswith(b"--") and self._marker(line) is not None:
                self._back.append(line)
                break
            if not line.endswith(b"\n"):
                raise self._failure("database dump cut short in the middle of a line")
            out.append(line)
            size += len(line)
            if size >= CHUNK:
                yield b"".join(out)
                out, size = [], 0
        if out:
            yield b"".join(out)

    def _peek_type(self) -> bytes | None:
        """Type of the section starting at the next line; None at end of stream."""
        line = self._next()
        if not line:
            return None
        kind = self._marker(line)
        self._back.append(line)
        if kind is None:
            raise self._failure("database dump stream corrupt: expected a pg_dump section")
        return kind

    # ------------------------------------------------------------ parts
    def _generate(self) -> Iterator[tuple[str, Iterator[bytes]]]:
        self._start()
        self._header = b"".join(self._until_marker())
        if self._peek_type() is None:
            raise self._failure()
        yield PRE_PART, self._pre_chunks()
        post_prefix: list[bytes] = []
        while (kind := self._peek_type()) in _DATA_TYPES:
            if kind == b"TABLE DATA":
                block = [self._next() for _ in range(3)]
                lines = [self._next()]
                while lines[-1] == b"\n":
                    lines.append(self._next())
                m = _COPY.match(lines[-1])
                if not m:
                    raise self._failure("database dump stream corrupt: table data without COPY")
                schema, table = _unquote(m.group(1)), _unquote(m.group(2))
                yield table_part_name(table_key(schema, table)), self._table_chunks(schema, table, block + lines)
            else:
                post_prefix += list(self._until_marker(self._next()))
        if kind is None:
            raise self._failure()
        yield POST_PART, self._post_chunks(b"".join(post_prefix))

    def _pre_chunks(self) -> Iterator[bytes]:
        yield self._header
        while (kind := self._peek_type()) is not None and kind and kind not in _DATA_TYPES:
            yield from self._until_marker(self._next())

    def _table_chunks(self, schema: str, table: str, head: list[bytes]) -> Iterator[bytes]:
        yield self._header + b"".join(head)
        rows = 0
        out, size = [], 0
        while True:
            line = self._next()
            if not line.endswith(b"\n"):
                raise self._failure()
            out.append(line)
            size += len(line)
            if line == b"\\.\n":
                break
            rows += 1
            if size >= CHUNK:
                yield b"".join(out)
                out, size = [], 0
        yield b"".join(out)
        yield from self._until_marker()
        self._streamed[(schema, table)] = rows

    def _post_chunks(self, sequences: bytes) -> Iterator[bytes]:
        yield self._header + sequences
        while (kind := self._peek_type()) is not None and kind:
            yield from self._until_marker(self._next())
        if kind == b"":
            self._completed = True
            for _ in iter(self._next, b""):
                pass
        err = self._process_error()
        if err:
            raise self._failure(err)
        self._record_tables()

    def _record_tables(self) -> None:
        """Counts and hashes from the holder; every streamed count must agree with them."""
        results = self.holder.results()
        for i, (schema, table) in enumerate(self.tables):
            row = results.get(f"H{i}")
            if row is None:
                raise self._failure(f"database dump incomplete: no hash for table {table_key(schema, table)!r}")
            count, hi, lo = int(row[0]), row[1], row[2]
            streamed = self._streamed.get((schema, table))
            if streamed is None:
                raise self._failure(f"database dump incomplete: pg_dump did not dump {table_key(schema, table)!r}")
            if streamed != count:
                raise self._failure(
                    f"database dump inconsistent: table {table_key(schema, table)!r} streamed {streamed} rows,"
                    f" the snapshot holds {count}"
                )
            key = table_key(schema, table)
            self._manifest["tables"][key] = {
                "rows": count,
                "hash": digest_of(hi, lo),
                "part": table_part_name(key),
                "schema": schema,
                "name": table,
            }
        self._manifest["restrict"] = self.restrict
        self.holder.commit()

    def _finish(self) -> None:
        try:
            self._stop_client()
        finally:
            self.holder.close()
            self._stack.close()
