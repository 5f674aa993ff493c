"""One plain ``.sql`` file from stored dump parts, for `cells-backup dump --database`.

The file is what ``mariadb db < FILE`` (or ``mysql``) loads with no help from cells-backup: a
header that sets the session like mysqldump does (utf8mb4, UTC, no foreign-key/unique checks,
NO_AUTO_VALUE_ON_ZERO), ``DROP TABLE IF EXISTS`` before each table part, the post-schema, and a
footer restoring the session. Written as a stream, one part after the other.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from typing import BinaryIO

from cells_backup.database.dump import POST_PART
from cells_backup.database.errors import DatabaseError
from cells_backup.database.mysql_client import quote_ident

HEADER = b"""-- cells-backup export of database %(db)s (%(server)s)
-- Load with: mariadb DATABASE < FILE

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;

"""
FOOTER = b"""
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;
/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;
/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;

-- Export completed
"""


def export_sql(parts: Sequence[tuple[str, Callable[[], BinaryIO]]], manifest: dict, out: BinaryIO) -> None:
    """Write a single loadable .sql for a dump to `out` (SQLite and PostgreSQL: see their modules)."""
    if manifest.get("kind") == "sqlite":
        from cells_backup.database.sqlite_load import export_sqlite

        return export_sqlite(parts, manifest, out)
    if manifest.get("kind") == "postgres":
        from cells_backup.database.postgres_load import export_postgres

        return export_postgres(parts, manifest, out)
    if manifest.get("kind") != "mysql":
        raise DatabaseError(
            f"SQL export is only available for MySQL/MariaDB dumps, not {manifest.get('kind')}"
        )
    table_of_part = {info["part"]: name for name, info in manifest.get("tables", {}).items()}
    names = {n for n, _ in parts}
    missing = sorted(set(table_of_part) - names)
    if missing:
        raise DatabaseError(f"database dump incomplete: missing part(s) {', '.join(missing[:5])}")
    out.write(
        HEADER
        % {
            b"db": manifest.get("database", "").encode(),
            b"server": manifest.get("server_version", "").encode(),
        }
    )
    ordered = [p for p in parts if p[0].startswith("tables/")] + [p for p in parts if p[0] == POST_PART]
    for name, opener in ordered:
        table = table_of_part.get(name)
        if table is not None:
            out.write(b"DROP TABLE IF EXISTS " + quote_ident(table).encode() + b";\n")
        stream = opener()
        try:
            shutil.copyfileobj(stream, out, 1 << 20)
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
        out.write(b"\n")
    out.write(FOOTER)
