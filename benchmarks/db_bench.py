"""Database benchmark (issue 4): dump, unchanged re-dump and restore of a Cells-shaped MariaDB.

A private MariaDB (tests/dbserver.py) gets the real Cells tables (tests/cells_schema.py) filled with
about 1M rows (an index table and the changes archive, plus the awkward rows of the tests). Then,
per repetition, in the same run:

- dump: `cells-backup backup --cells-dir` of a sample installation whose pydio.json points at that
  database (and the same backup with `--no-database`, to isolate the dump) vs
  `mariadb-dump --single-transaction db > file` vs `mariadb-dump ... | restic backup --stdin`;
- unchanged re-dump: bytes stored by a second backup (`data_stored`) vs the dump size (restic's
  `data_added` for its second `--stdin` backup too);
- restore into an empty database: `cells-backup restore latest --only database --database-url`
  vs `mariadb db < dump.sql` vs `myloader` (of a `mydumper` dump) when installed.

    python3 benchmarks/db_bench.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from urllib.parse import quote

from benchlib import PASSWORD, ROOT, WORK, cells_cmd, du, log, machine, med, pin, save, sh, timed

sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "src"))

DB = "cells"


def start_db():
    """Start a private MariaDB; returns (server, client option file, db dict for pydio.json)."""
    from cells_backup.database.mysql_client import option_value
    from dbserver import start_mariadb

    server = start_mariadb()
    cnf = os.path.join(server.basedir, "client.cnf")
    with open(cnf, "w") as f:
        f.write(f"[client]\nuser={server.admin_user}\npassword={option_value(server.admin_password)}\n"
                f"host=127.0.0.1\nport={server.port}\n")
    os.chmod(cnf, 0o600)
    db = {"host": "127.0.0.1", "port": server.port, "user": server.admin_user,
          "password": server.admin_password, "name": DB}
    return server, cnf, db


def fill_db(server, sample, big_rows: int, index_rows: int) -> dict:
    """Real Cells tables (tests/cells_schema.py); flat datasources indexed like their blobs (so the
    restored installation verifies whole); `index_rows` rows in the pydiods1 index and `big_rows`
    in the changes archive (the same generated rows as tests/cells_schema.fill_awkward)."""
    from cells_schema import BIG_TABLE, DATASOURCES, create_cells_schema, create_index_tables

    with server.root() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{DB}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{DB}`")
        create_cells_schema(cur)
        for ds in sample.installation.datasources:
            prefix = f"data_index_{ds.name}_idx"
            if ds.name not in DATASOURCES:
                create_index_tables(cur, prefix)
            for i, (blob_uuid, size) in enumerate(sample.blobs(ds.name) if ds.flat else []):
                cur.execute(
                    f"INSERT INTO {prefix}_tree (uuid, level, hash, hash2, mpath1, mpath2, mpath3, mpath4, "
                    "name, leaf, mtime, etag, size, mode) VALUES (%s, 2, %s, '', '1.1', '', '', '', %s, 1, 0, "
                    "'etag', %s, '0644')", (blob_uuid, f"h{i + 1}", f"file-{i}.txt", size))
        if index_rows:
            cur.execute(
                "INSERT INTO data_index_pydiods1_idx_tree (uuid, level, name, leaf, mtime, etag, size, mode,"
                " mpath1, mpath2, mpath3, mpath4, hash, hash2) SELECT CONCAT('uuid-', seq), seq % 7,"
                " CONCAT('fichier-é-', seq, '😀.txt'), seq % 2, 1700000000 + seq, MD5(seq), seq * 3, '0644',"
                " CONCAT('1.', seq), '', '', '', SHA1(seq), ''"
                f" FROM seq_1_to_{index_rows}"
            )
        if big_rows:
            cur.execute(
                f"INSERT INTO {BIG_TABLE} (seq, node_id, type, source, target) SELECT seq, CONCAT('node-', seq),"
                " ELT(1 + seq % 4, 'create', 'delete', 'path', 'content'),"
                " IF(seq % 5 = 0, NULL, CONCAT('/ws/dossier é/', seq, '/l\\'été \\\\ 😀')),"
                " CONCAT('/target/', seq) FROM seq_1_to_" + str(big_rows)
            )
        cur.execute("SELECT SUM(data_length + index_length) FROM information_schema.tables"
                    " WHERE table_schema = %s", (DB,))
        size = cur.fetchone()[0]
    return {"innodb_bytes": int(size or 0)}


def exact_rows(server, db: str) -> int:
    with server.root(db) as c, c.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema=%s AND"
                    " table_type='BASE TABLE'", (db,))
        total = 0
        for (t,) in cur.fetchall():
            cur.execute(f"SELECT COUNT(*) FROM `{t}`")
            total += cur.fetchone()[0]
        return total


def checksums(server, db: str) -> dict:
    with server.root(db) as c, c.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema=%s AND"
                    " table_type='BASE TABLE'", (db,))
        names = sorted(t for (t,) in cur.fetchall())
        out = {}
        for t in names:
            cur.execute(f"CHECKSUM TABLE `{t}`")
            out[t] = cur.fetchone()[1]
        return out


def url_for(server, db: str) -> str:
    return (f"mysql://{server.admin_user}:{quote(server.admin_password, safe='')}"
            f"@127.0.0.1:{server.port}/{db}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--big-rows", type=int, default=300_000, help="rows of data_changes_archive")
    ap.add_argument("--index-rows", type=int, default=700_000, help="rows of one datasource index table")
    ap.add_argument("--rev", default="HEAD")
    ap.add_argument("--name", default="db")
    args = ap.parse_args()

    commit, pypath = pin(args.rev)
    C = cells_cmd(pypath)
    base = os.path.join(WORK, "dbbench")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    env = dict(os.environ, CELLS_BACKUP_PASSWORD=PASSWORD, RESTIC_PASSWORD=PASSWORD,
               RESTIC_CACHE_DIR=os.path.join(base, "restic-cache"))
    started = time.time()
    meta = {"command": "python3 benchmarks/db_bench.py " + " ".join(sys.argv[1:]), "commit": commit,
            "machine": machine(), "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    log(f"cells-backup at {commit[:10]}; starting MariaDB and filling the database")
    t0 = time.perf_counter()
    server, cnf, db = start_db()
    from cells_backup.cells.sample import make_sample_installation

    wd = os.path.join(base, "cells")
    sample = make_sample_installation(wd, db=db)
    info = fill_db(server, sample, args.big_rows, args.index_rows)
    meta["fill_seconds"] = time.perf_counter() - t0
    meta["rows"] = exact_rows(server, DB)
    meta.update(info)
    log(f"database: {meta['rows']} rows, InnoDB {info['innodb_bytes'] / 2**20:.0f} MiB "
        f"(filled in {meta['fill_seconds']:.0f} s)")
    myloader = shutil.which("myloader") and shutil.which("mydumper")
    ref = checksums(server, DB)
    dump = os.path.join(base, "dump.sql")
    dumpcmd = f"mariadb-dump --defaults-extra-file={cnf} --single-transaction {DB}"
    cred = (f"-h 127.0.0.1 -P {server.port} -u {shlex.quote(server.admin_user)} "
            f"-p {shlex.quote(server.admin_password)}")
    runs = []
    try:
        for r in range(args.runs):
            res: dict = {}
            R, R2, RR = (os.path.join(base, n) for n in ("repo", "repo-nodb", "restic"))
            for p in (R, R2, RR, dump, os.path.join(base, "mydumper")):
                sh(f"rm -rf {p}")
            sh(f"{C} --repo {R} init && {C} --repo {R2} init && restic -q -r {RR} init", env)
            steps = ["ours", "ours_nodb", "dump", "restic"]
            steps = steps[r % 4:] + steps[:r % 4]
            for step in steps:
                log(f"run {r + 1}: {step}")
                if step == "ours":
                    x = timed(f"{C} --repo {R} backup --cells-dir {wd} --json", env)
                    s = json.loads(x.out)["snapshot"]["summary"]
                    res["ours_backup"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu, "summary": s}
                    x = timed(f"{C} --repo {R} backup --cells-dir {wd} --json", env)
                    s = json.loads(x.out)["snapshot"]["summary"]
                    res["ours_rerun"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu, "summary": s}
                    res["ours_repo_bytes"] = du(R)
                elif step == "ours_nodb":
                    x = timed(f"{C} --repo {R2} backup --cells-dir {wd} --no-database --json", env)
                    res["ours_nodb"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu}
                elif step == "dump":
                    x = timed(f"{dumpcmd} > {dump}", env)
                    res["dump"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu}
                    res["dump_bytes"] = os.path.getsize(dump)
                else:
                    x = timed(f"{dumpcmd} | restic -r {RR} backup --stdin --stdin-filename cells.sql --json", env)
                    res["restic_backup"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu}
                    x = timed(f"{dumpcmd} | restic -r {RR} backup --stdin --stdin-filename cells.sql --json", env)
                    summ = [json.loads(ln) for ln in x.out.splitlines() if '"summary"' in ln]
                    res["restic_rerun"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu,
                                           "data_added": summ[-1].get("data_added") if summ else None}
                    res["restic_repo_bytes"] = du(RR)
            # restores
            rsteps = ["ours", "plain"] + (["myloader"] if myloader else [])
            rsteps = rsteps[r % len(rsteps):] + rsteps[:r % len(rsteps)]
            if myloader:
                x = timed(f"mydumper {cred} -B {DB} -t 2 --trx-consistency-only -o {base}/mydumper")
                res["mydumper"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu}
            for step in rsteps:
                target = f"restore_{step}"
                sh(f"mariadb --defaults-extra-file={cnf} -e 'DROP DATABASE IF EXISTS {target}'")
                log(f"run {r + 1}: restore {step}")
                if step == "ours":
                    x = timed(f"{C} -v --repo {R} restore latest --only database --database-url "
                              f"{shlex.quote(url_for(server, target))}", env)
                elif step == "plain":
                    sh(f"mariadb --defaults-extra-file={cnf} -e 'CREATE DATABASE {target} CHARACTER SET utf8mb4'")
                    x = timed(f"mariadb --defaults-extra-file={cnf} {target} < {dump}")
                else:
                    x = timed(f"myloader {cred} -d {base}/mydumper -B {target} -t 2")
                res[f"restore_{step}"] = {"wall": x.wall, "rss": x.rss_mib, "cpu": x.cpu}
                if r == 0:
                    got = checksums(server, target)
                    res[f"restore_{step}_identical"] = got == ref
                    if got != ref:
                        res[f"restore_{step}_diff"] = sorted(k for k in set(ref) | set(got)
                                                             if ref.get(k) != got.get(k))
                sh(f"mariadb --defaults-extra-file={cnf} -e 'DROP DATABASE IF EXISTS {target}'")
            runs.append(res)
            meta["runs"] = runs
            meta["elapsed"] = time.time() - started
            path = save(args.name, meta)
            walls = {k: round(v["wall"], 2) for k, v in res.items() if isinstance(v, dict)}
            log(f"run {r + 1} done: {json.dumps(walls)}")
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

    dump_mib = med([r["dump_bytes"] for r in runs]) / 2**20
    lines = [f"rows {meta['rows']}, dump {dump_mib:.1f} MiB, commit {meta['commit'][:10]}"]
    for k in ("ours_backup", "ours_nodb", "dump", "restic_backup", "ours_rerun", "restic_rerun",
              "mydumper", "restore_ours", "restore_plain", "restore_myloader"):
        if any(k in r for r in runs):
            lines.append(f"{k:18s} wall {m(k):7.2f}  rss {m(k, 'rss'):7.1f} MiB  cpu {m(k, 'cpu'):7.2f}  "
                         "runs " + " ".join(f"{r[k]['wall']:.2f}" for r in runs if k in r))
    stored = [r["ours_rerun"]["summary"].get("data_stored") for r in runs]
    lines.append(f"re-dump data_stored {stored} of dump {[r['dump_bytes'] for r in runs]}")
    lines.append(f"restic re-dump data_added {[r['restic_rerun'].get('data_added') for r in runs]}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
