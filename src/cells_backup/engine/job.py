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


def forget_by_config(repo: Repository, retention: dict) -> list[str]:
    """The retention step: forget (and prune, unless ``prune = false``) as `[retention]` says;
    returns the summary lines. Prune runs only when a snapshot was removed."""
    from .forget import ForgetOptions, forget_snapshots
    from .retention_keys import DEFAULT_MAX_UNUSED, group_by_from_settings, parse_share, policy_from_settings

    options = ForgetOptions(
        group_by=group_by_from_settings(retention), prune=retention.get("prune", True),
        prune_if_none_removed=False, max_unused=parse_share(retention.get("max_unused", DEFAULT_MAX_UNUSED)),
        lock_wait=60)
    result = forget_snapshots(repo, policy_from_settings(retention), options)
    steps = [f"forget: removed {plural(len(result.removed), 'snapshot')}"]
    if result.prune is not None:
        steps.append(f"prune: {plural(result.prune['result']['packs_deleted'], 'pack')} deleted")
    return steps


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
            info("retention")
            steps += forget_by_config(repo, retention)
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
            repo_size = repo.stored_bytes()
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
