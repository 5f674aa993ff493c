"""Cells-aware commands: backup/restore of an installation, inspect, verify-install, rehost, dump --database."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import CellsBackupError, ExitCode, UsageError
from ..wording import plural
from .main import Settings, cli, common_options
from .options import rewrite_options
from .output import human_bytes, human_duration
from .progress import also_on_line, new_progress, progress_shown


def cells_backup(settings: Settings, *, cells_dir, tags, excludes, extra_paths, no_database, stop_command,
                 start_command, live, when, lock_wait, skip_documents_db=False, database_url=None) -> None:
    from ..engine.installation_backup import InstallationBackupRequest, backup_installation
    from .backup_report import report_backup

    hooks = settings.config.get("hooks", {})
    request = InstallationBackupRequest(
        cells_dir=cells_dir or settings.config.get("cells_dir"), tags=tags, excludes=excludes,
        extra_paths=extra_paths, no_database=no_database, database_url=database_url,
        skip_documents_db=skip_documents_db, stop_command=stop_command or hooks.get("stop_command"),
        start_command=start_command or hooks.get("start_command"), live=live, when=when, lock_wait=lock_wait)
    repo = settings.open()
    progress = new_progress(settings.out)
    with progress_shown(progress, "backup", show_path=True):
        result = backup_installation(repo, request, progress=progress, warn=settings.out.warn,
                                     info=settings.out.info)
    for note in result.warnings:
        settings.out.warn(note)
    report_backup(settings, result.snapshot, result.snapshot.summary.get("duration", 0))
    if result.downtime is not None:
        settings.out.info(f"Cells downtime: {human_duration(result.downtime)} ({result.downtime:.1f} s)")
    if result.start_failure:
        raise CellsBackupError(result.start_failure)
    if result.snapshot.partial:
        raise SystemExit(ExitCode.PARTIAL)


def cells_restore(settings: Settings, repo, snap, *, cells_dir, maps, database_url, external_url, bind,
                  peer_address, clear_peer_address, only, owner, dry_run, force, documents_url=None,
                  skip_documents=False) -> None:
    from ..engine.installation_restore import InstallationRestoreRequest, restore_installation

    request = InstallationRestoreRequest(
        cells_dir=cells_dir, maps=maps, database_url=database_url, external_url=external_url, bind=bind,
        peer_address=peer_address, clear_peer_address=clear_peer_address, only=only, owner=owner,
        dry_run=dry_run, force=force, documents_url=documents_url, skip_documents=skip_documents)
    if dry_run:
        return _report_dry_run(settings, repo, snap, request)
    progress = new_progress(settings.out)
    info = also_on_line(progress, settings.out.info)

    with progress_shown(progress, "restore", show_path=True):
        result = restore_installation(repo, snap, request, info=info, progress=progress)
    files = result.files
    lines = [f"restored {plural(files.files, 'file')}, {plural(files.dirs, 'dir')}, {human_bytes(files.bytes)}"]
    for db in result.databases:
        lines.append(f"database {db.get('database')}: {len(db.get('tables', []))} tables loaded and verified")
    if result.documents is not None:
        lines.append(f"document store: {result.documents['documents']} documents in "
                     f"{result.documents['collections']} collections loaded and counted")
    for err in files.errors[:50]:
        lines.append(f"error: {err['path']}: {err['error']}")
    if result.verify is not None:
        for finding in result.verify.get("findings", []):
            if finding["severity"] != "ok":
                lines.append(f"{finding['severity']}: {finding['message']}")
    if only == "database":
        lines.append("database is whole: every table verified, each datasource's index table present"
                     if result.whole else "database is NOT whole: see the errors above")
    else:
        lines.append("installation is whole: Cells can be started" if result.whole
                     else "installation is NOT whole: see the errors above")
    settings.out.result({"whole": result.whole, "plan": result.plan.describe(), "files": files.files,
                         "bytes": files.bytes, "errors": files.errors, "databases": result.databases,
                         "documents": result.documents, "verify": result.verify}, "\n".join(lines))
    if not result.whole:
        raise SystemExit(ExitCode.ERROR)


def _report_dry_run(settings: Settings, repo, snap, request) -> None:
    """The plan, one summary line per tree (every file only with -v), and the checks that passed."""
    from ..engine.installation_restore import dry_run

    verbose = bool(settings.out.verbose)
    result = dry_run(repo, snap, request, list_files=verbose)
    notes = [f": {plural(s.files, 'file')}, {plural(s.dirs, 'dir')}, {human_bytes(s.bytes)}" for s in result.steps]
    text = [result.plan.render(notes), "pre-flight checks passed (the same as the restore runs first):"]
    text += [f"  {line}" for line in result.checks]
    if result.paths is not None:
        text += ["files that would be written:", *result.paths]
    else:
        text.append("(-v lists every file that would be written)")
    doc = result.plan.describe() | {"checks": result.checks, "files": [s.to_dict() for s in result.steps]}
    if result.paths is not None:
        doc["destinations"] = result.paths
    settings.out.result(doc, "\n".join(text))


def dump_database(settings: Settings, repo, snap, output: str) -> None:
    from ..database.export import export_sql
    from ..engine.installation_restore import database_parts

    dbs = snap.extra.get("databases") or {}
    if not dbs:
        raise CellsBackupError(f"snapshot {snap.short_id} holds no database")
    repo.load_index()
    key, info = next(iter(dbs.items()))
    parts = database_parts(repo, snap, info["path"])
    if output == "-":
        if sys.stdout.isatty():
            raise UsageError("refusing to write SQL to a terminal; use -o FILE or a pipe")
        export_sql(parts, info["manifest"], sys.stdout.buffer)
    else:
        with open(output, "wb") as f:
            export_sql(parts, info["manifest"], f)
    settings.out.info(f"wrote database {key[:12]} ({plural(len(info['manifest'].get('tables', {})), 'table')})")


@cli.command()
@click.option("--cells-dir", type=click.Path(file_okay=False), help="Cells working directory.")
@click.option("--database-url", help="Use this database instead of the one in pydio.json.")
@common_options
def inspect(settings: Settings, cells_dir: str | None, database_url: str | None) -> None:
    """What a backup would take: components, sizes, databases, sites, warnings."""
    from ..engine.inspect import inspect_installation

    doc = inspect_installation(cells_dir or settings.config.get("cells_dir"), database_url)
    settings.out.result(doc, render_inspect(settings.out, doc), data=True)


def render_inspect(out, doc: dict) -> str:
    """`inspect` for people: components, datasources, databases, sites, then the warnings."""
    lines = [f"Cells {doc['cells_version'] or '?'} in {doc['working_dir']} ({doc['config_shape']} config)"
             + (" - RUNNING" if doc["running"] else "")]
    rows = [[c["name"], c["kind"], c["path"], str(c["files"]), human_bytes(c["bytes"])] for c in doc["components"]]
    lines.append(out.table(["Component", "Kind", "Path", "Files", "Size"], rows))
    for c in doc["components"]:
        for e in c["excludes"]:
            lines.append(f"  excluded from {c['name']}: {e['pattern']} ({e['reason']})")
    if doc["datasources"]:
        rows = [[d["name"], "flat" if d["flat"] else "structured",
                 d["folder"] or f"({d['type']} storage)", _count(d["files"]),
                 "-" if d["bytes"] is None else human_bytes(d["bytes"])] for d in doc["datasources"]]
        lines += ["", out.table(["Datasource", "Layout", "Folder", "Files", "Size"], rows)]
    if doc["databases"]:
        rows = [[db["key"][:12], db["kind"], db["connection"], _count(db.get("tables")),
                 _count(db.get("rows")),
                 human_bytes(db["bytes"]) if "bytes" in db else "-", db.get("server") or "unreachable"]
                for db in doc["databases"]]
        lines += ["", out.table(["Database", "Kind", "Connection", "Tables", "Rows", "Size", "Server"], rows)]
    lines.append("")
    for site in doc["sites"]:
        lines.append(f"site: binds {', '.join(site['binds']) or '-'}; external URL {site['external_url'] or '-'}; "
                     f"TLS {site['tls']}")
    for skipped in doc["not_backed_up"]:
        lines.append(f"not backed up: {skipped['name']}: {skipped['reason']}")
    for warning in doc["warnings"]:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


@cli.command("verify-install")
@click.option("--cells-dir", type=click.Path(file_okay=False), help="Cells working directory.")
@click.option("--database-url", help="Check this database instead of the one in pydio.json.")
@click.option("--no-database", is_flag=True, help="Do not check the database.")
@common_options
def verify_install(settings: Settings, cells_dir: str | None, database_url: str | None, no_database: bool) -> None:
    """Check that an installation (a fresh restore, or a live one) is whole."""
    from ..cells import find_working_dir, load_installation, verify_installation
    from ..engine.dbcheck import index_table_checker
    from ..engine.installation_backup import database_sources

    wd = find_working_dir(cells_dir or settings.config.get("cells_dir"))
    check = None
    try:
        inst = load_installation(wd)
        sources = [] if no_database else database_sources(inst, database_url)
        if sources and sources[0].conn.kind == "mysql":
            check = index_table_checker(sources[0].conn)
    except CellsBackupError:
        inst = None
    report = verify_installation(inst or wd, database_check=check)
    doc = report.to_dict()
    lines = [f"{f['severity']}: {f['message']}" for f in doc["findings"]
             if f["severity"] != "ok" or settings.out.verbose]
    problems = plural(len(report.errors), "problem")
    lines.append("installation is whole" if report.whole
                 else f"installation is NOT whole ({problems} would stop Cells from working)")
    settings.out.result(doc, "\n".join(lines))
    if not report.whole:
        settings.out.failure = lines[-1]
        raise SystemExit(ExitCode.ERROR)


@cli.command()
@rewrite_options
@click.option("--dry-run", is_flag=True, help="Show the edits, change nothing.")
@common_options
def rehost(settings: Settings, cells_dir, maps, database_url, external_url, bind, peer_address,
           clear_peer_address, dry_run) -> None:
    """Rewrite an installation's config for a new host, in place, keeping a dated copy."""
    from ..cells import (
        RewriteRequest,
        detect_running,
        find_working_dir,
        load_installation,
        rehost_in_place,
        render_diff,
        retarget_dsn,
    )
    from ..engine.restore_steps import parse_maps
    from ..errors import CellsRunningError

    wd = find_working_dir(cells_dir or settings.config.get("cells_dir"))
    inst = load_installation(wd)
    status = detect_running(inst)
    if status.running and not dry_run:
        raise CellsRunningError("Cells is running (" + "; ".join(status.evidence[:2]) + "); stop it before rehost")
    dsn = None
    if database_url:
        if inst.default_database is None:
            raise UsageError("this installation has no default database to retarget")
        dsn = retarget_dsn(inst.default_database.dsn, database_url)
    request = RewriteRequest(path_map=parse_maps(list(maps)), external_url=external_url, bind=bind,
                             peer_address=peer_address, clear_peer_address=clear_peer_address, database_dsn=dsn)
    result = rehost_in_place(Path(wd), request, dry_run=dry_run)
    text = render_diff(result.edits) if result.edits else "nothing to change"
    if result.backup_path:
        text += f"\nprevious config kept as {result.backup_path}"
    settings.out.result({"edits": [e.to_dict() for e in result.edits], "config": str(result.config_path),
                         "backup": str(result.backup_path) if result.backup_path else None}, text)
