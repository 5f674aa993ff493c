"""Small files read and encoded by worker processes during a backup: every file stored once and
bit-exact, duplicates stored once across workers, and nothing lost when a worker dies, fails, or
knows less than the archiver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from cells_backup.engine.trees import BackupRequest, restore_tree, run_backup
from cells_backup.repository import archiver, fileread, read_workers
from cells_backup.repository.fileread import FAILED, GONE, LARGE, SMALL, BlobCoder, read_small
from cells_backup.repository.writer import BlobWriter
from helpers import cli_env, fast_repository, random_files, run_cli, tree_state


@pytest.fixture
def small_tree(tmp_path):
    """Several hundred small files (some the same content), a hardlink, an empty file, a large file."""
    src = tmp_path / "src"
    random_files(src, dirs=5, per_dir=80, size=40, step=11)
    for d in range(5):
        for i in range(20):  # the same 20 contents in every directory: read by different workers
            (src / f"dir{d}" / f"same{i}").write_bytes(b"shared content %d " % i * 50)
    (src / "dir2" / "empty").write_bytes(b"")
    (src / "dir3" / "large.bin").write_bytes(bytes(fileread.SMALL_FILE + 4321))  # one chunk: no cut in zeros
    return src


def _round_trip(repo, src, tmp_path, **kwargs):
    snapshot = run_backup(repo, BackupRequest(paths=[str(src)]), **kwargs)
    out = tmp_path / f"out-{snapshot.id[:8]}"
    restore_tree(repo, snapshot, str(out))
    assert tree_state(out / str(src).lstrip("/")) == tree_state(src)
    return snapshot


@pytest.mark.parametrize("processes", [2, 0], ids=["worker-processes", "reader-threads"])
def test_tree_round_trips_and_duplicates_are_stored_once(small_tree, tmp_path, monkeypatch, processes):
    monkeypatch.setattr(archiver, "READ_PROCESSES", processes)
    monkeypatch.setattr(read_workers, "BATCH_FILES", 7)  # many batches, every directory split
    monkeypatch.setattr(read_workers, "SENT_MAX", 3)  # readers forget what they sent: the archiver dedups
    repo = fast_repository(tmp_path / "repo")
    snapshot = _round_trip(repo, small_tree, tmp_path)
    assert snapshot.summary["files_new"] == 5 * 100 + 2  # and the hardlink, its second name not "new"
    # Every blob stored once: 400 random files, 20 shared contents, the large file's one chunk, and
    # a tree per directory (the tree's path from the root, and its 5 subdirectories).
    assert snapshot.summary["blobs_new"] == 400 + 20 + 1 + len(small_tree.parts) + 5


def test_an_incremental_run_reads_only_new_and_changed_files(small_tree, tmp_path):
    repo = fast_repository(tmp_path / "repo")
    _round_trip(repo, small_tree, tmp_path)
    (small_tree / "dir1" / "f3").write_bytes(b"changed")
    (small_tree / "dir1" / "new").write_bytes(b"new file")
    second = _round_trip(repo, small_tree, tmp_path)
    assert second.summary["files_changed"] == 1 and second.summary["files_new"] == 1


@pytest.mark.parametrize("how", ["dies", "raises"])
def test_a_worker_that_fails_loses_no_file(small_tree, tmp_path, monkeypatch, how):
    marker = tmp_path / "one-worker-failed"
    read = read_workers.read_small
    count = [0]

    def failing(path, *args, **kwargs):
        count[0] += 1
        if count[0] == 30:  # in the first worker to get here, at its 30th file
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return read(path, *args, **kwargs)
            if how == "dies":
                os._exit(9)
            raise RuntimeError("bug in a worker")
        return read(path, *args, **kwargs)

    monkeypatch.setattr(read_workers, "read_small", failing)
    repo = fast_repository(tmp_path / "repo")
    warnings: list[str] = []
    snapshot = _round_trip(repo, small_tree, tmp_path, warn=warnings.append)
    assert marker.exists()
    assert not warnings and not snapshot.partial
    assert snapshot.summary["total_files"] == 5 * 100 + 3


def test_workers_that_know_less_than_the_archiver_cost_a_second_read(small_tree, tmp_path, monkeypatch):
    """A worker's index is the one at its fork: a blob it takes for stored, which the archiver
    does not have, is read again by the archiver (here every blob, as if all were known)."""
    monkeypatch.setattr(BlobWriter, "known", lambda self, blob: True)
    repo = fast_repository(tmp_path / "repo")
    _round_trip(repo, small_tree, tmp_path)


def test_every_worker_is_reaped_and_no_reader_thread_is_left(small_tree, tmp_path, monkeypatch):
    monkeypatch.setattr(read_workers, "BATCH_FILES", 5)
    started: list[read_workers.ReadWorkers] = []
    init = read_workers.ReadWorkers.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(read_workers.ReadWorkers, "__init__", recording)
    before = {t.name for t in threading.enumerate()}
    repo = fast_repository(tmp_path / "repo")
    _round_trip(repo, small_tree, tmp_path)
    assert started and all(c.process.exitcode is not None for w in started for c in w._children)
    assert not {t.name for t in threading.enumerate()} - before - {"lock-refresh"}


def _coder() -> BlobCoder:
    return BlobCoder(blob_id=lambda data: data[:4].ljust(32, b"."), encode=lambda data: b"E" + data,
                     known=lambda blob: False, cut=lambda data: [data])


def test_read_small_answers_for_what_is_no_longer_a_small_file(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"abc")
    answer = read_small(str(small), _coder(), meta=True)
    assert answer[0] == SMALL and answer[4] == 3 and answer[5] == [(b"abc".ljust(32, b"."), 3, b"Eabc")]
    assert os.stat_result(answer[1]).st_ino == os.stat(small).st_ino
    large = tmp_path / "large"
    large.write_bytes(b"x" * fileread.SMALL_FILE)
    assert read_small(str(large), _coder(), meta=True)[0] == LARGE
    assert read_small(str(tmp_path / "missing"), _coder(), meta=True) == (GONE,)
    os.mkfifo(tmp_path / "fifo")  # put in a file's place: answered at once, not waited on
    assert read_small(str(tmp_path / "fifo"), _coder(), meta=True) == (FAILED,)
    os.symlink(small, tmp_path / "link")
    assert read_small(str(tmp_path / "link"), _coder(), meta=True) == (FAILED,)
    assert read_small(str(tmp_path), _coder(), meta=True) == (FAILED,)


def test_a_known_blob_is_not_encoded_twice_by_one_reader(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(b"same")
    sent: set[bytes] = set()
    first = read_small(str(tmp_path / "a"), _coder(), meta=False, sent=sent)
    second = read_small(str(tmp_path / "b"), _coder(), meta=False, sent=sent)
    assert first[5][0][2] == b"Esame" and second[5][0][2] is None
    assert first[1] is None and first[2] is None  # meta=False: the caller has stat and xattrs


def test_readers_ask_the_kernel_to_read_ahead(tmp_path, monkeypatch):
    """A batch's files are hinted before any is read (cold disks answer them together), and a
    large file before the archiver streams it."""
    hinted: list[tuple[int, int]] = []
    fadvise = os.posix_fadvise
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice: (
        hinted.append((length, advice)), fadvise(fd, offset, length, advice)))
    (tmp_path / "small").write_bytes(b"abc")
    fd = read_workers._open_ahead(str(tmp_path / "small"))
    assert hinted == [(fileread.SMALL_FILE, os.POSIX_FADV_WILLNEED)]
    assert read_small(str(tmp_path / "small"), _coder(), meta=True, opened=fd)[0] == SMALL
    (tmp_path / "large").write_bytes(bytes(fileread.SMALL_FILE))
    assert read_small(str(tmp_path / "large"), _coder(), meta=False)[0] == LARGE
    assert hinted[-1] == (fileread.HINT_BYTES, os.POSIX_FADV_WILLNEED)


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def test_ctrl_c_stops_the_backup_and_its_readers_cleanly(tmp_path):
    """Ctrl-C reaches the whole process group, readers included: one line, exit 130, no reader
    left running, and the repository still passes check."""
    src = tmp_path / "src"
    for d in range(40):
        (src / f"d{d}").mkdir(parents=True)
        for i in range(250):
            (src / f"d{d}" / f"f{i}").write_bytes(os.urandom(2000))
    repo = str(tmp_path / "repo")
    env = cli_env(PATH="/nonexistent")  # no du walkers: the only children are the readers
    run_cli("--repo", repo, "init", "--kdf-cost", "10", env=env, check=True)
    proc = subprocess.Popen([sys.executable, "-m", "cells_backup", "--repo", repo, "backup", "--no-cells",
                             "--extra-path", str(src)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(_children_of(proc.pid)) < read_workers.READ_PROCESSES and proc.poll() is None:
        assert time.monotonic() < deadline, "the reader processes never started"
        time.sleep(0.01)
    readers = _children_of(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.decode().strip().splitlines()[-1] == "cells-backup: interrupted"
    assert "Traceback" not in err.decode()
    assert not [pid for pid in readers if os.path.exists(f"/proc/{pid}")]
    run_cli("--repo", repo, "check", env=env, check=True)


@pytest.mark.parametrize("becomes", ["directory", "symlink", "fifo", "gone"])
def test_a_file_replaced_after_the_listing_is_reported_or_stored_as_it_now_is(small_tree, tmp_path, monkeypatch,
                                                                             becomes):
    """The scanner lists a new file and does not stat it; by the time its reader opens it, it is
    something else: no crash, the rest of the tree stored, the change stored or reported."""
    victim = small_tree / "dir2" / "f5"
    open_ahead = read_workers._open_ahead

    def replacing(path):
        if path == str(victim) and os.path.isfile(victim) and not os.path.islink(victim):
            os.unlink(victim)
            if becomes == "directory":
                os.mkdir(victim)
            elif becomes == "symlink":
                os.symlink("f6", victim)
            elif becomes == "fifo":
                os.mkfifo(victim)
        return open_ahead(path)

    monkeypatch.setattr(read_workers, "_open_ahead", replacing)
    repo = fast_repository(tmp_path / "repo")
    warnings: list[str] = []
    snapshot = run_backup(repo, BackupRequest(paths=[str(small_tree)]), warn=warnings.append)
    out = tmp_path / "out"
    restore_tree(repo, snapshot, str(out))
    restored = out / str(small_tree).lstrip("/")
    expected = tree_state(small_tree)
    if becomes == "directory":
        assert warnings == [f"{victim}: became a directory during the backup; left out of this snapshot"]
        assert snapshot.partial
        del expected["dir2/f5"]
    else:
        assert not warnings
    assert tree_state(restored) == expected
