"""Backing up a whole Cells installation: its trees and its database(s), at one point in time.

Consistency (docs/ARCHITECTURE.md, invariant 4: one point in time): with stop/start hooks
Cells is stopped for the whole copy and always started again; without hooks a running Cells is
refused unless ``live``, in which case the database is dumped in one transaction and the
snapshot is marked live.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import BinaryIO

from ..cells import backup_plan, detect_running, find_working_dir, load_installation, not_backed_up, warnings
from ..cells.dsn import mask_dsn
from ..cells.model import Installation
from ..cells.parse import NoDefaultDatabaseError
from ..cells.plan import Component
from ..cells.vault import vault_problem
from ..database.dsn import ConnectionInfo, parse_database_url, parse_pydio_dsn
from ..errors import CellsBackupError, CellsRunningError, UsageError
from ..repository.archiver import VirtualDir
from ..repository.prefetch import prefetch_metadata
from ..repository.progress import Progress
from ..repository.repository import Repository
from ..repository.snapshot import Snapshot
from .hooks import StartOnce, run_hook, wait_until
from .trees import BackupRequest, read_ahead, run_backup

DATABASE_ROOT = "/.cells-backup/databases"
DOCUMENTS_ROOT = "/.cells-backup/documents"
NAMELESS_DATABASE = "default"  # the key of a --database-url database that pydio.json does not name


@dataclass
class InstallationBackupRequest:
    cells_dir: str | None = None
    tags: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    extra_paths: list[str] = field(default_factory=list)
    no_database: bool = False
    database_url: str | None = None
    skip_documents_db: bool = False
    stop_command: str | None = None
    start_command: str | None = None
    live: bool = False
    when: datetime | None = None
    lock_wait: float = 30.0
    stop_timeout: float = 120.0


@dataclass
class InstallationBackupResult:
    snapshot: Snapshot
    installation: Installation
    downtime: float | None = None
    warnings: list[str] = field(default_factory=list)
    start_failure: str | None = None  # the start command failed: Cells may still be stopped


@dataclass
class DatabaseSource:
    key: str
    conn: ConnectionInfo

    @property
    def snapshot_path(self) -> str:
        return f"{DATABASE_ROOT}/{self.key}"


def database_sources(inst: Installation, override_url: str | None = None) -> list[DatabaseSource]:
    """The SQL databases to dump, as connection infos (the first one may be overridden).

    When pydio.json names no usable main database, ``override_url`` is that database.
    """
    sources = []
    if override_url and inst.default_database is None:
        sources.append(DatabaseSource(NAMELESS_DATABASE, parse_database_url(override_url)))
        override_url = None
    for i, ref in enumerate(inst.sql_databases()):
        if i == 0 and override_url:
            conn = parse_database_url(override_url)
        else:
            conn = parse_pydio_dsn(ref.driver, ref.dsn)
        if conn.kind == "sqlite" and conn.database and not os.path.isabs(conn.database):
            conn = replace(conn, database=str(inst.working_dir / conn.database))
        sources.append(DatabaseSource(ref.key, conn))
    return sources


def component_excluder(components: list[Component]) -> Callable[[str, bool], bool]:
    roots = sorted(((str(c.path).rstrip("/"), c) for c in components), key=lambda x: -len(x[0]))

    def excluded(path: str, is_dir: bool) -> bool:
        for root, comp in roots:
            if path.startswith(root + "/"):
                return comp.excluded_by(path[len(root) + 1 :], is_dir) is not None
        return False

    return excluded


def _without_database_files(excluded: Callable[[str, bool], bool],
                            sources: list[DatabaseSource]) -> Callable[[str, bool], bool]:
    """SQLite files are taken by the (consistent) dump, never copied live as files."""
    files = set()
    for source in sources:
        if source.conn.kind == "sqlite" and source.conn.database:
            files |= {source.conn.database + suffix for suffix in ("", "-wal", "-shm", "-journal")}
    if not files:
        return excluded
    return lambda path, is_dir: path in files or excluded(path, is_dir)


class DumpStream:
    """One database's dump as the entries of a VirtualDir.

    `start()` opens the dump and waits for its first part, i.e. until its consistent snapshot
    exists: with stop/start hooks this happens while Cells is stopped, so Cells can be started
    again as soon as the files are read while the dump goes on from that same moment. A dump is
    read as soon as it is opened: its client must not wait on a full pipe for long.
    """

    def __init__(self, source: DatabaseSource) -> None:
        self.source = source
        self.dump = None
        self._parts: Iterator | None = None
        self._first = None
        self.after_start: Callable[[], None] | None = None  # called once the snapshot is open

    def start(self) -> None:
        from ..database.registry import open_dump

        self.dump = open_dump(self.source.conn)
        self._parts = self.dump.parts()
        self._first = next(self._parts, None)
        if self.after_start is not None:
            self.after_start()

    def entries(self) -> Iterator[tuple[str, BinaryIO]]:
        if self.dump is None:
            self.start()
        try:
            if self._first is not None:
                first, self._first = self._first, None
                yield first.name, first
            for part in self._parts:
                yield part.name, part
        except BaseException:
            self.abort()
            raise
        self.dump.close()  # raises when the dump failed or was cut short: no snapshot then

    def abort(self) -> None:
        if self.dump is not None:
            try:
                self.dump.close()
            except CellsBackupError:
                pass


def _load(request: InstallationBackupRequest) -> tuple[Installation, list[str]]:
    """The installation and what the administrator should know about its backup."""
    try:
        inst = load_installation(find_working_dir(request.cells_dir),
                                 database_optional=request.no_database or bool(request.database_url))
    except NoDefaultDatabaseError as exc:
        raise NoDefaultDatabaseError(f"{exc}; give the database with --database-url URL, or back up "
                                     "files only with --no-database") from None
    notes = list(warnings(inst))
    if problem := vault_problem(inst.vault_file, inst.key_file):
        notes.append(problem)
    for skipped in not_backed_up(inst):
        notes.append(f"not in the backup: {skipped.name}: {skipped.reason}")
    return inst, notes


def _documents_dump(inst: Installation, request: InstallationBackupRequest):
    """The MongoDB document store's dump, or None (no store, or --skip-documents-db)."""
    if not inst.document_store or request.skip_documents_db:
        return None
    from ..database.mongo import DocumentsDump, find_tool

    tool = find_tool("mongodump")
    if tool is None:
        raise CellsBackupError(
            "this installation keeps documents in MongoDB (defaults.documentsDSN) and mongodump is not "
            "installed; install it, or run with --skip-documents-db to back up without them"
        )
    return DocumentsDump(inst.document_store, tool)


def _checked_sources(inst: Installation, request: InstallationBackupRequest) -> list[DatabaseSource]:
    """The SQL databases to dump, each reachable: checked before anything is stopped."""
    if request.no_database:
        return []
    sources = database_sources(inst, request.database_url)
    if not sources:
        raise CellsBackupError(f"{inst.config_path}: no SQL database found; use --no-database to back up files only")
    from ..database.probe import check_connection

    for source in sources:
        check_connection(source.conn)
    return sources


def _archive_request(request: InstallationBackupRequest, inst: Installation, components: list[Component],
                     sources: list[DatabaseSource], virtual: list[VirtualDir], notes: list[str]) -> BackupRequest:
    """What the archiver stores: the components' trees, the extra paths and the dump streams."""
    paths = [str(c.path) for c in components] + [os.path.abspath(p) for p in request.extra_paths]
    return BackupRequest(
        paths=paths,
        virtual=virtual,
        tags=request.tags,
        excludes=request.excludes,
        exclude_fn=_without_database_files(component_excluder(components), sources),
        time=request.when,
        extra={
            "installation": inst.to_dict(),
            "components": [{"name": c.name, "kind": c.kind, "path": str(c.path)} for c in components],
            "extra_paths": [os.path.abspath(p) for p in request.extra_paths],
            "notes": notes,
        },
        components=[c.name for c in components] + [f"database:{s.key[:12]}" for s in sources]
        + [f"extra:{p}" for p in request.extra_paths],
        cells_version=inst.cells_version,
        live=False,
        lock_wait=request.lock_wait,
    )


def backup_installation(
    repo: Repository,
    request: InstallationBackupRequest,
    *,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    info: Callable[[str], None] | None = None,
) -> InstallationBackupResult:
    run_started = time.monotonic()
    warn = warn or (lambda _m: None)
    info = info or (lambda _m: None)
    if bool(request.stop_command) != bool(request.start_command):
        raise UsageError("--stop-command and --start-command go together")
    inst, notes = _load(request)
    components = backup_plan(inst)
    documents = _documents_dump(inst, request)
    sources = _checked_sources(inst, request)

    streams = {s.key: DumpStream(s) for s in sources}
    virtual = [VirtualDir(s.snapshot_path, streams[s.key].entries) for s in sources]
    if documents is not None:  # before the SQL dumps: it has no snapshot to open, Cells must stay stopped
        virtual.append(VirtualDir(DOCUMENTS_ROOT, documents.entries, early=True))
    paths = [str(c.path) for c in components] + [os.path.abspath(p) for p in request.extra_paths]

    hooks: list[StartOnce] = []  # set while Cells is stopped by the stop command

    def record(snapshot: Snapshot) -> None:
        if hooks:
            end = hooks[0].started_at or time.monotonic()
            snapshot.summary["downtime"] = round(end - hooks[0].stopped_at, 3)
        snapshot.extra["databases"] = {
            key: {"path": f"{DATABASE_ROOT}/{key}", "connection": src.conn.redacted(),
                  "manifest": streams[key].dump.manifest()}
            for key, src in ((s.key, s) for s in sources)
        }
        if documents is not None:
            snapshot.extra["documents"] = {"path": DOCUMENTS_ROOT, "connection": mask_dsn(inst.document_store),
                                           "manifest": documents.manifest()}
        if inst.document_store and request.skip_documents_db:
            snapshot.extra["skipped_documents_db"] = True
            snapshot.errors.append({"path": "documents database", "error": "skipped with --skip-documents-db"})

    backup_req = _archive_request(request, inst, components, sources, virtual, notes)
    backup_req.started = run_started

    # The walks below find warm caches; the walkers count the files too when a progress is shown.
    with prefetch_metadata(paths, on_counted=progress.walked if progress is not None else None):
        if request.stop_command:
            start = StartOnce(request.start_command, info, time.monotonic())
            hooks.append(start)
            snapshot = _backup_while_stopped(repo, request, inst, backup_req, streams, documents, start,
                                             progress=progress, warn=warn, info=info, record=record)
            downtime = start.started_at - start.stopped_at
            return InstallationBackupResult(snapshot, inst, downtime, notes, start.failure_message(snapshot.short_id))
        status = detect_running(inst)
        if status.running and not request.live:
            raise CellsRunningError(
                "Cells is running (" + "; ".join(status.evidence[:2]) + "): stop it with --stop-command/"
                "--start-command hooks, or use --live to back up a running instance"
            )
        if status.running:
            backup_req.live = True
            warn("Cells is running: the snapshot is taken live (database in one transaction, files as they are)")
        snapshot = run_backup(repo, backup_req, progress=progress, warn=warn, before_snapshot=record)
    return InstallationBackupResult(snapshot, inst, None, notes)


def _backup_while_stopped(repo: Repository, request: InstallationBackupRequest, inst: Installation,
                          backup_req: BackupRequest, streams: dict[str, DumpStream], documents, start: StartOnce,
                          *, progress, warn, info, record) -> Snapshot:
    """Read the files while Cells runs, stop it, store what changed and the dumps' first moment,
    start it again as soon as that is captured; the snapshot is written after."""

    def files_done() -> None:
        # The database's point in time: now, while Cells is still stopped. Not before the files,
        # nor all databases at once: a dump client left waiting on a full pipe is dropped by the
        # server after net_write_timeout (60 s by default). With several databases, each dump
        # opens when the one before it is stored and Cells stays stopped until the last opens.
        # A MongoDB document store has no snapshot to open: mongodump runs to its end first,
        # Cells still stopped, and the SQL dumps open theirs after it.
        ordered = [streams[key] for key in sorted(streams)]  # the order the archiver reads them
        if ordered:
            ordered[-1].after_start = start
        elif documents is not None:
            documents.after_done = start
        else:
            start()
        if ordered and documents is None:
            ordered[0].start()

    # Cells still runs: files are stored now, so that while it is stopped only what changed
    # since is read again (its data is the same as the parent's otherwise).
    info("reading the files before stopping Cells")
    backup_req.read_ahead = read_ahead(repo, backup_req, progress)
    info("stopping Cells")
    if progress is not None:  # after the message, drawn above the first pass's last state
        progress.restart()
    start.stopped_at = time.monotonic()
    try:
        run_hook(request.stop_command, "stop")
        if not wait_until(lambda: not detect_running(inst).running, request.stop_timeout):
            raise CellsRunningError(f"Cells is still running {request.stop_timeout:.0f} s after the stop command")
        return run_backup(repo, backup_req, progress=progress, warn=warn, before_snapshot=record,
                          on_files_done=files_done)
    except CellsBackupError as exc:
        for stream in streams.values():
            stream.abort()
        start()  # always, even when the backup failed
        if start.failure is not None:
            both = CellsBackupError(f"{exc}; and {start.failure_message()}")
            both.exit_code = exc.exit_code
            raise both from exc
        raise
    except BaseException:
        for stream in streams.values():
            stream.abort()
        start()
        if start.failure is not None:
            warn(start.failure_message())
        raise
    finally:
        start()
