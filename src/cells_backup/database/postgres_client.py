"""Running the PostgreSQL client binaries (psql, pg_dump): environment, password, errors, hash SQL.

Why the client binaries and not a Python driver: ``pg_dump`` is the reference for dumping every
PostgreSQL object correctly across versions, and ``psql`` loads its output (``COPY ... FROM stdin``)
natively; with them, a held ``psql`` session is enough to export a snapshot and compute counts and
hashes, so no extra dependency (psycopg) is needed. Both come with the ``postgresql-client`` package.

Password: never on argv. Each child gets a private environment: the inherited ``PG*`` variables are
removed (a stray ``PGSERVICE`` or ``PGOPTIONS`` must not redirect a restore) and the password goes in
a ``PGPASSFILE`` (mode 0600 in a 0700 temp dir, deleted afterwards); ``PGPASSWORD`` only for a
password a passfile cannot hold (a newline).

Row hash (``pg-rowtext-md5-sum128-v1``): for every row, ``md5(ROW(t.*)::text)`` (the row's text form,
with the session settings below fixed so the text does not depend on the server's configuration);
the first and last 64 bits of each digest, read as signed integers, are summed separately by the
server and each sum taken modulo 2**64: an order-independent 128-bit value, computed where the data
is (no rows cross the network) and recomputed the same way on the restored database.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.errors import DatabaseError

ALGORITHM = "pg-rowtext-md5-sum128-v1"
CONNECT_TIMEOUT = 15
SESSION_SETTINGS = (
    "SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET idle_in_transaction_session_timeout = 0;\n"
    "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\nSET DateStyle = 'ISO, YMD';\n"
    "SET IntervalStyle = 'postgres';\nSET TimeZone = 'UTC';\nSET extra_float_digits = 3;\n"
    "SET bytea_output = 'hex';\nSET lc_monetary = 'C';\nSET search_path = pg_catalog;\n"
)
_MOD64 = 1 << 64


def find_tool(name: str) -> str | None:
    """`name` on PATH, else in the newest /usr/lib/postgresql/<v>/bin (Debian keeps them there)."""
    found = shutil.which(name)
    if found:
        return found
    base = "/usr/lib/postgresql"
    bindirs = [d for d in os.listdir(base) if d.isdigit()] if os.path.isdir(base) else []
    for version in sorted(bindirs, key=int, reverse=True):
        path = f"/usr/lib/postgresql/{version}/bin/{name}"
        if os.access(path, os.X_OK):
            return path
    return None


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        raise DatabaseError(f"{name} not found: install the PostgreSQL client (apt-get install postgresql-client)")
    return path


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def hash_query(tag: str, schema: str, name: str) -> str:
    """One row ``tag|rows|sum_hi|sum_lo`` for a table (see module docstring)."""
    return (
        f"SELECT {quote_literal(tag)}, count(*), coalesce(sum(('x' || left(h, 16))::bit(64)::bigint), 0),"
        f" coalesce(sum(('x' || right(h, 16))::bit(64)::bigint), 0)"
        f" FROM (SELECT md5(ROW(t.*)::text) AS h FROM ONLY {qualified(schema, name)} AS t) AS q;\n"
    )


def digest_of(hi: str, lo: str) -> str:
    """The manifest form of the two sums printed by `hash_query`."""
    return f"{int(hi) % _MOD64:016x}{int(lo) % _MOD64:016x}"


def _escape_passfile(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@contextlib.contextmanager
def client_env(conn: ConnectionInfo, database: str | None = None) -> Iterator[dict[str, str]]:
    """The environment of a psql/pg_dump child for `conn` (password in a private passfile)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        PGHOST=conn.unix_socket or conn.host or "127.0.0.1",
        PGPORT=str(conn.port or 5432),
        PGDATABASE=conn.database if database is None else database,
        PGCONNECT_TIMEOUT=str(CONNECT_TIMEOUT),
        PGAPPNAME="cells-backup",
        PGTZ="UTC",
        PGCLIENTENCODING="UTF8",
    )
    if conn.user:
        env["PGUSER"] = conn.user
    sslmode = conn.params.get("sslmode") or ({"true": "verify-full", "skip-verify": "require"}.get(conn.tls, conn.tls))
    if sslmode:
        env["PGSSLMODE"] = sslmode
    if not conn.password:
        yield env
        return
    if "\n" in conn.password or "\r" in conn.password:
        env["PGPASSWORD"] = conn.password
        yield env
        return
    tmpdir = tempfile.mkdtemp(prefix="cells-backup-pg-")  # mode 0700
    try:
        path = os.path.join(tmpdir, "pgpass")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"*:*:*:*:{_escape_passfile(conn.password)}\n")
        env["PGPASSFILE"] = path
        yield env
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


_PREFIXES = re.compile(
    r"^(?:psql:[^:\s]*:\d+:\s*|(?:psql|pg_dump|pg_restore):\s*(?:error:\s*)?|"
    r"connection to server (?:at|on) .*? failed:\s*|(?:FATAL|ERROR):\s+)+"
)


def detail_of(stderr: str) -> str:
    """The meaningful error line of a client's stderr, without its prefixes."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    pick = next((ln for ln in lines if re.search(r"\b(?:ERROR|FATAL|error)\b", ln)), lines[0] if lines else "")
    pick = _PREFIXES.sub("", pick)
    return " ".join(pick.split())[:300]


def classify(stderr: str, conn: ConnectionInfo, rc: int | None = None) -> str:
    """One-line message for a failed psql/pg_dump, chosen from its stderr."""
    detail = detail_of(stderr) or (f"exit status {rc}" if rc is not None else "unknown error")
    low = stderr.lower()
    user, where, db = conn.user, conn.where, conn.database
    if (
        "password authentication failed" in low
        or "no password supplied" in low
        or re.search(r'role ".*" does not exist', low)
    ):
        return f"database authentication failed for user {user} at {where}"
    if re.search(r'database ".*" does not exist', low):
        return f"unknown database {db!r} at {where}"
    if "permission denied" in low or "must be owner" in low:
        return f"missing database privileges for user {user} on {db!r} at {where}: {detail}"
    if any(
        s in low for s in ("server closed the connection", "terminating connection", "connection to server was lost")
    ):
        return f"lost connection to database server at {where}: {detail}"
    if any(
        s in low
        for s in (
            "could not connect",
            "connection refused",
            "could not translate host",
            "timeout expired",
            "is the server running",
            "no route to host",
            "network is unreachable",
        )
    ):
        return f"database server unreachable at {where}: {detail}"
    return f"database error at {where}: {detail}"


def run_psql(conn: ConnectionInfo, sql: str, *, database: str | None = None) -> str:
    """Run a script with psql (settings fixed, stop at the first error); its unaligned output."""
    psql = require_tool("psql")
    with client_env(conn, database) as env:
        try:
            proc = subprocess.run(
                [psql, "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                input=(SESSION_SETTINGS + sql).encode("utf-8"),
                capture_output=True,
                env=env,
            )
        except OSError as e:
            raise DatabaseError(f"cannot run {psql}: {e}") from None
    if proc.returncode != 0:
        raise DatabaseError(classify(proc.stderr.decode("utf-8", "replace"), conn, proc.returncode))
    return proc.stdout.decode("utf-8")


def psql_restrict_supported() -> bool:
    """True if this psql knows ``\\restrict`` (PostgreSQL 13.22/14.19/15.14/16.10/17.6 and later)."""
    psql = find_tool("psql")
    if psql is None:
        return False
    try:
        out = subprocess.run([psql, "--help=commands"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "\\restrict" in out
