"""Forget (and optionally prune): the one workflow behind `forget` and the retention step of `run`.

Under the repository lock: plan which snapshots the policy keeps (`forget_plan.plan_forget`),
remove the others, then free the space they held. The caller renders the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..repository.lock import Lock
from ..repository.progress import Progress
from ..repository.repository import Repository
from ..wording import plural
from .forget_plan import DEFAULT_GROUP_BY, ForgetPlan, plan_forget
from .retention import RetentionPolicy

Pruner = Callable[[Repository, float], dict]  # (repo, max_unused) -> {"plan": ..., "result": ...}


def prune_repository(repo: Repository, *, max_unused: float, dry_run: bool = False,
                     say: Callable[[str], None] | None = None, progress: Progress | None = None) -> dict:
    """Drop the data no snapshot needs; the caller holds the exclusive lock. Returns the plan
    (and, unless ``dry_run``, what was done) as `prune --json` shows it."""
    from ..repository.prune import execute_prune, plan_prune, used_blobs

    repo.load_index(strict=True)
    used = used_blobs(repo)
    plan = plan_prune(repo, used, max_unused=max_unused)
    doc: dict = {"plan": plan.to_dict()}
    if not dry_run:
        doc["result"] = execute_prune(repo, plan, used, say=say, progress=progress)
    return doc


def _prune_quietly(repo: Repository, max_unused: float) -> dict:
    return prune_repository(repo, max_unused=max_unused)


@dataclass
class ForgetOptions:
    """How to forget: `prune` frees the space at once (never on a dry run); `prune_if_none_removed`
    False skips that when the policy removed nothing (what `run` does every night)."""

    group_by: str = DEFAULT_GROUP_BY
    dry_run: bool = False
    prune: bool = False
    prune_if_none_removed: bool = True
    max_unused: float = 0.1
    lock_wait: float = 30.0


@dataclass
class ForgetResult:
    plan: ForgetPlan
    dry_run: bool
    removed: list[str] = field(default_factory=list)
    prune: dict | None = None  # prune_repository's document, when it ran

    def to_dict(self) -> dict:
        """The JSON of `forget --json`."""
        doc = {"plan": self.plan.to_dict(), "removed": list(self.removed)}
        if self.prune is not None:
            doc["prune"] = self.prune
        return doc

    def render(self) -> str:
        """The text of `forget`: the plan, what prune deleted, what was removed."""
        text = self.plan.render()
        if self.prune is not None:
            text += f"\npruned: {plural(self.prune['result']['packs_deleted'], 'pack')} deleted"
        if self.dry_run:
            return text + "\n(dry run: nothing removed)"
        return text + f"\nremoved {plural(len(self.removed), 'snapshot')}"


def forget_snapshots(repo: Repository, policy: RetentionPolicy, options: ForgetOptions,
                     *, pruner: Pruner = _prune_quietly) -> ForgetResult:
    """Apply ``policy`` to the repository's snapshots; ``pruner`` runs the prune (the CLI's
    shows its progress line). Refuses an empty policy before taking any lock."""
    policy.require_not_empty()
    with Lock(repo, exclusive=not options.dry_run, purpose="forget").acquire(options.lock_wait):
        plan = plan_forget(repo.list_snapshots(), policy, options.group_by)
        result = ForgetResult(plan=plan, dry_run=options.dry_run)
        if options.dry_run:
            return result
        for snap in plan.remove:
            repo.remove_snapshot(snap)
            result.removed.append(snap.id)
        if options.prune and (result.removed or options.prune_if_none_removed):
            result.prune = pruner(repo, options.max_unused)
    return result
