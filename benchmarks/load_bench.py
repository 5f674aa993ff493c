"""Load figures (issue 8): absolute time and peak RSS of cells-backup on awkward shapes.

- `--flat N`: N files (0.5-4 KiB, text and random) in one directory: backup, unchanged re-run,
  restore;
- `--big GIB`: one file of GIB GiB, alternating 1 MiB runs of random bytes and generated text (about
  half compressible): backup, restore (the file and its restored copy are deleted afterwards);
- `--many N`: N small files in ~100-file directories (corpus.py --kind small): backup, unchanged
  re-run, restore;
- `--history S` (with `--many N`): S backups of that corpus into one repository, each after a small
  change (a new 64 KiB file, one file appended to, ten files touched), snapshot times spread one
  day apart; then, on the repository of S snapshots, with a cold page cache: list snapshots, one
  more unchanged backup, `check`, `check --read-data`, `forget --keep-last 10 --prune`, restore of
  the latest snapshot. The change files are removed from the corpus afterwards.

    python3 benchmarks/load_bench.py --flat 200000 --big 10 --many 1000000
    python3 benchmarks/load_bench.py --many 1000000 --history 100 --name load-history
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

from benchlib import HERE, PASSWORD, WORK, cells_cmd, du, log, machine, pin, save, sh, timed


def make_flat(path: str, n: int) -> None:
    os.makedirs(path)
    rnd = random.Random(8)
    words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(5000)]
    for i in range(n):
        size = rnd.randint(512, 4096)
        if i % 5 == 0:
            data = rnd.randbytes(size)
        else:
            data = b" ".join(rnd.choice(words) for _ in range(size // 5))[:size]
        with open(os.path.join(path, f"file-{i:07d}.txt"), "wb") as f:
            f.write(data)


def make_big(path: str, gib: int) -> None:
    rnd = random.Random(10)
    words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(20000)]
    text = b" ".join(rnd.choice(words) for _ in range(400_000))  # ~2.4 MB of text to slice from
    mib = 1 << 20
    with open(path, "wb") as f:
        for i in range(gib * 1024):
            if i % 2 == 0:
                f.write(os.urandom(mib))
            else:
                off = rnd.randrange(0, len(text) - mib)
                f.write(text[off:off + mib])


def run_set(C: str, env: dict, name: str, src: str, base: str, rerun: bool) -> dict:
    repo, target = os.path.join(base, f"repo-{name}"), os.path.join(base, f"restore-{name}")
    sh(f"rm -rf {repo} {target}")
    sh(f"{C} --repo {repo} init", env)
    out = {"source_bytes": du(src)}
    steps = [("backup", f"{C} --repo {repo} backup --no-cells --extra-path {src} --json")]
    if rerun:
        steps.append(("rerun", f"{C} --repo {repo} backup --no-cells --extra-path {src} --json"))
    steps.append(("restore", f"{C} --repo {repo} restore latest --target {target}"))
    for step, cmd in steps:
        log(f"{name}: {step}")
        x = timed(cmd, env)
        out[step] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu}
        log(f"{name}: {step} {x.wall:.2f} s, {x.rss_mib:.0f} MiB")
    out["repo_bytes"] = du(repo)
    out["restored_bytes"] = du(target)
    sh(f"rm -rf {repo} {target}")
    return out


def change_tree(src: str, i: int, rnd: random.Random, sample: list[str]) -> None:
    """The small change made before each history backup: one new file, one grown, ten touched."""
    changes = os.path.join(src, "_history-changes")
    os.makedirs(changes, exist_ok=True)
    with open(os.path.join(changes, f"new-{i:04d}.bin"), "wb") as f:
        f.write(rnd.randbytes(64 << 10))
    with open(os.path.join(changes, "journal.txt"), "a") as f:
        f.write(f"backup {i} {rnd.random()}\n" * 20)
    for path in rnd.sample(sample, 10):
        os.utime(path)


def run_history(C: str, env: dict, src: str, base: str, count: int) -> dict:
    repo, target = os.path.join(base, "repo-history"), os.path.join(base, "restore-history")
    sh(f"rm -rf {repo} {target} {os.path.join(src, '_history-changes')}")
    sh(f"{C} --repo {repo} init", env)
    rnd = random.Random(100)
    sample = []
    for root, _dirs, files in os.walk(src):
        sample.extend(os.path.join(root, f) for f in files[:2])
        if len(sample) >= 5000:
            break
    day = 86400
    start = time.time() - count * day
    runs = []
    for i in range(count):
        change_tree(src, i, rnd, sample)
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + i * day))
        x = timed(f"{C} --repo {repo} backup --no-cells --extra-path {src} --time {when} --json", env, cold=False)
        runs.append({"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu})
        log(f"history: backup {i + 1}/{count} {x.wall:.2f} s, {x.rss_mib:.0f} MiB")
    walls = sorted(r["wall"] for r in runs)
    out = {"files": sum(len(f) for _r, _d, f in os.walk(src)), "snapshots": count,
           "first_backup": runs[0], "later_backups": {
               "total_wall": sum(walls) - runs[0]["wall"],
               "median_wall": walls[len(walls) // 2], "max_wall": max(r["wall"] for r in runs[1:]),
               "max_rss": max(r["rss"] for r in runs[1:])},
           "repo_bytes_before_prune": du(repo)}
    steps = [("snapshots", f"{C} --repo {repo} snapshots --json > /dev/null"),
             ("unchanged_backup", f"{C} --repo {repo} backup --no-cells --extra-path {src} --json"),
             ("check", f"{C} --repo {repo} check"),
             ("check_read_data", f"{C} --repo {repo} check --read-data"),
             ("forget_prune", f"{C} --repo {repo} forget --keep-last 10 --prune"),
             ("restore_latest", f"{C} --repo {repo} restore latest --target {target}")]
    for step, cmd in steps:
        x = timed(cmd, env)
        out[step] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu}
        log(f"history: {step} {x.wall:.2f} s, {x.rss_mib:.0f} MiB")
    out["repo_bytes_after_prune"] = du(repo)
    out["source_bytes"] = du(src)
    out["restored_bytes"] = du(target)
    sh(f"rm -rf {repo} {target} {os.path.join(src, '_history-changes')}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flat", type=int, default=0)
    ap.add_argument("--big", type=int, default=0)
    ap.add_argument("--many", type=int, default=0)
    ap.add_argument("--history", type=int, default=0)
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--name", default="load")
    args = ap.parse_args()
    commit, pypath = pin(args.rev)
    C = cells_cmd(pypath)
    base = os.path.join(WORK, "loadbench")
    os.makedirs(base, exist_ok=True)
    env = dict(os.environ, CELLS_BACKUP_PASSWORD=PASSWORD)
    meta = {"command": "python3 benchmarks/load_bench.py " + " ".join(sys.argv[1:]), "commit": commit,
            "machine": machine(), "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    if args.flat:
        src = os.path.join(base, f"flat-{args.flat}")
        if not os.path.isdir(src):
            make_flat(src, args.flat)
        meta["flat"] = dict(files=args.flat, **run_set(C, env, "flat", src, base, True))
        save(args.name, meta)
    if args.big:
        src = os.path.join(base, "big")
        os.makedirs(src, exist_ok=True)
        t0 = time.time()
        make_big(os.path.join(src, f"big-{args.big}g.bin"), args.big)
        log(f"big file written in {time.time() - t0:.0f} s")
        meta["big"] = dict(gib=args.big, **run_set(C, env, "big", src, base, False))
        sh(f"rm -rf {src}")
        save(args.name, meta)
    if args.many:
        src = os.path.join(WORK, "corpus", f"small-{args.many // 1000}k")
        if not os.path.isdir(src):
            sh(f"python3 {HERE}/corpus.py --kind small --files {args.many} {src}")
        if args.history:
            meta["history"] = run_history(C, env, src, base, args.history)
        else:
            meta["many"] = dict(files=args.many, **run_set(C, env, "many", src, base, True))
        save(args.name, meta)
    print(json.dumps({k: v for k, v in meta.items() if k in ("flat", "big", "many", "history")}, indent=1))


if __name__ == "__main__":
    main()
