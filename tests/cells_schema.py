"""Build a Cells v1–v4 MySQL database from the real migration files, and fill it with awkward data.

The migration files live in ``<repo>/../shared/cells/samples`` (read-only, shared by the team).
They are applied per service in Cells' order with ``%%PREFIX%%`` substituted; the few steps Cells
performs in Go between SQL files (tree columns moved from ``_nodes`` in 0.2/0.3, ladon tables) are
done here by hand. Some upstream statements fail on a fresh server (they drop keys that a fresh
install never had); those error codes are tolerated, exactly as a real upgrade path would have
needed them to be.
"""

from __future__ import annotations

import io
import os
import random

import pymysql

from cells_backup.database.sqlsplit import split_statements

SAMPLES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "cells", "samples"))
DATASOURCES = ("pydiods1", "personal")
BIG_TABLE = "data_changes_archive"
INDEX_TABLE = "data_index_pydiods1_idx_tree"
TOLERATED = {1091, 1553, 1826, 1061, 1022, 1062, 1025, 1005}


def sample(name: str) -> str:
    with open(os.path.join(SAMPLES, "v1-v4_sql__" + name), encoding="utf-8") as f:
        return f.read()


def up_statements(text: str, prefix: str = "") -> list[str]:
    """The statements of the `-- +migrate Up` section, with the prefix substituted."""
    up = text.split("-- +migrate Up", 1)[-1].split("-- +migrate Down", 1)[0].replace("%%PREFIX%%", prefix)
    data = io.BytesIO(up.encode())
    return [s.decode() for s in split_statements(data.read)]


def apply(cur, name: str, prefix: str = "") -> None:
    for stmt in up_statements(sample(name), prefix):
        try:
            cur.execute(stmt)
        except pymysql.MySQLError as e:
            if e.args[0] not in TOLERATED:
                raise


def create_index_tables(cur, prefix: str) -> None:
    apply(cur, "common__sql__index__migrations__mysql__0.1.sql", prefix)
    apply(cur, "common__sql__index__migrations__mysql__0.2.sql", prefix)
    # Cells moved the node columns into the tree table in Go code between 0.2 and 0.3
    cur.execute(
        f"ALTER TABLE {prefix}_tree ADD COLUMN leaf TINYINT(1), ADD COLUMN mtime INT NOT NULL DEFAULT 0,"
        " ADD COLUMN etag VARCHAR(255), ADD COLUMN size BIGINT, ADD COLUMN mode VARCHAR(10)"
    )
    for v in ("0.3", "0.4", "0.5"):
        apply(cur, f"common__sql__index__migrations__mysql__{v}.sql", prefix)
    cur.execute(f"ALTER TABLE {prefix}_tree ADD COLUMN hash2 VARCHAR(40) NOT NULL DEFAULT ''")


def create_cells_schema(cur) -> None:
    """Every v1–v4 table from the sample migrations, two datasources' index tables."""
    cur.execute("CREATE TABLE gorp_migrations (id VARCHAR(255) NOT NULL PRIMARY KEY, applied_at DATETIME)")
    create_index_tables(cur, "idm_user_idx")
    for ds in DATASOURCES:
        create_index_tables(cur, f"data_index_{ds}_idx")
    for v in ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6"):
        apply(cur, f"idm__user__migrations__mysql__{v}.sql")
    for prefix in (
        "idm_user_policies",
        "idm_role_policies",
        "idm_workspace_policies",
        "idm_usr_meta_policies",
    ):
        apply(cur, "common__sql__resources__migrations__mysql__0.1.sql", prefix)
    for v in ("0.1", "0.2", "0.3", "0.4"):
        apply(cur, f"idm__role__migrations__mysql__{v}.sql")
    for v in ("0.1", "0.2", "0.3"):
        apply(cur, f"idm__acl__migrations__mysql__{v}.sql")
    apply(cur, "idm__workspace__migrations__mysql__0.1.sql")
    for v in ("0.1", "0.2", "0.3", "0.4"):
        apply(cur, f"idm__key__migrations__mysql__{v}.sql")
    for v in ("0.1", "0.2", "0.3"):
        apply(cur, f"idm__meta__migrations__mysql__{v}.sql")
    for v in ("0.1", "0.2"):
        apply(cur, f"idm__meta__migrations__namespace__mysql__{v}.sql")
    apply(cur, "idm__oauth__migrations__mysql__0.1.sql")
    apply(cur, "idm__oauth__personal_tokens_create__mysql.sql")
    apply(cur, "idm__oauth__migrations__mysql__0.3.sql")
    # ladon tables are created by Go code (common/sql/ladon-manager); a faithful subset
    cur.execute(
        "CREATE TABLE ladon_policy (id VARCHAR(255) NOT NULL PRIMARY KEY, description TEXT NOT NULL,"
        " effect VARCHAR(255) NOT NULL, conditions TEXT NOT NULL, meta TEXT NULL)"
    )
    cur.execute(
        "CREATE TABLE ladon_subject (id VARCHAR(64) NOT NULL PRIMARY KEY, has_regex BOOL NOT NULL,"
        " compiled VARCHAR(511) NOT NULL UNIQUE, template VARCHAR(511) NOT NULL UNIQUE)"
    )
    for v in ("0.1", "0.2"):
        apply(cur, f"idm__policy__migrations__mysql__{v}.sql")
    for v in ("0.1", "0.2", "0.3", "0.4"):
        apply(cur, f"data__meta__migrations__mysql__{v}.sql")
    for v in ("0.1", "0.2", "0.3", "0.4"):
        apply(cur, f"data__key__migrations__mysql__data-key.{v}.sql")
    apply(cur, "common__service__frontend__sessions__sqlsessions__migrations__mysql__0.1.sql")
    for v in ("0.1", "0.2"):
        apply(cur, f"data__changes__migrations__mysql__{v}.sql")
    for v in ("0.1", "0.2"):
        apply(cur, f"common__config__sql__migrations__mysql__{v}.sql", "pydio")


AWKWARD = [
    "plain",
    "",
    "accents éàüñç ÉÀ",
    "emoji 😀🎉👩‍👩‍👧",
    "quote ' double \" back \\ slash \\\\",
    "semi;colon -- not a comment /* nor this */ # nor",
    "new\nline\r\ncr\ttab",
    "nul\x00byte ctrl-z \x1a",
    "%_like_wildcards\\%\\_",
    "日本語テキスト",
    "trailing space   ",
    "NULL",
    "0x41",
    "'); DROP TABLE x; --",
]


def fill_awkward(cur, big_rows: int = 500_000, index_rows: int = 20_000) -> None:
    """Rows that break naive dump/load code: every byte value, NULLs, utf8mb4, 1 MB blobs, 500k rows."""
    rnd = random.Random(42)
    all_bytes = bytes(range(256))
    for ds in ("idm_user_idx", f"data_index_{DATASOURCES[1]}_idx"):
        for i, name in enumerate(AWKWARD):
            cur.execute(
                f"INSERT INTO {ds}_tree (uuid, level, name, leaf, mtime, etag, size, mode, mpath1, mpath2,"
                " mpath3, mpath4, hash, hash2) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,'','','',SHA1(%s),%s)",
                (
                    f"u-{i}",
                    2,
                    name,
                    i % 2,
                    1700000000 + i,
                    f"etag-{i}",
                    i * 1000,
                    "0644",
                    f"1.{i}",
                    f"{ds}{i}",
                    "h2",
                ),
            )
    cur.executemany(
        "INSERT INTO idm_user_attributes (uuid, name, value) VALUES (%s,%s,%s)",
        [
            (f"u-{i}", f"attr{j}", v if j else None)
            for i in range(len(AWKWARD))
            for j, v in enumerate(AWKWARD[:4])
        ],
    )
    cur.executemany(
        "INSERT INTO idm_user_roles (uuid, role, weight) VALUES (%s,%s,%s)",
        [(f"u-{i}", f"role-{i}-é", i) for i in range(len(AWKWARD))],
    )
    cur.execute("INSERT INTO enc_nodes (node_id, legacy) VALUES ('n1', 0), ('n2', NULL)")
    cur.executemany(
        "INSERT INTO enc_legacy_nodes (node_id, nonce, block_size) VALUES (%s,%s,%s)",
        [
            ("all-bytes", all_bytes * 4, 256),
            ("empty", b"", 0),
            ("null", None, None),
            ("one-megabyte", rnd.randbytes(1 << 20), 1 << 20),
            ("quotes", b"'\"\\\x00\n\r\x1a;", 9),
        ],
    )
    cur.executemany(
        "INSERT INTO enc_node_keys (node_id, owner_id, user_id, key_data) VALUES (%s,%s,%s,%s)",
        [("n1", "o", "u", bytes([b]) * 3) for b in range(256)],
    )
    cur.executemany(
        "INSERT INTO idm_frontend_sessions (session_data, session_url, created_on, expires_on)"
        " VALUES (%s,%s,%s,%s)",
        [(rnd.randbytes(64), f"https://h/é/{i}", "2024-03-31 02:30:00", None) for i in range(50)],
    )
    cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')")
    cur.execute("INSERT INTO idm_acl_nodes (id, uuid) VALUES (0, 'zero-id-kept')")
    cur.executemany(
        "INSERT INTO data_meta (node_id, namespace, author, timestamp, data, format) VALUES"
        " (%s,%s,%s,%s,%s,%s)",
        [(f"n{i}", "usermeta-tags", None, i, v.encode(), "json") for i, v in enumerate(AWKWARD)],
    )
    cur.executemany(
        "INSERT INTO idm_workspaces (uuid, label, description, attributes, slug, scope, last_updated)"
        " VALUES (%s,%s,%s,%s,%s,%s,%s)",
        [
            (f"ws{i}", v or "-", None if i % 3 else v, '{"a":"é"}', f"slug-{i}", 1, i)
            for i, v in enumerate(AWKWARD)
        ],
    )
    cur.execute("INSERT INTO pydio_config (id, data) VALUES (1, %s)", ("{" + "x" * 100_000 + "}",))
    cur.execute("INSERT INTO gorp_migrations VALUES ('index_0.1', '2020-01-01 00:00:00')")
    if index_rows:
        cur.execute(
            f"INSERT INTO {INDEX_TABLE} (uuid, level, name, leaf, mtime, etag, size, mode, mpath1, mpath2,"
            " mpath3, mpath4, hash, hash2) SELECT CONCAT('uuid-', seq), seq % 7,"
            " CONCAT('fichier-é-', seq, '😀.txt'), seq % 2, 1700000000 + seq, MD5(seq), seq * 3, '0644',"
            " CONCAT('1.', seq), '', '', '', SHA1(seq), ''"
            f" FROM seq_1_to_{index_rows}"
        )
    if big_rows:  # the archive of the changes feed: the table that grows without bound
        cur.execute(
            f"INSERT INTO {BIG_TABLE} (seq, node_id, type, source, target) SELECT seq, CONCAT('node-', seq),"
            " ELT(1 + seq % 4, 'create', 'delete', 'path', 'content'),"
            " IF(seq % 5 = 0, NULL, CONCAT('/ws/dossier é/', seq, '/l\\'été \\\\ 😀')),"
            " CONCAT('/target/', seq) FROM seq_1_to_" + str(big_rows)
        )
    # post-schema objects (not Cells', but a dump must carry them)
    cur.execute("CREATE VIEW v_user_names AS SELECT uuid, name FROM idm_user_idx_tree")
    cur.execute("CREATE VIEW v_user_names_upper AS SELECT uuid, UPPER(name) AS n FROM v_user_names")
    cur.execute(
        "CREATE TRIGGER trg_changes_archive AFTER INSERT ON data_changes FOR EACH ROW"
        " INSERT INTO data_changes_archive (seq, node_id, type)"
        " VALUES (NEW.seq + 100000000, NEW.node_id, NEW.type)"
    )
    cur.execute(
        "CREATE PROCEDURE count_users(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM idm_user_idx_tree; END"
    )
    cur.execute(
        "INSERT INTO data_changes (node_id, type, source, target) VALUES ('n1','create','',%s)", ("a;b",)
    )
