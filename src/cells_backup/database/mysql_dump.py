"""MySQL/MariaDB dump, split per table, with row counts and hashes from the same snapshot.

Primary path: one ``mariadb-dump``/``mysqldump --single-transaction`` process (one consistent
REPEATABLE READ snapshot for every table, C speed), its stdout split on the fly at its
``-- Table structure for table `t``` markers into ``tables/<t>.sql`` parts. Count and hash of each
table are computed by parsing the very bytes that are streamed (`rowhash`), because MySQL cannot
share a snapshot with a second session: counting on another connection would not see the same
rows. The stream must end with ``-- Dump completed`` and the process must exit 0, otherwise the
dump fails (a killed or cut-short client never yields something that looks complete).

Fallback (`tool="native"` or no client installed): one PyMySQL connection inside
``START TRANSACTION WITH CONSISTENT SNAPSHOT``, an unbuffered cursor per table, ``INSERT``
statements formatted like mariadb-dump's (``--hex-blob``, one row per line, ~1 MiB statements),
hashed from the same raw values. Both outputs load with the stock ``mariadb`` client.

Options chosen for deterministic bytes: ``--skip-dump-date``, ``--order-by-primary``, no locks, no
DROP/DISABLE KEYS noise, UTC timestamps (``--tz-utc``), fixed ``--net-buffer-length``.
"""

from __future__ import annotations

import binascii
import contextlib
import fcntl
import functools
import os
import subprocess
from collections.abc import Iterator

import pymysql

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.dump import POST_PART, DatabaseDump, table_part_name
from cells_backup.database.dumphash import ALGORITHM, DataDigest
from cells_backup.database.dumpsplit import Marker, Piece, pieces
from cells_backup.database.errors import (
    DatabaseError,
    classify_mysql_error,
    code_from_client_stderr,
    first_line,
)
from cells_backup.database.mysql_client import (
    connect,
    defaults_file,
    dump_tool,
    find_tool,
    is_mariadb_tool,
    mysql_error,
    quote_ident,
)
from cells_backup.database.mysql_schema import DatabaseFacts, TableShape, read_facts, table_shape
from cells_backup.database.rowhash import escape
from cells_backup.priority import yield_cpu

CHUNK = 64 * 1024  # small pieces (structure lines) are joined up to this; a block of rows goes alone
PIPE_BYTES = 1 << 20
STATEMENT_BYTES = 1 << 20
_COMPLETED = b"-- Dump completed"


def open_mysql_dump(conn: ConnectionInfo, tool: str = "auto") -> DatabaseDump:
    """Check the connection, read the schema facts, and prepare the dump (not started yet)."""
    facts = read_facts(conn)
    if tool == "native":
        return NativeMySQLDump(conn, facts)
    path = dump_tool() if tool == "auto" else (find_tool(tool) if os.sep not in tool else tool)
    if path is None:
        if tool != "auto":
            raise DatabaseError(f"database dump tool {tool!r} not found")
        return NativeMySQLDump(conn, facts)
    return ToolMySQLDump(conn, facts, path)


def table_header(table: str, create_sql: bytes) -> bytes:
    """The structure section of a table part (same text for both dump paths)."""
    q = quote_ident(table).encode()
    return (
        b"--\n-- Table structure for table " + q + b"\n--\n\n"
        b"/*!40101 SET @saved_cs_client     = @@character_set_client */;\n"
        b"/*!40101 SET character_set_client = utf8mb4 */;\n" + create_sql.rstrip(b";\n") + b";\n"
        b"/*!40101 SET character_set_client = @saved_cs_client */;\n\n"
        b"--\n-- Dumping data for table " + q + b"\n--\n\n"
    )


class _MySQLDump(DatabaseDump):
    kind = "mysql"

    def __init__(self, conn: ConnectionInfo, facts: DatabaseFacts, tool: str):
        super().__init__(conn)
        self.facts = facts
        self._manifest.update(
            server_version=facts.server_version,
            charset=facts.charset,
            collation=facts.collation,
            tool=tool,
            consistent=True,
            hash_algorithm=ALGORITHM,
            views=facts.views,
            triggers=facts.triggers,
            routines=facts.routines,
            events=facts.events,
        )

    def _record(self, table: str, hasher: DataDigest) -> None:
        self._manifest["tables"][table] = {
            "rows": hasher.rows,
            "hash": hasher.hexdigest(),
            "part": table_part_name(table),
        }

    def _post(self) -> tuple[str, Iterator[bytes]]:
        return POST_PART, iter([self.facts.post_sql])


class ToolMySQLDump(_MySQLDump):
    """mariadb-dump/mysqldump streamed and split per table."""

    def __init__(self, conn: ConnectionInfo, facts: DatabaseFacts, tool: str, tables: list[str] | None = None):
        super().__init__(conn, facts, os.path.basename(tool))
        self.tool = tool
        self.tables = tables or []  # only these tables (default: all)
        self._proc: subprocess.Popen | None = None
        self._stack = contextlib.ExitStack()
        self._marker: Marker | None = None
        self._completed = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _argv(self, cnf: str) -> list[str]:
        argv = [
            self.tool,
            f"--defaults-file={cnf}",
            "--single-transaction",
            "--quick",
            "--hex-blob",
            "--default-character-set=utf8mb4",
            "--skip-dump-date",
            "--order-by-primary",
            "--skip-lock-tables",
            "--skip-add-locks",
            "--skip-disable-keys",
            "--skip-add-drop-table",
            "--skip-triggers",
            "--skip-routines",
            "--skip-events",
            "--no-tablespaces",
            "--tz-utc",
            "--extended-insert",
            "--create-options",
            "--max-allowed-packet=1G",
            "--net-buffer-length=1M",
        ]
        if not is_mariadb_tool(self.tool):
            argv += ["--set-gtid-purged=OFF", "--column-statistics=0"]
        return argv + [self.conn.database, *self.tables]

    def _start(self) -> None:
        cnf = self._stack.enter_context(defaults_file(self.conn, self.tool))
        try:
            self._proc = subprocess.Popen(
                self._argv(cnf),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=1 << 20,
            )
        except OSError as e:
            raise DatabaseError(f"cannot run {self.tool}: {e}") from None
        with contextlib.suppress(OSError, AttributeError):  # fewer, larger writes by the client
            fcntl.fcntl(self._proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._watch_stderr()
        self._stack.enter_context(yield_cpu())  # the client (started above) and its server first

    def _process_error(self) -> str | None:
        """Wait for the client; a one-line message if it failed."""
        rc, text = self._wait_client()
        if rc != 0:
            code = code_from_client_stderr(text)
            detail = first_line(text) or f"exit status {rc}"
            if code is None:
                return f"database dump failed ({os.path.basename(self.tool)} exit status {rc}): {detail}"
            return classify_mysql_error(
                code, detail, user=self.conn.user, where=self.conn.where, database=self.conn.database
            )
        if not self._completed:
            return f"database dump cut short: {os.path.basename(self.tool)} output ended before completion"
        return None

    def _fail_now(self) -> DatabaseError:
        msg = self._process_error() or "database dump cut short"
        self.fail(msg)
        return DatabaseError(msg)

    def _pieces(self) -> Iterator[Piece]:
        assert self._proc and self._proc.stdout
        return pieces(functools.partial(os.read, self._proc.stdout.fileno()))  # no buffered copy

    def _section(self, stream: Iterator[Piece], digest: DataDigest | None) -> Iterator[bytes]:
        """The content up to the next marker (stored in self._marker; None at the end)."""
        self._marker = None
        out: list[bytes] = []
        size = 0
        for content, marker in stream:
            if marker is not None:
                self._marker = marker
                break
            if digest is None:
                continue
            digest.update(content)
            out.append(content)
            size += len(content)
            if size >= CHUNK:
                yield b"".join(out)
                out, size = [], 0
        if out:
            yield b"".join(out)

    def _table_chunks(self, stream: Iterator[Piece], table: str) -> Iterator[bytes]:
        digest = DataDigest()
        yield b"--\n-- Table structure for table " + quote_ident(table).encode() + b"\n--\n"
        yield from self._section(stream, digest)
        if self._marker is None:
            raise self._fail_now()
        if not digest.complete:
            raise DatabaseError(self._fail_message("INSERT statement cut short"))
        self._record(table, digest)

    def _fail_message(self, msg: str) -> str:
        self.fail(f"database dump cut short: {msg}")
        return f"database dump cut short: {msg}"

    def _generate(self) -> Iterator[tuple[str, Iterator[bytes]]]:
        self._start()
        stream = self._pieces()
        for _ in self._section(stream, None):  # the header, up to the first section
            pass
        if self._marker is None:
            raise self._fail_now()
        while self._marker.kind != "trailer":
            if self._marker.kind == "table":
                table = self._marker.table
                yield table_part_name(table), self._table_chunks(stream, table)
            else:
                for _ in self._section(stream, None):
                    pass
            if self._marker is None:
                raise self._fail_now()
        rest = b"".join(content for content, _ in stream)
        self._completed = any(line.startswith(_COMPLETED) for line in rest.splitlines())
        err = self._process_error()
        if err:
            self.fail(err)
            raise DatabaseError(err)
        yield self._post()

    def _finish(self) -> None:
        try:
            self._stop_client()
        finally:
            self._stack.close()


def format_value(v: bytes | None, is_binary: bool, is_numeric: bool) -> bytes:
    """A raw text-protocol value as mariadb-dump --hex-blob writes it."""
    if v is None:
        return b"NULL"
    if is_binary:
        return b"0x" + binascii.hexlify(v).upper() if v else b"''"
    if is_numeric:
        return v
    return b"'" + escape(v) + b"'"


class NativeMySQLDump(_MySQLDump):
    """PyMySQL fallback: one consistent-snapshot transaction, unbuffered cursor per table."""

    def __init__(self, conn: ConnectionInfo, facts: DatabaseFacts):
        super().__init__(conn, facts, "native")
        self._conn: pymysql.connections.Connection | None = None

    def _generate(self) -> Iterator[tuple[str, Iterator[bytes]]]:
        db = self.conn.database
        try:
            self._conn = c = connect(self.conn, raw=True)
            cur = c.cursor()
            cur.execute("SET SESSION net_write_timeout=3600, net_read_timeout=3600")
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_TYPE IN"
                " ('BASE TABLE','SYSTEM VERSIONED') ORDER BY TABLE_NAME",
                (db,),
            )
            tables = [r[0].decode("utf-8") for r in cur.fetchall()]
        except pymysql.MySQLError as e:
            raise mysql_error(self.conn, e) from None
        for table in tables:
            try:
                shape = table_shape(cur, db, table)
                cur.execute(f"SHOW CREATE TABLE {quote_ident(db)}.{quote_ident(table)}")
                ddl = cur.fetchone()[1]
            except pymysql.MySQLError as e:
                raise mysql_error(self.conn, e) from None
            yield table_part_name(table), self._table_chunks(table, shape, ddl)
        try:
            cur.execute("COMMIT")
        except pymysql.MySQLError as e:
            raise mysql_error(self.conn, e) from None
        yield self._post()

    def _table_chunks(self, table: str, shape: TableShape, ddl: bytes) -> Iterator[bytes]:
        digest = DataDigest()
        yield table_header(table, ddl)
        for chunk in self._statements(table, shape):
            digest.update(chunk)
            yield chunk
        self._record(table, digest)

    def _statements(self, table: str, shape: TableShape) -> Iterator[bytes]:
        """The table's rows as ~1 MiB ``INSERT`` statements, one row per line, then a blank line."""
        assert self._conn is not None
        q = quote_ident(table)
        cols = ",".join(quote_ident(c) for c in shape.columns)
        sql = f"SELECT {cols} FROM {quote_ident(self.conn.database)}.{q}"
        if shape.order_by:
            sql += " ORDER BY " + ",".join(quote_ident(c) for c in shape.order_by)
        head = f"INSERT INTO {q} " + (f"({cols}) " if shape.has_generated else "") + "VALUES\n"
        head_b = head.encode("utf-8")
        flags = list(zip(shape.binary, shape.numeric, strict=True))
        try:
            cur = self._conn.cursor(pymysql.cursors.SSCursor)
            cur.execute(sql)
            stmt: list[bytes] = []
            size = 0
            while rows := cur.fetchmany(2000):
                for row in rows:
                    text = (
                        b"("
                        + b",".join(format_value(v, b, n) for v, (b, n) in zip(row, flags, strict=True))
                        + b")"
                    )
                    stmt.append(text)
                    size += len(text) + 2
                    if size >= STATEMENT_BYTES:
                        yield head_b + b",\n".join(stmt) + b";\n"
                        stmt, size = [], 0
            if stmt:
                yield head_b + b",\n".join(stmt) + b";\n"
            cur.close()
        except pymysql.MySQLError as e:
            err = mysql_error(self.conn, e)
            self.fail(str(err))
            raise err from None
        yield b"\n"

    def _finish(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
