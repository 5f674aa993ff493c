"""Loading an index file pack by pack gives exactly what adding its blobs one at a time gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cells_backup.repository.index import ChunkIndex

# Few distinct ids (some sharing their first 8 bytes) so duplicates and probe collisions are common.
_ids = st.sampled_from([bytes([i]) * 8 + bytes([j]) * 24 for i in range(6) for j in range(4)])
_row = st.tuples(st.integers(0, 1), _ids, st.integers(0, 2**32 - 1), st.integers(1, 2**20), st.integers(1, 2**20))
_pack = st.tuples(st.binary(min_size=32, max_size=32), st.lists(_row, max_size=40))


@settings(max_examples=200, deadline=None)
@given(pending=st.lists(_ids, max_size=5), packs=st.lists(_pack, max_size=6))
def test_add_pack_matches_add(pending: list[bytes], packs: list) -> None:
    one_by_one, bulk = ChunkIndex(), ChunkIndex()
    for blob in pending:  # reservations of a backup in progress, filled in by a later index
        one_by_one.add(blob, None, 0, 0, 10, 0)
        bulk.add(blob, None, 0, 0, 10, 0)
    for pack, rows in packs:
        for kind, blob, offset, length, raw in rows:
            one_by_one.add(blob, pack, offset, length, raw, kind)
        bulk.add_pack(pack, rows)
    assert len(bulk) == len(one_by_one)
    assert dict(bulk.items()) == dict(one_by_one.items())
    for blob, _loc in one_by_one.items():
        assert bulk.get(blob) == one_by_one.get(blob)
        assert bulk.has_stored(blob) == one_by_one.has_stored(blob)


def test_add_pack_grows_the_table() -> None:
    index = ChunkIndex()
    rows = [(0, i.to_bytes(8, "little") + bytes(24), i, 1, 1) for i in range(5000)]
    index.add_pack(b"p" * 32, rows)
    assert len(index) == 5000
    assert all(index.get(row[1]).offset == row[2] for row in rows)
    assert index.get(bytes(32 * [7])) is None
