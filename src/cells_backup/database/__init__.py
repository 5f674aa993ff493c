"""Logical dump and load of the SQL database named in pydio.json.

MySQL/MariaDB (``mysql_*``), PostgreSQL (``postgres_*``: pg_dump/psql) and SQLite (``sqlite_*``:
stdlib) behind the same interface and the same guarantees: one consistent snapshot, one part per
table, row counts and content hashes in the manifest, restores verified against them.

Public API (see each module):

* `dsn.parse_pydio_dsn`, `dsn.parse_database_url` -> `ConnectionInfo`
* `registry.open_dump(conn, tool)` -> `dump.DatabaseDump` (`parts()`, `close()`, `manifest()`)
* `load.restore_database(conn, parts, manifest, force=, jobs=, create=)` -> `RestoreReport`
* `export.export_sql(parts, manifest, out)`
* `probe.check_connection`, `probe.is_empty`, `probe.table_info`
* `errors.DatabaseError`
"""

from typing import TYPE_CHECKING

from cells_backup.lazy import lazy_exports

if TYPE_CHECKING:
    from cells_backup.database.dsn import ConnectionInfo, parse_database_url, parse_pydio_dsn
    from cells_backup.database.dump import DatabaseDump, DumpPart
    from cells_backup.database.errors import DatabaseError
    from cells_backup.database.export import export_sql
    from cells_backup.database.load import RestoreReport, restore_database
    from cells_backup.database.probe import check_connection, is_empty, table_info
    from cells_backup.database.registry import open_dump

__getattr__ = lazy_exports(__name__, {
    "dsn": ["ConnectionInfo", "parse_database_url", "parse_pydio_dsn"],
    "dump": ["DatabaseDump", "DumpPart"],
    "errors": ["DatabaseError"],
    "export": ["export_sql"],
    "load": ["RestoreReport", "restore_database"],
    "probe": ["check_connection", "is_empty", "table_info"],
    "registry": ["open_dump"],
})

__all__ = [
    "ConnectionInfo",
    "DatabaseDump",
    "DatabaseError",
    "DumpPart",
    "RestoreReport",
    "check_connection",
    "export_sql",
    "is_empty",
    "open_dump",
    "parse_database_url",
    "parse_pydio_dsn",
    "restore_database",
    "table_info",
]
