"""Whole-installation benchmark (issue 3): files + database of a generated medium installation.

A sample installation (cells_backup.cells.sample) whose pydio.json points at a private MariaDB
filled like db_bench.py (~1M rows), with the mixed-1024m corpus copied into datasource pydiods1 and
part of small-100k into the external datasource's folder (`archive` under the external parent
folder; cells-backup backs up only the datasources' bucket folders there, restic and the guide's
`cp -a` take the whole parent). Per repetition, same run:

- first backup: `cells-backup backup --cells-dir` vs restic (`restic backup` of the working dir and
  the external folder, then `mariadb-dump | restic backup --stdin`) vs the admin guide's method
  (`cp -a` of the folders + `mariadb-dump --single-transaction > file`);
- unchanged re-run: cells-backup's second backup vs the guide's method again (it has no
  incremental mode) and restic's second run;
- downtime of an unchanged installation: `backup --stop-command true --start-command true` reports
  how long Cells was stopped (`downtime`); the guide's method stops Cells for all of its copy and
  dump.

    python3 benchmarks/install_bench.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchlib import PASSWORD, WORK, cells_cmd, du, log, machine, med, pin, save, sh, timed
from db_bench import DB, exact_rows, fill_db, start_db


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--big-rows", type=int, default=300_000)
    ap.add_argument("--index-rows", type=int, default=700_000)
    ap.add_argument("--small-dirs", type=int, default=500, help="top-level dirs of small-100k to copy")
    ap.add_argument("--mixed", default="mixed-1024m")
    ap.add_argument("--small", default="small-100k")
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--name", default="install")
    args = ap.parse_args()

    commit, pypath = pin(args.rev)
    C = cells_cmd(pypath)
    base = os.path.join(WORK, "installbench")
    sh(f"rm -rf {base}")
    os.makedirs(base)
    env = dict(os.environ, CELLS_BACKUP_PASSWORD=PASSWORD, RESTIC_PASSWORD=PASSWORD,
               RESTIC_CACHE_DIR=os.path.join(base, "restic-cache"))
    started = time.time()
    meta = {"command": "python3 benchmarks/install_bench.py " + " ".join(sys.argv[1:]), "commit": commit,
            "machine": machine(), "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    log(f"cells-backup at {commit[:10]}; building the installation")
    server, cnf, db = start_db()
    try:
        from cells_backup.cells.sample import make_sample_installation

        wd, storage = os.path.join(base, "cells"), os.path.join(base, "storage")
        sample = make_sample_installation(wd, db=db, external_parent=storage)
        fill_db(server, sample, args.big_rows, args.index_rows)
        meta["rows"] = exact_rows(server, DB)
        corpus = os.path.join(WORK, "corpus")
        sh(f"cp -a {corpus}/{args.mixed} {wd}/data/pydiods1/{args.mixed}")
        small_dirs = sorted(os.listdir(os.path.join(corpus, args.small)))[: args.small_dirs]
        dest = os.path.join(storage, "archive", args.small)  # inside the external datasource's bucket folder
        os.makedirs(dest)
        for d in small_dirs:
            sh(f"cp -a {corpus}/{args.small}/{d} {dest}/")
        meta["files"] = int(sh(f"find {wd} {storage} -type f | wc -l"))
        meta["file_bytes"] = du(wd) + du(storage)
        dumpcmd = f"mariadb-dump --defaults-extra-file={cnf} --single-transaction {DB}"
        meta["dump_bytes"] = int(sh(f"{dumpcmd} | wc -c"))
        log(f"installation: {meta['files']} files, {meta['file_bytes'] / 2**20:.0f} MiB, "
            f"database {meta['rows']} rows, dump {meta['dump_bytes'] / 2**20:.0f} MiB")
        runs = []
        for r in range(args.runs):
            res: dict = {}
            R, RR, G = (os.path.join(base, n) for n in ("repo", "restic", "guide"))
            for p in (R, RR, G):
                sh(f"rm -rf {p}")
            sh(f"{C} --repo {R} init && restic -q -r {RR} init", env)
            restic_cmd = (f"restic -r {RR} backup -q {wd} {storage} && "
                          f"{dumpcmd} | restic -r {RR} backup -q --stdin --stdin-filename cells.sql")
            guide_cmd = f"mkdir -p {G} && cp -a {wd} {storage} {G}/ && {dumpcmd} > {G}/cells.sql"
            steps = ["ours", "restic", "guide"]
            steps = steps[r % 3:] + steps[:r % 3]
            for step in steps:
                log(f"run {r + 1}: {step}")
                if step == "ours":
                    x = timed(f"{C} --repo {R} backup --cells-dir {wd} --json", env)
                    res["ours_first"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu,
                                         "summary": json.loads(x.out)["snapshot"]["summary"]}
                    x = timed(f"{C} --repo {R} backup --cells-dir {wd} --json", env)
                    res["ours_rerun"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu,
                                         "summary": json.loads(x.out)["snapshot"]["summary"]}
                    x = timed(f"{C} --repo {R} backup --cells-dir {wd} --stop-command true "
                              "--start-command true --json", env)
                    res["ours_hooks"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu,
                                         "summary": json.loads(x.out)["snapshot"]["summary"]}
                    res["ours_repo_bytes"] = du(R)
                elif step == "restic":
                    x = timed(restic_cmd, env)
                    res["restic_first"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu}
                    x = timed(restic_cmd, env)
                    res["restic_rerun"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu}
                    res["restic_repo_bytes"] = du(RR)
                else:
                    x = timed(guide_cmd, env)
                    res["guide_first"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu}
                    res["guide_bytes"] = du(G)
                    sh(f"rm -rf {G}")
                    x = timed(guide_cmd, env)
                    res["guide_rerun"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu}
                    sh(f"rm -rf {G}")
            runs.append(res)
            meta["runs"] = runs
            meta["elapsed"] = time.time() - started
            save(args.name, meta)
            log(f"run {r + 1} done: "
                + json.dumps({k: round(v["wall"], 2) for k, v in res.items() if isinstance(v, dict)})
                + f" downtime {res['ours_hooks']['summary'].get('downtime')}")
    finally:
        server.stop()
    meta["loadavg_end"] = os.getloadavg()
    meta["elapsed"] = time.time() - started
    path = save(args.name, meta)
    report(meta)
    log(f"saved {path}")


def report(meta: dict) -> None:
    runs = meta["runs"]

    def m(key, field="wall"):
        return med([r[key][field] for r in runs if key in r])

    print(f"files {meta['files']}, {meta['file_bytes'] / 2**20:.0f} MiB, rows {meta['rows']}, "
          f"dump {meta['dump_bytes'] / 2**20:.0f} MiB, commit {meta['commit'][:10]}")
    for k in ("ours_first", "restic_first", "guide_first", "ours_rerun", "restic_rerun", "guide_rerun",
              "ours_hooks"):
        print(f"{k:14s} wall {m(k):7.2f}  rss {m(k, 'rss'):7.1f}  cpu {m(k, 'cpu'):7.2f}  runs "
              + " ".join(f"{r[k]['wall']:.2f}" for r in runs))
    print("downtime", [r["ours_hooks"]["summary"].get("downtime") for r in runs])
    print("repo bytes ours", [r["ours_repo_bytes"] for r in runs], "restic", [r["restic_repo_bytes"] for r in runs])


if __name__ == "__main__":
    main()
