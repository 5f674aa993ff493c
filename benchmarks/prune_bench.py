"""Prune benchmark (issue 6): `forget --keep-daily 7 --prune` after 30 daily snapshots.

A copy of a corpus is mutated ~3 % per "day" (`corpus.py --mutate 3 --seed DAY`, untimed) and
backed up once a day with an explicit snapshot time by cells-backup and by restic (30 days of
2026-10). Then each repository is copied (untimed) and `forget --keep-daily 7 --prune` is timed
on the copy, `--runs` times, tools alternating first.

    python3 benchmarks/prune_bench.py --runs 3 --corpus mixed-200m
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchlib import HERE, PASSWORD, WORK, cells_cmd, du, log, machine, med, pin, save, sh, timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--pct", type=float, default=3)
    ap.add_argument("--corpus", default="mixed-200m")
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--name", default="prune")
    args = ap.parse_args()
    commit, pypath = pin(args.rev)
    C = cells_cmd(pypath)
    base = os.path.join(WORK, "prunebench")
    sh(f"rm -rf {base}")
    os.makedirs(base)
    src = os.path.join(base, "src")
    corpus = os.path.join(WORK, "corpus", args.corpus)
    if not os.path.isdir(corpus) and args.corpus.startswith("mixed-") and args.corpus.endswith("m"):
        log(f"generating corpus {args.corpus}")  # the same generator and seed as run.py's corpora
        sh(f"python3 {HERE}/corpus.py --kind mixed --size-mib {args.corpus[6:-1]} {corpus}")
    sh(f"cp -a {corpus} {src}")
    R, RR = os.path.join(base, "repo"), os.path.join(base, "restic")
    env = dict(os.environ, CELLS_BACKUP_PASSWORD=PASSWORD, RESTIC_PASSWORD=PASSWORD,
               RESTIC_CACHE_DIR=os.path.join(base, "restic-cache"))
    started = time.time()
    meta = {"command": "python3 benchmarks/prune_bench.py " + " ".join(sys.argv[1:]), "commit": commit,
            "machine": machine(), "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "corpus": args.corpus}
    sh(f"{C} --repo {R} init && restic -q -r {RR} init", env)
    for day in range(1, args.days + 1):
        if day > 1:
            sh(f"python3 {HERE}/corpus.py --mutate {args.pct} --seed {day} {src}")
        sh(f"{C} --repo {R} backup -q --no-cells --extra-path {src} --time 2026-10-{day:02d}T03:00:00", env)
        sh(f"restic -q -r {RR} backup {src} --time '2026-10-{day:02d} 03:00:00'", env)
    meta["setup_seconds"] = time.time() - started
    meta["repo_bytes_before"] = {"ours": du(R), "restic": du(RR)}
    log(f"{args.days} snapshots each in {meta['setup_seconds']:.0f} s; repos {meta['repo_bytes_before']}")
    runs = []
    for r in range(args.runs):
        res = {}
        for tool in (["ours", "restic"] if r % 2 == 0 else ["restic", "ours"]):
            copy = os.path.join(base, f"copy-{tool}")
            sh(f"rm -rf {copy} {base}/cache-copy && cp -a {R if tool == 'ours' else RR} {copy}")
            if tool == "ours":
                cmd = f"{C} --repo {copy} forget --keep-daily 7 --prune"
            else:
                sh(f"cp -a {base}/restic-cache {base}/cache-copy")
                cmd = f"restic -q -r {copy} forget --keep-daily 7 --prune"
            x = timed(cmd, dict(env, RESTIC_CACHE_DIR=f"{base}/cache-copy"))
            snaps = (len(json.loads(sh(f"{C} --repo {copy} snapshots --json", env))) if tool == "ours" else
                     len(json.loads(sh(f"restic -r {copy} snapshots --json", env))))
            res[tool] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu, "repo_bytes_after": du(copy),
                         "snapshots_after": snaps}
            sh(f"rm -rf {copy}")
        runs.append(res)
        log(f"run {r + 1}: " + json.dumps(res))
        meta["runs"] = runs
        save(args.name, meta)
    meta["loadavg_end"] = os.getloadavg()
    meta["elapsed"] = time.time() - started
    path = save(args.name, meta)
    o, t = med([r["ours"]["wall"] for r in runs]), med([r["restic"]["wall"] for r in runs])
    ro, rt = med([r["ours"]["rss"] for r in runs]), med([r["restic"]["rss"] for r in runs])
    print(f"prune ours {o:.2f}s restic {t:.2f}s ratio {o / t:.2f}x; rss {ro:.0f} vs {rt:.0f} MiB")
    log(f"saved {path}")


if __name__ == "__main__":
    main()
