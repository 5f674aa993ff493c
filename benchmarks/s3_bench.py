"""S3 benchmark (issue 5): cells-backup vs restic against a local SeaweedFS S3 server.

`tests/s3server.py` starts SeaweedFS (`weed mini`) on loopback with SigV4 auth; each tool backs up
the same corpus into its own prefix of the bucket: first backup, unchanged re-run, full restore
(wall time, peak RSS), in the same run, tools alternating first.

    python3 benchmarks/s3_bench.py --runs 3 --corpus mixed-1024m
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchlib import PASSWORD, ROOT, WORK, cells_cmd, du, log, machine, med, pin, save, sh, timed

sys.path.insert(0, os.path.join(ROOT, "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--corpus", default="mixed-1024m")
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--name", default="s3")
    args = ap.parse_args()
    from s3server import SeaweedServer

    commit, pypath = pin(args.rev)
    C = cells_cmd(pypath)
    base = os.path.join(WORK, "s3bench")
    sh(f"rm -rf {base}")
    os.makedirs(base)
    src = os.path.join(WORK, "corpus", args.corpus)
    env = dict(os.environ, CELLS_BACKUP_PASSWORD=PASSWORD, RESTIC_PASSWORD=PASSWORD)
    env.pop("AWS_PROFILE", None)
    started = time.time()
    meta = {"command": "python3 benchmarks/s3_bench.py " + " ".join(sys.argv[1:]), "commit": commit,
            "machine": machine(), "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "corpus": args.corpus, "corpus_bytes": du(src)}
    runs = []
    server = None
    try:
        for r in range(args.runs):
            res: dict = {}
            order = ["ours", "restic"] if r % 2 == 0 else ["restic", "ours"]
            for tool in order:
                prefix = f"run{r}-{tool}"
                target = os.path.join(base, "restore")
                sh(f"rm -rf {target}")
                # a fresh server per tool and repetition: the test server holds 16 volumes of 64 MB
                sh(f"rm -rf {base}/weed")
                server = SeaweedServer(os.path.join(base, "weed"))
                server.start()
                meta.setdefault("weed", sh(f"{server.weed} version").strip())
                env_t = dict(env, RESTIC_CACHE_DIR=os.path.join(base, f"cache-{prefix}"), **server.env())
                if tool == "ours":
                    repo = f"--repo {server.url(prefix)} --s3-endpoint {server.endpoint}"
                    sh(f"{C} {repo} init", env_t)
                    cmds = {"first": f"{C} {repo} backup --no-cells --extra-path {src}",
                            "rerun": f"{C} {repo} backup --no-cells --extra-path {src}",
                            "restore": f"{C} {repo} restore latest --target {target}"}
                else:
                    repo = f"-r s3:{server.endpoint}/{server.bucket}/{prefix}"
                    sh(f"restic -q {repo} init", env_t)
                    cmds = {"first": f"restic -q {repo} backup {src}",
                            "rerun": f"restic -q {repo} backup {src}",
                            "restore": f"restic -q {repo} restore latest --target {target}"}
                for step, cmd in cmds.items():
                    log(f"run {r + 1}: {tool} {step}")
                    x = timed(cmd, env_t)
                    res[f"{tool}_{step}"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu}
                res[f"{tool}_restored_bytes"] = du(target)
                sh(f"rm -rf {target}")
                server.close()
                server = None
            runs.append(res)
            meta["runs"] = runs
            meta["elapsed"] = time.time() - started
            save(args.name, meta)
            log(f"run {r + 1}: " + json.dumps({k: round(v["wall"], 2) for k, v in res.items()
                                               if isinstance(v, dict)}))
    finally:
        if server is not None:
            server.close()
    meta["loadavg_end"] = os.getloadavg()
    path = save(args.name, meta)
    for step in ("first", "rerun", "restore"):
        o, t = med([r[f"ours_{step}"]["wall"] for r in runs]), med([r[f"restic_{step}"]["wall"] for r in runs])
        ro, rt = med([r[f"ours_{step}"]["rss"] for r in runs]), med([r[f"restic_{step}"]["rss"] for r in runs])
        print(f"{step:8s} ours {o:7.2f}s restic {t:7.2f}s ratio {o / t:.2f}x | rss {ro:.0f} vs {rt:.0f} MiB "
              f"({ro / rt:.2f}x) runs " + " ".join(f"{r[f'ours_{step}']['wall'] / r[f'restic_{step}']['wall']:.2f}"
                                                   for r in runs))
    log(f"saved {path}")


if __name__ == "__main__":
    main()
