"""The scanner walks ahead of the archiver: batches, nesting, large files and failures keep
the two in step, and nothing is lost or left running."""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest

from cells_backup.engine.trees import BackupRequest, restore_tree, run_backup
from cells_backup.repository import fileread, scanner
from helpers import fast_repository, tree_state


def _tree(root):
    """Files and directories interleaved by name, several levels deep, small and large files."""
    for d in ("a", "a/b", "a/b/c", "m", "m/n", "z"):
        (root / d).mkdir(parents=True)
    for d in ("", "a", "a/b", "a/b/c", "m", "m/n", "z"):
        for i in range(7):
            (root / d / f"f{i}-{d.replace('/', '_')}").write_bytes(os.urandom(100 + 37 * i))
    (root / "a" / "large.bin").write_bytes(os.urandom(fileread.SMALL_FILE + 12345))
    (root / "m" / "zero").write_bytes(b"")


@pytest.fixture
def tiny_batches(monkeypatch):
    """Batches of 3 entries and a look-ahead of 4: every directory spans several batches and the
    scanner waits for the archiver all the time."""
    monkeypatch.setattr(scanner, "DIR_BATCH", 3)
    monkeypatch.setattr(scanner, "AHEAD_ENTRIES", 4)
    monkeypatch.setattr(fileread.ReadAhead, "MAX_BYTES", 2048)


def test_small_batches_and_a_short_look_ahead_round_trip(tmp_path, tiny_batches):
    src = tmp_path / "src"
    _tree(src)
    repo = fast_repository(tmp_path / "repo")
    first = run_backup(repo, BackupRequest(paths=[str(src)]))
    (src / "a" / "b" / "f3-a_b").write_bytes(b"changed")
    (src / "m" / "new").write_bytes(b"new file")
    (src / "z" / "f0-z").unlink()
    second = run_backup(repo, BackupRequest(paths=[str(src)]))
    assert second.summary["files_changed"] == 1 and second.summary["files_new"] == 1
    out = tmp_path / "out"
    restore_tree(repo, second, str(out))
    assert tree_state(out / str(src).lstrip("/")) == tree_state(src)
    assert first.tree != second.tree


def test_a_failing_archiver_stops_the_scanner_and_the_readers(tmp_path, tiny_batches, monkeypatch):
    src = tmp_path / "src"
    _tree(src)
    repo = fast_repository(tmp_path / "repo")
    calls = []
    store = scanner.Scanner.next_batch

    def fail_on_third(self):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(5, "disk gone")
        return store(self)

    monkeypatch.setattr(scanner.Scanner, "next_batch", fail_on_third)
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(OSError, match="disk gone"):
        run_backup(repo, BackupRequest(paths=[str(src)]))
    left = {t.name for t in threading.enumerate()} - before
    assert not {n for n in left if n == "scan" or n.startswith("read_")}, left
    assert not multiprocessing.active_children()  # the reader processes are stopped and reaped


def test_an_error_in_the_scanner_reaches_the_archiver(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _tree(src)
    repo = fast_repository(tmp_path / "repo")

    def broken(*_args):
        raise MemoryError("no room for the listing")

    monkeypatch.setattr(scanner.Scanner, "_scan_batch", broken)
    with pytest.raises(MemoryError, match="no room"):
        run_backup(repo, BackupRequest(paths=[str(src)]))


def test_unlistable_directory_is_reported_and_the_rest_stored(tmp_path, tiny_batches, monkeypatch):
    src = tmp_path / "src"
    _tree(src)
    scandir = os.scandir

    def refuse_m(path):  # what a directory without read permission gives a non-root user
        if str(path) == str(src / "m"):
            raise PermissionError(13, "Permission denied")
        return scandir(path)

    monkeypatch.setattr(scanner.os, "scandir", refuse_m)
    repo = fast_repository(tmp_path / "repo")
    warnings: list[str] = []
    snap = run_backup(repo, BackupRequest(paths=[str(src)]), warn=warnings.append)
    monkeypatch.undo()
    assert warnings == [f"{src / 'm'}: cannot list directory: Permission denied"]
    out = tmp_path / "out"
    restore_tree(repo, snap, str(out))
    restored = out / str(src).lstrip("/")
    assert (restored / "m").is_dir() and os.listdir(restored / "m") == []
    assert tree_state(restored / "a") == tree_state(src / "a")
    assert tree_state(restored / "z") == tree_state(src / "z")
