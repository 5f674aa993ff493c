"""A backend that fails while packs are being written makes the backup fail promptly with the
backend's error — never hang, never leave a snapshot."""

from __future__ import annotations

import os
import threading

import pytest

from cells_backup.engine.trees import BackupRequest, run_backup
from cells_backup.errors import BackendError
from cells_backup.repository.backends.local import LocalBackend
from cells_backup.repository.repository import Repository
from faulty_backend import Fault, FaultyBackend


@pytest.mark.parametrize("skip", [0, 1, 3])
@pytest.mark.parametrize("kind", ["permanent", "timeout"])  # timeout: slow, then fails, while blobs queue up
def test_pack_write_failure_fails_the_backup_without_hanging(tmp_path, skip, kind):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i}").write_bytes(os.urandom(1_500_000))
    local = LocalBackend(str(tmp_path / "repo"))
    Repository.create(local, b"pw", kdf={"n": 1024, "r": 8, "p": 1}, pack_size=4 * 1024 * 1024)
    faulty = FaultyBackend(local, [Fault("write", kind, match="data/", skip=skip, times=None, delay=0.3,
                                         permanent=True)])
    repo = Repository.open(faulty, b"pw")
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            run_backup(repo, BackupRequest(paths=[str(src)]))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion below
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the backup hung after the backend failed"
    assert isinstance(outcome[0], BackendError)
    snapshots = tmp_path / "repo" / "snapshots"
    assert not snapshots.exists() or not any(snapshots.iterdir())


@pytest.mark.parametrize("target", ["data/", "index/", "snapshots/"])
@pytest.mark.parametrize("kind", ["rename", "partial_write"])
def test_failed_rename_or_torn_write_leaves_a_valid_repository(tmp_path, target, kind):
    """A rename (or write) that fails while storing packs, indexes or the snapshot: the backup fails with
    the backend's error, nothing stored before is touched, and the next backup completes."""
    from cells_backup.repository.check import check_repository

    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        (src / f"f{i}").write_bytes(os.urandom(700_000))
    local = LocalBackend(str(tmp_path / "repo"))
    Repository.create(local, b"pw", kdf={"n": 1024, "r": 8, "p": 1}, pack_size=2 * 1024 * 1024)
    run_backup(Repository.open(local, b"pw"), BackupRequest(paths=[str(src)]))
    (src / "new").write_bytes(os.urandom(3_000_000))
    faulty = FaultyBackend(local, [Fault("write", kind, match=target, times=1, keep=100, permanent=True)])
    with pytest.raises(BackendError):
        run_backup(Repository.open(faulty, b"pw"), BackupRequest(paths=[str(src)]))
    repo = Repository.open(local, b"pw")
    assert check_repository(repo).ok
    assert len(repo.list_snapshots()) == 1
    snap = run_backup(Repository.open(local, b"pw"), BackupRequest(paths=[str(src)]))
    assert not snap.partial
    assert check_repository(Repository.open(local, b"pw"), read_data=True).ok


@pytest.mark.parametrize("which", ["file", "directory"])
@pytest.mark.parametrize("target", ["data/", "index/", "snapshots/"])
def test_failed_fsync_fails_the_backup_and_leaves_a_valid_repository(tmp_path, monkeypatch, which, target):
    """The disk reports an I/O error on fsync (of the new file, or of its directory after the
    rename): the write is not durable, so the backup must fail with that error, leave no temporary
    file, keep what was stored before, and the next backup must complete."""
    from cells_backup.repository.backends import local as local_module
    from cells_backup.repository.check import check_repository

    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}").write_bytes(os.urandom(700_000))
    repo_dir = tmp_path / "repo"
    local = LocalBackend(str(repo_dir))
    Repository.create(local, b"pw", kdf={"n": 1024, "r": 8, "p": 1}, pack_size=2 * 1024 * 1024)
    run_backup(Repository.open(local, b"pw"), BackupRequest(paths=[str(src)]))
    (src / "new").write_bytes(os.urandom(3_000_000))

    real_fsync = os.fsync
    failed: list[str] = []

    def failing_fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        is_dir = os.path.isdir(path)
        if not failed and target.rstrip("/") in path.split(os.sep) and is_dir == (which == "directory"):
            failed.append(path)
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(local_module.os, "fsync", failing_fsync)
    with pytest.raises(BackendError, match="Input/output error"):
        run_backup(Repository.open(LocalBackend(str(repo_dir)), b"pw"), BackupRequest(paths=[str(src)]))
    monkeypatch.undo()
    assert failed
    assert not list(repo_dir.rglob("*.tmp")), "temporary files were left behind"
    repo = Repository.open(LocalBackend(str(repo_dir)), b"pw")
    assert check_repository(repo).ok
    assert len(repo.list_snapshots()) == 1
    snap = run_backup(Repository.open(LocalBackend(str(repo_dir)), b"pw"), BackupRequest(paths=[str(src)]))
    assert not snap.partial
    assert check_repository(Repository.open(LocalBackend(str(repo_dir)), b"pw"), read_data=True).ok
