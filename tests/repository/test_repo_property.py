"""Random trees round-trip bit-exact with their metadata (hypothesis)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cells_backup.engine.trees import BackupRequest, restore_tree, run_backup
from cells_backup.repository.backends.local import LocalBackend
from cells_backup.repository.repository import Repository
from helpers import normalize_link_groups, tree_state

NAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00")
names = st.text(NAME_CHARS, min_size=1, max_size=20).filter(lambda n: n not in (".", "..")).filter(
    lambda n: len(n.encode()) < 200)
contents = st.one_of(
    st.just(b""),
    st.binary(max_size=2000),
    st.builds(lambda n, b: bytes([b]) * n, st.integers(0, 3_000_000), st.integers(0, 255)),
    st.builds(lambda n: os.urandom(n), st.integers(0, 2_500_000)),
)
modes = st.sampled_from([0o644, 0o600, 0o755, 0o400, 0o777, 0o640, 0o1777 & 0o777])
mtimes = st.integers(0, 2**41).map(lambda s: s * 1000 + 123)

entry = st.recursive(
    st.one_of(
        st.tuples(st.just("file"), contents, modes, mtimes),
        st.tuples(st.just("symlink"), names),
    ),
    lambda children: st.tuples(st.just("dir"), st.dictionaries(names, children, max_size=5)),
    max_leaves=12,
)
trees = st.dictionaries(names, entry, min_size=1, max_size=6)


def materialize(root: Path, spec: dict) -> list[Path]:
    files = []
    for name, item in spec.items():
        path = root / name
        if item[0] == "file":
            path.write_bytes(item[1])
            os.chmod(path, item[2])
            os.utime(path, ns=(item[3], item[3]))
            files.append(path)
        elif item[0] == "symlink":
            os.symlink(item[1], path)
        else:
            path.mkdir()
            files += materialize(path, item[1])
    return files


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=trees, link_count=st.integers(0, 2))
def test_random_trees_roundtrip(spec, link_count):
    work = Path(tempfile.mkdtemp(prefix="prop-"))
    try:
        src = work / "src"
        src.mkdir()
        files = materialize(src, spec)
        for i in range(min(link_count, len(files))):
            os.link(files[i], src / f"hardlink {i}\n")
        backend = LocalBackend(str(work / "repo"))
        repo = Repository.create(backend, b"pw", kdf={"n": 1024, "r": 8, "p": 1}, pack_size=1 << 20)
        snap = run_backup(repo, BackupRequest(paths=[str(src)]))
        assert not snap.partial, snap.errors
        fresh = Repository.open(backend, b"pw")
        result = restore_tree(fresh, fresh.resolve_snapshot("latest"), str(work / "out"))
        assert result.errors == []
        restored = work / "out" / str(src).lstrip("/")
        assert normalize_link_groups(tree_state(restored)) == normalize_link_groups(tree_state(src))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_streams_with_short_reads_are_stored_whole(tmp_path):
    """Pipes and raw streams return fewer bytes than asked; nothing may be lost."""
    import io

    from cells_backup.repository.archiver import VirtualDir
    from cells_backup.repository.reader import open_content
    from cells_backup.repository.restorer import find_node

    payload = os.urandom(3 * 1024 * 1024 + 17)

    class Trickle(io.RawIOBase):
        def __init__(self) -> None:
            self.pos = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buf) -> int:
            n = min(len(buf), 1000, len(payload) - self.pos)
            buf[:n] = payload[self.pos : self.pos + n]
            self.pos += n
            return n

    repo = Repository.create(LocalBackend(str(tmp_path / "r")), b"pw", kdf={"n": 1024, "r": 8, "p": 1})
    vd = VirtualDir("/streams", lambda: iter([("a/b.bin", Trickle()), ("c.bin", Trickle())]))
    snap = run_backup(repo, BackupRequest(paths=[], virtual=[vd]))
    for path in ("/streams/a/b.bin", "/streams/c.bin"):
        node = find_node(repo, snap.tree, path)
        assert node["size"] == len(payload)
        with open_content(repo, node["content"]) as f:
            assert f.read() == payload
