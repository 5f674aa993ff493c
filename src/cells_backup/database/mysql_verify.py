"""Prove a restored MySQL/MariaDB database equal to its backup, table by table.

Snapshots hashed with ``dump-blake3-v1`` (`dumphash`) are checked by dumping the restored database
again with the same client and options: equal rows give equal bytes, so every table whose count
and hash come out as recorded is proven at the cost of one dump. A table that differs there (or
every table, when that client is not installed here) is compared row by row: the rows of the
stored part and of the restored table are hashed alike (`rowhash`), so a different server version
that prints a value differently is not mistaken for a difference, and a real difference is found.
Older snapshots recorded the row-set hash itself and are compared row by row.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, BinaryIO

from cells_backup.database import dumphash
from cells_backup.database.errors import DatabaseError
from cells_backup.database.mysql_client import find_tool
from cells_backup.database.mysql_dump import NativeMySQLDump, ToolMySQLDump
from cells_backup.database.mysql_schema import read_facts
from cells_backup.database.rowhash import TableHasher

Opener = Callable[[], BinaryIO]


def verify_restored(target, manifest: dict, openers: dict[str, Opener], run_parallel) -> list[dict[str, Any]]:
    """One result per table of the manifest: rows expected and found, hash equal, how it was checked."""
    expected = manifest.get("tables", {})
    fast = manifest.get("hash_algorithm") == dumphash.ALGORITHM
    redumped = dict(getattr(target, "redumped", {})) if fast else {}
    rest = [t for t in expected if t not in redumped]
    if fast and rest:
        redumped.update(redump(target.conn, manifest, None if len(rest) == len(expected) else rest))
    results: list[dict[str, Any]] = []
    slow: list[str] = []
    for table in sorted(expected):
        info = expected[table]
        if redumped.get(table) == (info["rows"], info["hash"]):
            results.append(_result(table, info["rows"], info["rows"], True, True, "dump"))
        else:
            slow.append(table)

    def by_rows(table: str) -> dict[str, Any]:
        info = expected[table]
        found = target.table_digest(table)
        if not fast:  # the manifest holds the row-set hash itself
            rows, digest = found if found else (0, None)
            return _result(table, info["rows"], rows, digest == info["hash"], found is not None, "rows")
        stored, stored_hash = _stored_rowset(openers[info["part"]])
        if found is None:
            return _result(table, info["rows"], 0, False, False, "rows")
        # The stored part must be the one the manifest describes, and hold the rows restored.
        same = found == stored and stored[0] == info["rows"] and stored_hash == info["hash"]
        return _result(table, info["rows"], found[0], same, True, "rows")

    results += run_parallel(by_rows, slow)
    return sorted(results, key=lambda r: r["table"])


def _result(table: str, expected: int, found: int, hash_ok: bool, exists: bool, method: str) -> dict[str, Any]:
    return {
        "table": table,
        "rows_expected": expected,
        "rows_found": found,
        "hash_ok": hash_ok,
        "exists": exists,
        "verified_by": method,
    }


def can_redump(manifest: dict) -> bool:
    """Whether restored tables can be dumped here as this backup was (same algorithm and client)."""
    tool = manifest.get("tool") or ""
    if manifest.get("hash_algorithm") != dumphash.ALGORITHM or not tool:
        return False
    return tool == "native" or find_tool(os.path.basename(tool)) is not None


def redump(conn, manifest: dict, tables: list[str] | None = None) -> dict[str, tuple[int, str]]:
    """(rows, hash) of restored tables (default: all), dumped as the backup was; {} when not possible."""
    if not can_redump(manifest):
        return {}
    tool = manifest["tool"]
    try:
        facts = read_facts(conn)
        if tool == "native":
            dump = NativeMySQLDump(conn, facts)
        else:
            dump = ToolMySQLDump(conn, facts, find_tool(os.path.basename(tool)), tables)
        with dump:
            for part in dump.parts():
                part.drain()
        return {name: (info["rows"], info["hash"]) for name, info in dump.manifest()["tables"].items()}
    except DatabaseError:
        return {}


def _stored_rowset(opener: Opener) -> tuple[tuple[int, str], str]:
    """((rows, row-set hash), dump hash) of a stored table part."""
    stream = opener()
    try:
        hasher = TableHasher()
        digest = dumphash.DataDigest()
        while lines := stream.readlines(1 << 20):
            digest.update(b"".join(lines))
            for line in lines:
                hasher.feed_line(line)
        return (hasher.rows, hasher.hexdigest()), digest.hexdigest()
    finally:
        stream.close()
