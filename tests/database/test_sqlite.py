"""SQLite (Cells v5) dump -> store (in memory) -> restore, on real files with awkward data.

Also: dumps of an unchanged file are byte-identical, a concurrent writer's transactions are all or
nothing in the dump (WAL snapshot), a non-empty target is refused unless forced, the export loads
with the stock ``sqlite3`` shell, and failures are one clear line.
"""

from __future__ import annotations

import functools
import io
import shutil
import sqlite3
import subprocess
import threading
import time

import pytest
from dbhelpers import dump_to_memory, openers

from cells_backup.database.dsn import ConnectionInfo, parse_pydio_dsn
from cells_backup.database.dump import POST_PART, table_part_name
from cells_backup.database.errors import DatabaseError
from cells_backup.database.export import export_sql
from cells_backup.database.load import restore_database
from cells_backup.database.probe import check_connection, is_empty, table_info
from cells_backup.database.registry import open_dump
from cells_backup.errors import TargetNotEmptyError

ODD_TABLE = 'odd "name". with spaces ✓'
_text = functools.partial(str, encoding="utf-8", errors="surrogateescape")


def _conn(path) -> ConnectionInfo:
    return parse_pydio_dsn("sql", f"sqlite://{path}?prefix={{{{.Meta.prefix}}}}")


def _open(path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.text_factory = _text
    return db


def make_awkward(path, *, rows: int = 3000, wal: bool = True) -> None:
    db = _open(path)
    if wal:
        db.execute("PRAGMA journal_mode=WAL")
    db.executescript(
        f"""
        CREATE TABLE idm_user (uuid TEXT PRIMARY KEY, login TEXT NOT NULL, attrs BLOB, score REAL, n INTEGER);
        CREATE TABLE data_index (id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT, mtime INTEGER);
        CREATE TABLE empty_table (a INTEGER, b TEXT);
        CREATE TABLE kv (k TEXT, v ANY, PRIMARY KEY (k)) WITHOUT ROWID;
        CREATE TABLE "{ODD_TABLE.replace('"', '""')}" (x);
        CREATE TABLE audit (what TEXT);
        CREATE INDEX idx_login ON idm_user (login);
        CREATE UNIQUE INDEX idx_node ON data_index (node);
        CREATE VIEW v_logins AS SELECT login FROM idm_user WHERE n IS NOT NULL;
        CREATE TRIGGER trg_audit AFTER INSERT ON data_index BEGIN INSERT INTO audit VALUES ('new;' || NEW.node); END;
        PRAGMA user_version = 42;
        """
    )
    db.execute("BEGIN")
    awkward = [
        ("u-emoji", "zoé 😀 日本語", bytes(range(256)), 0.1, 2**63 - 1),
        ("u-quotes", 'it\'s "quoted" \\ back\\slash; -- not a comment', b"", -0.0, -(2**63)),
        ("u-null", "nulls", None, None, None),
        ("u-nul-char", "a\x00b", b"\x00", float("inf"), 0),
        ("u-newlines", "line1\nline2\r\nline3;\n", b"\n;", 1e300, 7),
        ("u-float", "5e-324", None, 5e-324, 3),
    ]
    db.executemany("INSERT INTO idm_user VALUES (?,?,?,?,?)", awkward)
    db.execute("INSERT INTO idm_user VALUES ('u-bad-utf8', CAST(X'FFFE20726177' AS TEXT), X'27', -1e999, 1)")
    db.executemany(
        "INSERT INTO idm_user VALUES (?,?,?,?,?)",
        [(f"user-{i}", f"login {i} ’", bytes([i % 256]) * (i % 7), i / 3, i) for i in range(rows)],
    )
    db.executemany("INSERT INTO data_index (node, mtime) VALUES (?, ?)", [(f"/n/{i}", i) for i in range(rows)])
    db.execute("DELETE FROM data_index WHERE id > ?", (rows - 5,))  # sqlite_sequence stays ahead of max(id)
    db.executemany("INSERT INTO kv VALUES (?, ?)", [("int", 1), ("text", "1"), ("real", 1.5), ("blob", b"1")])
    db.execute(f'INSERT INTO "{ODD_TABLE.replace(chr(34), chr(34) * 2)}" VALUES (?)', ("x",))
    db.execute("COMMIT")
    db.close()


def table_contents(path) -> dict[str, list]:
    """Every user table's rows with each value's type, sorted: what must survive the round trip."""
    db = _open(path)
    names = [
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_stat%'")
    ]
    out = {}
    for n in names:
        q = '"' + n.replace('"', '""') + '"'
        rows = [tuple((type(v).__name__, repr(v)) for v in r) for r in db.execute(f"SELECT * FROM {q}")]
        out[n] = sorted(rows)
    db.close()
    return out


def schema_of(path) -> list:
    db = _open(path)
    rows = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    return [rows, version]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlite") / "cells.db"
    make_awkward(path)
    return path


@pytest.fixture(scope="module")
def dumped(source):
    return dump_to_memory(_conn(source))


def test_dump_layout_and_manifest(source, dumped):
    parts, manifest = dumped
    assert list(parts)[-1] == POST_PART and manifest["parts"] == list(parts)
    user_tables = ["audit", "data_index", "empty_table", "idm_user", "kv", ODD_TABLE]
    assert sorted(manifest["tables"]) == sorted(user_tables + ["sqlite_sequence"])
    assert manifest["tables"]["sqlite_sequence"]["part"] == POST_PART
    assert manifest["tables"]["idm_user"]["rows"] == 3007
    assert manifest["tables"]["empty_table"]["rows"] == 0
    assert manifest["views"] == ["v_logins"] and manifest["triggers"] == ["trg_audit"]
    assert manifest["kind"] == "sqlite" and manifest["journal_mode"] == "wal" and manifest["consistent"]
    assert table_part_name(ODD_TABLE) == "tables/odd%20%22name%22%2E%20with%20spaces%20%E2%9C%93.sql"
    assert table_part_name(ODD_TABLE) in parts
    assert b"CREATE TABLE idm_user" in parts["tables/idm_user.sql"]
    assert b"CREATE TRIGGER trg_audit" in parts[POST_PART] and b"PRAGMA user_version=42;" in parts[POST_PART]
    counts = table_info(_conn(source), user_tables)
    assert all(counts[t]["rows"] == manifest["tables"][t]["rows"] for t in user_tables)


def test_roundtrip_restores_identical_data(source, dumped, tmp_path):
    parts, manifest = dumped
    target = tmp_path / "new" / "restored.db"
    report = restore_database(_conn(target), openers(parts), manifest, jobs=3)
    assert report.ok and report.loader == "python-sqlite3"
    assert {t["table"] for t in report.tables} == set(manifest["tables"])
    assert table_contents(source) == table_contents(target)
    assert schema_of(source) == schema_of(target)
    db = _open(target)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM v_logins").fetchone()[0] == 3006
    before = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    db.execute("INSERT INTO data_index (node, mtime) VALUES ('new', 1)")  # trigger works, sequence kept
    assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == before + 1
    assert db.execute("SELECT max(id) FROM data_index").fetchone()[0] == 3001
    db.close()


def test_dump_of_unchanged_file_is_byte_identical_and_changes_stay_local(source, dumped, tmp_path):
    copy = tmp_path / "copy.db"
    shutil.copy(source, copy)
    for suffix in ("-wal", "-shm"):
        src = source.with_name(source.name + suffix)
        if src.exists():
            shutil.copy(src, tmp_path / ("copy.db" + suffix))
    first, m1 = dump_to_memory(_conn(copy))
    second, m2 = dump_to_memory(_conn(copy))
    assert first == second and m1["tables"] == m2["tables"] == dumped[1]["tables"]
    db = _open(copy)
    db.execute("INSERT INTO kv VALUES ('new', 2)")
    db.close()
    third, _ = dump_to_memory(_conn(copy))
    assert [n for n in first if first[n] != third[n]] == ["tables/kv.sql"]


def test_concurrent_transactions_are_all_or_nothing(tmp_path):
    path = tmp_path / "pairs.db"
    db = _open(path)
    db.execute("PRAGMA journal_mode=WAL")
    pad = "x" * 200
    db.execute("BEGIN")
    for t in ("pairs_a", "pairs_z"):
        db.execute(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, pad TEXT)")
        db.executemany(f"INSERT INTO {t} VALUES (?, ?)", [(i, pad) for i in range(1, 20001)])
    db.execute("COMMIT")
    db.close()
    stop = threading.Event()
    written = [20000]

    def writer():
        w = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        while not stop.is_set():
            n = written[0] + 1
            w.execute("BEGIN IMMEDIATE")
            w.execute("INSERT INTO pairs_a VALUES (?, ?)", (n, pad))
            time.sleep(0.0005)
            w.execute("INSERT INTO pairs_z VALUES (?, ?)", (n, pad))
            w.execute("COMMIT")
            written[0] = n
        w.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.1)
        dump = open_dump(_conn(path))
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
    manifest = dump.manifest()
    rows_a, rows_z = manifest["tables"]["pairs_a"]["rows"], manifest["tables"]["pairs_z"]["rows"]
    assert rows_a == rows_z
    assert written[0] > rows_a  # the writer did commit during the dump
    target = tmp_path / "pairs-restored.db"
    assert restore_database(_conn(target), openers(parts), manifest).ok


def test_rollback_journal_database_dumps_too(tmp_path):
    path = tmp_path / "journal.db"
    make_awkward(path, rows=50, wal=False)
    parts, manifest = dump_to_memory(_conn(path))
    assert manifest["journal_mode"] == "delete"
    target = tmp_path / "journal-restored.db"
    assert restore_database(_conn(target), openers(parts), manifest).ok
    assert table_contents(path) == table_contents(target)


def test_restore_refuses_non_empty_target_then_force_replaces(dumped, source, tmp_path):
    parts, manifest = dumped
    target = tmp_path / "busy.db"
    assert is_empty(_conn(target))
    restore_database(_conn(target), openers(parts), manifest)
    assert not is_empty(_conn(target))
    db = _open(target)
    db.execute("CREATE TABLE stray (x)")
    db.execute("DELETE FROM idm_user WHERE rowid IN (SELECT rowid FROM idm_user LIMIT 3)")
    db.close()
    with pytest.raises(TargetNotEmptyError, match="not empty"):
        restore_database(_conn(target), openers(parts), manifest)
    report = restore_database(_conn(target), openers(parts), manifest, force=True)
    assert report.ok
    assert "stray" not in table_contents(target)
    assert table_contents(source) == table_contents(target)


def test_tampered_part_fails_verification(dumped, tmp_path):
    parts, manifest = dumped
    tampered = dict(parts)
    tampered["tables/idm_user.sql"] = parts["tables/idm_user.sql"].replace(b"login 17 ", b"login 71 ")
    with pytest.raises(DatabaseError, match="idm_user.*content hash differs"):
        restore_database(_conn(tmp_path / "t.db"), openers(tampered), manifest)


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="sqlite3 shell not installed")
def test_export_loads_with_the_stock_shell(source, dumped, tmp_path):
    parts, manifest = dumped
    out = io.BytesIO()
    export_sql(openers(parts), manifest, out)
    target = tmp_path / "exported.db"
    for _ in range(2):  # loads into a new file, and again over itself
        proc = subprocess.run(["sqlite3", str(target)], input=out.getvalue(), capture_output=True)
        assert proc.returncode == 0 and not proc.stderr, proc.stderr.decode()
        assert table_contents(source) == table_contents(target)
    assert schema_of(source) == schema_of(target)


def test_errors_are_one_clear_line(tmp_path):
    missing = tmp_path / "nope.db"
    with pytest.raises(DatabaseError, match=f"^SQLite database file not found: {missing}$"):
        open_dump(_conn(missing))
    with pytest.raises(DatabaseError, match="^SQLite database file not found"):
        check_connection(_conn(missing))
    with pytest.raises(DatabaseError, match="^SQLite database file not found"):
        restore_database(_conn(missing), [], {"kind": "sqlite", "tables": {}}, create=False)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseError, match="^not a valid SQLite database"):
        open_dump(_conn(junk))


def test_dump_closed_early_is_not_complete(source):
    dump = open_dump(_conn(source))
    next(dump.parts()).read()
    with pytest.raises(DatabaseError, match="before"):
        dump.close()


def test_probe(source):
    assert check_connection(_conn(source)).startswith("SQLite 3.")
    assert table_info(_conn(source), ["kv", "nope"]) == {
        "kv": {"exists": True, "rows": 4},
        "nope": {"exists": False, "rows": 0},
    }
