"""Commands that move files: backup, restore, ls, dump."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime

import click

from ..engine.trees import BackupRequest, restore_tree, run_backup
from ..errors import CellsBackupError, ExitCode, UsageError
from ..repository.prefetch import prefetch_metadata
from ..wording import plural
from .backup_report import report_backup
from .main import Settings, cli, common_options
from .options import rewrite_options
from .output import human_bytes
from .progress import new_progress, progress_shown


def parse_owner(owner: str | None) -> tuple[int, int] | None:
    if not owner:
        return None
    import grp
    import pwd

    user, _, group = owner.partition(":")
    try:
        uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        else:
            gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        raise UsageError(f"unknown user or group in --owner {owner!r}") from None
    return uid, gid


@cli.command()
@click.option("--cells-dir", type=click.Path(file_okay=False), help="Cells working directory.")
@click.option("--tag", "tags", multiple=True, help="Tag for the snapshot (repeatable).")
@click.option("--exclude", "excludes", multiple=True, help="Glob of paths to leave out (repeatable).")
@click.option("--extra-path", "extra_paths", multiple=True, help="Another file or tree to include.")
@click.option("--no-cells", is_flag=True, help="Only the --extra-path trees: no installation, no database.")
@click.option("--no-database", is_flag=True, help="Leave the database out.")
@click.option("--stop-command", help="Command that stops Cells before the backup.")
@click.option("--start-command", help="Command that starts Cells again afterwards.")
@click.option("--live", is_flag=True, help="Back up a running Cells (DB in one transaction; marked live).")
@click.option("--time", "when", help="Snapshot time (ISO 8601), for imports and tests.")
@click.option("--database-url", help="Dump this database instead of the one in pydio.json (URL form).")
@click.option("--skip-documents-db", is_flag=True, help="Back up without the MongoDB document store.")
@click.option("--lock-wait", type=float, default=30.0, show_default=True,
              help="Seconds to wait for an exclusive lock (prune) to go away before exit 11.")
@common_options
def backup(settings: Settings, cells_dir, tags, excludes, extra_paths, no_cells, no_database, stop_command,
           start_command, live, when, database_url, skip_documents_db, lock_wait) -> None:
    """Snapshot the installation (or, with --no-cells, just the --extra-path trees)."""
    when_dt = None
    if when:
        try:
            when_dt = datetime.fromisoformat(when)
        except ValueError:
            raise UsageError(f"--time {when!r} is not an ISO 8601 date") from None
        if when_dt.tzinfo is None:
            when_dt = when_dt.astimezone()
    extra_paths = list(extra_paths) + list(settings.config.get("extra_paths", []))
    excludes = list(excludes) + list(settings.config.get("exclude", []))
    if not no_cells:
        from .commands_cells import cells_backup

        return cells_backup(settings, cells_dir=cells_dir, tags=list(tags), excludes=excludes,
                            extra_paths=extra_paths, no_database=no_database, stop_command=stop_command,
                            start_command=start_command, live=live, when=when_dt, lock_wait=lock_wait,
                            database_url=database_url, skip_documents_db=skip_documents_db)
    if not extra_paths:
        raise UsageError("--no-cells needs at least one --extra-path")
    started = time.monotonic()
    progress = new_progress(settings.out)
    # From before the key is derived: the walk finds warm caches (and counts, for the line).
    with prefetch_metadata(extra_paths, on_counted=progress.walked if progress is not None else None):
        repo = settings.open()
        request = BackupRequest(paths=extra_paths, tags=list(tags), excludes=excludes, time=when_dt,
                                lock_wait=lock_wait, started=started)  # the run's time counts key derivation too
        with progress_shown(progress, "backup", show_path=True):
            snapshot = run_backup(repo, request, progress=progress, warn=settings.out.warn)
    report_backup(settings, snapshot, snapshot.summary.get("duration", 0) or time.monotonic() - started)
    if snapshot.partial:
        raise SystemExit(ExitCode.PARTIAL)


@cli.command()
@click.argument("snapshot", metavar="SNAPSHOT")
@click.option("--target", type=click.Path(file_okay=False), help="Restore plain trees under this directory.")
@rewrite_options
@click.option("--only", help="config, data, database, or a PATH inside the snapshot.")
@click.option("--owner", help="USER[:GROUP] to own restored files (default: as recorded).")
@click.option("--dry-run", is_flag=True, help="Show what would be written and changed, do nothing.")
@click.option("--force", is_flag=True, help="Restore into a non-empty target or database.")
@click.option("--documents-url", metavar="URI", help="Load the MongoDB document store there (mongodb://...).")
@click.option("--skip-documents-db", is_flag=True, help="Do not load the MongoDB document store.")
@common_options
def restore(settings: Settings, snapshot, target, cells_dir, maps, database_url, external_url, bind, peer_address,
            clear_peer_address, only, owner, dry_run, force, documents_url, skip_documents_db) -> None:
    """Restore a snapshot: an installation (to its place, or a new one) or, with --target, plain trees.

    SNAPSHOT is a snapshot id as `snapshots` lists it, any prefix of one that matches no other
    snapshot (e.g. its first 8 characters), or "latest" for the newest snapshot.
    """
    repo = settings.open()
    snap = repo.resolve_snapshot(snapshot, warn=settings.out.warn)
    owner_ids = parse_owner(owner)
    if snap.extra.get("installation") and not target:
        from .commands_cells import cells_restore

        return cells_restore(settings, repo, snap, cells_dir=cells_dir, maps=list(maps), database_url=database_url,
                             external_url=external_url, bind=bind, peer_address=peer_address,
                             clear_peer_address=clear_peer_address, only=only, owner=owner_ids,
                             dry_run=dry_run, force=force, documents_url=documents_url,
                             skip_documents=skip_documents_db)
    if not target:
        raise UsageError("this snapshot holds plain trees: give --target DIR")
    if dry_run:
        from ..repository.restorer import find_node

        repo.load_index()
        start = only or "/"
        node = find_node(repo, snap.tree, start)
        if node is None:
            raise CellsBackupError(f"{start} is not in snapshot {snap.short_id}")
        walk = repo.walk(node["subtree"], start.rstrip("/") or "/") if node["type"] == "dir" else [(start, node)]
        lines = [os.path.join(os.path.abspath(target), p.lstrip("/")) for p, _n in walk]
        settings.out.result({"destinations": lines}, "\n".join(lines))
        return
    progress = new_progress(settings.out)
    with progress_shown(progress, "restore"):
        result = restore_tree(repo, snap, target, only=only, force=force, owner=owner_ids, progress=progress)
    for warning in result.warnings[:50]:
        settings.out.debug(f"warning: {warning}")
    text = (f"restored {plural(result.files, 'file')}, {plural(result.dirs, 'dir')}, "
            f"{human_bytes(result.bytes)} to {target}")
    if result.errors:
        text += f"\n{plural(len(result.errors), 'path')} could not be restored:\n" + "\n".join(
            f"  {e['path']}: {e['error']}" for e in result.errors[:100])
    settings.out.result({"files": result.files, "dirs": result.dirs, "bytes": result.bytes,
                         "errors": result.errors, "warnings": result.warnings}, text)
    if result.errors:
        raise SystemExit(ExitCode.ERROR)


@cli.command("ls")
@click.argument("snapshot")
@click.argument("path", required=False, default="/")
@click.option("-l", "--long", "long_", is_flag=True, help="Show type, mode, size and time.")
@common_options
def ls_command(settings: Settings, snapshot: str, path: str, long_: bool) -> None:
    """List a snapshot's files (under PATH)."""
    from ..repository.restorer import find_node

    repo = settings.open()
    snap = repo.resolve_snapshot(snapshot, warn=settings.out.warn)
    repo.load_index()
    node = find_node(repo, snap.tree, path)
    if node is None:
        raise CellsBackupError(f"{path} is not in snapshot {snap.short_id}")
    entries = repo.walk(node["subtree"], path.rstrip("/") or "/") if node["type"] == "dir" else [(path, node)]
    docs = []
    out = sys.stdout
    for node_path, n in entries:
        if settings.out.json:
            docs.append({"path": node_path, "type": n["type"], "size": n.get("size", 0), "mode": n.get("mode"),
                         "mtime": n.get("mtime"), "uid": n.get("uid"), "gid": n.get("gid")})
        elif long_:
            when = datetime.fromtimestamp(n.get("mtime", 0) / 1e9).strftime("%Y-%m-%d %H:%M")
            out.write(f"{n['type'][:4]:4} {n.get('mode', 0):04o} {n.get('size', 0):>12} {when}  {node_path}\n")
        else:
            out.write(node_path + "\n")
    if settings.out.json:
        settings.out.result(docs)


@cli.command()
@click.argument("snapshot")
@click.argument("path", required=False, default="/")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Write to this file instead of stdout.")
@click.option("--database", is_flag=True, help="Export the database as one .sql file instead of a tar.")
@common_options
def dump(settings: Settings, snapshot: str, path: str, output: str, database: bool) -> None:
    """Write a snapshot's files (or PATH) as a tar, or with --database a loadable .sql."""
    repo = settings.open()
    snap = repo.resolve_snapshot(snapshot, warn=settings.out.warn)
    if database:
        from .commands_cells import dump_database

        return dump_database(settings, repo, snap, output)
    from ..engine.export import write_tar

    if output == "-":
        if sys.stdout.isatty():
            raise UsageError("refusing to write a tar to a terminal; use -o FILE or a pipe")
        count = write_tar(repo, snap, path, sys.stdout.buffer)
    else:
        with open(output, "wb") as f:
            count = write_tar(repo, snap, path, f)
    settings.out.info(f"wrote {plural(count, 'entry', 'entries')}")
