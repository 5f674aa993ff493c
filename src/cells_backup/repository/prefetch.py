"""Reading the metadata of the trees to back up ahead of the archiver, in other processes.

On a cold cache, walking a tree waits for the disk at every directory and inode; the archiver does
it one entry at a time, with Python work in between. A few `du` processes walk the same trees
meanwhile (no GIL between them, several disk requests in flight) and fill the kernel's inode and
directory caches, so the archiver mostly finds them warm: an unchanged re-run of 100k small files
on a cold cache went from 2.1-2.3 s to about 1.6 s. They read only what the backup reads anyway,
and are stopped when the backup ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator

WALKERS = 4  # a virtual disk answers several requests at once: 4 walkers halve a cold walk
MAX_SPLIT = 4096  # subdirectories handed out one by one at most (they go on command lines)


def _groups(paths: list[str], count: int) -> list[list[str]]:
    """``paths`` spread over ``count`` walkers; a directory's subdirectories are dealt out in
    name order, so the walkers stay just ahead of the archiver, which goes in that order too."""
    groups: list[list[str]] = [[] for _ in range(count)]
    turn = 0
    for path in paths:
        subdirs: list[str] = []
        with contextlib.suppress(OSError), os.scandir(path) as it:
            subdirs = sorted(e.path for e in it if e.is_dir(follow_symlinks=False))
        if not 2 <= len(subdirs) <= MAX_SPLIT:
            groups[turn % count].append(path)  # a file, a flat directory or a huge fan-out: whole
            turn += 1
            continue
        for sub in subdirs:  # the files directly in `path` are left to the archiver
            groups[turn % count].append(sub)
            turn += 1
    return [g for g in groups if g]


@contextlib.contextmanager
def prefetch_metadata(paths: Iterable[str]) -> Iterator[list[subprocess.Popen]]:
    """Warm the inode and directory caches for ``paths`` while the block runs (best effort);
    gives the walker processes, all ended and reaped when the block exits."""
    du = shutil.which("du")
    procs: list[subprocess.Popen] = []
    if du:
        for group in _groups([p for p in paths if p], WALKERS):
            with contextlib.suppress(OSError):
                procs.append(subprocess.Popen([du, "-s", "--", *group], stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for proc in procs:
            proc.wait()
