"""Restores from a remote repository, which read each pack once and write blobs where they belong.

The repository here is a local directory behind a wrapper that says it is remote (and can
misbehave), so that the pack-ordered path runs with faults a real S3 server cannot stage; the
S3 end-to-end tests run the same path against SeaweedFS.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

from cells_backup.engine.trees import restore_tree
from cells_backup.repository.backends import LocalBackend
from cells_backup.repository.backends.base import BackendProperties
from cells_backup.repository.backends.retry import TransientBackendError
from cells_backup.repository.repository import Repository, pack_name
from faulty_backend import Fault, FaultyBackend
from helpers import FAST_KDF, run_cli, tree_state

MIB = 1024 * 1024


class RemoteLike(FaultyBackend):
    """A local repository read the way a remote one is; counts the pack bytes it hands out, and
    can cut its first ``cuts`` pack streams halfway (after handing over half their bytes), each
    range at most once."""

    properties = BackendProperties(remote=True)  # pack files go through `write`, as a remote's do

    def __init__(self, inner, plan=(), cuts: int = 0) -> None:
        super().__init__(inner, list(plan))
        self.pack_bytes = 0
        self.cuts = cuts
        self._cut_lock = threading.Lock()
        self._cut_ranges: set[tuple[str, int]] = set()

    def _cut_now(self, name: str, offset: int) -> bool:
        with self._cut_lock:
            if self.cuts <= 0 or (name, offset) in self._cut_ranges:
                return False
            self._cut_ranges.add((name, offset))
            self.cuts -= 1
            return True

    def read_stream(self, name: str, offset: int, length: int):
        for chunk in super().read_stream(name, offset, length):
            if not name.startswith("data/"):
                yield chunk
                continue
            if len(chunk) > 1 and self._cut_now(name, offset):
                half = chunk[: len(chunk) // 2]
                for start in range(0, len(half), 64 * 1024):
                    self.pack_bytes += len(half[start : start + 64 * 1024])
                    yield half[start : start + 64 * 1024]
                raise TransientBackendError(f"{name}: connection reset by peer")
            self.pack_bytes += len(chunk)
            yield chunk


def make_tree(root: Path) -> Path:
    rng = random.Random(11)
    src = root / "src"
    (src / "small").mkdir(parents=True)
    block = rng.randbytes(3 * MIB)
    (src / "big.bin").write_bytes(rng.randbytes(5 * MIB))
    (src / "repeats.bin").write_bytes(block * 3)  # the same chunks several times in one file
    (src / "copy-of-big.bin").write_bytes((src / "big.bin").read_bytes())  # and across files
    (src / "sparse.bin").write_bytes(rng.randbytes(MIB) + bytes(3 * MIB))  # ends in a hole
    (src / "empty").write_bytes(b"")
    for i in range(200):
        (src / "small" / f"f{i:03}").write_bytes(rng.randbytes(rng.randint(1, 40_000)))
    os.link(src / "big.bin", src / "hardlink")
    os.symlink("big.bin", src / "link")
    os.chmod(src / "small" / "f007", 0o600)
    return src


def backed_up(tmp_path: Path, env: dict[str, str]) -> tuple[str, Path]:
    src = make_tree(tmp_path)
    repo = str(tmp_path / "repo")
    run_cli("--repo", repo, "init", "--pack-size", "2", *FAST_KDF, env=env, check=True)
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    return repo, src


def restore(backend, out: Path):
    repo = Repository.open(backend, b"correct horse")
    assert repo.remote
    return repo, restore_tree(repo, repo.resolve_snapshot("latest"), str(out))


def stored_node(repo_dir: str, rel: str) -> tuple[Repository, dict]:
    """The opened repository and the node of ``rel`` (relative to the backed-up tree)."""
    repo = Repository.open(LocalBackend(repo_dir), b"correct horse")
    repo.load_index()
    node = next(n for n in repo.read_tree(repo.resolve_snapshot("latest").tree) if n["type"] == "dir")
    while node["name"] != "src":  # walk down the path of the backed-up tree
        node = next(n for n in repo.read_tree(node["subtree"]) if n["type"] == "dir")
    for part in rel.split("/"):
        node = next(n for n in repo.read_tree(node["subtree"]) if n["name"] == part)
    return repo, node


def restored(out: Path, src: Path) -> Path:
    return out / str(src).lstrip("/")


def test_every_file_identical_and_each_pack_read_once(tmp_path: Path, env) -> None:
    repo_dir, src = backed_up(tmp_path, env)
    backend = RemoteLike(LocalBackend(repo_dir))
    _, result = restore(backend, tmp_path / "out")
    assert result.errors == []
    out = restored(tmp_path / "out", src)
    assert tree_state(out) == tree_state(src)
    sparse = os.stat(out / "sparse.bin")
    assert sparse.st_size == 4 * MIB and sparse.st_blocks * 512 < 2 * MIB  # the hole stayed a hole
    packs = sum(size for _, size in LocalBackend(repo_dir).list("data/"))
    assert backend.pack_bytes <= packs


def test_damaged_blob_costs_only_the_files_that_hold_it(tmp_path: Path, env) -> None:
    repo_dir, src = backed_up(tmp_path, env)
    repo, victim = stored_node(repo_dir, "small/f100")
    loc = repo.index.get(bytes.fromhex(victim["content"][0]))
    pack = Path(repo_dir) / pack_name(loc.pack)
    data = bytearray(pack.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0x01
    pack.write_bytes(bytes(data))

    _, result = restore(RemoteLike(LocalBackend(repo_dir)), tmp_path / "out")
    out = restored(tmp_path / "out", src)
    assert [e["path"] for e in result.errors] == [str(out / "small" / "f100")]
    assert "not restored, its data is damaged" in result.errors[0]["error"]
    assert not (out / "small" / "f100").exists()  # nothing half-written left behind
    expected = {k: v for k, v in tree_state(src).items() if k != "small/f100"}
    assert tree_state(out) == expected


def test_stream_cut_twice_is_resumed(tmp_path: Path, env) -> None:
    repo_dir, src = backed_up(tmp_path, env)
    backend = RemoteLike(LocalBackend(repo_dir), [Fault("read_range", "transient", match="data/", times=2)])
    _, result = restore(backend, tmp_path / "out")
    assert result.errors == []
    assert tree_state(restored(tmp_path / "out", src)) == tree_state(src)


def test_streams_cut_halfway_resume_where_they_stopped(tmp_path: Path, env) -> None:
    repo_dir, src = backed_up(tmp_path, env)
    backend = RemoteLike(LocalBackend(repo_dir), cuts=4)
    _, result = restore(backend, tmp_path / "out")
    assert backend.cuts == 0  # every cut happened
    assert result.errors == []
    assert tree_state(restored(tmp_path / "out", src)) == tree_state(src)
    packs = sum(size for _, size in LocalBackend(repo_dir).list("data/"))
    assert backend.pack_bytes <= packs + 4 * 4 * MIB  # at most one blob read again per cut


def test_unreadable_packs_are_reported_per_file_in_one_line(tmp_path: Path, env) -> None:
    repo_dir, src = backed_up(tmp_path, env)
    backend = RemoteLike(LocalBackend(repo_dir), [Fault("read_range", "permanent", match="data/", times=None)])
    repo, result = restore(backend, tmp_path / "out")
    out = restored(tmp_path / "out", src)
    failed = {e["path"] for e in result.errors}
    regular = {str(out / rel) for rel, (kind, *_rest) in tree_state(src).items()
               if kind == 0o100000 and rel not in ("empty", "hardlink")}
    assert regular <= failed
    assert all("could not be read" in e["error"] and "\n" not in e["error"] for e in result.errors
               if e["path"] in regular)
    assert not any((out / rel).exists() for rel in ("big.bin", "small/f000", "sparse.bin"))
    assert (out / "empty").exists()  # no data to read, so nothing lost


def test_truncated_pack_spares_what_comes_before(tmp_path: Path, env) -> None:
    repo_dir, src = backed_up(tmp_path, env)
    repo, big = stored_node(repo_dir, "big.bin")
    cut = pack_name(repo.index.get(bytes.fromhex(big["content"][0])).pack)  # a pack holding file data
    backend = RemoteLike(LocalBackend(repo_dir), [Fault("read_range", "truncate", match=cut, times=None,
                                                        keep=-1)])
    _, result = restore(backend, tmp_path / "out")
    assert result.errors, "the last blob of the cut pack belongs to some file"
    assert all("truncated" in e["error"] for e in result.errors)
    out = restored(tmp_path / "out", src)
    state, expected = tree_state(out), tree_state(src)
    for rel, entry in state.items():
        assert entry == expected[rel]  # whatever was restored is right
