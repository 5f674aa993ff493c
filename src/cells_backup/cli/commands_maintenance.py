"""Maintenance commands: forget, prune, repair, diff."""

from __future__ import annotations

import click

from ..errors import ExitCode
from ..repository.lock import Lock
from .main import Settings, cli, common_options
from .output import human_bytes


def run_prune(settings: Settings, repo, *, max_unused: float, dry_run: bool) -> dict:
    from ..repository.prune import execute_prune, plan_prune, used_blobs

    repo.load_index(strict=True)
    used = used_blobs(repo)
    plan = plan_prune(repo, used, max_unused=max_unused)
    doc = {"plan": plan.to_dict()}
    if not dry_run:
        doc["result"] = execute_prune(repo, plan, used, say=settings.out.debug)
    return doc


@cli.command()
@click.option("--max-unused", default="10%", show_default=True,
              help="Repack packs with more than this share of unused data.")
@click.option("--dry-run", is_flag=True, help="Only say what would be freed.")
@click.option("--lock-wait", type=float, default=0.0, help="Seconds to wait for other processes' locks.")
@common_options
def prune(settings: Settings, max_unused: str, dry_run: bool, lock_wait: float) -> None:
    """Free space of data no snapshot needs."""
    share = float(max_unused.rstrip("%")) / 100
    repo = settings.open()
    with Lock(repo, exclusive=True, purpose="prune").acquire(lock_wait):
        doc = run_prune(settings, repo, max_unused=share, dry_run=dry_run)
    plan = doc["plan"]
    text = (f"{plan['delete_packs']} packs to delete, {plan['repack_packs']} to repack, "
            f"{plan['orphan_packs']} left over by interrupted runs; about "
            f"{human_bytes(plan['bytes_freed_estimate'])} to free")
    if not dry_run:
        result = doc["result"]
        text += f"\nprune done: {result['packs_deleted']} packs deleted, {result['packs_written']} written"
    settings.out.result(doc, text)


@cli.command()
@common_options
def repair(settings: Settings) -> None:
    """Rebuild the index from the packs (after index files were lost or damaged)."""
    from ..repository.repair import rebuild_index

    repo = settings.open()
    with Lock(repo, exclusive=True, purpose="repair").acquire():
        doc = rebuild_index(repo, say=settings.out.debug)
    text = f"index rebuilt from {doc['packs']} packs ({doc['blobs']} blobs)"
    for problem in doc["problems"]:
        text += f"\nproblem: {problem}"
    settings.out.result(doc, text)
    if doc["problems"]:
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
                 f"{len(doc['tables'])} tables changed")
    settings.out.result(doc, "\n".join(lines))
