"""`drill`: restore the latest snapshot into scratch places, prove it whole, time it, clean up.

The time it prints is your real recovery time; a weekly drill turns "we have backups" into
"we have restores".
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace

from ..database.dsn import ConnectionInfo, parse_database_url, parse_pydio_dsn
from ..errors import CellsBackupError
from ..repository.repository import Repository
from .installation_restore import InstallationRestoreRequest, restore_installation


def _drop_database(conn: ConnectionInfo) -> None:
    from ..database.mysql_client import connect, quote_ident

    c = connect(conn, database="")
    try:
        with c.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(conn.database)}")
    finally:
        c.close()


def _url(conn: ConnectionInfo) -> str:
    from urllib.parse import quote

    auth = quote(conn.user, safe="") + (":" + quote(conn.password, safe="") if conn.password else "")
    if conn.unix_socket:
        return f"mysql://{auth}@localhost/{conn.database}?socket={quote(conn.unix_socket)}"
    return f"mysql://{auth}@{conn.host}:{conn.port}/{conn.database}"


def run_drill(repo: Repository, *, snapshot: str = "latest", target_dir: str | None = None,
              database_url: str | None = None, keep: bool = False,
              info: Callable[[str], None] = lambda _m: None) -> dict:
    from ..cells.model import Installation

    started = time.monotonic()
    snap = repo.resolve_snapshot(snapshot)
    if "installation" not in snap.extra:
        raise CellsBackupError(f"snapshot {snap.short_id} is not a Cells installation backup")
    inst = Installation.from_dict(snap.extra["installation"])
    scratch = tempfile.mkdtemp(prefix="cells-drill-", dir=target_dir)
    # Everything outside the working dir goes to the scratch dir too: a drill never touches live paths.
    outside = [c["path"] for c in snap.extra.get("components", []) if c["kind"] != "workdir"]
    outside += snap.extra.get("extra_paths", [])
    maps = [f"{path}={scratch}/outside{i}" for i, path in enumerate(outside)]
    db_conn = None
    if snap.extra.get("databases"):
        if database_url:
            base = parse_database_url(database_url)
        else:
            ref = inst.default_database
            if ref is None:
                raise CellsBackupError("the snapshot names no database server; give --database-url")
            base = parse_pydio_dsn(ref.driver, ref.dsn)
        db_conn = replace(base, database=f"cells_drill_{secrets.token_hex(4)}")
    # No scratch MongoDB is known: the document store is left out rather than loaded into the live one.
    request = InstallationRestoreRequest(cells_dir=os.path.join(scratch, "cells"), maps=maps,
                                         database_url=_url(db_conn) if db_conn else None, skip_documents=True)
    try:
        info(f"restoring snapshot {snap.short_id} into {scratch}"
             + (f" and database {db_conn.database}" if db_conn else ""))
        result = restore_installation(repo, snap, request, info=info)
        elapsed = time.monotonic() - started
        problems = [f"{e['path']}: {e['error']}" for e in result.files.errors]
        if result.verify:
            problems += [f["message"] for f in result.verify.get("findings", []) if f["severity"] == "error"]
        notes = ["the MongoDB document store was not drilled (a drill never loads into the live one)"
                 ] if snap.extra.get("documents") else []
        return {"snapshot": snap.id, "whole": result.whole and not problems, "seconds": round(elapsed, 1),
                "files": result.files.files, "bytes": result.files.bytes, "problems": problems, "notes": notes,
                "scratch": scratch if keep else None}
    except CellsBackupError as exc:
        return {"snapshot": snap.id, "whole": False, "seconds": round(time.monotonic() - started, 1),
                "problems": [str(exc)], "scratch": scratch if keep else None}
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
            if db_conn is not None:
                try:
                    _drop_database(db_conn)
                except CellsBackupError:
                    pass
