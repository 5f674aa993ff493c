"""Server-less tests: DSN parsing, the row hash, the statement splitter, value formatting."""

from __future__ import annotations

import io
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cells_backup.database.dsn import ConnectionInfo, parse_database_url, parse_pydio_dsn
from cells_backup.database.errors import DatabaseError
from cells_backup.database.mysql_client import defaults_file
from cells_backup.database.mysql_dump import format_value
from cells_backup.database.mysql_keys import defer_keys
from cells_backup.database.rowhash import TableHasher
from cells_backup.database.sqlsplit import split_statements


@pytest.mark.parametrize(
    "driver,dsn,expected",
    [
        (
            "mysql",
            "pydio:P@ss:w/rd@tcp(db.example:3307)/cells?parseTime=true",
            dict(host="db.example", port=3307, user="pydio", password="P@ss:w/rd", database="cells", tls=""),
        ),
        ("mysql", "root@tcp(localhost)/cells", dict(host="localhost", port=3306, user="root", password="")),
        (
            "mysql",
            "cells:pw@unix(/run/mysqld/mysqld.sock)/cells",
            dict(unix_socket="/run/mysqld/mysqld.sock", user="cells", password="pw", database="cells"),
        ),
        (
            "sql",
            "mysql://u:p@tcp(10.0.0.5:3306)/cells?parseTime=true&prefix={{.Meta.prefix}}&policies={{.Meta.policies}}",
            dict(host="10.0.0.5", port=3306, database="cells", params={"parseTime": "true"}),
        ),
        (
            "sql",
            "mysql+tls://u:p@tcp(db:3306)/cells?parseTime=true&tlsCertCAUUID=abc",
            dict(tls="true", host="db"),
        ),
        (
            "sql",
            "postgres://u:p%40x@pg:5433/cells?sslmode=disable&prefix={{.Meta.prefix}}",
            dict(kind="postgres", host="pg", port=5433, password="p@x", params={"sslmode": "disable"}),
        ),
        (
            "sql",
            "sqlite:///var/cells/cells.db?prefix={{.Meta.prefix}}",
            dict(kind="sqlite", database="/var/cells/cells.db"),
        ),
    ],
)
def test_parse_pydio_dsn(driver, dsn, expected):
    info = parse_pydio_dsn(driver, dsn)
    for key, value in expected.items():
        assert getattr(info, key) == value, key


def test_parse_database_url_and_redaction():
    info = parse_database_url("mysql://cells:s%3Acret@db.local:3310/cells2")
    assert (info.host, info.port, info.user, info.password, info.database) == (
        "db.local",
        3310,
        "cells",
        "s:cret",
        "cells2",
    )
    assert info.redacted() == "mysql://cells:***@db.local:3310/cells2"
    assert "s:cret" not in repr(info) and "s:cret" not in str(info)
    sock = parse_database_url("mysql://u:p@localhost/db?socket=/tmp/my.sock")
    assert sock.unix_socket == "/tmp/my.sock" and sock.where == "unix:/tmp/my.sock"
    assert parse_database_url("sqlite:///srv/x.db").database == "/srv/x.db"
    with pytest.raises(DatabaseError):
        parse_database_url("mongodb://h/db")
    with pytest.raises(DatabaseError):
        parse_pydio_dsn("boltdb", "/var/cells/x.db")


def test_option_file_is_private_and_removed():
    conn = ConnectionInfo(kind="mysql", host="h", port=1, user="u", password='p"w\\#; x')
    with defaults_file(conn, "/usr/bin/mariadb") as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path) as f:
            assert 'password="p\\"w\\\\#; x"' in f.read()
    assert not os.path.exists(path)


values = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.text(max_size=20).map(lambda s: s.encode()),
    st.integers().map(lambda i: str(i).encode()),
)


def feed_statement(hasher: TableHasher, statement: bytes) -> None:
    """Feed one whole ``INSERT`` statement to ``hasher`` line by line, as a dump is read."""
    for line in statement.splitlines(keepends=True):
        hasher.feed_line(line)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(values, min_size=3, max_size=3), min_size=1, max_size=5), st.booleans())
def test_dump_text_and_raw_values_hash_the_same(rows, one_row_per_line):
    """Whatever a value holds, hashing its dumped literal equals hashing the raw value."""
    kinds = [(True, False), (False, False), (False, False)]  # binary, text, text
    raw, parsed = TableHasher(), TableHasher()
    literals = []
    for row in rows:
        row = [row[0], row[1], row[2]]
        raw.add_row(row)
        text = b",".join(format_value(v, b, n) for v, (b, n) in zip(row, kinds, strict=True))
        literals.append(b"(" + text + b")")
    sep = b",\n" if one_row_per_line else b","
    head = b"INSERT INTO `t` VALUES\n" if one_row_per_line else b"INSERT INTO `t` VALUES "
    feed_statement(parsed, head + sep.join(literals) + b";\n")
    assert not parsed.in_values
    assert (parsed.rows, parsed.hexdigest()) == (raw.rows, raw.hexdigest())


def test_hash_distinguishes_null_empty_and_text():
    digests = set()
    for row in ([None], [b""], [b"NULL"], [b"\\N"], [b"'"], [None, None], [b"", b""], [b"'"]):
        h = TableHasher()
        h.add_row(row)
        digests.add(h.hexdigest())
    assert len(digests) == 7


def test_truncated_insert_is_detected():
    """A dump cut inside an INSERT leaves the hasher inside its values (a dump is then incomplete)."""
    h = TableHasher()
    feed_statement(h, b"INSERT INTO `t` VALUES (1,'abc'),(2,'de")
    assert h.in_values


@pytest.mark.parametrize("size", [1, 3, 64, 1 << 20])
def test_split_statements(size):
    script = (
        b"--\n-- c\n--\n/*!40101 SET a=1 */;\nCREATE TABLE `t;` (a int) COMMENT 'x;y\\'';\n# c;\n"
        b"INSERT INTO t VALUES\n(1,'a;b\\'c'),\n(2,\"q;\");\nDELIMITER ;;\n"
        b"CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW BEGIN SET @a=1; SET @b=2; END;;\nDELIMITER ;\n"
        b"SELECT 1;\n-- end"
    )
    f = io.BytesIO(script)
    stmts = list(split_statements(lambda n: f.read(size)))
    assert stmts == [
        b"--\n-- c\n--\n/*!40101 SET a=1 */",
        b"CREATE TABLE `t;` (a int) COMMENT 'x;y\\''",
        b"# c;\nINSERT INTO t VALUES\n(1,'a;b\\'c'),\n(2,\"q;\")",
        b"CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW BEGIN SET @a=1; SET @b=2; END",
        b"SELECT 1",
    ]


_PART_HEAD = (
    b"--\n-- Table structure for table `t`\n--\n\n/*!40101 SET character_set_client = utf8mb4 */;\n"
    b"CREATE TABLE `t` (\n  `id` bigint(20) NOT NULL AUTO_INCREMENT,\n  `a` varchar(10) NOT NULL,\n"
    b"  `b` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u_a` (`a`),\n  KEY `k_b` (`b`)\n"
    b") ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4;\n\nINSERT INTO `t` VALUES\n(1,'x',2);\n"
)


def test_secondary_keys_are_deferred_to_after_the_load():
    head, alter = defer_keys(_PART_HEAD)
    assert alter == b"ALTER TABLE `t` ADD UNIQUE KEY `u_a` (`a`), ADD KEY `k_b` (`b`);\n"
    assert b"  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=7" in head
    assert b"KEY `u_a`" not in head and head.endswith(b"INSERT INTO `t` VALUES\n(1,'x',2);\n")


@pytest.mark.parametrize(
    "change",
    [
        (b"  KEY `k_b` (`b`)\n", b"  KEY `k_b` (`b`),\n  CONSTRAINT `fk` FOREIGN KEY (`b`) REFERENCES `o` (`id`)\n"),
        (b"PRIMARY KEY (`id`)", b"PRIMARY KEY (`a`,`id`)"),  # the auto-increment column needs its key
        (b"  PRIMARY KEY (`id`),\n  UNIQUE KEY `u_a` (`a`),\n  KEY `k_b` (`b`)\n", b"  PRIMARY KEY (`id`)\n"),
    ],
)
def test_keys_stay_where_they_must(change):
    head = _PART_HEAD.replace(*change)
    assert head != _PART_HEAD
    assert defer_keys(head) == (head, b"")
