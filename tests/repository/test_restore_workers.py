"""Small files restored by worker processes: every file once, and none lost when a worker dies."""

from __future__ import annotations

import os

import pytest

from cells_backup.engine.trees import BackupRequest, restore_tree, run_backup
from cells_backup.repository import restore_workers
from cells_backup.repository.backends.local import LocalBackend
from cells_backup.repository.repository import Repository
from helpers import tree_state


@pytest.fixture
def stored(tmp_path):
    """A repository holding a tree of a few hundred small files in several directories."""
    src = tmp_path / "src"
    for d in range(6):
        (src / f"dir{d}").mkdir(parents=True)
        for i in range(90):
            (src / f"dir{d}" / f"f{i}").write_bytes(os.urandom(50 + i * 7))
    os.link(src / "dir0" / "f1", src / "dir5" / "link-to-f1")
    Repository.create(LocalBackend(str(tmp_path / "repo")), b"pw", kdf={"n": 1024, "r": 8, "p": 1})
    repo = Repository.open(LocalBackend(str(tmp_path / "repo")), b"pw")
    snapshot = run_backup(repo, BackupRequest(paths=[str(src)]))
    return repo, snapshot, src


def _restore(repo, snapshot, target):
    seen: list[str] = []
    result = restore_tree(repo, snapshot, str(target), on_file=lambda path, _size: seen.append(path))
    return result, seen


def test_every_file_is_restored_and_reported_once(stored, tmp_path):
    repo, snapshot, src = stored
    out = tmp_path / "out"
    result, seen = _restore(repo, snapshot, out)
    assert tree_state(out / str(src).lstrip("/")) == tree_state(src)
    assert not result.errors
    assert result.files == 6 * 90 + 1
    assert len(seen) == len(set(seen)) == 6 * 90 + 1


@pytest.mark.parametrize("how", ["dies", "raises"])
def test_a_worker_that_fails_loses_no_file(stored, tmp_path, monkeypatch, how):
    repo, snapshot, src = stored
    serve = restore_workers._serve
    marker = tmp_path / "one-worker-failed"

    def failing(restorer, conn):
        try:  # the first child to get here fails halfway through its work
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            serve(restorer, conn)
            return
        original = restorer._restore_file_safe
        count = [0]

        def restore_some(path, node):
            count[0] += 1
            if count[0] == 40:
                if how == "dies":
                    os._exit(9)
                raise RuntimeError("worker bug")
            original(path, node)

        restorer._restore_file_safe = restore_some
        serve(restorer, conn)

    monkeypatch.setattr(restore_workers, "_serve", failing)
    out = tmp_path / "out"
    result, seen = _restore(repo, snapshot, out)
    assert marker.exists()
    assert tree_state(out / str(src).lstrip("/")) == tree_state(src)
    assert not result.errors
    assert result.files == 6 * 90 + 1
    assert sorted(seen) == sorted(set(seen))  # a file redone after a failure is reported once
    if how == "raises":
        assert any("restore worker failed" in w for w in result.warnings)
