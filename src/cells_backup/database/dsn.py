"""Where the SQL database is: parse the DSNs Cells writes into pydio.json, and `--database-url`.

Cells v1–v4 store go-sql-driver DSNs without a scheme (``user:pass@tcp(host:3306)/cells?parseTime=true``);
v5 prefixes them (``mysql://…``, ``mysql+tls://…``) and adds template parameters
(``prefix={{.Meta.prefix}}``), and also knows ``postgres://`` and ``sqlite://``. The go-sql-driver
grammar is not a URL (the password may hold ``@``, ``:`` or ``/``), so it is parsed the way the Go
driver does it: last ``/`` before the database, last ``@`` before that. The result is one
`ConnectionInfo` whatever the source, and `redacted()` is the only form that may be printed.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from cells_backup.database.errors import DatabaseError

Kind = Literal["mysql", "postgres", "sqlite"]

_DEFAULT_PORTS = {"mysql": 3306, "postgres": 5432}
_MYSQL_DEFAULT_SOCKET = "/tmp/mysql.sock"
_TEMPLATE = re.compile(r"\{\{.*?\}\}")


@dataclass(frozen=True)
class ConnectionInfo:
    """Everything needed to reach one SQL database. `password` is never part of repr()."""

    kind: Kind
    host: str = ""
    port: int = 0
    unix_socket: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = ""
    params: dict[str, str] = field(default_factory=dict)
    tls: str = ""  # "" off; "true"/"verify" verify the server; "skip-verify"; "preferred"

    @property
    def where(self) -> str:
        """host:port, the socket path or the SQLite file: used in error messages."""
        if self.kind == "sqlite":
            return self.database
        if self.unix_socket:
            return f"unix:{self.unix_socket}"
        return f"{self.host}:{self.port}"

    def redacted(self) -> str:
        """URL form with the password masked, safe for logs and `inspect` output."""
        if self.kind == "sqlite":
            return f"sqlite://{self.database}"
        auth = self.user + (":***" if self.password else "")
        auth = auth + "@" if auth else ""
        scheme = "mysql" if self.kind == "mysql" else "postgres"
        if self.unix_socket:
            return f"{scheme}://{auth}localhost/{self.database}?socket={self.unix_socket}"
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.database}"

    def with_database(self, database: str) -> ConnectionInfo:
        """The same server and credentials, another database (restore into a new name)."""
        return dataclasses.replace(self, database=database)

    def __str__(self) -> str:
        return self.redacted()


def parse_pydio_dsn(driver: str, dsn: str) -> ConnectionInfo:
    """ConnectionInfo for a `databases.<id>` entry of pydio.json (any Cells version)."""
    driver = (driver or "").strip().lower()
    dsn = dsn.strip()
    lower = dsn.lower()
    if lower.startswith(("mysql+tls://", "mysql://")):
        scheme, rest = dsn.split("://", 1)
        info = _parse_go_mysql(rest)
        if scheme.lower() == "mysql+tls" and not info.tls:
            info = dataclasses.replace(info, tls="true")
        return info
    if lower.startswith(("postgres://", "postgresql://")):
        return _parse_postgres_url(dsn)
    if lower.startswith(("sqlite://", "sqlite3://")):
        return _parse_sqlite(dsn.split("://", 1)[1])
    if driver in ("mysql", "sql", ""):
        return _parse_go_mysql(dsn)
    if driver in ("postgres", "postgresql", "pgx"):
        return _parse_postgres_url(dsn)
    if driver in ("sqlite", "sqlite3"):
        return _parse_sqlite(dsn)
    raise DatabaseError(f"unsupported SQL database driver {driver!r} in pydio.json")


def parse_database_url(url: str) -> ConnectionInfo:
    """ConnectionInfo for a `--database-url` (mysql://, mariadb://, postgres://, sqlite:///path)."""
    url = url.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("sqlite", "sqlite3"):
        return _parse_sqlite(url.split("://", 1)[1])
    if scheme in ("postgres", "postgresql"):
        return _parse_postgres_url(url)
    if scheme not in ("mysql", "mariadb", "mysql+tls"):
        shown = repr(scheme) if scheme else "(none)"  # never echo the URL: it may hold a password
        raise DatabaseError(f"unsupported database URL scheme {shown} (use mysql://, postgres://, sqlite://)")
    if "@tcp(" in url or "@unix(" in url:  # a v5-style DSN pasted as URL
        return parse_pydio_dsn("mysql", url)
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    socket = params.pop("socket", "") or params.pop("unix_socket", "")
    tls = params.pop("tls", "") or params.pop("ssl", "")
    if scheme == "mysql+tls" and not tls:
        tls = "true"
    return ConnectionInfo(
        kind="mysql",
        host=parts.hostname or ("localhost" if socket else "127.0.0.1"),
        port=_port(parts, "mysql"),
        unix_socket=socket,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")),
        params=params,
        tls=_tls_value(tls),
    )


def _port(parts, kind: str) -> int:
    try:
        return parts.port or _DEFAULT_PORTS[kind]
    except ValueError:
        # The text of the error would echo the netloc, password included.
        raise DatabaseError(
            "invalid port in database URL (percent-encode special characters of the password, e.g. # as %23)"
        ) from None


def _tls_value(raw: str) -> str:
    raw = (raw or "").strip().lower()
    if raw in ("", "false", "0", "off", "disable", "disabled"):
        return ""
    if raw in ("1", "on", "required", "verify", "verify-full", "verify_identity"):
        return "true"
    return raw


def _parse_go_mysql(dsn: str) -> ConnectionInfo:
    """go-sql-driver/mysql: ``[user[:password]@][net[(addr)]]/dbname[?param=value&...]``."""
    slash = dsn.rfind("/")
    if slash < 0:
        raise DatabaseError("invalid MySQL DSN in pydio.json: no '/<database>' part")
    left, right = dsn[:slash], dsn[slash + 1 :]
    user = password = ""
    at = left.rfind("@")
    if at >= 0:
        userinfo, left = left[:at], left[at + 1 :]
        user, _, password = userinfo.partition(":")
    net, addr = left, ""
    paren = left.find("(")
    if paren >= 0:
        if not left.endswith(")"):
            raise DatabaseError("invalid MySQL DSN in pydio.json: unterminated network address")
        net, addr = left[:paren], left[paren + 1 : -1]
    net = net or "tcp"
    dbname, _, query = right.partition("?")
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if not _TEMPLATE.search(value):  # v5 `prefix={{.Meta.prefix}}` is for Cells, not for us
            params[key] = value
    tls = _tls_value(params.get("tls", ""))
    if net == "unix":
        return ConnectionInfo(
            kind="mysql",
            host="localhost",
            port=3306,
            unix_socket=addr or _MYSQL_DEFAULT_SOCKET,
            user=user,
            password=password,
            database=unquote(dbname),
            params=params,
            tls=tls,
        )
    if net not in ("tcp", "tcp6"):
        raise DatabaseError(f"unsupported MySQL network {net!r} in pydio.json DSN")
    host, port = _split_host_port(addr or "127.0.0.1:3306", 3306)
    return ConnectionInfo(
        kind="mysql",
        host=host,
        port=port,
        user=user,
        password=password,
        database=unquote(dbname),
        params=params,
        tls=tls,
    )


def _split_host_port(addr: str, default_port: int) -> tuple[str, int]:
    if addr.startswith("["):  # [::1]:3306
        host, _, rest = addr[1:].partition("]")
        port = rest.lstrip(":")
    elif addr.count(":") == 1:
        host, port = addr.split(":")
    else:
        host, port = addr, ""
    try:
        return host or "127.0.0.1", int(port) if port else default_port
    except ValueError:
        raise DatabaseError(f"invalid port in database address {addr!r}") from None


def _parse_postgres_url(url: str) -> ConnectionInfo:
    parts = urlsplit(url)
    params = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TEMPLATE.search(v)}
    host = parts.hostname or params.pop("host", "") or "127.0.0.1"
    socket = host if host.startswith("/") else ""
    sslmode = params.get("sslmode", "")
    return ConnectionInfo(
        kind="postgres",
        host="localhost" if socket else host,
        port=_port(parts, "postgres"),
        unix_socket=socket,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")),
        params=params,
        tls="" if sslmode in ("", "disable", "allow", "prefer") else sslmode,
    )


def _parse_sqlite(rest: str) -> ConnectionInfo:
    path, _, query = rest.partition("?")
    params = {k: v for k, v in parse_qsl(query, keep_blank_values=True) if not _TEMPLATE.search(v)}
    if path.startswith("file:"):
        path = path[5:]
    if not path:
        raise DatabaseError("SQLite DSN without a file path")
    return ConnectionInfo(kind="sqlite", database=unquote(path), params=params)
