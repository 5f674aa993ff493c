"""Reading the metadata of the trees to back up ahead of the archiver, in other processes.

On a cold cache, walking a tree waits for the disk at every directory and inode; the archiver does
it one entry at a time, with Python work in between. A few `du` processes walk the same trees
meanwhile (no GIL between them, several disk requests in flight) and fill the kernel's inode and
directory caches, so the archiver mostly finds them warm: an unchanged re-run of 100k small files
on a cold cache went from 2.1-2.3 s to about 1.6 s. They read only what the backup reads anyway,
and are stopped when the backup ends. When a progress line is shown, `find | awk` pairs walk
instead and also count the files and bytes to back up, for the line's totals.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator

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
def prefetch_metadata(paths: Iterable[str], on_counted: Callable[[int, int], None] | None = None,
                      ) -> Iterator[list[subprocess.Popen]]:
    """Warm the inode and directory caches for ``paths`` while the block runs (best effort);
    gives the walker processes, all ended and reaped when the block exits.

    With ``on_counted`` (a progress line is shown), the walkers also count the regular files and
    their bytes, which the archiver's own scanner learns only a few thousand entries ahead of it;
    ``on_counted(files, bytes)`` is called once every walk is done, from another thread.
    """
    paths = [p for p in paths if p]
    procs: list[subprocess.Popen] = []
    counter: threading.Thread | None = None
    du, find, awk = shutil.which("du"), shutil.which("find"), shutil.which("awk")
    if on_counted is not None and find and awk:
        pairs = _counting_walkers(find, awk, [os.path.abspath(p) for p in paths])
        procs = [proc for pair in pairs for proc in pair]
        counter = threading.Thread(target=_add_counts, args=(pairs, on_counted), daemon=True)
        counter.start()
    elif du:
        for group in _groups(paths, WALKERS):
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
        if counter is not None:
            counter.join()


# Sums the sizes find prints, one a line: the numbers, not a million lines, come back to Python.
SUM_SIZES = '{ n++; s += $1 } END { printf "%d %d\\n", n, s }'


def _counting_walkers(find: str, awk: str, paths: list[str]) -> list[tuple[subprocess.Popen, subprocess.Popen]]:
    """`find | awk` pairs over the same groups as the du walkers, and one more for the files directly
    in each directory split into its subdirectories: every file under ``paths`` is counted once."""
    groups = _groups(paths, WALKERS)
    dealt = {path for group in groups for path in group}
    walks = [(group, []) for group in groups]
    walks += [([path], ["-mindepth", "1", "-maxdepth", "1"]) for path in paths if path not in dealt]
    pairs = []
    for starts, depth in walks:
        try:
            walker = subprocess.Popen([find, *starts, *depth, "-type", "f", "-printf", "%s\\n"],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError:
            continue
        try:
            adder = subprocess.Popen([awk, SUM_SIZES], stdin=walker.stdout, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        except OSError:
            walker.kill()
            walker.wait()
            continue
        finally:
            walker.stdout.close()  # the adder holds it now
        pairs.append((walker, adder))
    return pairs


def _add_counts(pairs: list[tuple[subprocess.Popen, subprocess.Popen]],
                on_counted: Callable[[int, int], None]) -> None:
    files = size = 0
    for walker, adder in pairs:
        out = adder.communicate()[0]
        if walker.wait() < 0 or adder.returncode != 0:  # ended with the backup: the counts are partial
            return
        n, _, total = out.decode().partition(" ")
        files += int(n)
        size += int(total)
    on_counted(files, size)
