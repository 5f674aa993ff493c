"""DSNs keep their shape and every parameter when pointed at another server."""

from __future__ import annotations

import pytest

from cells_backup.cells import format_mysql_dsn, mask_dsn, parse_dsn, retarget_dsn
from cells_backup.cells.dsn import format_dsn
from cells_backup.errors import CellsBackupError

V5 = "mysql://pydio:p@ss:w@tcp(db:3306)/cells?parseTime=true&prefix={{.Meta.prefix}}&policies={{.Meta.policies}}"


@pytest.mark.parametrize(
    "dsn",
    [
        "pydio:cells@tcp(localhost:3306)/cells?parseTime=true",
        "root@unix(/run/mysqld/mysqld.sock)/cells",
        V5,
        "mysql+tls://u:p@tcp([::1]:3306)/cells?tlsCertCAUUID=abc",
        "postgres://u:p%40x@pg:5432/cells?sslmode=disable&prefix={{.Meta.prefix}}",
        "sqlite:///var/cells/cells.db?prefix={{.Meta.prefix}}",
    ],
)
def test_parse_format_round_trip(dsn: str) -> None:
    assert format_dsn(parse_dsn(dsn)) == dsn


def test_parse_fields() -> None:
    d = parse_dsn(V5)
    assert (d.engine, d.scheme, d.user, d.password, d.host, d.port, d.database) == (
        "mysql",
        "mysql",
        "pydio",
        "p@ss:w",
        "db",
        3306,
        "cells",
    )
    pg = parse_dsn("postgres://u:p%40x@pg:5432/cells")
    assert (pg.password, pg.host, pg.port) == ("p@x", "pg", 5432)


def test_format_mysql_for_each_shape() -> None:
    assert format_mysql_dsn("u", "p", "h", 3306, "c", "parseTime=true") == "u:p@tcp(h:3306)/c?parseTime=true"
    assert format_mysql_dsn("u", "p", "h", 3306, "c", v5=True) == "mysql://u:p@tcp(h:3306)/c"


def test_retarget_keeps_templates_and_shape() -> None:
    new = retarget_dsn(V5, "mysql://admin:x@db2.lan:3307/cells_restored?tls=true")
    assert new == (
        "mysql://admin:x@tcp(db2.lan:3307)/cells_restored?parseTime=true&prefix={{.Meta.prefix}}"
        "&policies={{.Meta.policies}}&tls=true"
    )
    legacy = retarget_dsn("pydio:cells@tcp(localhost:3306)/cells?parseTime=true", "u:p@tcp(h:1)/d")
    assert legacy == "u:p@tcp(h:1)/d?parseTime=true"
    only_host = retarget_dsn("pydio:cells@tcp(localhost:3306)/cells?parseTime=true", "mysql://newdb")
    assert only_host == "pydio:cells@tcp(newdb:3306)/cells?parseTime=true"


def test_retarget_refuses_engine_change() -> None:
    with pytest.raises(CellsBackupError, match="migration"):
        retarget_dsn(V5, "postgres://u:p@h/db")


def test_bad_dsns() -> None:
    with pytest.raises(CellsBackupError, match="cannot read database DSN"):
        parse_dsn("oracle://x")
    with pytest.raises(CellsBackupError, match="no '/dbname'"):
        parse_dsn("just-a-host")


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        (
            "pydio:cells@tcp(localhost:3306)/cells?parseTime=true",
            "pydio:***@tcp(localhost:3306)/cells?parseTime=true",
        ),
        (
            V5,
            "mysql://pydio:***@tcp(db:3306)/cells?parseTime=true&prefix={{.Meta.prefix}}&policies={{.Meta.policies}}",
        ),
        ("mongodb://u:pw@m:27017/cells", "mongodb://u:***@m:27017/cells"),
        ("sqlite:///var/cells/x.db", "sqlite:///var/cells/x.db"),
        ("http://localhost:3000/servers/callback", "http://localhost:3000/servers/callback"),
        ("root@tcp(h:1)/c", "root@tcp(h:1)/c"),
    ],
)
def test_mask(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked
