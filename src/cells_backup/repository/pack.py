"""Pack files: many encrypted blobs followed by an encrypted header.

Layout: ``blob_0 || blob_1 || ... || sealed(header) || u32le(len(sealed header))``
where each blob is ``sealed(flag || payload)`` (flag 0 = stored, 1 = zstd) and the
header lists (type, id, offset, length, raw length) for each blob, so a pack can
be understood without any index (that is how `repair` rebuilds indexes).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from typing import Protocol

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError
from .crypto import OVERHEAD, blob_id, content_hash, open_sealed, seal, seal_buffer
from .index import PackEntry

_MAGIC = b"CBPK\x01"
_ENTRY = struct.Struct("<B32sIII")
FLAG_RAW = 0
FLAG_ZSTD = 1
MAX_HEADER = 64 * 1024 * 1024
# Data chunks are at most 16 MiB; a tree blob lists one directory and a flat Cells datasource keeps
# every file in one directory, so trees may be large. Checked before anything is allocated.
MAX_BLOB = 1024 * 1024 * 1024

# Compressing pays only when it saves at least this fraction.
_MIN_SAVING = 0.03


def encode_blob(cipher: AESGCM, compressor: zstandard.ZstdCompressor, data: bytes | memoryview) -> bytes | bytearray:
    """Compress when it pays, then encrypt: the stored form of one blob."""
    packed = compressor.compress(data) if len(data) >= 64 else data
    if len(packed) < len(data) * (1 - _MIN_SAVING):
        return seal_buffer(cipher, b"\x01" + packed)
    return seal_buffer(cipher, b"\x00" + data)


_local = threading.local()
_SCRATCH_MAX = 16 * 1024 * 1024  # larger blobs (big trees) get a buffer of their own


def _open_into_scratch(cipher: AESGCM, stored: bytes | memoryview, what: str) -> bytes | memoryview:
    """Decrypt into this thread's scratch buffer (valid until its next call): a restore then
    allocates one buffer per blob, its plaintext, instead of two."""
    size = len(stored) - OVERHEAD
    if not 0 <= size <= _SCRATCH_MAX:
        return open_sealed(cipher, stored, what)
    scratch = getattr(_local, "scratch", None)
    if scratch is None or len(scratch) < size:
        scratch = _local.scratch = bytearray(max(size, 1 << 20))
    return open_sealed(cipher, stored, what, out=memoryview(scratch)[:size])


def _decompressor() -> zstandard.ZstdDecompressor:
    """One per thread: they are not thread-safe, and making one per blob costs more than the blob."""
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def decode_blob(
    cipher: AESGCM, identity_key: bytes, stored: bytes | memoryview, expected: bytes, raw_length: int, what: str
) -> bytes:
    """Decrypt, decompress and verify a blob against its id."""
    plain = _open_into_scratch(cipher, stored, what)
    if not plain:
        raise IntegrityError(f"{what}: empty blob")
    flag, body = plain[0], memoryview(plain)[1:]
    if flag == FLAG_RAW:
        data = bytes(body)
    elif flag == FLAG_ZSTD:
        if raw_length > MAX_BLOB:
            raise IntegrityError(f"{what}: claims an implausible size")
        try:
            data = _decompressor().decompress(body, max_output_size=raw_length)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{what}: cannot decompress ({exc})") from None
    else:
        raise IntegrityError(f"{what}: unknown blob encoding {flag}")
    if blob_id(identity_key, data) != expected:
        raise IntegrityError(f"{what}: content does not match its id")
    return data


class PackSink(Protocol):
    """Where a pack's bytes go as they come (`backends.pack_file.PackFile`)."""

    size: int

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def commit(self, name_of: Callable[[str], str]) -> str: ...

    def abort(self) -> None: ...


class PackBuilder:
    """Accumulates stored blobs until the pack is big enough to write.

    With ``open_sink`` (a local repository's data packs) the blobs are streamed to the sink it
    opens at the first blob, and nothing of the pack stays in memory; without, they go to one
    growing buffer, returned as is by `finish`: no second copy of a whole pack in memory.
    """

    def __init__(self, open_sink: Callable[[], PackSink] | None = None) -> None:
        self.buffer = bytearray()
        self.entries: list[PackEntry] = []
        self.size = 0
        self._open_sink = open_sink
        self.sink: PackSink | None = None

    def add(self, type: int, blob: bytes, stored: bytes | bytearray, raw_length: int) -> None:
        if self._open_sink is not None:
            if self.sink is None:
                self.sink = self._open_sink()
            self.sink.write(stored)
        else:
            self.buffer += stored
        self.entries.append(PackEntry(type, blob, self.size, len(stored), raw_length))
        self.size += len(stored)

    def trailer(self, cipher: AESGCM) -> bytes:
        """What follows the blobs: the sealed header and its length."""
        header = bytearray(_MAGIC)
        header += struct.pack("<I", len(self.entries))
        for e in self.entries:
            header += _ENTRY.pack(e.type, e.id, e.offset, e.length, e.raw_length)
        sealed = seal(cipher, bytes(header))
        return sealed + struct.pack("<I", len(sealed))

    def finish(self, cipher: AESGCM) -> bytearray:
        """The whole pack, of a builder without a sink."""
        data, self.buffer = self.buffer, bytearray()
        data += self.trailer(cipher)
        return data

    def store(self, cipher: AESGCM, write: Callable[[str, bytearray], None],
              name_of: Callable[[str], str]) -> tuple[bytes, int]:
        """Finish the pack and store it under ``name_of(its hash)``: the sink commits it, or
        ``write`` stores the buffer. Returns the pack's id and size."""
        if self.sink is None:
            data = self.finish(cipher)
            hexid = content_hash(data)
            write(name_of(hexid), data)
            return bytes.fromhex(hexid), len(data)
        self.sink.write(self.trailer(cipher))
        size = self.sink.size
        return bytes.fromhex(self.sink.commit(name_of)), size

    def abort(self) -> None:
        """Drop a pack that will not be stored (its sink's temp file goes too)."""
        if self.sink is not None:
            self.sink.abort()
            self.sink = None
        self.buffer = bytearray()


def header_length(tail: bytes, pack_size: int, what: str) -> int:
    """Size of the sealed header, from the last 4 bytes of a pack."""
    if len(tail) != 4:
        raise IntegrityError(f"{what}: too short to be a pack")
    (length,) = struct.unpack("<I", tail)
    if length < OVERHEAD or length > min(MAX_HEADER, pack_size - 4):
        raise IntegrityError(f"{what}: header length {length} is impossible")
    return length


def decode_header(cipher: AESGCM, sealed: bytes, pack_size: int, what: str) -> list[PackEntry]:
    plain = open_sealed(cipher, sealed, f"{what} header")
    if plain[:5] != _MAGIC:
        raise IntegrityError(f"{what}: bad pack header magic")
    try:
        (count,) = struct.unpack_from("<I", plain, 5)
        if 9 + count * _ENTRY.size != len(plain):
            raise ValueError("entry count does not match header size")
        entries = [PackEntry(*_ENTRY.unpack_from(plain, 9 + i * _ENTRY.size)) for i in range(count)]
    except (struct.error, ValueError) as exc:
        raise IntegrityError(f"{what}: malformed header ({exc})") from None
    data_end = pack_size - 4 - len(sealed)
    for e in entries:
        if e.offset + e.length > data_end or e.length < OVERHEAD:
            raise IntegrityError(f"{what}: header entry points outside the pack")
    return entries
