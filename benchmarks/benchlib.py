"""Small helpers shared by the database / installation benchmarks (db_bench.py, install_bench.py).

Timed commands run under GNU time (peak RSS, CPU), after `sync` and dropping the page cache, like
run.py. The cells-backup measured is a commit exported with `git archive` (as run.py does).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(HERE, "work")
TIME = "/usr/bin/time"
PASSWORD = "benchmark-password"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pin(rev: str = "HEAD") -> tuple[str, str]:
    """Export the commit to work/pinned/<short>/ and return (commit, PYTHONPATH)."""
    commit = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    dest = os.path.join(WORK, "pinned", commit[:12])
    if not os.path.isdir(os.path.join(dest, "src")):
        os.makedirs(dest, exist_ok=True)
        arch = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=arch, check=True)
        # Bytecode, as `pip install` leaves it: the tools compared are compiled programs too.
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(dest, "src")], check=True)
    return commit, os.path.join(dest, "src")


COLD = os.environ.get("BENCH_CACHE", "cold") == "cold"


def drop_caches() -> None:
    if not COLD:
        return
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


@dataclass
class Result:
    wall: float
    rss_mib: float
    cpu: float
    out: str
    err: str


def timed(cmd: str, env: dict | None = None, *, cold: bool = True, check: bool = True) -> Result:
    """Run a shell command line under GNU time; returns wall, peak RSS of the largest process, CPU."""
    if cold:
        drop_caches()
    tf = os.path.join(WORK, ".time.out")
    full = [TIME, "-o", tf, "-f", "%M %U %S", "bash", "-o", "pipefail", "-c", cmd]
    t0 = time.perf_counter()
    p = subprocess.run(full, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if check and p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {cmd}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    with open(tf) as f:
        last = [ln for ln in f.read().splitlines() if ln.strip()][-1].split()
    return Result(wall, int(last[0]) / 1024, float(last[1]) + float(last[2]), p.stdout, p.stderr)


def sh(cmd: str, env: dict | None = None) -> str:
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {cmd}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def du(path: str) -> int:
    return int(sh(f"du -sb {path} | cut -f1").split()[0])


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
        "restic": sh("restic version").strip(),
        "mariadb": sh("mariadb --version").strip(),
    }


def save(name: str, data: dict) -> str:
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", f"{time.strftime('%Y-%m-%d', time.gmtime())}-{name}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1, default=str)
    os.replace(path + ".tmp", path)
    return path


def cells_cmd(pythonpath: str) -> str:
    return f"PYTHONPATH={pythonpath} {sys.executable} -m cells_backup"
