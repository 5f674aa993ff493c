"""Commands about the repository itself: init, key, snapshots, check, unlock, stats."""

from __future__ import annotations

import click

from ..engine.password import (
    PasswordSource,
    generate_password_file,
    get_password,
    has_explicit_source,
)
from ..engine.stats import repository_stats, snapshot_stats
from ..errors import CellsBackupError, ExitCode
from ..repository.backends import open_backend
from ..repository.check import check_repository
from ..repository.crypto import DEFAULT_KDF
from ..repository.keys import list_key_files
from ..repository.lock import Lock, remove_stale_locks
from ..repository.repository import Repository, check_new_location
from ..wording import plural
from .main import Settings, cli, common_options
from .output import human_bytes
from .progress import also_on_line, new_progress, progress_shown


@cli.command()
@click.option("--pack-size", type=int, default=16, show_default=True, help="Target pack size in MiB.")
@click.option("--kdf-cost", type=click.IntRange(10, 22), default=14, show_default=True,
              help="Argon2id memory as log2(KiB): 14 = 16 MiB (3 passes) per unlock.")
@common_options
def init(settings: Settings, pack_size: int, kdf_cost: int) -> None:
    """Create an encrypted repository."""
    backend = open_backend(settings.repo.require_url(), **settings.repo.backend_options)
    check_new_location(backend)  # before a password file is generated
    generated = None
    if has_explicit_source(settings.repo.password):
        password = get_password(settings.repo.password)
    else:
        from ..engine.password import default_password_file

        if default_password_file().exists():
            password = get_password(settings.repo.password)
        else:
            password, generated = generate_password_file()
    repo = Repository.create(backend, password, kdf={**DEFAULT_KDF, "memory_kib": 2**kdf_cost},
                             pack_size=pack_size * 1024 * 1024)
    doc = {"repository": backend.location, "id": repo.id, "password_file": str(generated) if generated else None}
    text = f"created repository {repo.id[:8]} at {backend.location}"
    if generated:
        text += (f"\npassword generated and stored in {generated} (mode 0600).\n"
                 "Keep a copy somewhere safe: without it nothing in this repository can be restored.")
    settings.out.result(doc, text, data=generated is not None)


@cli.group()
def key() -> None:
    """Manage the passwords that open the repository."""


def _new_password(new_password_file: str | None) -> bytes:
    return get_password(PasswordSource(file=new_password_file), prompt="New password: ", confirm=True)


@key.command("list")
@common_options
def key_list(settings: Settings) -> None:
    """List key files."""
    repo = settings.open()
    keys = list_key_files(repo.backend)
    rows = [[("*" if k.id == repo.key.id else " ") + k.id[:12], k.created, k.username, k.hostname] for k in keys]
    settings.out.result(
        [{"id": k.id, "current": k.id == repo.key.id, "created": k.created, "username": k.username,
          "hostname": k.hostname} for k in keys],
        settings.out.table(["ID", "Created", "User", "Host"], rows), data=True,
    )


@key.command("add")
@click.option("--new-password-file", type=click.Path(dir_okay=False), help="File holding the new password.")
@common_options
def key_add(settings: Settings, new_password_file: str | None) -> None:
    """Add a password that opens the repository."""
    repo = settings.open()
    password = _new_password(new_password_file)
    key_id = repo.add_key(password)
    settings.out.result({"id": key_id}, f"added key {key_id[:12]}")


@key.command("remove")
@click.argument("key_id")
@common_options
def key_remove(settings: Settings, key_id: str) -> None:
    """Remove a key (not the one in use)."""
    repo = settings.open()
    matches = [k for k in list_key_files(repo.backend) if k.id.startswith(key_id)]
    if len(matches) != 1:
        raise CellsBackupError(f"{key_id!r} matches {plural(len(matches), 'key')}")
    if matches[0].id == repo.key.id:
        raise CellsBackupError("refusing to remove the key in use; open the repository with another password")
    with Lock(repo, exclusive=True, purpose="key remove").acquire():
        repo.remove_key(matches[0])
    settings.out.result({"removed": matches[0].id}, f"removed key {matches[0].id[:12]}")


@key.command("passwd")
@click.option("--new-password-file", type=click.Path(dir_okay=False), help="File holding the new password.")
@common_options
def key_passwd(settings: Settings, new_password_file: str | None) -> None:
    """Change the password: add a key for the new one, then remove the current key."""
    repo = settings.open()
    password = _new_password(new_password_file)
    with Lock(repo, exclusive=True, purpose="key passwd").acquire():
        key_id = repo.add_key(password)
        repo.remove_key(repo.key)
    settings.out.result({"id": key_id, "removed": repo.key.id}, f"password changed (new key {key_id[:12]})")


@cli.command()
@click.option("--tag", "tags", multiple=True, help="Only snapshots with this tag.")
@click.option("--host", help="Only snapshots from this host.")
@common_options
def snapshots(settings: Settings, tags: tuple[str, ...], host: str | None) -> None:
    """List snapshots."""
    repo = settings.open()
    snaps = [s for s in repo.list_snapshots()
             if all(t in s.tags for t in tags) and (host is None or s.hostname == host)]
    rows = []
    for s in snaps:
        flags = ",".join(f for f, on in (("live", s.live), ("partial", s.partial)) if on)
        rows.append([s.short_id, s.datetime.strftime("%Y-%m-%d %H:%M:%S"), s.hostname, ",".join(s.tags), flags,
                     human_bytes(s.summary.get("total_bytes", 0)), ", ".join(s.components or s.paths)])
    text = settings.out.table(["ID", "Time", "Host", "Tags", "Flags", "Size", "Contents"], rows)
    settings.out.result([s.describe() for s in snaps], text + f"\n{plural(len(snaps), 'snapshot')}", data=True)


@cli.command()
@click.option("--read-data", is_flag=True, help="Read and verify every stored byte.")
@click.option("--read-data-subset", metavar="PCT|n/t", help="Read a share of packs: '5%' or slice 'n/t'.")
@common_options
def check(settings: Settings, read_data: bool, read_data_subset: str | None) -> None:
    """Verify the repository's structure (and data with --read-data)."""
    repo = settings.open()
    data_progress = new_progress(settings.out)
    step = also_on_line(data_progress, settings.out.debug)
    with Lock(repo, exclusive=False, purpose="check").acquire(30), \
            progress_shown(data_progress, "check", show_path=True):
        report = check_repository(repo, read_data=read_data, subset=read_data_subset, progress=step,
                                  data_progress=data_progress)
    lines = [f"{e['object']}: {e['error']}" for e in report.errors]
    for e in report.errors:
        for snap, paths in e.get("affected", {}).items():
            lines.append(f"  snapshot {snap}: " + ", ".join(paths[:20]) + (" ..." if len(paths) > 20 else ""))
    if settings.out.verbose:
        lines += [f"warning: {w}" for w in report.warnings]
    summary = (f"{plural(report.snapshots, 'snapshot')}, {plural(report.trees, 'tree')}, "
               f"{plural(report.packs, 'pack')}"
               + (f", {plural(report.packs_read, 'pack')} read" if report.packs_read else "")
               + (": no errors" if report.ok else f": {plural(len(report.errors), 'error')}"))
    settings.out.result(
        {"ok": report.ok, "errors": report.errors, "warnings": report.warnings, "snapshots": report.snapshots,
         "packs": report.packs, "packs_read": report.packs_read, "trees": report.trees},
        "\n".join(lines + [summary]),
    )
    if not report.ok:
        settings.out.failure = f"check found {plural(len(report.errors), 'error')}"
        raise SystemExit(ExitCode.ERROR)


@cli.command()
@click.option("--remove-all", is_flag=True, help="Remove every lock, not only stale ones.")
@common_options
def unlock(settings: Settings, remove_all: bool) -> None:
    """Remove stale locks (left by a process that died)."""
    repo = settings.open()
    removed = remove_stale_locks(repo, all_locks=remove_all)
    settings.out.result({"removed": removed}, f"removed {plural(len(removed), 'lock')}")


@cli.command()
@click.argument("snapshot", required=False)
@common_options
def stats(settings: Settings, snapshot: str | None) -> None:
    """Sizes and dedup ratio of the repository or one snapshot."""
    repo = settings.open()
    if snapshot:
        doc = snapshot_stats(repo, repo.resolve_snapshot(snapshot))
        text = (f"snapshot {doc['id'][:8]}: {plural(doc['files'], 'file')}, {plural(doc['dirs'], 'dir')}, "
                f"{human_bytes(doc['logical_size'])} logical, {human_bytes(doc['unique_size'])} unique, "
                f"{human_bytes(doc['stored_size'])} stored, dedup {doc['dedup_ratio']}x")
    else:
        doc = repository_stats(repo)
        text = (f"{plural(doc['snapshots'], 'snapshot')}, {human_bytes(doc['logical_size'])} logical, "
                f"{human_bytes(doc['unique_size'])} unique, {human_bytes(doc['stored_size'])} stored in "
                f"{plural(doc['packs'], 'pack')}; dedup {doc['dedup_ratio']}x, compression {doc['compression_ratio']}x")
    settings.out.result(doc, text, data=True)


@cli.command()
@click.argument("snapshots", nargs=-1)
@click.option("--to-repo", required=True, help="Target repository (created when missing).")
@click.option("--to-password-file", type=click.Path(dir_okay=False), help="Target password (default: the source's).")
@click.option("--to-password-command", help="Command printing the target password.")
@click.option("--to-s3-endpoint", help="S3 endpoint of the target, when it differs from the source's.")
@common_options
def copy(settings: Settings, snapshots: tuple[str, ...], to_repo: str, to_password_file: str | None,
         to_password_command: str | None, to_s3_endpoint: str | None) -> None:
    """Copy snapshots (all by default) to another repository, sending only what it lacks."""
    from ..repository.copy import copy_snapshots

    source = settings.open()
    if to_password_file or to_password_command:
        password = get_password(PasswordSource(file=to_password_file, command=to_password_command))
    else:
        password = get_password(settings.repo.password)
    options = {}
    if to_repo.startswith("s3://"):
        options = {**settings.repo.backend_options}
        if to_s3_endpoint:
            options["endpoint"] = to_s3_endpoint
    backend = open_backend(to_repo, **options)
    created = False
    if backend.exists_repository():
        target = Repository.open(backend, password)
    else:
        target = Repository.create(backend, password, like=source, pack_size=source.pack_size)
        created = True
    chosen = [source.resolve_snapshot(s) for s in snapshots] if snapshots else source.list_snapshots()
    with Lock(source, exclusive=False, purpose="copy (source)").acquire(30), \
            Lock(target, exclusive=False, purpose="copy").acquire(30):
        progress = new_progress(settings.out)
        with progress_shown(progress, "copy"):
            pairs = copy_snapshots(source, target, chosen, say=settings.out.info, progress=progress)
    text = (f"created repository {target.id[:8]} at {backend.location}\n" if created else "") + \
        f"copied {plural(len(pairs), 'snapshot')}; {len(chosen) - len(pairs)} already there"
    settings.out.result({"created": created, "copied": [{"from": a, "to": b} for a, b in pairs]}, text)
