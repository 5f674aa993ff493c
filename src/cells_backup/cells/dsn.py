"""Database DSNs as Cells writes them, in both shapes (docs/CELLS.md §2.2).

v1–v4 store go-sql-driver DSNs without a scheme (``user:pass@tcp(host:3306)/cells?parseTime=true``);
v5 prefixes them (``mysql://``, ``mysql+tls://``) and adds template parameters
(``prefix={{.Meta.prefix}}``), uses URLs for PostgreSQL and a file for SQLite. A restore must
point the DSN at another server while keeping every parameter Cells relies on, so parsing and
formatting keep the parameter string verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote, urlsplit

from ..errors import CellsBackupError

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$", re.S)
_GO_ADDR = re.compile(r"^([a-z0-9]*)\((.*)\)$")
_ENGINES = {
    "mysql": "mysql",
    "mysql+tls": "mysql",
    "postgres": "postgres",
    "postgresql": "postgres",
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
}


@dataclass(frozen=True)
class SqlDsn:
    """A parsed SQL DSN. ``scheme`` is "" for the scheme-less go-sql-driver form."""

    engine: str  # mysql | postgres | sqlite
    scheme: str
    user: str = ""
    password: str = ""
    net: str = "tcp"  # go-sql-driver protocol (tcp / unix)
    host: str = ""
    port: int | None = None
    database: str = ""  # database name, or file path for SQLite
    params: str = ""  # raw text after '?', kept verbatim (may hold {{.Meta.x}} templates)

    @property
    def go_style(self) -> bool:
        return self.engine == "mysql"


def _split_go(text: str) -> tuple[str, str, str, str, str, str]:
    """Split ``[user[:pass]@][net[(addr)]]/db[?params]`` the way go-sql-driver does."""
    slash = text.rfind("/")
    if slash < 0:
        raise ValueError("no '/dbname' part")
    head, tail = text[:slash], text[slash + 1 :]
    db, _, params = tail.partition("?")
    user = password = ""
    at = head.rfind("@")
    if at >= 0:
        user, _, password = head[:at].partition(":")
        head = head[at + 1 :]
    net, addr = "tcp", head
    m = _GO_ADDR.match(head)
    if m:
        net, addr = m.group(1) or "tcp", m.group(2)
    return user, password, net, addr, db, params


def _host_port(addr: str) -> tuple[str, int | None]:
    if addr.startswith("["):  # [ipv6]:port
        host, _, rest = addr[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:] else None
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr, None
    return host, int(port) if port else None


def parse_dsn(dsn: str) -> SqlDsn:
    """Parse a SQL DSN of any Cells version; raise CellsBackupError if it is not one."""
    try:
        m = _SCHEME.match(dsn)
        if not m:
            user, password, net, addr, db, params = _split_go(dsn)
            host, port = (addr, None) if net == "unix" else _host_port(addr)
            return SqlDsn("mysql", "", user, password, net, host, port, db, params)
        scheme, rest = m.group(1).lower(), m.group(2)
        engine = _ENGINES.get(scheme)
        if engine is None:
            raise ValueError(f"unsupported scheme {scheme}://")
        if engine == "sqlite":
            path, _, params = rest.partition("?")
            return SqlDsn("sqlite", scheme, database=path, params=params)
        if engine == "mysql" and "(" in rest[: max(rest.rfind("/"), 0)]:
            user, password, net, addr, db, params = _split_go(rest)
            host, port = (addr, None) if net == "unix" else _host_port(addr)
            return SqlDsn("mysql", scheme, user, password, net, host, port, db, params)
        url = urlsplit(f"{scheme}://{rest}")
        return SqlDsn(
            engine,
            scheme,
            unquote(url.username or ""),
            unquote(url.password or ""),
            "tcp",
            url.hostname or "",
            url.port,
            url.path.lstrip("/"),
            url.query,
        )
    except ValueError as exc:
        raise CellsBackupError(f"cannot read database DSN {mask_dsn(dsn)!r}: {exc}") from None


def format_dsn(d: SqlDsn) -> str:
    """Write a SqlDsn back in its own shape (go-sql-driver form for MySQL, URL otherwise)."""
    query = f"?{d.params}" if d.params else ""
    if d.engine == "sqlite":
        return f"{d.scheme or 'sqlite'}://{d.database}{query}"
    cred = ""
    if d.user or d.password:
        cred = f"{d.user}:{d.password}@" if d.password else f"{d.user}@"
    if d.engine == "mysql":
        addr = d.host if d.net == "unix" or d.port is None else f"{_bracket(d.host)}:{d.port}"
        body = f"{cred}{d.net}({addr})/{d.database}{query}"
        return f"{d.scheme}://{body}" if d.scheme else body
    if d.user or d.password:
        cred = quote(d.user, safe="") + (":" + quote(d.password, safe="") if d.password else "") + "@"
    port = f":{d.port}" if d.port else ""
    return f"{d.scheme}://{cred}{_bracket(d.host)}{port}/{d.database}{query}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def format_mysql_dsn(
    user: str, password: str, host: str, port: int, database: str, params: str = "", *, v5: bool = False
) -> str:
    """A MySQL DSN as Cells stores it: go-sql-driver form, with ``mysql://`` for v5."""
    return format_dsn(
        SqlDsn("mysql", "mysql" if v5 else "", user, password, "tcp", host, port, database, params)
    )


def retarget_dsn(original: str, target: str) -> str:
    """Point ``original`` at the server/credentials/database of ``target``, keeping its shape and params.

    ``target`` is what an administrator types: ``mysql://user:pass@host:3306/db``, a go-sql-driver
    DSN, ``postgres://...`` or ``sqlite:///path``. Parameters of the original (``parseTime``,
    v5 ``prefix={{.Meta.prefix}}`` templates) are kept; target parameters not in it are added.
    """
    old, new = parse_dsn(original), parse_dsn(target)
    if old.engine != new.engine:
        raise CellsBackupError(
            f"cannot move a {old.engine} database to {new.engine}: that is a migration, not a restore"
        )
    params = old.params
    have = {p.split("=", 1)[0] for p in old.params.split("&") if p}
    extra = [p for p in new.params.split("&") if p and p.split("=", 1)[0] not in have]
    if extra:
        params = "&".join([p for p in [params, *extra] if p])
    if old.engine == "sqlite":
        return format_dsn(replace(old, database=new.database, params=params))
    return format_dsn(
        replace(
            old,
            user=new.user or old.user,
            password=new.password if new.user else old.password,
            net=new.net,
            host=new.host or old.host,
            port=new.port or old.port,
            database=new.database or old.database,
            params=params,
        )
    )


def mask_dsn(dsn: str) -> str:
    """Replace the password of any ``user:password@`` DSN or URL with ``***``."""
    m = _SCHEME.match(dsn)
    prefix, rest = (f"{m.group(1)}://", m.group(2)) if m else ("", dsn)
    slash = rest.rfind("/")
    head = rest[:slash] if slash >= 0 else rest
    at = head.rfind("@")
    if at < 0:
        return dsn
    colon = head.find(":", 0, at)
    if colon < 0 or "(" in head[:colon]:
        return dsn
    return f"{prefix}{rest[: colon + 1]}***{rest[at:]}"
