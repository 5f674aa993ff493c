"""The block chunker cuts a stream exactly where pyfastcdc's stream chunker does (the chunk ids,
and so deduplication against older snapshots, depend on it), whatever the reads return, and every
chunk it hands out stays intact while later blocks are read."""

from __future__ import annotations

import io
import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from pyfastcdc import FastCDC

from cells_backup.repository.chunker import stream_chunks

CDC = FastCDC(1024, min_size=256, max_size=4096, seed=12345)
BLOCK = 2 * 4096  # the smallest block the chunker uses for this chunker: many block edges


class ShortReads(io.RawIOBase):
    """A stream like a pipe: every read returns a few bytes, never as many as asked."""

    def __init__(self, data: bytes, seed: int) -> None:
        self._data = memoryview(data)
        self._rng = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        n = min(len(buf), len(self._data), self._rng.randint(1, 3000))
        buf[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def _reference(data: bytes) -> list[bytes]:
    return [bytes(c.data) for c in CDC.cut_stream(io.BytesIO(data))]


def _data(size: int, seed: int) -> bytes:
    """Random data with repeated runs, so that some cuts fall at the maximum size too."""
    rng = random.Random(seed)
    parts, total = [], 0
    while total < size:
        part = rng.randbytes(rng.randint(1, 9000)) if rng.random() < 0.7 else b"\0" * rng.randint(1, 9000)
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


def test_cut_points_match_the_stream_chunker_at_every_block_edge():
    for size in (1, 255, 4096, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, 2 * BLOCK + 4095,
                 3 * BLOCK + 17, 50 * BLOCK + 999):
        data = _data(size, size)
        chunks = list(stream_chunks(CDC, io.BytesIO(data), block=BLOCK))
        assert [bytes(c) for c in chunks] == _reference(data), size


def test_an_empty_stream_has_no_chunks():
    assert list(stream_chunks(CDC, io.BytesIO(b""), block=BLOCK)) == []


def test_short_reads_give_the_same_chunks():
    data = _data(20 * BLOCK + 321, 7)
    chunks = list(stream_chunks(CDC, ShortReads(data, 1), block=BLOCK))
    assert [bytes(c) for c in chunks] == _reference(data)


def test_chunks_stay_valid_while_later_blocks_are_read():
    """The writer keeps the views until a worker stores them: no later block may reuse their memory."""
    data = os.urandom(30 * BLOCK)
    kept = list(stream_chunks(CDC, io.BytesIO(data), block=BLOCK))  # all blocks read before any is looked at
    assert b"".join(kept) == data
    assert all(len(c) <= 4096 for c in kept)


def test_a_small_block_is_raised_to_hold_two_maximal_chunks():
    data = b"\0" * (5 * 4096 + 10)  # zeros never cut early: every chunk is of the maximum size
    chunks = list(stream_chunks(CDC, io.BytesIO(data), block=100))
    assert [len(c) for c in chunks] == [4096] * 5 + [10]


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 6 * BLOCK), seed=st.integers(0, 2**16), short=st.booleans())
def test_any_stream_is_cut_like_the_stream_chunker(size, seed, short):
    data = _data(size, seed)
    stream = ShortReads(data, seed) if short else io.BytesIO(data)
    assert [bytes(c) for c in stream_chunks(CDC, stream, block=BLOCK)] == _reference(data)
