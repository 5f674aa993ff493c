"""PostgreSQL (Cells v5) dump -> store (in memory) -> restore against a private server (pgserver.py).

Round trip of awkward data (unicode, NULLs, every byte value, quotes and backslashes, special
floats, arrays, enums, another schema, 200k generated rows), determinism, consistency under a
concurrent writer, killed client, non-empty target, export loaded by the stock psql, and one-line
errors for wrong password, unreachable server, unknown database and missing privileges.
"""

from __future__ import annotations

import io
import itertools
import os
import signal
import subprocess
import threading
import time

import pytest
from dbhelpers import dump_to_memory, openers

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.dump import POST_PART, table_part_name
from cells_backup.database.errors import DatabaseError
from cells_backup.database.export import export_sql
from cells_backup.database.load import restore_database
from cells_backup.database.postgres_dump import PRE_PART
from cells_backup.database.probe import check_connection, is_empty, table_info
from cells_backup.database.registry import open_dump
from cells_backup.errors import TargetNotEmptyError
from dbserver import free_port
from pgserver import LIMITED_PASSWORD, LIMITED_USER, PostgresServer, start_postgres

ODD = 'Odd "name". ✓'
_names = itertools.count()

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE idm_user (id bigserial PRIMARY KEY, login text NOT NULL UNIQUE, attrs jsonb, avatar bytea,
  score double precision, mood mood, created timestamptz, tags text[], price numeric(12,4), note varchar(80));
CREATE TABLE empty_table (a int, b text);
CREATE TABLE data_index (uuid text PRIMARY KEY, parent text, mtime bigint);
CREATE TABLE big (id int PRIMARY KEY, pad text);
CREATE TABLE idm_audit (id int GENERATED ALWAYS AS IDENTITY, what text);
CREATE TABLE "Odd ""name"". ✓" (x int);
CREATE SCHEMA other;
CREATE TABLE other.user_ref (k bigint PRIMARY KEY REFERENCES public.idm_user (id));
CREATE VIEW v_logins AS SELECT login FROM idm_user WHERE score IS NOT NULL;
CREATE FUNCTION audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO idm_audit (what) VALUES ('new ' || NEW.login); RETURN NEW; END $$;
CREATE TRIGGER trg_audit AFTER INSERT ON idm_user FOR EACH ROW EXECUTE FUNCTION audit_fn();
INSERT INTO idm_user (login, attrs, avatar, score, mood, created, tags, price, note) VALUES
 ('zoé 😀 日本語', '{"k": "v\\"q", "n": null}', (SELECT decode(string_agg(lpad(to_hex(g), 2, '0'), ''), 'hex')
   FROM generate_series(0, 255) g), 0.1, 'happy', '2024-02-29 23:59:59.123456+05:30', ARRAY['a,b', NULL, '"q"'],
   12345678.1234, E'it''s "quoted" \\\\ back\\\\slash\\ttab\\nnewline\\r\\n'),
 ('nulls', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 ('specials', '[]', '\\x', 'NaN', 'sad', 'infinity', '{}', 'NaN', E'\\\\.'),
 ('floats-inf', '{}', '\\x00', '-Infinity', 'ok', '-infinity', ARRAY[''], -0.0001, '--'),
 ('float-neg-zero', '1', '\\x5c', '-0', 'ok', 'epoch', ARRAY['\\'], 0, ''),
 ('float-tiny', '"s"', '\\x0a0d', 5e-324, 'ok', now(), NULL, 1, 'x');
INSERT INTO idm_user (login, score) SELECT 'user ' || g, g / 3.0 FROM generate_series(1, 3000) g;
INSERT INTO other.user_ref SELECT id FROM idm_user WHERE id % 7 = 0;
INSERT INTO data_index SELECT md5(g::text), md5((g / 10)::text), g FROM generate_series(1, 3000) g;
INSERT INTO big SELECT g, repeat('x', g % 50) FROM generate_series(1, 200000) g;
INSERT INTO "Odd ""name"". ✓" VALUES (1), (NULL);
"""


@pytest.fixture(scope="session")
def pg() -> PostgresServer:
    try:
        server = start_postgres()
    except RuntimeError as e:
        pytest.fail(str(e))
    yield server
    server.stop()


def new_db(prefix: str = "db") -> str:
    return f"{prefix}{os.getpid()}_{next(_names)}"


def _conn(server: PostgresServer, db: str, **kw) -> ConnectionInfo:
    fields = dict(host="127.0.0.1", port=server.port, user=server.admin_user, password=server.admin_password)
    fields.update(kw)
    return ConnectionInfo(kind="postgres", database=db, **fields)


def create_db(server: PostgresServer, sql: str, prefix: str = "src") -> str:
    db = new_db(prefix)
    server.psql(f"CREATE DATABASE {db} OWNER {server.admin_user};")
    server.psql(sql, db, admin=True)
    return db


def contents(server: PostgresServer, db: str) -> str:
    """Every table's rows in a fixed order, as text: what must survive the round trip."""
    tables = server.psql(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
        " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;",
        db,
    ).splitlines()
    sql = "SET TimeZone = 'UTC'; SET extra_float_digits = 3;\n"
    sql += "".join(
        f"SELECT {i}, * FROM (SELECT t::text AS r FROM {t} AS t ORDER BY 1) q;\n" for i, t in enumerate(tables)
    )
    return "\n".join(tables) + "\n" + server.psql(sql, db)


@pytest.fixture(scope="module")
def source(pg) -> ConnectionInfo:
    return _conn(pg, create_db(pg, SCHEMA))


@pytest.fixture(scope="module")
def dumped(source):
    return dump_to_memory(source)


def test_dump_layout_and_manifest(source, dumped):
    parts, manifest = dumped
    tables = ["big", "data_index", "empty_table", "idm_audit", "idm_user", ODD, "other.user_ref"]
    assert sorted(manifest["tables"]) == sorted(tables)
    assert list(parts)[0] == PRE_PART and list(parts)[-1] == POST_PART and manifest["parts"] == list(parts)
    assert sorted(parts) == sorted([PRE_PART, POST_PART] + [table_part_name(t) for t in tables])
    counts = table_info(source, tables + ["nope"])
    assert {t: manifest["tables"][t]["rows"] for t in tables} == {t: counts[t]["rows"] for t in tables}
    assert counts["nope"] == {"exists": False, "rows": 0}
    assert manifest["tables"]["big"]["rows"] == 200_000 and manifest["tables"]["empty_table"]["rows"] == 0
    assert manifest["views"] == ["v_logins"] and manifest["triggers"] == ["trg_audit"]
    assert manifest["routines"] == ["audit_fn"] and manifest["consistent"]
    assert b"CREATE TABLE public.idm_user" in parts[PRE_PART] and b"COPY public.big" in parts["tables/big.sql"]
    assert b"CREATE TRIGGER trg_audit" in parts[POST_PART] and b"setval('public.idm_user_id_seq'" in parts[POST_PART]
    assert not any(b"\\restrict" in p for p in parts.values())


def test_roundtrip_restores_identical_data(pg, source, dumped):
    parts, manifest = dumped
    target = source.with_database(new_db("restored"))
    report = restore_database(target, openers(parts), manifest, jobs=3)
    assert report.ok and report.loader == "psql"
    assert {t["table"] for t in report.tables} == set(manifest["tables"])
    assert contents(pg, source.database) == contents(pg, target.database)
    out = pg.psql(
        "SELECT count(*) FROM v_logins;"
        "INSERT INTO idm_user (login) VALUES ('after restore') RETURNING id;"
        "SELECT count(*) FROM idm_audit WHERE what = 'new after restore';",
        target.database,
    ).split()
    assert out == ["3005", "3007", "1"]  # view, sequence continues, trigger fires
    with pytest.raises(RuntimeError, match="foreign key"):
        pg.psql("INSERT INTO other.user_ref VALUES (999999);", target.database)


def test_dumps_are_deterministic_and_changes_stay_local(pg, source, dumped):
    again, manifest = dump_to_memory(source)
    assert again == dumped[0] and manifest["tables"] == dumped[1]["tables"]
    db = create_db(
        pg, "CREATE TABLE a (x int); CREATE TABLE b (x int); INSERT INTO a VALUES (1); INSERT INTO b VALUES (2);"
    )
    first, _ = dump_to_memory(_conn(pg, db))
    pg.psql("INSERT INTO b VALUES (3);", db)
    second, _ = dump_to_memory(_conn(pg, db))
    assert [n for n in first if first[n] != second[n]] == ["tables/b.sql"]


def test_concurrent_transactions_are_all_or_nothing(pg):
    db = create_db(
        pg,
        "CREATE TABLE pairs_a (id int PRIMARY KEY, pad text); CREATE TABLE pairs_z (id int PRIMARY KEY, pad text);"
        "INSERT INTO pairs_a SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;"
        "INSERT INTO pairs_z SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g;",
        "pairs",
    )
    conn = _conn(pg, db)
    env = dict(os.environ, PGPASSWORD=pg.superpassword, PGHOST="127.0.0.1", PGPORT=str(pg.port))
    writer = subprocess.Popen(
        ["psql", "-X", "-q", "-U", pg.superuser, "-d", db, "-v", "ON_ERROR_STOP=1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    stop = threading.Event()

    def write() -> None:
        for n in itertools.count(20001):
            if stop.is_set():
                break
            writer.stdin.write(
                f"BEGIN; INSERT INTO pairs_a VALUES ({n}, 'w'); SELECT pg_sleep(0.0005);"
                f" INSERT INTO pairs_z VALUES ({n}, 'w'); COMMIT;\n".encode()
            )
            writer.stdin.flush()
        writer.stdin.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        time.sleep(0.3)
        dump = open_dump(conn)
        parts = {}
        for part in dump.parts():
            data = []
            while chunk := part.read(32768):
                data.append(chunk)
                if part.name == "tables/pairs_a.sql":
                    time.sleep(0.003)
            parts[part.name] = b"".join(data)
        dump.close()
    finally:
        stop.set()
        thread.join()
        writer.wait(timeout=60)
    manifest = dump.manifest()
    rows_a, rows_z = manifest["tables"]["pairs_a"]["rows"], manifest["tables"]["pairs_z"]["rows"]
    assert rows_a == rows_z > 20000
    assert int(pg.psql("SELECT count(*) FROM pairs_a;", db)) > rows_a  # the writer went on during the dump
    assert restore_database(conn.with_database(new_db("pairs_restored")), openers(parts), manifest).ok


def test_killed_dump_client_fails_the_dump(source):
    dump = open_dump(source)
    parts = dump.parts()
    next(parts).read(100)
    assert dump.pid
    os.kill(dump.pid, signal.SIGKILL)
    with pytest.raises(DatabaseError, match="dump"):
        for part in parts:
            part.read()
    with pytest.raises(DatabaseError):
        dump.close()


def test_dump_closed_early_is_not_complete(source):
    dump = open_dump(source)
    next(dump.parts()).read()
    with pytest.raises(DatabaseError, match="before"):
        dump.close()


def test_restore_refuses_non_empty_target_then_force_replaces(pg, source, dumped):
    parts, manifest = dumped
    target = source.with_database(new_db("busy"))
    assert is_empty(target)
    restore_database(target, openers(parts), manifest)
    assert not is_empty(target)
    pg.psql(
        "CREATE TABLE stray (x int); CREATE SCHEMA stray_schema; DELETE FROM data_index WHERE mtime < 4;",
        target.database,
        admin=True,
    )
    with pytest.raises(TargetNotEmptyError, match="not empty"):
        restore_database(target, openers(parts), manifest)
    assert restore_database(target, openers(parts), manifest, force=True).ok
    assert contents(pg, source.database) == contents(pg, target.database)
    assert pg.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'stray_schema';", target.database).strip() == "0"


def test_tampered_part_fails_verification(source, dumped):
    parts, manifest = dumped
    tampered = dict(parts)
    tampered["tables/data_index.sql"] = parts["tables/data_index.sql"].replace(b"\t1000\n", b"\t1001\n")
    assert tampered["tables/data_index.sql"] != parts["tables/data_index.sql"]
    with pytest.raises(DatabaseError, match="data_index.*content hash differs"):
        restore_database(source.with_database(new_db("tampered")), openers(tampered), manifest)


def test_export_loads_with_stock_psql(pg, source, dumped):
    parts, manifest = dumped
    out = io.BytesIO()
    export_sql(openers(parts), manifest, out)
    db = new_db("exported")
    pg.psql(f"CREATE DATABASE {db};")
    env = dict(os.environ, PGPASSWORD=pg.superpassword, PGHOST="127.0.0.1", PGPORT=str(pg.port))
    proc = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-U", pg.superuser, "-d", db, "-f", "-"],
        input=out.getvalue(),
        capture_output=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert contents(pg, source.database) == contents(pg, db)


def test_wrong_password(source):
    bad = ConnectionInfo(**{**source.__dict__, "password": "wrong"})
    msg = f"database authentication failed for user {bad.user} at 127.0.0.1:{bad.port}"
    for action in (
        lambda: open_dump(bad),
        lambda: check_connection(bad),
        lambda: restore_database(bad.with_database("x"), [], {"kind": "postgres", "tables": {}}),
    ):
        with pytest.raises(DatabaseError) as e:
            action()
        assert str(e.value) == msg


def test_unreachable_server(source):
    port = free_port()
    bad = ConnectionInfo(**{**source.__dict__, "port": port})
    with pytest.raises(DatabaseError, match=f"^database server unreachable at 127.0.0.1:{port}: ") as e:
        open_dump(bad)
    assert "\n" not in str(e.value)


def test_unknown_database(source):
    bad = source.with_database("no_such_db")
    with pytest.raises(DatabaseError, match="^unknown database 'no_such_db' at 127.0.0.1:"):
        open_dump(bad)
    with pytest.raises(DatabaseError, match="^unknown database 'no_such_db'"):
        restore_database(bad, [], {"kind": "postgres", "tables": {}}, create=False)
    assert is_empty(bad)


def test_missing_privileges(pg, source):
    limited = _conn(pg, source.database, user=LIMITED_USER, password=LIMITED_PASSWORD)
    with pytest.raises(DatabaseError, match=f"^missing database privileges for user {LIMITED_USER}"):
        open_dump(limited)
    with pytest.raises(DatabaseError, match=f"^missing database privileges for user {LIMITED_USER}"):
        restore_database(limited.with_database(new_db("denied")), [], {"kind": "postgres", "tables": {}})


def test_probe(source):
    assert check_connection(source).startswith("PostgreSQL 1")
    assert table_info(source, ["empty_table", "other.user_ref"])["other.user_ref"]["exists"]


def test_summary_counts_tables_rows_and_bytes(pg, source):
    """What `inspect` shows of a PostgreSQL database: exact rows of every table, in every schema."""
    from cells_backup.database.summary import database_summary

    tables = pg.psql("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
                     " WHERE schemaname NOT IN ('pg_catalog', 'information_schema');", source.database).splitlines()
    rows = sum(int(pg.psql(f"SELECT count(*) FROM {t};", source.database)) for t in tables)
    summary = database_summary(source)
    assert (summary["tables"], summary["rows"]) == (len(tables), rows)
    assert rows > 200_000 and summary["bytes"] > 1_000_000
