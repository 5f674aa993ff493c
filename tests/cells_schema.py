"""Build a Cells v4 MySQL database from the project's schema fixtures, and fill it with awkward data.

The schema lives in ``tests/fixtures/cells``: ``mysql-v4-schema.sql`` holds every table but the index
tables, ``mysql-v4-index-tables.sql`` the index tables of one prefix (``{prefix}``). Both are what the
v1-v4 migration path leaves in a MariaDB database (docs/CELLS.md section 4).
"""

from __future__ import annotations

import random
from pathlib import Path

from cells_backup.database.sqlsplit import split_statements

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "cells"
DATASOURCES = ("pydiods1", "personal")
BIG_TABLE = "data_changes_archive"
INDEX_TABLE = "data_index_pydiods1_idx_tree"


def _statements(name: str) -> list[str]:
    with open(FIXTURES / name, "rb") as f:
        return [s.decode() for s in split_statements(f.read)]


def create_index_tables(cur, prefix: str) -> None:
    """The index tables with this prefix, e.g. ``data_index_<ds>_idx`` for a datasource."""
    for stmt in _statements("mysql-v4-index-tables.sql"):
        cur.execute(stmt.replace("{prefix}", prefix))


def create_cells_schema(cur) -> None:
    """Every v4 table, with the users' and two datasources' index tables."""
    create_index_tables(cur, "idm_user_idx")
    for ds in DATASOURCES:
        create_index_tables(cur, f"data_index_{ds}_idx")
    for stmt in _statements("mysql-v4-schema.sql"):
        cur.execute(stmt)


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
