"""Maintenance commands: forget, prune, repair, diff."""

from __future__ import annotations

from collections.abc import Callable

import click

from ..errors import ExitCode
from ..repository.lock import Lock
from ..wording import plural
from .main import Settings, cli, common_options
from .output import human_bytes
from .progress import also_on_line, new_progress, progress_shown


def run_prune(settings: Settings, repo, *, max_unused: float, dry_run: bool) -> dict:
    """`prune_repository` with the progress line on a terminal."""
    from ..engine.forget import prune_repository

    if dry_run:
        return prune_repository(repo, max_unused=max_unused, dry_run=True)
    progress = new_progress(settings.out)
    say = also_on_line(progress, settings.out.debug)
    with progress_shown(progress, "prune", show_path=True):
        return prune_repository(repo, max_unused=max_unused, say=say, progress=progress)


@cli.command()
@click.option("--max-unused", default="10%", show_default=True,
              help="Repack packs with more than this share of unused data.")
@click.option("--dry-run", is_flag=True, help="Only say what would be freed.")
@click.option("--lock-wait", type=float, default=0.0, help="Seconds to wait for other processes' locks.")
@common_options
def prune(settings: Settings, max_unused: str, dry_run: bool, lock_wait: float) -> None:
    """Free space of data no snapshot needs."""
    from ..engine.retention_keys import parse_share

    share = parse_share(max_unused)
    repo = settings.open()
    with Lock(repo, exclusive=True, purpose="prune").acquire(lock_wait):
        doc = run_prune(settings, repo, max_unused=share, dry_run=dry_run)
    plan = doc["plan"]
    text = (f"{plural(plan['delete_packs'], 'pack')} to delete, {plan['repack_packs']} to repack, "
            f"{plan['orphan_packs']} left over by interrupted runs; about "
            f"{human_bytes(plan['bytes_freed_estimate'])} to free")
    if not dry_run:
        result = doc["result"]
        text += (f"\nprune done: {plural(result['packs_deleted'], 'pack')} deleted, "
                 f"{result['packs_written']} written")
    settings.out.result(doc, text)


@cli.command()
@common_options
def repair(settings: Settings) -> None:
    """Rebuild the index from the packs (after index files were lost or damaged)."""
    from ..repository.repair import rebuild_index

    repo = settings.open()
    with Lock(repo, exclusive=True, purpose="repair").acquire():
        doc = rebuild_index(repo, say=settings.out.debug)
    text = f"index rebuilt from {plural(doc['packs'], 'pack')} ({plural(doc['blobs'], 'blob')})"
    for problem in doc["problems"]:
        text += f"\nproblem: {problem}"
    settings.out.result(doc, text)
    if doc["problems"]:
        settings.out.failure = f"index rebuilt with {plural(len(doc['problems']), 'problem')}"
        raise SystemExit(ExitCode.ERROR)


@cli.command()
@click.argument("snapshot_a")
@click.argument("snapshot_b")
@common_options
def diff(settings: Settings, snapshot_a: str, snapshot_b: str) -> None:
    """What changed between two snapshots (files and database tables)."""
    from ..engine.diff import diff_snapshots

    repo = settings.open()
    doc = diff_snapshots(repo, repo.resolve_snapshot(snapshot_a), repo.resolve_snapshot(snapshot_b))
    lines = [f"+ {e['path']} ({human_bytes(e['size'])})" for e in doc["added"]]
    lines += [f"- {e['path']} ({human_bytes(e['size'])})" for e in doc["removed"]]
    lines += [f"M {e['path']} ({e['what']}, {human_bytes(e['size_before'])} -> {human_bytes(e['size_after'])})"
              for e in doc["changed"]]
    lines += [f"T {t['table']} (rows {t['rows_before']} -> {t['rows_after']})" for t in doc["tables"]]
    lines.append(f"{len(doc['added'])} added, {len(doc['removed'])} removed, {len(doc['changed'])} changed, "
                 f"{plural(len(doc['tables']), 'table')} changed")
    settings.out.result(doc, "\n".join(lines), data=True)


def retention_options(command: Callable) -> Callable:
    """`forget`'s flags, one per retention key (the config file's `[retention]` has the same keys)."""
    from ..engine.forget_plan import DEFAULT_GROUP_BY
    from ..engine.retention_keys import DEFAULT_MAX_UNUSED, RETENTION_KEYS

    kinds: dict[str, dict] = {
        "count": {"type": int}, "duration": {}, "tags": {"multiple": True},
        "group_by": {"default": DEFAULT_GROUP_BY, "show_default": True},
        "switch": {"is_flag": True}, "share": {"default": DEFAULT_MAX_UNUSED, "show_default": True},
    }
    for key in reversed(RETENTION_KEYS):
        command = click.option(key.flag, key.name, help=key.help, **kinds[key.kind])(command)
    return command


@cli.command()
@retention_options
@click.option("--dry-run", is_flag=True, help="List what would be kept and removed, and why.")
@common_options
def forget(settings: Settings, dry_run: bool, **retention) -> None:
    """Apply a retention policy: remove snapshots the policy does not keep."""
    from ..engine.forget import ForgetOptions, forget_snapshots
    from ..engine.retention_keys import group_by_from_settings, parse_share, policy_from_settings

    policy = policy_from_settings(retention)
    options = ForgetOptions(group_by=group_by_from_settings(retention), dry_run=dry_run,
                            prune=retention["prune"], max_unused=parse_share(retention["max_unused"]))
    policy.require_not_empty()
    repo = settings.open()
    result = forget_snapshots(repo, policy, options, pruner=lambda repo, share: run_prune(
        settings, repo, max_unused=share, dry_run=False))
    settings.out.result(result.to_dict(), result.render())
