"""Shared test helpers: run the real CLI, build and compare trees."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST_KDF = ["--kdf-cost", "10"]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def cli_env(password: str | None = "correct horse", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLS_BACKUP_")}
    env["PYTHONPATH"] = str(REPO_ROOT / "src")
    env["XDG_CONFIG_HOME"] = extra.pop("XDG_CONFIG_HOME", "/nonexistent-config-home")
    if password is not None:
        env["CELLS_BACKUP_PASSWORD"] = password
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, input: bytes | None = None,
            timeout: float = 300, check: bool = False) -> Result:
    proc = subprocess.run([sys.executable, "-m", "cells_backup", *args], env=env or cli_env(),
                          capture_output=True, input=input, timeout=timeout)
    result = Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
    if check and result.code != 0:
        raise AssertionError(f"cells-backup {' '.join(args)} exited {result.code}:\n{result.stderr}")
    return result


def spawn_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cells_backup", *args], env=env or cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def tree_state(root: str | Path, *, times: bool = True) -> dict[str, tuple]:
    """Everything a restore must reproduce, per relative path: type, mode, content hash, link target,
    mtime (ns), and which paths share an inode."""
    root = str(root)
    state: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            kind = stat.S_IFMT(st.st_mode)
            content = None
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
                if st.st_nlink > 1:
                    first = inodes.setdefault((st.st_dev, st.st_ino), rel)
                    content = (content, "link-group", first if first != rel else None)
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(full)
            mtime = st.st_mtime_ns if times and not stat.S_ISLNK(st.st_mode) else None
            if stat.S_ISDIR(st.st_mode):
                mtime = None  # directory times are set last and depend on walk order of other tools
            state[rel] = (kind, stat.S_IMODE(st.st_mode), content, mtime)
    return state


def normalize_link_groups(state: dict[str, tuple]) -> dict[str, tuple]:
    """Hardlink groups compared by membership, not by which member is 'first'."""
    groups: dict[str, set[str]] = {}
    for rel, (_k, _m, content, _t) in state.items():
        if isinstance(content, tuple):
            leader = content[2] or rel
            groups.setdefault(leader, set()).add(rel)
    out = {}
    for rel, (kind, mode, content, mtime) in state.items():
        if isinstance(content, tuple):
            leader = content[2] or rel
            content = (content[0], frozenset(groups[leader]))
        out[rel] = (kind, mode, content, mtime)
    return out


def flip_byte(path: str | Path, offset: int | None = None) -> None:
    data = bytearray(Path(path).read_bytes())
    pos = len(data) // 2 if offset is None else offset
    data[pos] ^= 0x01
    mode = os.stat(path).st_mode
    os.chmod(path, 0o600)
    Path(path).write_bytes(bytes(data))
    os.chmod(path, stat.S_IMODE(mode))


def json_leaves(node, path: tuple = ()):
    """(path, value) of every scalar in a JSON document: configs are compared leaf by leaf."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from json_leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from json_leaves(v, (*path, i))
    else:
        yield path, node


def fast_repository(path: str | Path):
    """A new local repository (password "pw", a KDF cheap enough for tests), opened."""
    from cells_backup.repository.backends.local import LocalBackend
    from cells_backup.repository.repository import Repository

    Repository.create(LocalBackend(str(path)), b"pw", kdf={"n": 1024, "r": 8, "p": 1})
    return Repository.open(LocalBackend(str(path)), b"pw")


def save_tree(repo, nodes: list[dict]) -> str:
    """Store one tree outside a backup (hand-made snapshots, hostile trees); returns its id."""
    from cells_backup.repository.index import TREE
    from cells_backup.repository.tree import encode_tree
    from cells_backup.repository.writer import BlobWriter

    with BlobWriter(repo) as writer:
        tree = writer.save(TREE, encode_tree(nodes))
    return tree.hex()


def random_files(root: Path, dirs: int, per_dir: int, size: int, step: int) -> None:
    """``dirs`` directories dir0.. under ``root``, each with files f0.. of random bytes
    (``size`` bytes, ``step`` more each), and the first file of dir0 hard-linked into the last
    directory as ``link-to-f1``."""
    for d in range(dirs):
        (root / f"dir{d}").mkdir(parents=True)
        for i in range(per_dir):
            (root / f"dir{d}" / f"f{i}").write_bytes(os.urandom(size + i * step))
    os.link(root / "dir0" / "f1", root / f"dir{dirs - 1}" / "link-to-f1")
