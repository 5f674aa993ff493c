#!/usr/bin/env python3
"""Deterministic benchmark corpora for backup tools.

Two kinds of tree, both fully determined by ``--seed`` and the size options:

``--kind mixed --size-mib N OUT``
    About N MiB made of
    - a few large files (each 10-15 % of N: >= 100 MiB at N = 1024): random
      bytes, a text log, and a "disk image" of random, text and zero runs;
    - a near-duplicate of that image (a few KiB inserted near the start,
      a few patched blocks), which content-defined chunking should dedupe;
    - medium files (256 KiB - 8 MiB), half text (CSV, JSON lines, logs), half
      random (media-like);
    - small files (512 B - 128 KiB), mostly text (JSON, Markdown, HTML,
      source-like), some random;
    - exact copies of ~10 % of the bytes (medium and small files copied to
      other directories);
    - nested directories (up to 5 levels).

``--kind small --files N OUT``
    N small files of 0.5 - 8 KiB (80 % text, 20 % random; 5 % of them exact
    copies), ~100 per directory, in two levels of directories.

``--mutate PCT OUT``
    Changes about PCT % of the regular files of an existing tree, the same way
    for the same seed and tree: appends, in-place overwrites (same size),
    a few rewrites, deletions and new files. Prints what it did as JSON.

Every file and directory gets a fixed mtime (2025-01-01) so that two
generations of the same corpus are identical in content, names and mtimes.
Text is built from generated words and templates (no external data).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

MiB = 1024 * 1024
KiB = 1024
FIXED_MTIME = 1735689600  # 2025-01-01T00:00:00Z

# --------------------------------------------------------------------------- text


class TextSource:
    """Fast, seeded, compressible text: words, log lines, JSON records, CSV, prose."""

    LEVELS = ["INFO", "INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR"]

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        weights = [
            12.7,
            9.1,
            8.2,
            7.5,
            7.0,
            6.7,
            6.3,
            6.1,
            6.0,
            4.3,
            4.0,
            2.8,
            2.8,
            2.4,
            2.4,
            2.2,
            2.0,
            2.0,
            1.9,
            1.5,
            1.0,
            0.8,
            0.15,
            0.15,
            0.1,
            0.07,
        ]
        words = set()
        while len(words) < 6000:
            n = max(2, min(12, int(rng.gauss(6, 2.2))))
            words.add("".join(rng.choices(letters, weights, k=n)))
        self.words = sorted(words)
        # Zipf-like word frequencies, as in natural text.
        self.word_weights = [1.0 / (i + 1) ** 1.05 for i in range(len(self.words))]
        self.cum_words = list(_accumulate(self.word_weights))
        self.components = [self._ident() for _ in range(40)]
        self.fields = [self._ident() for _ in range(60)]
        self.templates = [self._template() for _ in range(300)]

    def _ident(self) -> str:
        parts = self.rng.choices(self.words[:800], k=self.rng.randint(1, 3))
        return "_".join(parts)

    def _template(self) -> str:
        n = self.rng.randint(4, 12)
        ws = self.rng.choices(self.words[:2000], k=n)
        slots = self.rng.sample(range(n), k=min(n, self.rng.randint(1, 3)))
        for s in slots:
            ws[s] = "{}"
        return " ".join(ws)

    def some_words(self, k: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cum_words, k=k)

    def prose(self, nbytes: int) -> bytes:
        out: list[str] = []
        size = 0
        rng = self.rng
        while size < nbytes:
            ws = self.some_words(rng.randint(6, 24))
            ws[0] = ws[0].capitalize()
            s = " ".join(ws) + rng.choice([". ", ". ", ". ", "? ", "! ", ".\n\n"])
            out.append(s)
            size += len(s)
        return "".join(out).encode()[:nbytes]

    def log(self, nbytes: int, start: float | None = None) -> bytes:
        rng = self.rng
        t = start if start is not None else 1_700_000_000 + rng.randint(0, 10_000_000)
        out: list[str] = []
        size = 0
        comps, tmpls, levels = self.components, self.templates, self.LEVELS
        words = self.words
        getrandbits, randint, choice = rng.getrandbits, rng.randint, rng.choice
        while size < nbytes:
            t += rng.expovariate(20.0)
            tm = time.gmtime(t)
            tmpl = choice(tmpls)
            msg = tmpl.format(
                *(choice(words) if getrandbits(1) else str(randint(0, 99999)) for _ in range(tmpl.count("{}")))
            )
            line = (
                f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}:"
                f"{tm.tm_sec:02d}.{int((t % 1) * 1e6):06d}Z {choice(levels)} [{choice(comps)}] {msg} "
                f"req={getrandbits(32):08x} dur={randint(0, 5000)}ms\n"
            )
            out.append(line)
            size += len(line)
        return "".join(out).encode()[:nbytes]

    def jsonl(self, nbytes: int) -> bytes:
        rng = self.rng
        out: list[str] = []
        size = 0
        fields = self.fields
        while size < nbytes:
            keys = rng.sample(fields, k=rng.randint(3, 8))
            rec = {}
            for k in keys:
                r = rng.random()
                if r < 0.4:
                    rec[k] = " ".join(self.some_words(rng.randint(1, 6)))
                elif r < 0.7:
                    rec[k] = rng.randint(0, 10**6)
                elif r < 0.85:
                    rec[k] = round(rng.uniform(-1000, 1000), 3)
                else:
                    rec[k] = rng.random() < 0.5
            rec["id"] = f"{rng.getrandbits(64):016x}"
            line = json.dumps(rec, separators=(",", ":")) + "\n"
            out.append(line)
            size += len(line)
        return "".join(out).encode()[:nbytes]

    def json_doc(self, nbytes: int) -> bytes:
        rng = self.rng
        items = []
        size = 2
        while size < nbytes:
            item = {k: " ".join(self.some_words(rng.randint(1, 5))) for k in rng.sample(self.fields, k=4)}
            item["n"] = rng.randint(0, 10**5)
            s = json.dumps(item, indent=2)
            items.append(s)
            size += len(s) + 2
        return ("[" + ",\n".join(items) + "]\n").encode()[:nbytes]

    def csv(self, nbytes: int) -> bytes:
        rng = self.rng
        cols = rng.sample(self.fields, k=rng.randint(4, 10))
        out = [",".join(cols) + "\n"]
        size = len(out[0])
        kinds = [rng.randint(0, 2) for _ in cols]
        while size < nbytes:
            cells = []
            for kd in kinds:
                if kd == 0:
                    cells.append(str(rng.randint(0, 10**6)))
                elif kd == 1:
                    cells.append(f"{rng.uniform(0, 1000):.2f}")
                else:
                    cells.append(rng.choice(self.words))
            line = ",".join(cells) + "\n"
            out.append(line)
            size += len(line)
        return "".join(out).encode()[:nbytes]

    def markup(self, nbytes: int) -> bytes:
        rng = self.rng
        out = ["<!doctype html>\n<html><head><title>" + " ".join(self.some_words(4)) + "</title></head><body>\n"]
        size = len(out[0])
        while size < nbytes:
            tag = rng.choice(["p", "p", "li", "h2", 'div class="note"'])
            close = tag.split()[0]
            s = f"<{tag}>{self.prose(rng.randint(40, 400)).decode()}</{close}>\n"
            out.append(s)
            size += len(s)
        return "".join(out).encode()[:nbytes]

    def source(self, nbytes: int) -> bytes:
        rng = self.rng
        out: list[str] = []
        size = 0
        while size < nbytes:
            name = self._ident()
            args = ", ".join(rng.sample(self.fields, k=rng.randint(0, 4)))
            body = []
            for _ in range(rng.randint(2, 12)):
                ind = "    " * rng.randint(1, 3)
                a, b = rng.sample(self.fields, k=2)
                body.append(f"{ind}{a} = {b} + {rng.randint(0, 999)}  # {' '.join(self.some_words(4))}")
            s = f"def {name}({args}):\n" + "\n".join(body) + "\n    return None\n\n"
            out.append(s)
            size += len(s)
        return "".join(out).encode()[:nbytes]

    def any_text(self, nbytes: int, ext: str) -> bytes:
        return {
            ".log": self.log,
            ".jsonl": self.jsonl,
            ".json": self.json_doc,
            ".csv": self.csv,
            ".html": self.markup,
            ".md": self.prose,
            ".txt": self.prose,
            ".py": self.source,
        }[ext](nbytes)


def _accumulate(xs):
    total = 0.0
    for x in xs:
        total += x
        yield total


TEXT_EXTS = [".json", ".md", ".txt", ".html", ".py", ".log", ".csv", ".jsonl"]
BIN_EXTS = [".jpg", ".png", ".bin", ".gz", ".pdf"]

# ------------------------------------------------------------------------- writing


def _write(path: str, data: bytes | list[bytes]) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        if isinstance(data, list):
            n = 0
            for part in data:
                f.write(part)
                n += len(part)
            return n
        f.write(data)
        return len(data)


def _write_stream(path: str, parts) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    n = 0
    with open(path, "wb") as f:
        for part in parts:
            f.write(part)
            n += len(part)
    return n


def _copy(src: str, dst: str) -> int:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        n = 0
        while True:
            b = fi.read(4 * MiB)
            if not b:
                return n
            fo.write(b)
            n += len(b)


def _fix_mtimes(root: str) -> None:
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
        os.utime(dirpath, (FIXED_MTIME, FIXED_MTIME))


def _log_uniform(rng: random.Random, lo: int, hi: int) -> int:
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _dir_tree(rng: random.Random, text: TextSource, count: int, top: list[str], max_depth: int) -> list[str]:
    """``count`` nested directory paths (relative), parents included implicitly."""
    dirs = list(top)
    while len(dirs) < count:
        parent = rng.choice(dirs)
        if parent.count("/") + 1 >= max_depth:
            continue
        dirs.append(f"{parent}/{rng.choice(text.words[:3000])}")
    return sorted(set(dirs))


# --------------------------------------------------------------------------- kinds


def gen_mixed(out: str, size_mib: int, seed: int) -> dict:
    rng = random.Random(f"mixed-{seed}")
    text = TextSource(random.Random(f"text-{seed}"))
    total = size_mib * MiB
    stats = {"files": 0, "bytes": 0, "copies": 0, "large": []}

    def add(path: str, n: int) -> None:
        stats["files"] += 1
        stats["bytes"] += n

    # Large files.
    big_random = int(total * 0.15)
    p = os.path.join(out, "archive/backup-old.bin")
    add(p, _write_stream(p, (rng.randbytes(min(4 * MiB, big_random - i)) for i in range(0, big_random, 4 * MiB))))
    stats["large"].append(("archive/backup-old.bin", big_random))

    big_log = int(total * 0.12)
    p = os.path.join(out, "var/log/app/server.log")

    def log_parts(n: int):
        t = 1_700_000_000.0
        done = 0
        while done < n:
            part = text.log(min(4 * MiB, n - done), start=t)
            t += 4 * MiB / 100 / 20.0
            done += len(part)
            yield part

    add(p, _write_stream(p, log_parts(big_log)))
    stats["large"].append(("var/log/app/server.log", big_log))

    img_size = int(total * 0.10)
    img_blocks: list[bytes] = []
    done = 0
    while done < img_size:
        r = rng.random()
        n = min(img_size - done, rng.randint(64 * KiB, 2 * MiB))
        if r < 0.5:
            b = rng.randbytes(n)
        elif r < 0.8:
            b = text.any_text(n, rng.choice(TEXT_EXTS))
        else:
            b = bytes(n)
        img_blocks.append(b)
        done += len(b)
    p = os.path.join(out, "vm/disk.img")
    add(p, _write(p, img_blocks))
    stats["large"].append(("vm/disk.img", img_size))

    # Near-duplicate of the image: an insertion near the start and a few patched blocks.
    v2 = list(img_blocks)
    v2.insert(1, rng.randbytes(5 * KiB))
    for _ in range(4):
        i = rng.randrange(2, len(v2))
        blk = bytearray(v2[i])
        if blk:
            off = rng.randrange(len(blk))
            patch = rng.randbytes(min(8 * KiB, len(blk) - off))
            blk[off : off + len(patch)] = patch
            v2[i] = bytes(blk)
    p = os.path.join(out, "vm/disk-v2.img")
    add(p, _write(p, v2))
    stats["large"].append(("vm/disk-v2.img", sum(len(b) for b in v2)))
    del img_blocks, v2

    # Directory skeleton for the rest.
    top = ["home", "projects", "srv/www", "data/exports", "media", "docs"]
    n_small_est = int(total * 0.18 / (20 * KiB))
    dirs = _dir_tree(rng, text, max(20, n_small_est // 25), top, max_depth=5)

    # Medium files.
    medium_budget = int(total * 0.25)
    medium: list[str] = []
    done = 0
    i = 0
    while done < medium_budget:
        n = min(medium_budget - done, _log_uniform(rng, 256 * KiB, 8 * MiB))
        d = rng.choice(dirs)
        if i % 2 == 0:
            ext = rng.choice(BIN_EXTS)
            data = rng.randbytes(n)
        else:
            ext = rng.choice([".csv", ".jsonl", ".log", ".txt"])
            data = text.any_text(n, ext)
        rel = f"{d}/{rng.choice(text.words)}-{i:04d}{ext}"
        add(rel, _write(os.path.join(out, rel), data))
        medium.append(rel)
        done += len(data)
        i += 1

    # Small files.
    small_budget = int(total * 0.18)
    small: list[str] = []
    done = 0
    i = 0
    while done < small_budget:
        n = min(small_budget - done, _log_uniform(rng, 512, 128 * KiB))
        d = rng.choice(dirs)
        if rng.random() < 0.2:
            ext = rng.choice(BIN_EXTS)
            data = rng.randbytes(n)
        else:
            ext = rng.choice(TEXT_EXTS)
            data = text.any_text(n, ext)
        rel = f"{d}/{rng.choice(text.words)}_{i:05d}{ext}"
        add(rel, _write(os.path.join(out, rel), data))
        small.append(rel)
        done += len(data)
        i += 1

    # Exact copies (about 10 % of the bytes), into other directories.
    copy_budget = int(total * 0.10)
    done = 0
    i = 0
    pool = medium + small
    while done < copy_budget and pool:
        src = rng.choice(medium) if rng.random() < 0.3 else rng.choice(small)
        rel = (
            f"{rng.choice(['home', 'shared', 'backup-copies'])}/{rng.choice(dirs).replace('/', '-')}/copy{i:04d}-"
            f"{os.path.basename(src)}"
        )
        n = _copy(os.path.join(out, src), os.path.join(out, rel))
        add(rel, n)
        stats["copies"] += 1
        done += n
        i += 1

    # A handful of empty files and a symlink, as real trees have.
    for j in range(5):
        rel = f"{rng.choice(dirs)}/empty-{j}"
        add(rel, _write(os.path.join(out, rel), b""))
    os.symlink("../var/log/app/server.log", os.path.join(out, "docs/latest.log"))

    _fix_mtimes(out)
    stats["dirs"] = sum(1 for _ in os.walk(out))
    return stats


def gen_small(out: str, files: int, seed: int) -> dict:
    rng = random.Random(f"small-{seed}")
    text = TextSource(random.Random(f"text-{seed}"))
    per_dir = 100
    n_dirs = max(1, math.ceil(files / per_dir))
    fan = max(1, math.ceil(math.sqrt(n_dirs)))
    stats = {"files": 0, "bytes": 0, "copies": 0}
    written: list[str] = []
    for i in range(files):
        d = i // per_dir
        rel = f"d{d // fan:03d}/{text.words[d % fan]}{d % fan:03d}"
        if written and rng.random() < 0.05:
            src = rng.choice(written)
            name = f"copy{i:06d}-{os.path.basename(src)}"
            n = _copy(os.path.join(out, src), os.path.join(out, rel, name))
            stats["copies"] += 1
        else:
            size = rng.randint(512, 8 * KiB)
            if rng.random() < 0.2:
                ext = rng.choice(BIN_EXTS)
                data = rng.randbytes(size)
            else:
                ext = rng.choice(TEXT_EXTS)
                data = text.any_text(size, ext)
            name = f"{rng.choice(text.words)}-{i:06d}{ext}"
            n = _write(os.path.join(out, rel, name), data)
            written.append(f"{rel}/{name}")
        stats["files"] += 1
        stats["bytes"] += n
    _fix_mtimes(out)
    stats["dirs"] = sum(1 for _ in os.walk(out))
    return stats


# -------------------------------------------------------------------------- mutate


def mutate(root: str, pct: float, seed: int) -> dict:
    """Change ~pct % of the regular files under ``root``, deterministically for a given tree."""
    rng = random.Random(f"mutate-{seed}-{pct}")
    text = TextSource(random.Random(f"mutate-text-{seed}"))
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(os.path.relpath(p, root))
    files.sort()
    k = max(1, round(len(files) * pct / 100))
    chosen = rng.sample(files, k=min(k, len(files)))
    summary = {"appended": 0, "overwritten": 0, "rewritten": 0, "deleted": 0, "created": 0, "bytes_written": 0}
    for rel in chosen:
        p = os.path.join(root, rel)
        size = os.path.getsize(p)
        r = rng.random()
        if r < 0.40:
            n = rng.randint(64, max(128, min(64 * KiB, size // 10 + 64)))
            data = text.log(n) if rng.random() < 0.7 else rng.randbytes(n)
            with open(p, "ab") as f:
                f.write(data)
            summary["appended"] += 1
            summary["bytes_written"] += len(data)
        elif r < 0.75 and size > 0:
            n = min(size, rng.randint(16, 16 * KiB))
            off = rng.randrange(0, size - n + 1)
            data = rng.randbytes(n)
            with open(p, "r+b") as f:
                f.seek(off)
                f.write(data)
            summary["overwritten"] += 1
            summary["bytes_written"] += n
        elif r < 0.85:
            n = min(max(size, 256), 256 * KiB)
            data = text.jsonl(n)
            with open(p, "wb") as f:
                f.write(data)
            summary["rewritten"] += 1
            summary["bytes_written"] += len(data)
        else:
            os.unlink(p)
            summary["deleted"] += 1
    n_new = max(1, k // 10)
    for i in range(n_new):
        d = os.path.dirname(rng.choice(files))
        ext = rng.choice(TEXT_EXTS)
        data = text.any_text(rng.randint(512, 32 * KiB), ext)
        rel = os.path.join(d, f"new-{seed}-{i:04d}{ext}")
        _write(os.path.join(root, rel), data)
        summary["created"] += 1
        summary["bytes_written"] += len(data)
    summary["files_before"] = len(files)
    summary["files_touched"] = len(chosen) + n_new
    return summary


# ----------------------------------------------------------------------------- cli


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out", help="directory to create (must not exist), or to mutate with --mutate")
    ap.add_argument("--kind", choices=["mixed", "small"], default="mixed")
    ap.add_argument("--size-mib", type=int, default=1024, help="mixed: total size in MiB")
    ap.add_argument("--files", type=int, default=100_000, help="small: number of files")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mutate", type=float, metavar="PCT", help="change about PCT %% of the files of OUT")
    args = ap.parse_args(argv)
    started = time.monotonic()
    if args.mutate is not None:
        if not os.path.isdir(args.out):
            ap.error(f"{args.out}: not a directory")
        result = mutate(args.out, args.mutate, args.seed)
    else:
        if os.path.exists(args.out):
            ap.error(f"{args.out}: already exists")
        os.makedirs(args.out)
        if args.kind == "mixed":
            result = gen_mixed(args.out, args.size_mib, args.seed)
        else:
            result = gen_small(args.out, args.files, args.seed)
    result["seconds"] = round(time.monotonic() - started, 1)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
