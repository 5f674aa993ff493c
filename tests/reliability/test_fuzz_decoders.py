"""Every decoder of repository objects and every pydio.json reader, fed random and mutated input,
fails only with a clean, typed error (never a crash, never an unbounded allocation)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cells_backup.cells import installation_from_config
from cells_backup.cells.config import read_pydio_json
from cells_backup.errors import CellsBackupError
from cells_backup.repository.crypto import MasterKey, blob_id
from cells_backup.repository.index import PackEntry, decode_index, encode_index
from cells_backup.repository.keys import make_key_file, parse_key_file, unwrap
from cells_backup.repository.pack import PackBuilder, decode_blob, decode_header, encode_blob, header_length
from cells_backup.repository.snapshot import Snapshot
from cells_backup.repository.tree import decode_tree, encode_tree
from helpers import REPO_ROOT

MASTER = MasterKey.generate()
CIPHER = MASTER.cipher()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        if buf:
            buf[pos % len(buf)] = value
    if cut is not None and buf:
        buf = buf[: cut % (len(buf) + 1)]
    return bytes(buf)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4)
cuts = st.none() | st.integers(0, 10**6)


def sample_tree() -> bytes:
    return encode_tree([
        {"name": "a", "type": "file", "mode": 0o644, "uid": 0, "gid": 0, "mtime": 1, "ctime": 1, "inode": 1,
         "dev": 1, "size": 3, "content": ["ab" * 32]},
        {"name": "d", "type": "dir", "mode": 0o755, "uid": 0, "gid": 0, "mtime": 1, "ctime": 1, "inode": 2,
         "dev": 1, "subtree": "cd" * 32},
        {"name": "l", "type": "symlink", "mode": 0o777, "uid": 0, "gid": 0, "mtime": 1, "ctime": 1, "inode": 3,
         "dev": 1, "target": "../x"},
    ])


@FUZZ
@given(edits=edits, cut=cuts)
def test_tree_decoder(edits, cut):
    try:
        decode_tree(mutate(sample_tree(), edits, cut), "tree")
    except CellsBackupError:
        pass


@FUZZ
@given(data=st.binary(max_size=4096))
def test_tree_decoder_random(data):
    try:
        decode_tree(data, "tree")
    except CellsBackupError:
        pass


@FUZZ
@given(edits=edits, cut=cuts)
def test_index_decoder(edits, cut):
    index = encode_index({os.urandom(32): [PackEntry(0, os.urandom(32), 0, 100, 90), PackEntry(1, os.urandom(32),
                                                                                                100, 50, 80)]},
                         supersedes=[os.urandom(32)])
    try:
        decode_index(mutate(index, edits, cut), "index")
    except CellsBackupError:
        pass


@FUZZ
@given(edits=edits, cut=cuts)
def test_pack_header_and_blob_decoders(edits, cut):
    import zstandard

    data = b"hello world " * 100
    blob = blob_id(MASTER.identity, data)
    builder = PackBuilder()
    stored = encode_blob(CIPHER, zstandard.ZstdCompressor(), data)
    builder.add(0, blob, stored, len(data))
    pack = mutate(builder.finish(CIPHER), edits, cut)
    try:
        hlen = header_length(pack[-4:], len(pack), "pack")
        entries = decode_header(CIPHER, pack[len(pack) - 4 - hlen: len(pack) - 4], len(pack), "pack")
        for e in entries:
            decode_blob(CIPHER, MASTER.identity, pack[e.offset: e.offset + e.length], e.id, e.raw_length, "blob")
    except CellsBackupError:
        pass


@FUZZ
@given(edits=edits, cut=cuts)
def test_snapshot_decoder(edits, cut):
    snap = Snapshot(time="2026-01-01T00:00:00+00:00", hostname="h", username="u", paths=["/x"], tree="ab" * 32)
    try:
        Snapshot.from_bytes(mutate(snap.to_bytes(), edits, cut), "ab" * 32)
    except CellsBackupError:
        pass


_KEY = make_key_file(MASTER, b"pw", {"n": 16, "r": 1, "p": 1})[1]


@FUZZ
@given(edits=edits, cut=cuts)
def test_key_file_decoder(edits, cut):
    try:
        key = parse_key_file("keys/x", mutate(_KEY, edits, cut))
        unwrap(key, b"pw")
    except CellsBackupError:
        pass


CELLS_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "cells"
PYDIO = [p.read_bytes() for p in sorted(CELLS_FIXTURES.glob("pydio-*.json"))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 100), edits=edits, cut=cuts)
def test_pydio_json_readers(tmp_path_factory, which, edits, cut):
    assert PYDIO, f"no pydio-*.json fixtures in {CELLS_FIXTURES}"
    data = mutate(PYDIO[which % len(PYDIO)], edits, cut)
    path = tmp_path_factory.mktemp("p") / "pydio.json"
    path.write_bytes(data)
    try:
        config = read_pydio_json(path)
        installation_from_config(config, Path(path.parent))
    except CellsBackupError:
        pass


@settings(max_examples=200, deadline=None)
@given(doc=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=5),
                        max_leaves=30))
def test_pydio_json_shapes(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("q") / "pydio.json"
    path.write_text(json.dumps(doc))
    try:
        installation_from_config(read_pydio_json(path), path.parent)
    except CellsBackupError:
        pass
