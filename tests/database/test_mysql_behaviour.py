"""Consistency, determinism, failures and error messages of the MySQL/MariaDB dump and restore."""

from __future__ import annotations

import os
import signal
import threading
import time

import pymysql
import pytest
from dbhelpers import dump_to_memory, new_db_name, openers

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.errors import DatabaseError
from cells_backup.database.load import restore_database
from cells_backup.database.probe import check_connection
from cells_backup.database.registry import open_dump
from cells_schema import create_cells_schema, fill_awkward
from dbserver import LIMITED_PASSWORD, LIMITED_USER, free_port

TOOLS = ["auto", "native"]


@pytest.fixture(scope="module")
def small_source(mariadb) -> ConnectionInfo:
    """Cells schema with awkward data and a 30k-row index table (several MB of dump)."""
    db = new_db_name("small")
    with mariadb.root() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        create_cells_schema(cur)
        fill_awkward(cur, big_rows=0, index_rows=30_000)
    return ConnectionInfo(
        kind="mysql",
        host="127.0.0.1",
        port=mariadb.port,
        user=mariadb.admin_user,
        password=mariadb.admin_password,
        database=db,
    )


@pytest.mark.parametrize("tool", TOOLS)
def test_dump_of_unchanged_database_is_byte_identical(small_source, tool):
    first, m1 = dump_to_memory(small_source, tool)
    second, m2 = dump_to_memory(small_source, tool)
    assert first == second
    assert m1["tables"] == m2["tables"]


@pytest.mark.parametrize("tool", TOOLS)
def test_changing_one_table_changes_only_its_part(mariadb, small_source, tool):
    before, _ = dump_to_memory(small_source, tool)
    with mariadb.root(small_source.database) as c, c.cursor() as cur:
        cur.execute("INSERT INTO idm_roles (uuid, label) VALUES (%s, 'new role')", (f"r-{tool}",))
    after, _ = dump_to_memory(small_source, tool)
    changed = [n for n in before if before[n] != after[n]]
    assert changed == ["tables/idm_roles.sql"]


@pytest.mark.parametrize("tool", TOOLS)
def test_concurrent_transactions_are_all_or_nothing(mariadb, tool):
    """A writer commits a row into pairs_a and pairs_z per transaction during a slow dump."""
    db = new_db_name("pairs")
    pad = "x" * 200
    with mariadb.root() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        for t in ("pairs_a", "pairs_z"):
            cur.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, pad VARCHAR(255))")
            cur.execute(f"INSERT INTO {t} SELECT seq, '{pad}' FROM seq_1_to_20000")
    conn = ConnectionInfo(
        kind="mysql",
        host="127.0.0.1",
        port=mariadb.port,
        user=mariadb.admin_user,
        password=mariadb.admin_password,
        database=db,
    )
    stop = threading.Event()
    written = [20000]

    def writer():
        w = mariadb.root(db)
        w.autocommit(False)
        with w.cursor() as cur:
            while not stop.is_set():
                n = written[0] + 1
                cur.execute("INSERT INTO pairs_a VALUES (%s, %s)", (n, pad))
                time.sleep(0.0005)
                cur.execute("INSERT INTO pairs_z VALUES (%s, %s)", (n, pad))
                w.commit()
                written[0] = n
        w.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        dump = open_dump(conn, tool)
        parts = {}
        for part in dump.parts():
            data = []
            while chunk := part.read(32768):
                data.append(chunk)
                if part.name == "tables/pairs_a.sql":
                    time.sleep(0.003)  # a slow consumer: the writer goes on meanwhile
            parts[part.name] = b"".join(data)
        dump.close()
    finally:
        stop.set()
        thread.join()
    manifest = dump.manifest()
    rows_a, rows_z = manifest["tables"]["pairs_a"]["rows"], manifest["tables"]["pairs_z"]["rows"]
    assert rows_a == rows_z
    assert written[0] > rows_a  # the writer did commit during the dump
    target = conn.with_database(new_db_name("pairs_restored"))
    assert restore_database(target, openers(parts), manifest).ok
    with mariadb.root(target.database) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM pairs_a a LEFT JOIN pairs_z z USING (id) WHERE z.id IS NULL")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT COUNT(*) FROM pairs_z z LEFT JOIN pairs_a a USING (id) WHERE a.id IS NULL")
        assert cur.fetchone()[0] == 0


def test_killed_dump_client_fails_the_dump(small_source):
    dump = open_dump(small_source, "auto")
    parts = dump.parts()
    first = next(parts)
    first.read(100)
    assert dump.pid
    os.kill(dump.pid, signal.SIGKILL)
    with pytest.raises(DatabaseError, match="dump"):
        first.read()
        for part in parts:
            part.read()
    with pytest.raises(DatabaseError):
        dump.close()


def niceness(pid: int | str = "self") -> int:
    """The nice value of a process (field 19 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])


def test_while_dumping_the_client_keeps_its_priority_and_ours_is_lowered_then_restored(small_source):
    before = os.getpriority(os.PRIO_PROCESS, 0)
    dump = open_dump(small_source, "auto")
    parts = dump.parts()
    next(parts).read(100)
    assert niceness(dump.pid) == before  # started before we lowered ourselves
    assert os.getpriority(os.PRIO_PROCESS, 0) == min(before + 10, 19)
    for part in parts:
        part.read()
    dump.close()
    assert os.getpriority(os.PRIO_PROCESS, 0) == (before if os.geteuid() == 0 else min(before + 10, 19))


def test_dump_closed_early_is_not_complete(small_source):
    dump = open_dump(small_source, "auto")
    next(dump.parts()).read()
    with pytest.raises(DatabaseError, match="before"):
        dump.close()


def test_wrong_password(small_source):
    bad = ConnectionInfo(**{**small_source.__dict__, "password": "wrong"})
    msg = f"database authentication failed for user {bad.user} at 127.0.0.1:{bad.port}"
    for action in (
        lambda: open_dump(bad),
        lambda: check_connection(bad),
        lambda: restore_database(bad.with_database("x"), [], {"kind": "mysql", "tables": {}}),
    ):
        with pytest.raises(DatabaseError) as e:
            action()
        assert str(e.value) == msg


def test_unreachable_server(small_source):
    port = free_port()
    bad = ConnectionInfo(**{**small_source.__dict__, "port": port})
    with pytest.raises(DatabaseError, match=f"^database server unreachable at 127.0.0.1:{port}"):
        open_dump(bad)


def test_unknown_database(small_source):
    bad = small_source.with_database("no_such_db")
    with pytest.raises(DatabaseError, match="^unknown database 'no_such_db' at 127.0.0.1:"):
        open_dump(bad)
    with pytest.raises(DatabaseError, match="^unknown database 'no_such_db'"):
        restore_database(bad, [], {"kind": "mysql", "tables": {}}, create=False)


def test_missing_privileges(mariadb, small_source):
    limited = ConnectionInfo(
        kind="mysql",
        host="127.0.0.1",
        port=mariadb.port,
        user=LIMITED_USER,
        password=LIMITED_PASSWORD,
        database=small_source.database,
    )
    with pytest.raises(DatabaseError, match=f"^missing database privileges for user {LIMITED_USER}"):
        open_dump(limited)
    with pytest.raises(DatabaseError, match=f"^missing database privileges for user {LIMITED_USER}"):
        restore_database(limited.with_database(new_db_name("denied")), [], {"kind": "mysql", "tables": {}})


def test_tool_failure_is_reported(mariadb, small_source):
    """mariadb-dump itself refused (privilege removed between the check and the dump)."""
    db = small_source.database
    with mariadb.root() as c, c.cursor() as cur:
        cur.execute(f"GRANT SELECT, SHOW VIEW ON {db}.* TO '{LIMITED_USER}'@'127.0.0.1'")
        cur.execute(f"GRANT SELECT ON {db}.* TO '{LIMITED_USER}'@'localhost'")
    limited = ConnectionInfo(
        kind="mysql",
        host="127.0.0.1",
        port=mariadb.port,
        user=LIMITED_USER,
        password=LIMITED_PASSWORD,
        database=db,
    )
    try:
        dump = open_dump(limited, "auto")
        with mariadb.root() as c, c.cursor() as cur:
            cur.execute(f"REVOKE ALL PRIVILEGES ON {db}.* FROM '{LIMITED_USER}'@'127.0.0.1'")
        with pytest.raises(DatabaseError, match="privileges|denied"):
            for part in dump.parts():
                part.read()
        with pytest.raises(DatabaseError):
            dump.close()
    finally:
        with mariadb.root() as c, c.cursor() as cur:
            for host in ("127.0.0.1", "localhost"):
                try:
                    cur.execute(f"REVOKE ALL PRIVILEGES ON {db}.* FROM '{LIMITED_USER}'@'{host}'")
                except pymysql.MySQLError:
                    pass
