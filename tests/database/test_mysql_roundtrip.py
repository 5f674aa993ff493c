"""Dump → store (in memory) → restore against a private MariaDB with the real Cells schema.

Both dump paths (mariadb-dump streamed and split, native PyMySQL) and both load paths (mariadb
client, native statements) must give back the same rows, and the restore's own verification must
agree with the server's CHECKSUM TABLE and a row-by-row comparison.
"""

from __future__ import annotations

import io
import subprocess

import pytest
from dbhelpers import assert_same_database, base_tables, dump_to_memory, new_db_name, openers

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.dump import POST_PART
from cells_backup.database.errors import DatabaseError
from cells_backup.database.export import export_sql
from cells_backup.database.load import restore_database
from cells_backup.database.mysql_client import connect
from cells_backup.database.probe import check_connection, is_empty, table_info
from cells_backup.database.rowhash import TableHasher
from cells_schema import BIG_TABLE, create_cells_schema, fill_awkward


def _admin(server, db: str) -> ConnectionInfo:
    return ConnectionInfo(
        kind="mysql",
        host="127.0.0.1",
        port=server.port,
        user=server.admin_user,
        password=server.admin_password,
        database=db,
    )


@pytest.fixture(scope="module")
def cells_source(mariadb):
    """The full Cells schema, awkward data, 500k rows in the changes archive."""
    db = new_db_name("cells")
    with mariadb.root() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        create_cells_schema(cur)
        fill_awkward(cur, big_rows=500_000, index_rows=20_000)
    return _admin(mariadb, db)


@pytest.fixture(scope="module")
def tool_dump(cells_source):
    return dump_to_memory(cells_source, "auto")


@pytest.fixture(scope="module")
def native_dump(cells_source):
    return dump_to_memory(cells_source, "native")


def test_tool_dump_layout_and_manifest(mariadb, cells_source, tool_dump):
    parts, manifest = tool_dump
    tables = base_tables(mariadb, cells_source.database)
    assert manifest["tool"] in ("mariadb-dump", "mysqldump")
    assert sorted(manifest["tables"]) == sorted(tables)
    assert sorted(parts) == sorted([f"tables/{t}.sql" for t in tables] + [POST_PART])
    assert list(parts)[-1] == POST_PART
    assert manifest["parts"] == list(parts)
    counts = table_info(cells_source, tables)
    assert {t: manifest["tables"][t]["rows"] for t in tables} == {t: counts[t]["rows"] for t in tables}
    assert manifest["tables"][BIG_TABLE]["rows"] == 500_000 + 1  # + the trigger's row
    assert manifest["views"] == ["v_user_names", "v_user_names_upper"]
    assert manifest["triggers"] == ["trg_changes_archive"]
    assert manifest["routines"] == ["procedure:count_users"]
    assert manifest["server_version"] and manifest["charset"] == "utf8mb4"
    assert b"DEFINER=" not in parts[POST_PART]
    assert b"CREATE TABLE `enc_legacy_nodes`" in parts["tables/enc_legacy_nodes.sql"]


def _rowset(part: bytes) -> tuple[int, str]:
    hasher = TableHasher()
    for line in part.splitlines(keepends=True):
        hasher.feed_line(line)
    return hasher.rows, hasher.hexdigest()


def test_native_and_tool_dumps_describe_the_same_data(tool_dump, native_dump):
    tool_tables, native_tables = tool_dump[1]["tables"], native_dump[1]["tables"]
    assert sorted(tool_tables) == sorted(native_tables)
    for table, info in tool_tables.items():
        assert info["rows"] == native_tables[table]["rows"], table
        # The statements may be cut at other rows; the rows themselves are the same.
        assert _rowset(tool_dump[0][info["part"]]) == _rowset(native_dump[0][info["part"]]), table
    assert native_dump[1]["tool"] == "native"
    assert tool_dump[0][POST_PART] == native_dump[0][POST_PART]


@pytest.mark.parametrize("dump_kind,loader", [("tool", "auto"), ("native", "native")])
def test_roundtrip_restores_identical_data(mariadb, cells_source, tool_dump, native_dump, dump_kind, loader):
    parts, manifest = tool_dump if dump_kind == "tool" else native_dump
    target = cells_source.with_database(new_db_name("restored"))
    report = restore_database(target, openers(parts), manifest, jobs=3, tool=loader)
    assert report.ok and report.loader == ("mariadb" if loader == "auto" else "native")
    assert {t["table"] for t in report.tables} == set(manifest["tables"])
    assert all(t["rows_found"] == t["rows_expected"] and t["hash_ok"] for t in report.tables)
    assert_same_database(mariadb, cells_source.database, target.database)
    with mariadb.root(target.database) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM v_user_names_upper")  # views work
        assert cur.fetchone()[0] > 0
        cur.execute("CALL count_users(@n)")
        cur.execute("SELECT @n")
        assert cur.fetchone()[0] > 0
        before = manifest["tables"][BIG_TABLE]["rows"]
        cur.execute("INSERT INTO data_changes (node_id, type) VALUES ('new', 'create')")  # trigger works
        cur.execute(f"SELECT COUNT(*) FROM {BIG_TABLE}")
        assert cur.fetchone()[0] == before + 1
        cur.execute("SELECT id, uuid FROM idm_acl_nodes WHERE id <= 0 ORDER BY id")
        assert cur.fetchall() == ((-1, ""), (0, "zero-id-kept"))  # explicit 0 id not renumbered


def test_cross_restore_tool_dump_with_native_loader(mariadb, cells_source, tool_dump):
    parts, manifest = tool_dump
    small = {n: b for n, b in parts.items() if BIG_TABLE not in n}
    manifest = dict(manifest, tables={t: i for t, i in manifest["tables"].items() if t != BIG_TABLE})
    target = cells_source.with_database(new_db_name("cross"))
    assert restore_database(target, openers(small), manifest, tool="native").ok


def test_export_sql_loads_with_the_stock_client(mariadb, cells_source, tool_dump):
    parts, manifest = tool_dump
    out = io.BytesIO()
    export_sql(openers(parts), manifest, out)
    db = new_db_name("exported")
    with mariadb.root() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
    proc = subprocess.run(
        ["mariadb", "--no-defaults", "-uroot", f"--socket={mariadb.socket}", db],
        input=out.getvalue(),
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert_same_database(mariadb, cells_source.database, db)
    assert out.getvalue().count(b"DROP TABLE IF EXISTS") == len(manifest["tables"])  # reloadable over itself


def test_restore_refuses_non_empty_target_then_force_replaces(mariadb, cells_source, tool_dump):
    parts, manifest = tool_dump
    small = {n: b for n, b in parts.items() if BIG_TABLE not in n}
    manifest = dict(manifest, tables={t: i for t, i in manifest["tables"].items() if t != BIG_TABLE})
    target = cells_source.with_database(new_db_name("busy"))
    assert is_empty(target)
    restore_database(target, openers(small), manifest)
    assert not is_empty(target)
    with mariadb.root(target.database) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE stray (x INT)")
        cur.execute("DELETE FROM idm_user_roles LIMIT 3")
    from cells_backup.errors import TargetNotEmptyError

    with pytest.raises(TargetNotEmptyError, match="not empty"):
        restore_database(target, openers(small), manifest)
    report = restore_database(target, openers(small), manifest, force=True)
    assert report.ok
    assert "stray" not in base_tables(mariadb, target.database)


def test_tampered_part_fails_verification(cells_source, tool_dump):
    parts, manifest = tool_dump
    name = "tables/idm_workspaces.sql"
    tampered = {n: b for n, b in parts.items() if BIG_TABLE not in n}
    tampered[name] = parts[name].replace(b"slug-3", b"slug-X")
    manifest = dict(manifest, tables={t: i for t, i in manifest["tables"].items() if t != BIG_TABLE})
    target = cells_source.with_database(new_db_name("tampered"))
    with pytest.raises(DatabaseError, match="idm_workspaces.*content hash differs"):
        restore_database(target, openers(tampered), manifest)


def test_missing_part_is_refused(cells_source, tool_dump):
    parts, manifest = tool_dump
    partial = {n: b for n, b in parts.items() if n != "tables/idm_roles.sql"}
    with pytest.raises(DatabaseError, match="missing part"):
        restore_database(cells_source.with_database(new_db_name("partial")), openers(partial), manifest)


def test_probe(cells_source):
    assert "MariaDB" in check_connection(cells_source)
    info = table_info(cells_source, ["idm_roles", "no_such_table"])
    assert info == {"idm_roles": {"exists": True, "rows": 0}, "no_such_table": {"exists": False, "rows": 0}}


def test_restore_is_verified_by_dumping_it_again(cells_source, tool_dump):
    parts, manifest = tool_dump
    small = {n: b for n, b in parts.items() if BIG_TABLE not in n}
    manifest = dict(manifest, tables={t: i for t, i in manifest["tables"].items() if t != BIG_TABLE})
    report = restore_database(cells_source.with_database(new_db_name("redump")), openers(small), manifest)
    assert report.ok
    assert {t["verified_by"] for t in report.tables} == {"dump"}


def test_without_the_dump_client_each_table_is_compared_row_by_row(cells_source, tool_dump):
    parts, manifest = tool_dump
    small = {n: b for n, b in parts.items() if BIG_TABLE not in n}
    tables = {t: i for t, i in manifest["tables"].items() if t != BIG_TABLE}
    manifest = dict(manifest, tables=tables, tool="no-such-dump-client")
    report = restore_database(cells_source.with_database(new_db_name("byrows")), openers(small), manifest)
    assert report.ok
    assert {t["verified_by"] for t in report.tables} == {"rows"}
    assert [t["rows_found"] for t in report.tables] == [tables[t]["rows"] for t in sorted(tables)]


@pytest.mark.parametrize("tool", ["mariadb-dump", "no-such-dump-client"])
def test_a_restored_table_that_differs_from_the_backup_fails(cells_source, tool_dump, tool, monkeypatch):
    """A row changed on the server between load and verification is found by either method."""
    from cells_backup.database.mysql_load import MySQLTarget

    parts, manifest = tool_dump
    small = {n: b for n, b in parts.items() if BIG_TABLE not in n}
    manifest = dict(manifest, tables={t: i for t, i in manifest["tables"].items() if t != BIG_TABLE}, tool=tool)
    run_client = MySQLTarget._run_client

    def load_then_change(self, name, sql, **kw):
        run_client(self, name, sql, **kw)
        if name == "tables/idm_workspaces.sql" and (kw.get("feed") or kw.get("stream")):  # its rows are in
            with connect(self.conn) as c, c.cursor() as cur:
                cur.execute("UPDATE idm_workspaces SET label = CONCAT(label, '!') LIMIT 1")
                c.commit()

    monkeypatch.setattr(MySQLTarget, "_run_client", load_then_change)
    target = cells_source.with_database(new_db_name("changed"))
    with pytest.raises(DatabaseError, match="idm_workspaces.*content hash differs") as err:
        restore_database(target, openers(small), manifest)
    bad = [t for t in err.value.report.tables if not t["hash_ok"]]
    assert [t["table"] for t in bad] == ["idm_workspaces"] and bad[0]["verified_by"] == "rows"


class SlicedPart:
    """A part whose `split` cuts it at the given offsets (anywhere, mid-line included)."""

    def __init__(self, data: bytes, cuts: list[int]):
        self.data, self.cuts = data, cuts

    def __call__(self) -> io.BytesIO:
        return io.BytesIO(self.data)

    def split(self, n: int, min_bytes: int = 0) -> list:
        bounds = [0, *self.cuts, len(self.data)]
        return [lambda a=a, b=b: io.BytesIO(self.data[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


@pytest.mark.parametrize("where", ["mid-line", "tiny-slice", "inside-head"])
def test_a_large_table_loaded_by_several_sessions_is_whole(mariadb, cells_source, tool_dump, monkeypatch, where):
    from cells_backup.database import mysql_load

    monkeypatch.setattr(mysql_load, "SLICE_MIN", 1)
    parts, manifest = tool_dump
    name = f"tables/{BIG_TABLE}.sql"
    data = parts[name]
    cuts = {
        "mid-line": [len(data) // 3 + 7, 2 * len(data) // 3 + 11],
        "tiny-slice": [len(data) // 2, len(data) // 2 + 5],  # a slice with no line end: one session
        "inside-head": [100, len(data) // 2],  # the first slice ends before the rows: one session
    }[where]
    sliced = [(n, SlicedPart(b, cuts) if n == name else (lambda b=b: io.BytesIO(b))) for n, b in parts.items()]
    target = cells_source.with_database(new_db_name("sliced"))
    report = restore_database(target, sliced, manifest, jobs=3)
    assert report.ok and {t["verified_by"] for t in report.tables} == {"dump"}
    assert report.loads[name] == ("LOAD DATA, 3 sessions" if where == "mid-line" else "LOAD DATA")
    assert_same_database(mariadb, cells_source.database, target.database)
