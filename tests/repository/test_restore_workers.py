"""Small files restored by worker processes: every file once, and none lost when a worker dies."""

from __future__ import annotations

import os

import pytest

from cells_backup.engine.trees import BackupRequest, restore_tree, run_backup
from cells_backup.repository import restore_workers
from helpers import fast_repository, random_files, tree_state


@pytest.fixture
def stored(tmp_path):
    """A repository holding a tree of a few hundred small files in several directories."""
    src = tmp_path / "src"
    random_files(src, dirs=6, per_dir=90, size=50, step=7)
    repo = fast_repository(tmp_path / "repo")
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

    def failing(conn, restorer):
        try:  # the first child to get here fails halfway through its work
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            serve(conn, restorer)
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
        serve(conn, restorer)

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
