"""Restore, probe and export of PostgreSQL databases (the dump is in `postgres_dump`).

Each part is loaded by its own ``psql -X -v ON_ERROR_STOP=1 -1 -f -`` process fed from the stream
(one transaction per part; a failing statement aborts the part and the restore): ``schema/pre.sql``
first, the table parts in parallel (no index, constraint nor trigger exists yet, like
``pg_restore -j``), ``schema/post.sql`` last. When this psql knows ``\\restrict``, every part is fed
after ``\\restrict <random key>``, so a meta-command smuggled into a dump (by a hostile source
server) is refused instead of run. Verification recomputes `postgres_client.hash_query` per table.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import BinaryIO

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.errors import DatabaseError
from cells_backup.database.postgres_catalog import COUNT_OBJECTS_SQL, DROP_ALL_SQL, table_key
from cells_backup.database.postgres_client import (
    classify,
    client_env,
    digest_of,
    hash_query,
    psql_restrict_supported,
    quote_ident,
    quote_literal,
    require_tool,
    run_psql,
)
from cells_backup.errors import TargetNotEmptyError

COPY_SIZE = 1 << 20
MAINTENANCE_DB = "postgres"
_restrict_cache: list[bool] = []


def _restrict_line() -> bytes:
    if not _restrict_cache:
        _restrict_cache.append(psql_restrict_supported())
    return f"\\restrict {secrets.token_hex(24)}\n".encode() if _restrict_cache[0] else b""


def _database_missing(e: DatabaseError) -> bool:
    return str(e).startswith("unknown database ")


class PostgresTarget:
    """The database a restore writes into."""

    def __init__(self, conn: ConnectionInfo, *, tool: str = "auto"):
        self.conn = conn
        self.psql = require_tool("psql") if tool in ("auto", "native", "psql", "pg_dump") else tool
        self._names: dict[str, tuple[str, str]] = {}

    @property
    def loader(self) -> str:
        return "psql"

    def prepare(self, manifest: dict, *, force: bool, create: bool) -> None:
        """Create the database if missing; refuse a non-empty one unless `force` (then empty it)."""
        for key, info in manifest.get("tables", {}).items():
            self._names[key] = (info.get("schema", "public"), info.get("name", key))
        try:
            count = int(run_psql(self.conn, COUNT_OBJECTS_SQL).strip() or 0)
        except DatabaseError as e:
            if not _database_missing(e) or not create:
                raise
            self._create(manifest)
            return
        if count and not force:
            raise TargetNotEmptyError(
                f"database {self.conn.database!r} at {self.conn.where} is not empty ({count} objects);"
                " use --force to replace its content"
            )
        if count:
            run_psql(self.conn, DROP_ALL_SQL)

    def _create(self, manifest: dict) -> None:
        name = quote_ident(self.conn.database)
        encoding = manifest.get("encoding") or "UTF8"
        try:
            run_psql(
                self.conn,
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING {quote_literal(encoding)};\n",
                database=MAINTENANCE_DB,
            )
        except DatabaseError as e:
            if "encoding" not in str(e).lower() and "locale" not in str(e).lower():
                raise
            run_psql(self.conn, f"CREATE DATABASE {name};\n", database=MAINTENANCE_DB)

    def load_part(self, name: str, stream: BinaryIO) -> None:
        """Execute one part in one transaction with psql; DatabaseError naming the part on failure."""
        argv = [self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"]
        with client_env(self.conn) as env:
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
                )
            except OSError as e:
                raise DatabaseError(f"cannot run {self.psql}: {e}") from None
            errbuf = bytearray()
            reader = threading.Thread(target=lambda: errbuf.extend(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
            reader.start()
            broken = False
            try:
                assert proc.stdin
                proc.stdin.write(_restrict_line())
                shutil.copyfileobj(stream, proc.stdin, COPY_SIZE)
            except BrokenPipeError:
                broken = True
            finally:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()  # type: ignore[union-attr]
                rc = proc.wait()
                reader.join()
        text = errbuf.decode("utf-8", "replace")
        if rc != 0 or broken or "ERROR:" in text:
            raise DatabaseError(f"loading {name} failed: {classify(text, self.conn, rc)}")

    def table_digest(self, table: str) -> tuple[int, str] | None:
        """(rows, hash) of a restored table, or None if it does not exist."""
        schema, name = self._names.get(table, ("public", table))
        try:
            out = run_psql(self.conn, hash_query("H", schema, name))
        except DatabaseError as e:
            if "does not exist" in str(e):
                return None
            raise
        _tag, count, hi, lo = out.strip().split("|")
        return int(count), digest_of(hi, lo)


# ---------------------------------------------------------------- probes
def check_connection(conn: ConnectionInfo) -> str:
    """``PostgreSQL <version>`` of the server; DatabaseError says why not."""
    return "PostgreSQL " + run_psql(conn, "SELECT current_setting('server_version');\n").strip()


def is_empty(conn: ConnectionInfo) -> bool:
    """True if the database is missing or holds no user table, view, sequence, routine or schema."""
    try:
        return int(run_psql(conn, COUNT_OBJECTS_SQL).strip() or 0) == 0
    except DatabaseError as e:
        if _database_missing(e):
            return True
        raise


def table_info(conn: ConnectionInfo, tables: Iterable[str]) -> dict[str, dict]:
    """{table: {"exists": bool, "rows": int}} with exact row counts (``schema.table`` outside public)."""
    names = list(tables)
    result = {t: {"exists": False, "rows": 0} for t in names}
    if not names:
        return result
    exists_sql = (
        "SELECT 'X', encode(convert_to(n.nspname, 'UTF8'), 'hex'), encode(convert_to(c.relname, 'UTF8'), 'hex')"
        " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p');\n"
    )
    existing: dict[str, tuple[str, str]] = {}
    for row in run_psql(conn, exists_sql).splitlines():
        _x, s, t = row.split("|")
        schema, name = bytes.fromhex(s).decode(), bytes.fromhex(t).decode()
        existing[table_key(schema, name)] = (schema, name)
    present = [t for t in names if t in existing]
    sql = "".join(
        f"SELECT {i}, count(*) FROM {quote_ident(existing[t][0])}.{quote_ident(existing[t][1])};\n"
        for i, t in enumerate(present)
    )
    counts = dict(line.split("|") for line in run_psql(conn, sql).splitlines()) if sql else {}
    for i, t in enumerate(present):
        result[t] = {"exists": True, "rows": int(counts[str(i)])}
    return result


# ---------------------------------------------------------------- export
def export_postgres(parts: Sequence[tuple[str, Callable[[], BinaryIO]]], manifest: dict, out: BinaryIO) -> None:
    """One script for ``psql -X -v ON_ERROR_STOP=1 -1 -d NEWDB -f dump.sql`` (an empty database).

    pre-schema, every table's data, post-schema, in that order. Unlike the MySQL export it does not
    drop tables first: PostgreSQL objects depend on each other (types, sequences, functions), so
    load it into a new database (``createdb NEWDB``). When the dump came from a pg_dump that writes
    ``\\restrict``, the export does too (with a fresh key), for the same protection.
    """
    from cells_backup.database.postgres_dump import PRE_PART

    table_parts = {info["part"] for info in manifest.get("tables", {}).values()}
    names = {n for n, _ in parts}
    missing = sorted((table_parts | {PRE_PART}) - names)
    if missing:
        raise DatabaseError(f"database dump incomplete: missing part(s) {', '.join(missing[:5])}")
    key = secrets.token_hex(24) if manifest.get("restrict") else ""
    out.write(
        f"-- cells-backup export of PostgreSQL database {manifest.get('database', '')}"
        f" ({manifest.get('server_version', '')})\n"
        "-- Load into an empty database with: psql -X -v ON_ERROR_STOP=1 -1 -d NEWDB -f THIS_FILE\n\n".encode()
    )
    if key:
        out.write(f"\\restrict {key}\n\n".encode())
    order = {"schema/pre.sql": 0, "schema/post.sql": 2}
    ordered = sorted(
        (p for p in parts if p[0] in order or p[0].startswith("tables/")), key=lambda p: order.get(p[0], 1)
    )
    for _name, opener in ordered:
        stream = opener()
        try:
            shutil.copyfileobj(stream, out, COPY_SIZE)
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
        out.write(b"\n")
    if key:
        out.write(f"\\unrestrict {key}\n".encode())
    out.write(b"-- Export completed\n")
