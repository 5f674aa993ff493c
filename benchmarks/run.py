#!/usr/bin/env python3
"""Benchmark cells-backup against restic, borg and ``cp -a`` on generated corpora.

One repetition, for each corpus and each tool (the tool order rotates between
repetitions):

1. copy the pristine corpus to a fixed working path (untimed, ``cp -a``);
2. init a fresh, encrypted repository (timed, not reported in the summary);
3. first backup; 4. unchanged re-run; 5. mutate ~1 % of the files (untimed,
   ``corpus.py --mutate``, identical for every tool); 6. re-run after the change;
7. full restore of the latest snapshot into an empty directory;
8. (first repetition, or every one with ``--verify all``) compare the restored
   tree with the mutated source: names, types, sizes, contents, symlinks, mtimes.

``cp -a`` is the floor: its "backup" copies the tree, its "restore" copies it
back; it has no re-run.

Every timed command runs under GNU ``time`` (package ``time``): wall time from
a monotonic clock around it, peak RSS and user+system CPU time of the command
(and its reaped descendants) as GNU time reports them.
Before each timed command the page cache is written back (``sync``) and, with
``--cache cold`` (the default, when permitted), dropped. Each restore writes into a new ext4
filesystem (a loop-mounted image file, made untimed before the restore; ``--restore-fs same``
restores into a directory of the work filesystem instead): file creation on a filesystem that
has just had 100k files deleted costs whatever the runs before left it to cost.

Results (medians, ratios to restic, all runs, machine, command) are written to
``benchmarks/results/<date>-<name>.md`` (plus ``.json``) and printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus as corpus_mod  # noqa: E402

MiB = 1024 * 1024
PASSWORD = "benchmark-password-not-secret"
STEPS = ["backup1", "backup2", "backup3", "restore"]
STEP_LABEL = {
    "backup1": "first backup",
    "backup2": "unchanged re-run",
    "backup3": "re-run after ~1 % changed",
    "restore": "full restore",
}
TARGETS = {  # ratio to restic, from the project's issue
    "backup1": 0.5,
    "backup2": 0.5,
    "backup3": 0.6,
    "restore": 0.7,
    "size": 1.0,
    "rss": 1.0,
}
ALL_TOOLS = ["cells", "restic", "borg", "borg-zstd", "cp"]
TOOL_LABEL = {
    "cells": "cells-backup",
    "restic": "restic",
    "borg": "borg (lz4)",
    "borg-zstd": "borg (zstd,3)",
    "cp": "cp -a",
}


# ------------------------------------------------------------------------ helpers


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except Exception as exc:  # noqa: BLE001
        return f"unavailable ({exc})"


def ensure_tools(tools: list[str]) -> None:
    missing = []
    if not os.path.exists(TIME):
        missing.append("time")
    if "restic" in tools and not shutil.which("restic"):
        missing.append("restic")
    if any(t.startswith("borg") for t in tools) and not shutil.which("borg"):
        missing.append("borgbackup")
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}: install them (apt-get install {' '.join(missing)})")
    log(f"installing {' '.join(missing)} from the distribution's packages")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def du_bytes(path: str) -> int:
    if not os.path.exists(path):
        return 0
    return int(sh(["du", "-sb", path]).split()[0])


def rmtree(path: str) -> None:
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", "--", path], check=True)


class RestoreTarget:
    """Where each restore writes: a freshly made ext4 filesystem (a loop-mounted image file) per
    restore when this is root and mkfs.ext4 exists, else a directory of the work filesystem.

    A filesystem that has just had 100k files deleted (the previous run's copies and restores)
    allocates inodes at a cost that depends on what was freed and when: on this disk's journal-less
    ext4 the same restore took 4 s or 10 s depending on the runs before it, whichever tool it was.
    A new filesystem per restore gives every tool the same start.
    """

    def __init__(self, work: str, mode: str, size_bytes: int) -> None:
        self.mountpoint = os.path.join(work, "restore-fs")
        self.image = os.path.join(work, "restore-fs.img")
        self.size = max(size_bytes * 3, 2 << 30)
        self.fresh = mode == "fresh" and os.geteuid() == 0 and shutil.which("mkfs.ext4") is not None
        self.mounted = False
        # An empty directory in the new filesystem (its root holds lost+found).
        self.path = os.path.join(self.mountpoint, "restore") if self.fresh else os.path.join(work, "restore")

    def describe(self) -> str:
        if self.fresh:
            return "a new ext4 filesystem per restore (loop-mounted image on the work disk)"
        return "a directory on the work filesystem"

    def prepare(self) -> None:
        self.clear()
        if self.fresh:
            os.makedirs(self.mountpoint)
            with open(self.image, "wb") as f:
                f.truncate(self.size)
            # An inode per 4 KiB: room for a corpus of small files (the default is one per 16 KiB).
            subprocess.run(["mkfs.ext4", "-q", "-F", "-i", "4096", self.image], check=True)
            r = subprocess.run(["mount", "-o", "loop", self.image, self.mountpoint], capture_output=True, text=True)
            if r.returncode == 0:
                self.mounted = True
            else:
                log(f"cannot mount a fresh filesystem ({r.stderr.strip()}): restoring into a directory")
                self.fresh = False
                os.remove(self.image)
                self.path = os.path.join(os.path.dirname(self.mountpoint), "restore")
        os.makedirs(self.path)

    def clear(self) -> None:
        if self.mounted:
            subprocess.run(["umount", self.mountpoint], check=True)
            self.mounted = False
        if os.path.exists(self.image):
            os.remove(self.image)
        rmtree(self.path)
        rmtree(self.mountpoint)


def read_cpu_busy() -> float:
    """System-wide busy CPU seconds so far (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()[1:]
        vals = [int(x) for x in parts]
        user, nice, system, idle, iowait, irq, softirq, steal = (vals + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


class Caches:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.effective = mode
        if mode == "cold" and not self._drop():
            log("cannot drop the page cache (not permitted): measuring with warm caches")
            self.effective = "warm"

    def _drop(self) -> bool:
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            return True
        except OSError:
            return False

    def before_timed(self) -> None:
        os.sync()
        if self.effective == "cold":
            self._drop()


TIME = "/usr/bin/time"  # GNU time, package "time"


def _read_usage(path: str, ru) -> tuple[int, float]:
    """Peak RSS (KiB) and CPU seconds of the measured command, as GNU time saw them.

    GNU time forks the command from its own small process and reads that child's
    rusage. Reading ``wait4`` of a child spawned straight from this (large)
    Python process would not do: the kernel records the spawning process's
    memory high-water mark at exec time, so every command would appear to use at
    least as much memory as the harness.
    """
    try:
        with open(path) as f:
            last = [ln for ln in f.read().splitlines() if ln.strip()][-1].split()
        return int(last[0]), float(last[1]) + float(last[2])
    except (OSError, IndexError, ValueError):
        return ru.ru_maxrss, ru.ru_utime + ru.ru_stime


@dataclass
class Measure:
    wall: float
    rss_kib: int
    cpu: float
    other_cpu: float
    rc: int


@dataclass
class Runner:
    caches: Caches
    logdir: str
    env: dict
    timeout: float = 3600.0
    seq: int = 0
    loads: list[float] = field(default_factory=list)

    def run(
        self, name: str, cmd: list[str], *, cwd: str | None = None, timed: bool = True, ok_codes: tuple[int, ...] = (0,)
    ) -> Measure:
        if timed:
            self.caches.before_timed()
        self.seq += 1
        logpath = os.path.join(self.logdir, f"{self.seq:04d}-{name}.log")
        with open(logpath, "w") as out:
            out.write("$ " + shlex.join(cmd) + "\n")
            out.flush()
            usage = logpath + ".usage"
            busy0 = read_cpu_busy()
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [TIME, "-f", "%M %U %S", "-o", usage, *cmd],
                cwd=cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            _, status, ru = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            busy1 = read_cpu_busy()
            proc.returncode = os.waitstatus_to_exitcode(status)
        rss_kib, cpu = _read_usage(usage, ru)
        m = Measure(
            wall=wall,
            rss_kib=rss_kib,
            cpu=cpu,
            other_cpu=max(0.0, (busy1 - busy0) - cpu) / wall if wall > 0 else 0.0,
            rc=proc.returncode,
        )
        if timed:
            self.loads.append(m.other_cpu)
        if proc.returncode not in ok_codes:
            with open(logpath) as f:
                tail = f.read()[-3000:]
            raise RuntimeError(f"{name}: exit {proc.returncode}: {shlex.join(cmd)}\n{tail}")
        return m


# -------------------------------------------------------------------------- tools


class Tool:
    name = ""

    def __init__(self, work: str) -> None:
        self.work = work
        self.repo = os.path.join(work, f"repo-{self.name}")
        self.n = 0

    def setup_env(self, env: dict) -> None:
        pass

    def init(self) -> list[str] | None:
        return None

    def backup(self, src: str) -> list[str]:
        raise NotImplementedError

    def restore(self, target: str, src: str) -> tuple[list[str], str | None]:
        """(command, cwd)."""
        raise NotImplementedError

    def restored_root(self, target: str, src: str) -> str:
        return os.path.join(target, src.lstrip("/"))

    def extra_dirs(self) -> list[str]:
        return []

    def version(self) -> str:
        return ""


class Cells(Tool):
    name = "cells"
    # Set by main(): how to start cells-backup (the installed command, or a pinned copy of
    # the sources run with ``python3 -m cells_backup``), and a description of that version.
    command: list[str] = ["cells-backup"]
    pythonpath: str | None = None
    described = ""

    def init(self):
        return [*self.command, "--repo", self.repo, "init", "-q"]

    def backup(self, src):
        return [*self.command, "--repo", self.repo, "backup", "--no-cells", "--extra-path", src, "-q"]

    def restore(self, target, src):
        return [*self.command, "--repo", self.repo, "restore", "latest", "--target", target, "-q"], None

    def version(self):
        env = dict(os.environ, PYTHONPATH=self.pythonpath) if self.pythonpath else None
        out = subprocess.run([*self.command, "--version"], capture_output=True, text=True, env=env)
        return (out.stdout.strip() or out.stderr.strip()) + f" {self.described} (compression zstd level 3)"


def pin_cells(rev: str, work: str) -> None:
    """Run cells-backup from a copy of ``src/`` at git revision ``rev``, not from the live tree.

    Other work may change the working tree while a benchmark runs; an export of one commit
    keeps every run of a benchmark on the same code. ``rev = "installed"`` uses the
    ``cells-backup`` command on PATH as it is.
    """
    if rev == "installed":
        Cells.command = ["cells-backup"]
        Cells.described = "(installed command, working tree as it was at each run)"
        return
    root = os.path.dirname(HERE)
    commit = sh(["git", "-C", root, "rev-parse", "--verify", rev + "^{commit}"]).strip()
    dest = os.path.join(work, "pinned", commit[:12])
    if not os.path.isdir(os.path.join(dest, "src", "cells_backup")):
        rmtree(dest)
        os.makedirs(dest)
        archive = subprocess.Popen(["git", "-C", root, "archive", commit, "src"], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", dest], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            sys.exit(f"git archive {commit} failed")
    Cells.command = [sys.executable, "-m", "cells_backup"]
    Cells.pythonpath = os.path.join(dest, "src")
    when = sh(["git", "-C", root, "log", "-1", "--format=%ci", commit]).strip()
    Cells.described = f"at commit {commit[:10]} of {when}"


class Restic(Tool):
    name = "restic"

    def init(self):
        return ["restic", "-r", self.repo, "init"]

    def backup(self, src):
        return ["restic", "-r", self.repo, "backup", src]

    def restore(self, target, src):
        return ["restic", "-r", self.repo, "restore", "latest", "--target", target], None

    def extra_dirs(self):
        return [os.path.join(self.work, "restic-cache")]

    def version(self):
        return first_line(["restic", "version"]) + " (repository v2, compression auto = zstd)"


class Borg(Tool):
    name = "borg"
    compression: str | None = None

    def init(self):
        return ["borg", "init", "--encryption=repokey-blake2", self.repo]

    def backup(self, src):
        self.n += 1
        cmd = ["borg", "create"]
        if self.compression:
            cmd += ["--compression", self.compression]
        return cmd + [f"{self.repo}::run{self.n}", src]

    def restore(self, target, src):
        return ["borg", "extract", f"{self.repo}::run{self.n}"], target

    def extra_dirs(self):
        return [os.path.join(self.work, f"borg-base-{self.name}")]

    def version(self):
        return first_line(["borg", "--version"]) + f" (repokey-blake2, compression {self.compression or 'lz4'})"


class BorgZstd(Borg):
    name = "borg-zstd"
    compression = "zstd,3"


class Cp(Tool):
    name = "cp"

    def backup(self, src):
        os.makedirs(self.repo, exist_ok=True)
        return ["cp", "-a", src, self.repo + "/"]

    def restore(self, target, src):
        return ["cp", "-a", os.path.join(self.repo, os.path.basename(src)), target + "/"], None

    def restored_root(self, target, src):
        return os.path.join(target, os.path.basename(src))

    def version(self):
        return first_line(["cp", "--version"])


TOOL_CLASSES = {"cells": Cells, "restic": Restic, "borg": Borg, "borg-zstd": BorgZstd, "cp": Cp}


# ------------------------------------------------------------------------- verify


def tree_digest(root: str) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir",)
            else:
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while b := f.read(4 * MiB):
                        h.update(b)
                out[rel] = ("file", st.st_size, h.hexdigest(), st.st_mtime_ns, st.st_mode & 0o7777)
    return out


def verify(src: str, restored: str) -> str:
    if not os.path.isdir(restored):
        return f"FAILED: restored tree not found at {os.path.basename(restored)}"
    a, b = tree_digest(src), tree_digest(restored)
    missing = sorted(set(a) - set(b))
    extra = sorted(set(b) - set(a))
    content = [k for k in a if k in b and a[k][:3] != b[k][:3]]
    meta = [k for k in a if k in b and a[k][:3] == b[k][:3] and a[k] != b[k]]
    if missing or extra or content:
        return (
            f"FAILED: {len(missing)} missing, {len(extra)} extra, {len(content)} differ "
            f"(e.g. {(missing + extra + content)[:3]})"
        )
    return f"ok ({len(a)} entries" + (f"; {len(meta)} with other mtime/mode)" if meta else ")")


# --------------------------------------------------------------------------- main


@dataclass
class CorpusSpec:
    label: str
    kind: str
    size_mib: int = 0
    files: int = 0

    def describe(self) -> str:
        if self.kind == "mixed":
            return f"mixed, {self.size_mib} MiB"
        return f"{self.files} small files"


def _file_hash(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def ensure_corpus(spec: CorpusSpec, base: str, seed: int) -> tuple[str, dict]:
    path = os.path.join(base, spec.label)
    stamp = path + ".json"
    want = {
        "kind": spec.kind,
        "size_mib": spec.size_mib,
        "files": spec.files,
        "seed": seed,
        "generator": _file_hash(corpus_mod.__file__),
    }
    if os.path.isdir(path) and os.path.exists(stamp):
        with open(stamp) as f:
            have = json.load(f)
        if have.get("params") == want:
            return path, have["stats"]
    rmtree(path)
    log(f"generating corpus {spec.label} ({spec.describe()})")
    os.makedirs(path)
    if spec.kind == "mixed":
        stats = corpus_mod.gen_mixed(path, spec.size_mib, seed)
    else:
        stats = corpus_mod.gen_small(path, spec.files, seed)
    with open(stamp, "w") as f:
        json.dump({"params": want, "stats": stats}, f)
    log(f"corpus {spec.label}: {stats['files']} files, {stats['bytes'] / MiB:.0f} MiB")
    return path, stats


def machine_info() -> dict:
    cpu = "unknown"
    mem = 0
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_mib": mem,
        "kernel": platform.release(),
        "os": first_line(["sh", "-c", '. /etc/os-release && echo "$PRETTY_NAME"']),
        "python": platform.python_version(),
        "filesystem": first_line(["sh", "-c", f"df -T {shlex.quote(HERE)} | tail -1 | awk '{{print $2}}'"]),
    }


def run_corpus(spec: CorpusSpec, pristine: str, tools: list[str], args, runner: Runner, work: str, raw: dict) -> None:
    src = os.path.join(work, "src", spec.label)
    restore_target = RestoreTarget(work, args.restore_fs, du_bytes(pristine))
    target = restore_target.path
    args.restore_target_used = restore_target.describe()
    for rep in range(args.runs):
        order = tools[rep % len(tools) :] + tools[: rep % len(tools)]
        for tname in order:
            tool = TOOL_CLASSES[tname](work)
            rec: dict = {"rep": rep}
            log(f"{spec.label} run {rep + 1}/{args.runs}: {TOOL_LABEL[tname]}")
            rmtree(src)
            rmtree(tool.repo)
            restore_target.clear()
            for d in tool.extra_dirs():
                rmtree(d)
            os.makedirs(os.path.dirname(src), exist_ok=True)
            subprocess.run(["cp", "-a", pristine, src], check=True)
            env = dict(runner.env)
            if tname == "cells" and Cells.pythonpath:
                env["PYTHONPATH"] = Cells.pythonpath
            if tname == "restic":
                env["RESTIC_CACHE_DIR"] = tool.extra_dirs()[0]
            if tname.startswith("borg"):
                env["BORG_BASE_DIR"] = tool.extra_dirs()[0]
            r = Runner(runner.caches, runner.logdir, env, runner.timeout, runner.seq, runner.loads)
            tag = f"{spec.label}-{tname}-r{rep}"
            init = tool.init()
            if init:
                rec["init"] = r.run(f"{tag}-init", init, timed=False).__dict__
            ok = (0,)
            m = r.run(f"{tag}-backup1", tool.backup(src), ok_codes=ok)
            rec["backup1"] = m.__dict__
            rec["size1"] = du_bytes(tool.repo)
            if tname != "cp":
                rec["backup2"] = r.run(f"{tag}-backup2", tool.backup(src), ok_codes=ok).__dict__
            rec["mutation"] = corpus_mod.mutate(src, args.mutate_pct, args.seed)
            if tname != "cp":
                rec["backup3"] = r.run(f"{tag}-backup3", tool.backup(src), ok_codes=ok).__dict__
            else:
                # cp -a has no incremental mode: its copy is of the unchanged tree; refresh it
                # (untimed) so that the restore below brings back the changed tree like the others.
                rmtree(tool.repo)
                r.run(f"{tag}-recopy", tool.backup(src), timed=False)
            rec["size"] = du_bytes(tool.repo)
            rec["local_cache"] = sum(du_bytes(d) for d in tool.extra_dirs())
            restore_target.prepare()
            cmd, cwd = tool.restore(target, src)
            rec["restore"] = r.run(f"{tag}-restore", cmd, cwd=cwd).__dict__
            if args.verify == "all" or (args.verify == "first" and rep == 0):
                rec["verify"] = verify(src, tool.restored_root(target, src))
                log(f"  verify: {rec['verify']}")
            runner.seq = r.seq
            raw.setdefault(spec.label, {}).setdefault(tname, []).append(rec)
            log(
                "  "
                + ", ".join(f"{s}={rec[s]['wall']:.2f}s" for s in STEPS if s in rec)
                + f", repo={rec['size'] / MiB:.1f} MiB"
            )
            if not args.keep:
                rmtree(tool.repo)
                restore_target.clear()
                for d in tool.extra_dirs():
                    rmtree(d)
    rmtree(src)


def run_value(r: dict, key: str) -> float | None:
    """One run's value for a summary key: a step's wall/cpu/rss, or a size."""
    if key in ("size", "size1"):
        return r[key] / MiB
    if key == "rss":
        return max(r[s]["rss_kib"] for s in STEPS if s in r) / 1024
    step, _, what = key.partition("_")
    if step not in r:
        return None
    if what == "cpu":
        return r[step]["cpu"]
    if what == "rss":
        return r[step]["rss_kib"] / 1024
    return r[step]["wall"]


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    if unit == "s":
        return f"{v:.2f}" if v < 100 else f"{v:.0f}"
    return f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def summarise(raw: dict, tools: list[str], corpora: list[CorpusSpec], cstats: dict) -> tuple[str, dict]:
    """Markdown tables and a dict of medians/ratios."""
    out: list[str] = []
    summary: dict = {}
    cols = [t for t in tools]
    for spec in corpora:
        runs = raw.get(spec.label, {})
        st = cstats[spec.label]
        out.append(
            f"### Corpus `{spec.label}`: {spec.describe()} — {st['files']} files, {st.get('dirs', '?')} "
            f"dirs, {st['bytes'] / MiB:.0f} MiB\n"
        )
        header = "| metric (median of runs) | " + " | ".join(TOOL_LABEL[t] for t in cols)
        have_ratio = "cells" in cols and "restic" in cols
        if have_ratio:
            header += " | cells-backup / restic | per run | target | met |"
        else:
            header += " |"
        out.append(header)
        out.append("|" + "---|" * (header.count("|") - 1))
        keys = [*STEPS, *(x + "_cpu" for x in STEPS), *(x + "_rss" for x in STEPS), "size", "size1", "rss"]
        medians: dict = {}
        for t in cols:
            rs = runs.get(t, [])
            m = {k: med([v for r in rs if (v := run_value(r, k)) is not None]) for k in keys}
            m["n"] = len(rs)
            medians[t] = m
        summary[spec.label] = {"medians": medians, "ratios": {}}

        def row(
            label: str,
            key: str,
            unit: str,
            target_key: str | None = None,
            *,
            medians=medians,
            have_ratio=have_ratio,
            runs=runs,
            ratios=summary[spec.label]["ratios"],
        ) -> None:
            cells = [fmt(medians[t].get(key), unit) for t in cols]
            line = f"| {label} | " + " | ".join(cells)
            if have_ratio:
                a, b = medians["cells"].get(key), medians["restic"].get(key)
                ratio = a / b if a is not None and b else None
                ratios[key] = ratio
                tgt = TARGETS.get(target_key) if target_key else None
                met = "" if tgt is None or ratio is None else ("yes" if ratio <= tgt else "**no**")
                per_run = ""
                if tgt is not None:
                    mine = {r["rep"]: run_value(r, key) for r in runs.get("cells", [])}
                    theirs = {r["rep"]: run_value(r, key) for r in runs.get("restic", [])}
                    per_run = " ".join(
                        f"{mine[k] / theirs[k]:.2f}" for k in sorted(mine) if mine[k] is not None and theirs.get(k)
                    )
                line += (f" | {ratio:.2f}x" if ratio is not None else " | —") + (
                    f" | {per_run} | ≤ {tgt:.1f}x | {met} |" if tgt is not None else " | | | |"
                )
            else:
                line += " |"
            out.append(line)

        for s in STEPS:
            row(f"{STEP_LABEL[s]} (s)", s, "s", s)
        row("repository size after the 3 backups (MiB)", "size", "", "size")
        row("repository size after the first backup (MiB)", "size1", "")
        row("peak RSS, worst command (MiB)", "rss", "", "rss")
        for s in STEPS:
            row(f"peak RSS, {STEP_LABEL[s]} (MiB)", s + "_rss", "")
        for s in STEPS:
            row(f"CPU user+sys, {STEP_LABEL[s]} (s)", s + "_cpu", "s")
        out.append("")
        runs_n = {t: medians[t]["n"] for t in cols}
        out.append(
            f"Runs per tool: {', '.join(f'{TOOL_LABEL[t]} {n}' for t, n in runs_n.items())}. "
            "Sizes are `du -sb` of the repository (restic and borg also keep a local cache, "
            "not counted; see below).\n"
        )
        # All runs, for spread.
        out.append("<details><summary>All runs (wall seconds; repository MiB; peak RSS MiB)</summary>\n")
        out.append(
            "| tool | run | first | unchanged | changed | restore | repo | local cache | RSS | "
            "other CPU load (cores, max) | verify |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for t in cols:
            for r in runs.get(t, []):
                cells = [fmt(r[s]["wall"], "s") if s in r else "—" for s in STEPS]
                rss = max(r[s]["rss_kib"] for s in STEPS if s in r) / 1024
                other = max(r[s]["other_cpu"] for s in STEPS if s in r)
                out.append(
                    f"| {TOOL_LABEL[t]} | {r['rep'] + 1} | "
                    + " | ".join(cells)
                    + f" | {r['size'] / MiB:.1f} | {r['local_cache'] / MiB:.1f} | {rss:.0f} | {other:.2f} | "
                    + f"{r.get('verify', '')} |"
                )
        muts = [r["mutation"] for t in cols for r in runs.get(t, [])][:1]
        out.append("")
        if muts:
            mu = muts[0]
            out.append(
                f"Mutation (same for every tool and run): {mu['files_touched']} of {mu['files_before']} "
                f"files — {mu['appended']} appended, {mu['overwritten']} overwritten in place, "
                f"{mu['rewritten']} rewritten, {mu['deleted']} deleted, {mu['created']} created; "
                f"{mu['bytes_written'] / 1024:.0f} KiB written."
            )
        out.append("</details>\n")
    return "\n".join(out), summary


def _write_atomic(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def render(meta: dict) -> tuple[str, dict]:
    """The Markdown report (and summary dict) of one run's recorded data."""
    raw = meta["raw"]
    cstats = meta["corpora"]
    specs = [CorpusSpec(**d) for d in meta.get("specs", [])]
    if not specs:  # reports written before specs were recorded
        for label in raw:
            if label.startswith("mixed-"):
                specs.append(CorpusSpec(label, "mixed", size_mib=int(label[6:].rstrip("m"))))
            else:
                specs.append(CorpusSpec(label, "small", files=cstats[label]["files"]))
    tools = meta.get("tools") or [t for t in ALL_TOOLS if any(t in raw[c] for c in raw)]
    runs = meta.get("runs") or max(r["rep"] + 1 for c in raw.values() for rs in c.values() for r in rs)
    started = dt.datetime.fromisoformat(meta["started"])
    info, versions, other = meta["machine"], meta["versions"], meta.get("other_cpu", [])
    load_start, load_end = meta["load"]
    cache = meta["cache"]
    tables, summary = summarise(raw, tools, specs, cstats)
    elapsed = f"; total wall time {meta['elapsed'] / 60:.1f} min" if meta.get("elapsed") else ""
    lines = [
        f"# Benchmark `{meta.get('name', 'run')}` — {started.strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Command: `{meta['command']}`  ",
        f"Runs: {runs} per tool and corpus (medians shown); tool order rotated between runs; "
        f"page cache: **{cache}** "
        + ("(dropped before every timed command)" if cache == "cold" else "(not dropped)")
        + (f"; restores into {meta['restore_target']}" if meta.get("restore_target") else "")
        + f"{elapsed}.",
        "",
        "Machine: "
        + f"{info['nproc']} CPUs ({info['cpu']}), {info['ram_mib']} MiB RAM, kernel {info['kernel']}, "
        + f"{info['os']}, Python {info['python']}, scratch filesystem {info['filesystem']}.  ",
        "Tools: " + "; ".join(f"{TOOL_LABEL[t]}: {versions[t]}" for t in tools if t in versions) + ".  ",
        f"Load average at start {load_start[0]:.2f}, at end {load_end[0]:.2f}. CPU busy outside the measured "
        f"command during timed commands (other processes and kernel writeback; cores): median "
        f"{statistics.median(other) if other else 0:.2f}, max {max(other) if other else 0:.2f}.",
        "",
        tables,
    ]
    return "\n".join(lines) + "\n", summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 200 MiB mixed + 20k small files, 1 run, every restore verified",
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--corpus", default="mixed,small", help="comma list of: mixed, small")
    ap.add_argument("--size-mib", type=int, default=1024, help="size of the mixed corpus")
    ap.add_argument("--files", type=int, default=100_000, help="number of files of the small corpus")
    ap.add_argument("--tools", default="cells,restic,borg,cp", help=f"comma list of: {', '.join(ALL_TOOLS)}")
    ap.add_argument(
        "--cache",
        choices=["cold", "warm"],
        default="cold",
        help="drop the page cache before each timed command (cold, needs root) or not",
    )
    ap.add_argument("--verify", choices=["none", "first", "all"], default="first")
    ap.add_argument("--mutate-pct", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default=os.path.join(HERE, "work"), help="scratch directory (default: benchmarks/work)")
    ap.add_argument("--name", default=None, help="results file name suffix")
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    ap.add_argument("--keep", action="store_true", help="keep repositories and restored trees")
    ap.add_argument("--restore-fs", choices=["fresh", "same"], default="fresh",
                    help="restore into a new ext4 filesystem each time (as root; default) or into a "
                         "directory of the work filesystem")
    ap.add_argument(
        "--cells-rev",
        default="HEAD",
        help="git revision of cells-backup to measure (exported to work/pinned/), or 'installed' for the "
        "cells-backup command on PATH (default: HEAD)",
    )
    ap.add_argument("--from-json", metavar="FILE", help="only re-render the report of a recorded run (FILE.json)")
    args = ap.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            meta = json.load(f)
        base = os.path.splitext(args.from_json)[0]
        meta.setdefault("name", os.path.basename(base)[11:] or "run")  # <date>-<name>
        if "elapsed" not in meta and os.path.exists(base + ".md"):  # older reports kept it only there
            with open(base + ".md") as f:
                found = re.search(r"total wall time ([0-9.]+) min", f.read())
            if found:
                meta["elapsed"] = float(found.group(1)) * 60
        text, meta["summary"] = render(meta)
        _write_atomic(os.path.splitext(args.from_json)[0] + ".md", text)
        _write_atomic(args.from_json, json.dumps(meta, indent=1))
        print(text)
        return 0
    if args.quick:
        args.runs = 1
        args.size_mib = 200
        args.files = 20_000
        args.verify = "all"
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in TOOL_CLASSES:
            ap.error(f"unknown tool {t}")
    corpora = []
    for c in args.corpus.split(","):
        c = c.strip()
        if c == "mixed":
            corpora.append(CorpusSpec(f"mixed-{args.size_mib}m", "mixed", size_mib=args.size_mib))
        elif c == "small":
            corpora.append(CorpusSpec(f"small-{args.files // 1000}k", "small", files=args.files))
        else:
            ap.error(f"unknown corpus {c}")
    name = args.name or ("quick" if args.quick else "full")
    started = dt.datetime.now(dt.UTC)
    t_start = time.monotonic()
    ensure_tools(tools)

    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    run_dir = os.path.join(work, "run")
    logdir = os.path.join(work, "logs", started.strftime("%Y%m%dT%H%M%S"))
    os.makedirs(run_dir, exist_ok=True)
    os.makedirs(logdir, exist_ok=True)
    cstats = {}
    paths = {}
    for spec in corpora:
        paths[spec.label], cstats[spec.label] = ensure_corpus(spec, os.path.join(work, "corpus"), args.seed)

    if "cells" in tools:
        pin_cells(args.cells_rev, work)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RESTIC_", "BORG_", "CELLS_BACKUP_")) and k != "PYTHONPATH"
    }
    env.update(
        {
            "CELLS_BACKUP_PASSWORD": PASSWORD,
            "RESTIC_PASSWORD": PASSWORD,
            "BORG_PASSPHRASE": PASSWORD,
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
            "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING": "YES",
            "HOME": os.path.join(work, "home"),
        }
    )
    os.makedirs(env["HOME"], exist_ok=True)
    caches = Caches(args.cache)
    runner = Runner(caches, logdir, env)
    load_start = os.getloadavg()
    info = machine_info()
    versions = {t: TOOL_CLASSES[t](run_dir).version() for t in tools}
    raw: dict = {}
    for spec in corpora:
        run_corpus(spec, paths[spec.label], tools, args, runner, run_dir, raw)
    load_end = os.getloadavg()
    elapsed = time.monotonic() - t_start

    other = runner.loads
    cmdline = "python3 benchmarks/run.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    meta = {
        "name": name,
        "started": started.isoformat(),
        "elapsed": elapsed,
        "runs": args.runs,
        "command": cmdline.strip(),
        "machine": info,
        "versions": versions,
        "cache": caches.effective,
        "tools": tools,
        "specs": [spec.__dict__ for spec in corpora],
        "corpora": cstats,
        "raw": raw,
        "other_cpu": other,
        "load": [load_start, load_end],
        "restore_target": getattr(args, "restore_target_used", None),
    }
    text, meta["summary"] = render(meta)
    os.makedirs(args.results, exist_ok=True)
    base = os.path.join(args.results, f"{started.strftime('%Y-%m-%d')}-{name}")
    _write_atomic(base + ".md", text)
    _write_atomic(base + ".json", json.dumps(meta, indent=1))
    print(text)
    log(f"wrote {os.path.relpath(base, os.getcwd())}.md and .json")
    failed = [r for c in raw.values() for rs in c.values() for r in rs if str(r.get("verify", "")).startswith("FAIL")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
