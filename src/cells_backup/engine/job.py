"""`run`: the nightly job — backup, retention, check — with one summary and one exit code."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import CellsBackupError, ExitCode
from ..repository.repository import Repository
from ..wording import plural
from .monitoring import Notifier, RunSummary, report_run


@dataclass
class JobOutcome:
    summary: RunSummary
    exit_code: int
    steps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def retention_policy(section: dict):
    from .retention import RetentionPolicy

    keys = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within")
    options = {k: section[k] for k in keys if k in section}
    tags = section.get("keep_tag")
    if tags:
        options["keep_tags"] = [tags] if isinstance(tags, str) else list(tags)
    return RetentionPolicy(**options)


def run_job(
    config: dict,
    open_repo: Callable[[], Repository],
    backup: Callable[[Repository], object],
    *,
    info: Callable[[str], None] = lambda _m: None,
) -> JobOutcome:
    """``backup(repo)`` returns the installation backup result (snapshot, downtime)."""
    started = time.time()
    notifier = Notifier.from_config(config)
    warnings = list(notifier.start())
    steps: list[str] = []
    status, message, errors = "ok", "", []
    snapshot = None
    downtime = None
    check_ok = None
    repo: Repository | None = None
    try:
        repo = open_repo()
        info("backup")
        result = backup(repo)
        snapshot, downtime = result.snapshot, result.downtime
        steps.append(f"backup: snapshot {snapshot.short_id}")
        if snapshot.partial:
            status = "partial"
            errors += [f"{e['path']}: {e['error']}" for e in snapshot.errors[:20]]
        if getattr(result, "start_failure", None):  # the snapshot is saved, but Cells may be down
            status, message = "failed", result.start_failure
            errors.append(result.start_failure)
        retention = config.get("retention")
        if retention:
            from ..repository.lock import Lock
            from .forget_plan import plan_forget

            info("retention")
            policy = retention_policy(retention)
            with Lock(repo, exclusive=True, purpose="forget").acquire(60):
                plan = plan_forget(repo.list_snapshots(), policy, retention.get("group_by", "host,paths"))
                for snap in plan.remove:
                    repo.backend.delete(f"snapshots/{snap.id}")
                steps.append(f"forget: removed {plural(len(plan.remove), 'snapshot')}")
                if retention.get("prune", True) and plan.remove:
                    from ..repository.prune import execute_prune, plan_prune, used_blobs

                    repo.load_index(strict=True)
                    used = used_blobs(repo)
                    done = execute_prune(repo, plan_prune(repo, used), used)
                    steps.append(f"prune: {plural(done['packs_deleted'], 'pack')} deleted")
        check = config.get("check")
        if check:
            from ..repository.check import check_repository
            from ..repository.lock import Lock

            info("check")
            with Lock(repo, exclusive=False, purpose="check").acquire(60):
                report = check_repository(repo, read_data=bool(check.get("read_data")),
                                          subset=check.get("read_data_subset"))
            check_ok = report.ok
            steps.append("check: ok" if report.ok else f"check: {plural(len(report.errors), 'error')}")
            if not report.ok:
                status = "failed"
                errors += [f"{e['object']}: {e['error']}" for e in report.errors[:20]]
    except CellsBackupError as exc:
        status, message = "failed", str(exc)
        errors.append(str(exc))
    snapshot_count = repo_size = None
    if repo is not None:
        try:
            snapshot_count = len(repo.snapshot_ids())
            repo_size = sum(size for _name, size in repo.backend.list(""))
        except CellsBackupError:
            pass
    summary = RunSummary(
        status=status, started=started, finished=time.time(),
        bytes_added=int(snapshot.summary.get("data_stored", 0)) if snapshot else None,
        snapshot_id=snapshot.id if snapshot else None, snapshot_count=snapshot_count, repository_size=repo_size,
        downtime=downtime, check_ok=check_ok, errors=errors,
        message=message or "; ".join(steps),
    )
    warnings += report_run(config, summary, notifier)
    code = {"ok": ExitCode.OK, "partial": ExitCode.PARTIAL}.get(status, ExitCode.ERROR)
    return JobOutcome(summary, code, steps, warnings)
