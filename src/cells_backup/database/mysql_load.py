"""Load dump parts into a MySQL/MariaDB database and read back counts and hashes.

Each part is loaded in its own session (a ``mariadb`` client process fed from the stream, or a
PyMySQL connection executing the statements `sqlsplit` finds when no client is installed), with
bulk-load settings: no foreign-key or unique checks (tables arrive in parallel, in any order),
one transaction per part, ``NO_AUTO_VALUE_ON_ZERO`` so explicit 0 ids stay 0, UTC time zone like
the dump. Binary logging is left on unless asked: turning it off would silently leave replicas
without the restored data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import pymysql

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.errors import (
    DatabaseError,
    classify_mysql_error,
    code_from_client_stderr,
    first_line,
)
from cells_backup.database.mysql_client import (
    client_tool,
    connect,
    defaults_file,
    find_tool,
    mysql_error,
    quote_ident,
)
from cells_backup.database.mysql_keys import defer_keys, read_head
from cells_backup.database.mysql_loaddata import feed_rows, load_statement, split_head
from cells_backup.database.mysql_schema import table_shape
from cells_backup.database.mysql_verify import can_redump, redump
from cells_backup.database.rowhash import TableHasher
from cells_backup.database.sqlsplit import split_statements
from cells_backup.errors import TargetNotEmptyError

COPY_SIZE = 1 << 20
SLICE_MIN = 32 << 20  # a table part smaller than this is loaded by one session
Splitter = Callable[[int, int], list[Callable[[], BinaryIO]]]  # (slices, min bytes) -> openers


def session_preamble(skip_binlog: bool, unique_checks: bool = False) -> bytes:
    """Statements that start every load session.

    ``unique_checks=0`` (with foreign-key checks off) lets InnoDB bulk-load an empty table under a
    table lock; sessions sharing one table keep unique checks on so they do not wait on each other.
    A long ``net_read_timeout``: rows are fed as the repository gives them, and a remote one may
    pause (retries) longer than the server's default 30 s in the middle of a LOAD DATA.
    """
    sql = (
        "SET NAMES utf8mb4;\nSET time_zone='+00:00';\nSET foreign_key_checks=0;\n"
        "SET SESSION net_read_timeout=3600;\n"
        f"SET unique_checks={int(unique_checks)};\n"
        "SET sql_mode='NO_AUTO_VALUE_ON_ZERO';\nSET sql_notes=0;\nSET autocommit=0;\n"
    )
    if skip_binlog:
        sql += "SET sql_log_bin=0;\n"
    return sql.encode()


class MySQLTarget:
    """The database a restore writes into."""

    loads_in_slices = True  # load_part accepts `split` (see there)

    def __init__(self, conn: ConnectionInfo, *, tool: str = "auto", skip_binlog: bool = False, jobs: int = 2):
        self.conn = conn
        self.skip_binlog = skip_binlog
        self.jobs = jobs
        self.loads: dict[str, str] = {}  # part name -> how its rows were loaded
        self.redumped: dict[str, tuple[int, str]] = {}  # table -> (rows, hash) dumped after its load
        self._manifest: dict = {}
        self._table_of_part: dict[str, str] = {}
        self.local_infile = False  # the server accepts LOAD DATA LOCAL (asked in prepare)
        if tool == "native":
            self.client = None
        elif tool == "auto":
            self.client = client_tool()
        else:
            self.client = tool if os.sep in tool else find_tool(tool)
            if self.client is None:
                raise DatabaseError(f"database client {tool!r} not found")

    @property
    def loader(self) -> str:
        return os.path.basename(self.client) if self.client else "native"

    # ------------------------------------------------------------ preparation
    def prepare(self, manifest: dict, *, force: bool, create: bool) -> None:
        """Create the database if missing; refuse a non-empty one unless `force` (then empty it)."""
        db = self.conn.database
        if manifest.get("tool") != "native" and can_redump(manifest):
            self._manifest = manifest
            self._table_of_part = {info["part"]: t for t, info in manifest.get("tables", {}).items()}
        c = connect(self.conn, database="")
        try:
            with c.cursor() as cur:
                cur.execute("SELECT @@GLOBAL.local_infile")
                self.local_infile = bool(cur.fetchone()[0])
                cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (db,))
                if cur.fetchone() is None:
                    if not create:
                        raise DatabaseError(f"unknown database {db!r} at {self.conn.where}")
                    charset = manifest.get("charset") or "utf8mb4"
                    collation = manifest.get("collation")
                    sql = f"CREATE DATABASE {quote_ident(db)} CHARACTER SET {charset}"
                    cur.execute(sql + (f" COLLATE {collation}" if collation else ""))
                    return
                cur.execute(
                    "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s",
                    (db,),
                )
                objects = cur.fetchall()
                if objects and not force:
                    raise TargetNotEmptyError(
                        f"database {db!r} at {self.conn.where} is not empty ({len(objects)} tables);"
                        " use --force to replace its content"
                    )
                if objects:
                    self._empty(cur, db, objects)
        except pymysql.MySQLError as e:
            raise mysql_error(self.conn, e) from None
        finally:
            c.close()

    def _empty(self, cur, db: str, objects) -> None:
        q = quote_ident(db)
        cur.execute("SET foreign_key_checks=0")
        for name, ttype in objects:
            kind = "VIEW" if ttype == "VIEW" else "TABLE"
            cur.execute(f"DROP {kind} IF EXISTS {q}.{quote_ident(name)}")
        cur.execute(
            "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s",
            (db,),
        )
        for rtype, name in cur.fetchall():
            cur.execute(f"DROP {rtype} IF EXISTS {q}.{quote_ident(name)}")
        cur.execute("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s", (db,))
        for (name,) in cur.fetchall():
            cur.execute(f"DROP EVENT IF EXISTS {q}.{quote_ident(name)}")

    # ------------------------------------------------------------ loading
    def load_part(self, name: str, stream: BinaryIO, split: Splitter | None = None) -> None:
        """Execute one part in its own session(s); DatabaseError naming the part on failure.

        A table's secondary keys are added once its rows are in (`mysql_keys`); its rows go
        through LOAD DATA where the server allows it (`mysql_loaddata`), and a large table is
        loaded by `jobs` sessions at once when `split` can cut the part into slices.
        """
        raw = read_head(stream) if name.startswith("tables/") else b""
        head, alter = defer_keys(raw)
        if not self.client:
            self._load_native(name, head, stream, alter)
            return
        sql_head, rows = split_head(head)
        if not (self.local_infile and rows and load_statement(sql_head, rows, "-")):
            self.loads[name] = "INSERT" if rows else "no rows"
            self._run_client(name, head, stream=stream, tail=b"\nCOMMIT;\n")
            self._finish_table(name, alter)
            return
        slices = split(self.jobs, SLICE_MIN) if split is not None and self.jobs > 1 else []
        if len(slices) > 1 and self._load_slices(name, sql_head, rows, len(raw), slices):
            self.loads[name] = f"LOAD DATA, {len(slices)} sessions"
        else:
            self.loads[name] = "LOAD DATA"
            self._run_client(
                name,
                lambda path: sql_head + load_statement(sql_head, rows, path) + b"COMMIT;\n",
                feed=lambda out: feed_rows(rows, stream, out),
            )
        self._finish_table(name, alter)

    def _finish_table(self, name: str, alter: bytes) -> None:
        """Add the deferred keys; meanwhile, dump the table again to verify its rows (`mysql_verify`).

        Done here only for a table with keys to build: its dump then costs no time. The other
        tables are dumped together once all are loaded.
        """
        table = self._table_of_part.get(name)
        if not alter:
            return
        if table is None:
            self._run_client(name, alter)
            return
        with ThreadPoolExecutor(1) as pool:
            keys = pool.submit(self._run_client, name, alter)
            self.redumped.update(redump(self.conn, self._manifest, [table]))
        keys.result()

    def _load_slices(self, name: str, sql_head: bytes, rows: bytes, skip: int, slices: list) -> bool:
        """Create the table, then load its rows from each slice in a session of its own.

        `rows` are the first rows, already read: the `skip` first bytes of the part.
        A slice's first (partial) line is handed to the previous session, so each session gets
        whole lines. False, with nothing done, when a slice holds no line end.
        """
        streams = [opener() for opener in slices]
        try:
            firsts, fronts = [rows], []  # each session's first bytes; the partial line it hands back
            for s in streams[1:]:
                front, rest = _first_line(s)
                if rest is None:
                    return False
                fronts.append(front)
                firsts.append(rest)
            fronts.append(b"")
            if not _skip(streams[0], skip):
                return False
            self._run_client(name, sql_head + b"COMMIT;\n")
            head_line = rows[: rows.find(b"\n") + 1]

            def session(i: int) -> None:
                self._run_client(
                    name,
                    lambda path: load_statement(sql_head, rows, path) + b"COMMIT;\n",
                    feed=lambda out: feed_rows(firsts[i], streams[i], out, head_line=head_line, tail=fronts[i]),
                    unique_checks=True,
                )

            with ThreadPoolExecutor(len(streams)) as pool:
                futures = [pool.submit(session, i) for i in range(len(streams))]
            for f in futures:
                f.result()
            return True
        finally:
            for s in streams:
                s.close()

    def _run_client(
        self,
        name: str,
        sql: bytes | Callable[[str], bytes],
        *,
        stream: BinaryIO | None = None,
        tail: bytes = b"",
        feed: Callable[[BinaryIO], None] | None = None,
        unique_checks: bool = False,
    ) -> None:
        """One ``mariadb`` client session: the preamble, `sql`, then `stream` and `tail` as more SQL.

        With `feed`, `sql` is a function of the path of a pipe the client reads as its LOAD DATA
        file, and `feed` writes the rows into it.
        """
        assert self.client
        r = w = -1
        if feed is not None:
            r, w = os.pipe()
        with defaults_file(self.conn, self.client) as cnf:
            argv = [
                self.client,
                f"--defaults-file={cnf}",
                "--batch",
                "--binary-mode",
                "--max-allowed-packet=1G",
                "--default-character-set=utf8mb4",
                f"--database={self.conn.database}",
            ] + (["--local-infile=1"] if feed else [])
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    pass_fds=(r,) if feed else (),
                )
            except OSError as e:
                if feed:
                    os.close(w)
                raise DatabaseError(f"cannot run {self.client}: {e}") from None
            finally:
                if feed:
                    os.close(r)
            errbuf = bytearray()
            reader = threading.Thread(target=lambda: errbuf.extend(proc.stderr.read()), daemon=True)
            reader.start()
            broken = False
            try:
                assert proc.stdin
                proc.stdin.write(session_preamble(self.skip_binlog, unique_checks))
                proc.stdin.write(sql(f"/dev/fd/{r}") if callable(sql) else sql)
                if stream is not None:
                    shutil.copyfileobj(stream, proc.stdin, COPY_SIZE)
                proc.stdin.write(tail)
                proc.stdin.close()
                if feed is not None:
                    with os.fdopen(w, "wb") as out:
                        w = -1
                        feed(out)
            except BrokenPipeError:
                broken = True
            except BaseException:
                proc.kill()
                raise
            finally:
                if w >= 0:
                    os.close(w)
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
                rc = proc.wait()
                reader.join()
        if rc != 0 or broken:
            text = errbuf.decode("utf-8", "replace")
            code = code_from_client_stderr(text)
            detail = first_line(text) or f"exit status {rc}"
            msg = classify_mysql_error(
                code, detail, user=self.conn.user, where=self.conn.where, database=self.conn.database
            )
            raise DatabaseError(f"loading {name} failed: {msg}")

    def _load_native(self, name: str, head: bytes, stream: BinaryIO, alter: bytes) -> None:
        pending = [head] if head else []

        def read(n: int) -> bytes:
            return pending.pop() if pending else stream.read(n)

        c = connect(self.conn)
        try:
            with c.cursor() as cur:
                for stmt in session_preamble(self.skip_binlog).decode().split(";\n"):
                    if stmt.strip():
                        cur.execute(stmt)
                for stmt in split_statements(read):
                    cur.execute(stmt)
                c.commit()
                if alter:
                    cur.execute(alter.decode("utf-8"))
        except pymysql.MySQLError as e:
            raise DatabaseError(f"loading {name} failed: {mysql_error(self.conn, e)}") from None
        finally:
            c.close()

    # ------------------------------------------------------------ verification
    def table_digest(self, table: str) -> tuple[int, str] | None:
        """(rows, hash) of a restored table, or None if it does not exist."""
        c = connect(self.conn, raw=True)
        try:
            cur = c.cursor()
            cur.execute(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
                (self.conn.database, table),
            )
            if cur.fetchone() is None:
                return None
            shape = table_shape(cur, self.conn.database, table)
            cols = ",".join(quote_ident(col) for col in shape.columns)
            hasher = TableHasher()
            ss = c.cursor(pymysql.cursors.SSCursor)
            ss.execute(f"SELECT {cols} FROM {quote_ident(table)}")
            while rows := ss.fetchmany(5000):
                for row in rows:
                    hasher.add_row(row)
            return hasher.rows, hasher.hexdigest()
        except pymysql.MySQLError as e:
            raise mysql_error(self.conn, e) from None
        finally:
            c.close()


def _first_line(stream: BinaryIO) -> tuple[bytes, bytes | None]:
    """(bytes up to and including the first line end, what was read after it); None if no line end."""
    data = b""
    while True:
        block = stream.read(COPY_SIZE)
        if not block:
            return data, None
        data += block
        i = data.find(b"\n")
        if i >= 0:
            return data[: i + 1], data[i + 1 :]


def _skip(stream: BinaryIO, n: int) -> bool:
    """Read past `n` bytes; False if the stream is shorter."""
    while n > 0:
        block = stream.read(min(n, COPY_SIZE))
        if not block:
            return False
        n -= len(block)
    return True
