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
from cells_backup.database.mysql_schema import table_shape
from cells_backup.database.rowhash import TableHasher
from cells_backup.database.sqlsplit import split_statements
from cells_backup.errors import TargetNotEmptyError

COPY_SIZE = 1 << 20


def session_preamble(skip_binlog: bool) -> bytes:
    """Statements that start every load session."""
    sql = (
        "SET NAMES utf8mb4;\nSET time_zone='+00:00';\nSET foreign_key_checks=0;\nSET unique_checks=0;\n"
        "SET sql_mode='NO_AUTO_VALUE_ON_ZERO';\nSET sql_notes=0;\nSET autocommit=0;\n"
    )
    if skip_binlog:
        sql += "SET sql_log_bin=0;\n"
    return sql.encode()


class MySQLTarget:
    """The database a restore writes into."""

    def __init__(self, conn: ConnectionInfo, *, tool: str = "auto", skip_binlog: bool = False):
        self.conn = conn
        self.skip_binlog = skip_binlog
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
        c = connect(self.conn, database="")
        try:
            with c.cursor() as cur:
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
    def load_part(self, name: str, stream: BinaryIO) -> None:
        """Execute one part in its own session; DatabaseError naming the part on failure."""
        if self.client:
            self._load_with_client(name, stream)
        else:
            self._load_native(name, stream)

    def _load_with_client(self, name: str, stream: BinaryIO) -> None:
        assert self.client
        with defaults_file(self.conn, self.client) as cnf:
            argv = [
                self.client,
                f"--defaults-file={cnf}",
                "--batch",
                "--binary-mode",
                "--max-allowed-packet=1G",
                "--default-character-set=utf8mb4",
                f"--database={self.conn.database}",
            ]
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
            except OSError as e:
                raise DatabaseError(f"cannot run {self.client}: {e}") from None
            errbuf = bytearray()
            reader = threading.Thread(target=lambda: errbuf.extend(proc.stderr.read()), daemon=True)
            reader.start()
            broken = False
            try:
                assert proc.stdin
                proc.stdin.write(session_preamble(self.skip_binlog))
                shutil.copyfileobj(stream, proc.stdin, COPY_SIZE)
                proc.stdin.write(b"\nCOMMIT;\n")
            except BrokenPipeError:
                broken = True
            finally:
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

    def _load_native(self, name: str, stream: BinaryIO) -> None:
        c = connect(self.conn)
        try:
            with c.cursor() as cur:
                for stmt in session_preamble(self.skip_binlog).decode().split(";\n"):
                    if stmt.strip():
                        cur.execute(stmt)
                for stmt in split_statements(stream.read):
                    cur.execute(stmt)
            c.commit()
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
