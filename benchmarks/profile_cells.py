#!/usr/bin/env python3
"""Where cells-backup spends its time: cProfile of first backup, unchanged re-run, restore.

    python3 benchmarks/profile_cells.py SOURCE_TREE [--work DIR] [--top 25]

The cells_backup package found on sys.path is profiled; to profile the same
commit as a benchmark run, put its pinned copy first:
``PYTHONPATH=benchmarks/work/pinned/<commit>/src python3 benchmarks/profile_cells.py ...``.

Runs, each in a fresh interpreter: ``init`` (not profiled), first backup,
unchanged re-run and full restore of SOURCE_TREE, with cProfile enabled in the
main thread *and* in every worker thread (``threading.Thread.run`` is wrapped),
and prints for each command the top functions by own time, split into the main
thread and the worker threads, plus a cumulative view of the main thread.
The ``.prof`` files (pstats format, threads merged) are kept in the work
directory for ``python3 -m pstats`` or snakeviz.

cProfile adds a roughly constant cost per Python function call, so
call-heavy code (the small-files case) looks slower than it is; compare the
profiled wall time with an unprofiled run (printed at the end of each section).

Internal mode: ``profile_cells.py --one NAME OUT.prof -- ARGS...`` profiles one
``cells-backup ARGS...`` in this process.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import subprocess
import sys
import threading
import time

PASSWORD = "benchmark-password-not-secret"


def profile_one(out: str, argv: list[str]) -> int:
    from cells_backup.cli.main import main as cli_main

    workers: list[cProfile.Profile] = []
    lock = threading.Lock()
    orig_run = threading.Thread.run

    def run(self):  # type: ignore[no-untyped-def]
        prof = cProfile.Profile()
        with lock:
            workers.append(prof)
        prof.enable()
        try:
            orig_run(self)
        finally:
            prof.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    main_prof = cProfile.Profile()
    code = 0
    t0 = time.perf_counter()
    main_prof.enable()
    try:
        cli_main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        main_prof.disable()
    wall = time.perf_counter() - t0
    main_prof.dump_stats(out + ".main")
    if workers:
        ws = pstats.Stats(workers[0])
        for p in workers[1:]:
            ws.add(p)
        ws.dump_stats(out + ".workers")
    merged = pstats.Stats(out + ".main")
    if workers:
        merged.add(out + ".workers")
    merged.dump_stats(out)
    with open(out + ".wall", "w") as f:
        f.write(f"{wall:.3f} {len(workers)}\n")
    return code


def top(path: str, sort: str, n: int) -> str:
    buf = io.StringIO()
    st = pstats.Stats(path, stream=buf)
    st.strip_dirs().sort_stats(sort).print_stats(n)
    text = buf.getvalue()
    # Keep the table only (drop the header lines naming files).
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("ncalls"):
            return "\n".join(lines[i:]).rstrip()
    return text.rstrip()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        out = sys.argv[3]  # sys.argv[2] names the step, for ps listings
        argv = sys.argv[5:] if sys.argv[4] == "--" else sys.argv[4:]
        return profile_one(out, argv)

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="tree to back up (e.g. a corpus made by corpus.py)")
    ap.add_argument("--work", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "work", "profile"))
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--steps", default="backup1,backup2,restore")
    args = ap.parse_args()
    src = os.path.abspath(args.source)
    work = os.path.abspath(args.work)
    repo = os.path.join(work, "repo")
    target = os.path.join(work, "restore")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env = dict(os.environ, CELLS_BACKUP_PASSWORD=PASSWORD)
    env.pop("CELLS_BACKUP_PASSWORD_FILE", None)
    cli = [sys.executable, "-m", "cells_backup"]  # the one on sys.path: PYTHONPATH can pin a version
    subprocess.run([*cli, "--repo", repo, "init", "-q"], check=True, env=env)
    steps = {
        "backup1": ["--repo", repo, "backup", "--no-cells", "--extra-path", src, "-q"],
        "backup2": ["--repo", repo, "backup", "--no-cells", "--extra-path", src, "-q"],
        "restore": ["--repo", repo, "restore", "latest", "--target", target, "-q"],
    }
    wanted = [s.strip() for s in args.steps.split(",")]
    if "backup2" in wanted and "backup1" not in wanted:
        wanted.insert(0, "backup1")
    for step in ["backup1", "backup2", "restore"]:
        if step not in wanted:
            continue
        shutil.rmtree(target, ignore_errors=True)
        out = os.path.join(work, f"{step}.prof")
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one", step, out, "--", *steps[step]], check=True, env=env
        )
        wall_profiled = time.perf_counter() - t0
        with open(out + ".wall") as f:
            inner, nthreads = f.read().split()
        print(f"\n## {step}: {wall_profiled:.2f} s wall under cProfile ({inner} s in the CLI), {nthreads} threads")
        print("\n### main thread, by own time\n")
        print(top(out + ".main", "tottime", args.top))
        if os.path.exists(out + ".workers"):
            print("\n### worker threads (merged), by own time\n")
            print(top(out + ".workers", "tottime", args.top))
        print("\n### main thread, by cumulative time\n")
        print(top(out + ".main", "cumulative", args.top))
    # Unprofiled timings of the same steps, for scale.
    repo2 = os.path.join(work, "repo-ref")
    subprocess.run([*cli, "--repo", repo2, "init", "-q"], check=True, env=env)
    ref = {}
    for step in ["backup1", "backup2", "restore"]:
        if step not in wanted:
            continue
        shutil.rmtree(target, ignore_errors=True)
        argv = [a if a != repo else repo2 for a in steps[step]]
        t0 = time.perf_counter()
        subprocess.run([*cli, *argv], check=True, env=env)
        ref[step] = time.perf_counter() - t0
    print("\nUnprofiled wall time: " + ", ".join(f"{k} {v:.2f} s" for k, v in ref.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
