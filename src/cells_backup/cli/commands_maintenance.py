"""Maintenance commands: forget, prune, repair, diff."""

from __future__ import annotations

import click

from ..errors import ExitCode
from ..repository.lock import Lock
from ..wording import plural
from .main import Settings, cli, common_options
from .output import human_bytes
from .progress import also_on_line, new_progress, progress_shown


def run_prune(settings: Settings, repo, *, max_unused: float, dry_run: bool) -> dict:
    from ..repository.prune import execute_prune, plan_prune, used_blobs

    repo.load_index(strict=True)
    used = used_blobs(repo)
    plan = plan_prune(repo, used, max_unused=max_unused)
    doc = {"plan": plan.to_dict()}
    if not dry_run:
        progress = new_progress(settings.out)
        say = also_on_line(progress, settings.out.debug)
        with progress_shown(progress, "prune", show_path=True):
            doc["result"] = execute_prune(repo, plan, used, say=say, progress=progress)
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


def policy_from_options(**options) -> object:
    from ..engine.retention import RetentionPolicy

    return RetentionPolicy(**{k: v for k, v in options.items() if v not in (None, (), [])})


@cli.command()
@click.option("--keep-last", type=int, help="Keep the N newest snapshots.")
@click.option("--keep-hourly", type=int, help="Keep the newest snapshot of each of the last N hours (-1: all).")
@click.option("--keep-daily", type=int, help="... of each of the last N days.")
@click.option("--keep-weekly", type=int, help="... of each of the last N ISO weeks.")
@click.option("--keep-monthly", type=int, help="... of each of the last N months.")
@click.option("--keep-yearly", type=int, help="... of each of the last N years.")
@click.option("--keep-within", help="Keep everything within this duration of the newest snapshot (e.g. 2w3d).")
@click.option("--keep-within-daily", help="Keep one a day within this duration.")
@click.option("--keep-within-weekly", help="Keep one a week within this duration.")
@click.option("--keep-within-monthly", help="Keep one a month within this duration.")
@click.option("--keep-tag", "keep_tags", multiple=True, help="Keep snapshots with this tag (repeatable).")
@click.option("--group-by", default="host,paths", show_default=True,
              help="Apply the policy per group: host, paths, tags, installation (comma list).")
@click.option("--prune", "then_prune", is_flag=True, help="Free the space right away.")
@click.option("--max-unused", default="10%", show_default=True, help="With --prune: repack threshold.")
@click.option("--dry-run", is_flag=True, help="List what would be kept and removed, and why.")
@common_options
def forget(settings: Settings, keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly,
           keep_within, keep_within_daily, keep_within_weekly, keep_within_monthly, keep_tags, group_by,
           then_prune, max_unused, dry_run) -> None:
    """Apply a retention policy: remove snapshots the policy does not keep."""
    from ..engine.forget_plan import plan_forget

    policy = policy_from_options(
        keep_last=keep_last, keep_hourly=keep_hourly, keep_daily=keep_daily, keep_weekly=keep_weekly,
        keep_monthly=keep_monthly, keep_yearly=keep_yearly, keep_within=keep_within,
        keep_within_daily=keep_within_daily, keep_within_weekly=keep_within_weekly,
        keep_within_monthly=keep_within_monthly, keep_tags=list(keep_tags))
    doc = forget_with_policy(settings, policy, group_by=group_by, then_prune=then_prune,
                             max_unused=float(max_unused.rstrip("%")) / 100, dry_run=dry_run, plan=plan_forget)
    settings.out.result(doc, doc.pop("_text"))


def forget_with_policy(settings: Settings, policy, *, group_by: str, then_prune: bool, max_unused: float,
                       dry_run: bool, plan) -> dict:
    policy.require_not_empty()
    repo = settings.open()
    with Lock(repo, exclusive=not dry_run, purpose="forget").acquire(30):
        forget_plan = plan(repo.list_snapshots(), policy, group_by)
        removed = []
        if not dry_run:
            for snap in forget_plan.remove:
                repo.backend.delete(f"snapshots/{snap.id}")
                removed.append(snap.id)
        doc = {"plan": forget_plan.to_dict(), "removed": removed}
        text = forget_plan.render()
        if then_prune and not dry_run:
            doc["prune"] = run_prune(settings, repo, max_unused=max_unused, dry_run=False)
            text += f"\npruned: {plural(doc['prune']['result']['packs_deleted'], 'pack')} deleted"
    done = "\n(dry run: nothing removed)" if dry_run else f"\nremoved {plural(len(removed), 'snapshot')}"
    doc["_text"] = text + done
    return doc
