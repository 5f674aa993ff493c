"""Pack files: many encrypted blobs followed by an encrypted header.

Layout: ``blob_0 || blob_1 || ... || sealed(header) || u32le(len(sealed header))``
where each blob is ``sealed(flag || payload)`` (flag 0 = stored, 1 = zstd) and the
header lists (type, id, offset, length, raw length) for each blob, so a pack can
be understood without any index (that is how `repair` rebuilds indexes).
"""

from __future__ import annotations

import struct
import threading

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError
from .crypto import OVERHEAD, blob_id, open_sealed, seal, seal_buffer
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


class PackBuilder:
    """Accumulates stored blobs until the pack is big enough to write.

    One growing buffer, returned as is by `finish`: no second copy of a whole pack in memory.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.entries: list[PackEntry] = []

    @property
    def size(self) -> int:
        return len(self.buffer)

    def add(self, type: int, blob: bytes, stored: bytes, raw_length: int) -> None:
        self.entries.append(PackEntry(type, blob, len(self.buffer), len(stored), raw_length))
        self.buffer += stored

    def finish(self, cipher: AESGCM) -> bytearray:
        header = bytearray(_MAGIC)
        header += struct.pack("<I", len(self.entries))
        for e in self.entries:
            header += _ENTRY.pack(e.type, e.id, e.offset, e.length, e.raw_length)
        sealed = seal(cipher, bytes(header))
        data, self.buffer = self.buffer, bytearray()
        data += sealed
        data += struct.pack("<I", len(sealed))
        return data


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
