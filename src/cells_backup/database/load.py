"""Restore a dump into a database and prove it: every table's row count and hash must match.

Order: prepare the target (create it; refuse it non-empty unless forced, then empty it), load the
table parts in parallel (`jobs` sessions; foreign-key checks are off, so order does not matter),
load ``schema/post.sql`` last (triggers must not fire during the load, views need their tables),
then recompute count and hash of every table from the restored database and compare them with the
manifest, which was computed from the dumped stream itself (for MySQL/MariaDB by dumping the
restored database again, `mysql_verify`). Any difference fails the restore.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.dump import POST_PART
from cells_backup.database.errors import DatabaseError


@dataclass
class RestoreReport:
    """What a restore loaded and how each table compared with the manifest."""

    database: str
    loader: str
    tables: list[dict[str, Any]] = field(default_factory=list)
    parts_loaded: int = 0
    seconds: float = 0.0
    loads: dict[str, str] = field(default_factory=dict)  # table part -> how its rows were loaded

    @property
    def ok(self) -> bool:
        return all(t["rows_found"] == t["rows_expected"] and t["hash_ok"] for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "loader": self.loader,
            "ok": self.ok,
            "parts_loaded": self.parts_loaded,
            "seconds": round(self.seconds, 3),
            "loads": self.loads,
            "tables": self.tables,
        }


def _target(conn: ConnectionInfo, tool: str, skip_binlog: bool, jobs: int):
    if conn.kind == "mysql":
        from cells_backup.database.mysql_load import MySQLTarget

        return MySQLTarget(conn, tool=tool, skip_binlog=skip_binlog, jobs=jobs)
    if conn.kind == "sqlite":
        from cells_backup.database.sqlite_load import SQLiteTarget

        return SQLiteTarget(conn)
    if conn.kind == "postgres":
        from cells_backup.database.postgres_load import PostgresTarget

        return PostgresTarget(conn, tool=tool)
    raise DatabaseError(f"restoring into {conn.kind} databases is not supported yet")


def restore_database(
    conn: ConnectionInfo,
    parts: Sequence[tuple[str, Callable[[], BinaryIO]]],
    manifest: dict,
    *,
    force: bool = False,
    jobs: int = 2,
    create: bool = True,
    tool: str = "auto",
    skip_binlog: bool = False,
) -> RestoreReport:
    """Load `parts` (name, opener) of a dump described by `manifest` into `conn`'s database.

    Raises TargetNotEmptyError if the database has tables and not `force`; DatabaseError if a
    part fails to load or any table differs from the manifest after loading.
    """
    if manifest.get("kind") != conn.kind:
        raise DatabaseError(f"cannot restore a {manifest.get('kind')} dump into a {conn.kind} database")
    started = time.monotonic()
    target = _target(conn, tool, skip_binlog, jobs)
    names = [n for n, _ in parts]
    missing = [info["part"] for info in manifest.get("tables", {}).values() if info["part"] not in names]
    if missing:
        raise DatabaseError(f"database dump incomplete: missing part(s) {', '.join(missing[:5])}")
    target.prepare(manifest, force=force, create=create)
    report = RestoreReport(database=conn.database, loader=target.loader)

    def load(item: tuple[str, Callable[[], BinaryIO]]) -> None:
        name, opener = item
        stream = opener()
        split = getattr(opener, "split", None)
        try:
            if split is not None and getattr(target, "loads_in_slices", False):
                target.load_part(name, stream, split=split)
            else:
                target.load_part(name, stream)
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()

    pre = [p for p in parts if p[0].startswith("schema/") and p[0] != POST_PART]
    tables = [p for p in parts if p[0].startswith("tables/")]
    post = [p for p in parts if p[0] == POST_PART]
    for item in pre:
        load(item)
    _run_parallel(load, tables, jobs)
    for item in post:
        load(item)
    report.parts_loaded = len(pre) + len(tables) + len(post)
    report.loads = dict(getattr(target, "loads", {}))

    expected = manifest.get("tables", {})

    def verify(table: str) -> dict[str, Any]:
        info = expected[table]
        found = target.table_digest(table)
        rows, digest = found if found else (0, None)
        return {
            "table": table,
            "rows_expected": info["rows"],
            "rows_found": rows,
            "hash_ok": digest == info["hash"],
            "exists": found is not None,
        }

    if conn.kind == "mysql":
        from cells_backup.database.mysql_verify import verify_restored

        report.tables = verify_restored(target, manifest, dict(parts), lambda fn, items: _run_parallel(fn, items, jobs))
    else:
        report.tables = _run_parallel(verify, sorted(expected), jobs)
    report.seconds = time.monotonic() - started
    bad = [t for t in report.tables if not (t["hash_ok"] and t["rows_found"] == t["rows_expected"])]
    if bad:
        first = bad[0]
        what = (
            "missing"
            if not first["exists"]
            else f"{first['rows_found']} rows instead of {first['rows_expected']}"
            if first["rows_found"] != first["rows_expected"]
            else "content hash differs"
        )
        err = DatabaseError(
            f"restored database {conn.database!r} does not match the backup: table "
            f"{first['table']!r} {what} ({len(bad)} table(s) differ)"
        )
        err.report = report  # type: ignore[attr-defined]
        raise err
    return report


def _run_parallel(fn, items: Sequence, jobs: int) -> list:
    """fn over items with `jobs` threads; the first error is raised after all have finished."""
    if jobs <= 1 or len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(fn, i) for i in items]
        results, error = [], None
        for f in futures:
            try:
                results.append(f.result())
            except BaseException as e:  # noqa: BLE001 - re-raised below, after the pool drains
                error = error or e
        if error:
            raise error
        return results
