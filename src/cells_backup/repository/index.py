"""Where each blob lives: the compact in-memory index and the index file format.

The in-memory index is an open-addressing hash table over flat arrays, about
70 bytes per blob and no Python object per blob, so memory grows slowly with
the number of chunks. Blob ids are keyed hashes, so their first 8 bytes are
already uniformly distributed and serve as the hash.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..errors import IntegrityError
from .crypto import ID_SIZE

DATA = 0
TREE = 1
PENDING_PACK = 0xFFFFFFFF

_ENTRY = struct.Struct("<B32sIII")  # type, blob id, offset, length, raw length
_PACK = struct.Struct("<32sI")  # pack id, entry count
_MAGIC = b"CBIX\x01"


@dataclass(frozen=True)
class Location:
    pack: bytes
    offset: int
    length: int
    raw_length: int
    type: int


@dataclass(frozen=True)
class PackEntry:
    type: int
    id: bytes
    offset: int
    length: int
    raw_length: int


class ChunkIndex:
    """blob id -> (pack, offset, length, raw length, type)."""

    def __init__(self) -> None:
        self._ids = bytearray()
        self._keys = array("Q")  # first 8 bytes of each id: the hash, compared before the id
        self._pack = array("I")
        self._offset = array("I")
        self._length = array("I")
        self._raw = array("I")
        self._type = array("B")
        self._slots = array("I", bytes(4 * 1024))
        self._mask = 1023
        self.packs: list[bytes] = []
        self._pack_numbers: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._pack)

    def _find(self, blob: bytes) -> tuple[int, int]:
        """(slot, record) for ``blob``; record is -1 when absent and slot is the free one."""
        # One consistent view (table, mask, ids) even if another thread grows the table meanwhile:
        # readers in other threads may ask while the archiver adds.
        slots, mask, ids = self._slots, self._mask, self._ids
        if len(slots) != mask + 1:  # caught between the two assignments of a grow: retry
            return self._find(blob)
        keys = self._keys
        value = int.from_bytes(blob[:8], "little")
        slot = value & mask
        while True:
            entry = slots[slot]
            if entry == 0:
                return slot, -1
            rec = entry - 1
            if keys[rec] == value and ids[rec * ID_SIZE : entry * ID_SIZE] == blob:
                return slot, rec
            slot = (slot + 1) & mask

    def _grow(self, entries: int = 0) -> None:
        """Double the table, or more until ``entries`` fit under the load factor."""
        size = (self._mask + 1) * 2
        while entries * 3 > size * 2:
            size *= 2
        slots, mask = array("I", bytes(4 * size)), size - 1
        for rec, value in enumerate(self._keys):
            slot = value & mask
            while slots[slot]:
                slot = (slot + 1) & mask
            slots[slot] = rec + 1
        self._slots, self._mask = slots, mask  # filled before it is published

    def reserve(self, entries: int) -> None:
        """Size the table for ``entries`` ids at once, instead of doubling (and rehashing) on the way."""
        if entries * 3 > (self._mask + 1) * 2:
            self._grow(entries)

    def add_pack(self, pack: bytes, rows: list[tuple]) -> None:
        """Record the blobs of one pack, ``rows`` as in an index file (type, id, offset, length,
        raw length); ids already known with a pack are left as they are. Same result as ``add``
        per row, with the common case (all ids new) in one tight loop: this is most of the time
        it takes to open a repository. Not for use while other threads look blobs up."""
        if not rows:
            return
        if (len(self._pack) + len(rows)) * 3 > (self._mask + 1) * 2:
            self._grow(len(self._pack) + len(rows))
        joined = b"".join([row[1] for row in rows])
        if sys.byteorder == "little" and len(joined) == ID_SIZE * len(rows):
            hashes = memoryview(joined).cast("Q")[:: ID_SIZE // 8].tolist()  # first 8 bytes of each id
        else:
            hashes = [int.from_bytes(row[1][:8], "little") for row in rows]
        slots, mask, ids, keys = self._slots, self._mask, self._ids, self._keys
        base = len(self._pack)
        ids += joined
        keys.extend(hashes)
        taken = []
        for n, value in enumerate(hashes):
            slot = value & mask
            entry = slots[slot]
            while entry:
                if keys[entry - 1] == value and ids[(entry - 1) * ID_SIZE : entry * ID_SIZE] == rows[n][1]:
                    break
                slot = (slot + 1) & mask
                entry = slots[slot]
            if entry:  # a known id: undo this pack and take its rows one by one
                for slot in taken:
                    slots[slot] = 0
                del ids[base * ID_SIZE :]
                del keys[base:]
                for kind, blob, offset, length, raw in rows:
                    self.add(blob, pack, offset, length, raw, kind)
                return
            slots[slot] = base + n + 1
            taken.append(slot)
        types, _ids, offsets, lengths, raws = zip(*rows, strict=True)
        self._pack.extend(array("I", [self.pack_number(pack)]) * len(rows))
        self._offset.extend(array("I", offsets))
        self._length.extend(array("I", lengths))
        self._raw.extend(array("I", raws))
        self._type.extend(array("B", types))

    def pack_number(self, pack: bytes) -> int:
        number = self._pack_numbers.get(pack)
        if number is None:
            number = len(self.packs)
            self.packs.append(pack)
            self._pack_numbers[pack] = number
        return number

    def __contains__(self, blob: bytes) -> bool:
        return self._find(blob)[1] >= 0

    def add(self, blob: bytes, pack: bytes | None, offset: int, length: int, raw_length: int, type: int) -> bool:
        """Record a blob; returns False (and changes nothing) if it is already known with a pack.

        ``pack=None`` reserves the id while its pack is still being written.
        """
        slot, rec = self._find(blob)
        pack_no = PENDING_PACK if pack is None else self.pack_number(pack)
        if rec >= 0:
            if self._pack[rec] != PENDING_PACK or pack is None:
                return False
            self._pack[rec] = pack_no
            self._offset[rec] = offset
            self._length[rec] = length
            self._raw[rec] = raw_length
            self._type[rec] = type
            return True
        self._ids += blob
        self._keys.append(int.from_bytes(blob[:8], "little"))
        self._pack.append(pack_no)
        self._offset.append(offset)
        self._length.append(length)
        self._raw.append(raw_length)
        self._type.append(type)
        self._slots[slot] = len(self._pack)
        if len(self._pack) * 3 > (self._mask + 1) * 2:
            self._grow()
        return True

    def get(self, blob: bytes) -> Location | None:
        rec = self._find(blob)[1]
        if rec < 0 or self._pack[rec] == PENDING_PACK:
            return None
        return Location(self.packs[self._pack[rec]], self._offset[rec], self._length[rec], self._raw[rec],
                        self._type[rec])

    def has_stored(self, blob: bytes) -> bool:
        # _find inlined: asked once per blob of every unchanged file.
        slots, mask, ids, keys = self._slots, self._mask, self._ids, self._keys
        if len(slots) != mask + 1:
            return self.has_stored(blob)
        value = int.from_bytes(blob[:8], "little")
        slot = value & mask
        while True:
            entry = slots[slot]
            if entry == 0:
                return False
            if keys[entry - 1] == value and ids[(entry - 1) * ID_SIZE : entry * ID_SIZE] == blob:
                return self._pack[entry - 1] != PENDING_PACK
            slot = (slot + 1) & mask

    def items(self) -> Iterator[tuple[bytes, Location | None]]:
        for rec in range(len(self._pack)):
            blob = bytes(self._ids[rec * ID_SIZE : (rec + 1) * ID_SIZE])
            pack_no = self._pack[rec]
            if pack_no == PENDING_PACK:
                yield blob, None
            else:
                yield blob, Location(self.packs[pack_no], self._offset[rec], self._length[rec], self._raw[rec],
                                     self._type[rec])

    def memory_bytes(self) -> int:
        arrays = (self._keys, self._pack, self._offset, self._length, self._raw, self._type, self._slots)
        return len(self._ids) + sum(a.itemsize * len(a) for a in arrays)


def encode_index(packs: dict[bytes, list[PackEntry]], supersedes: Iterable[bytes] = ()) -> bytes:
    """Plaintext of an index file listing ``packs`` and the index files it replaces."""
    replaced = list(supersedes)
    out = bytearray(_MAGIC)
    out += struct.pack("<I", len(replaced))
    for index_id in replaced:
        out += index_id
    out += struct.pack("<I", len(packs))
    for pack, entries in packs.items():
        out += _PACK.pack(pack, len(entries))
        for e in entries:
            out += _ENTRY.pack(e.type, e.id, e.offset, e.length, e.raw_length)
    return bytes(out)


def _layout(data: bytes | memoryview, what: str) -> tuple[list[bytes], list[tuple[bytes, int, int]]]:
    """Validate an index file's structure: (superseded ids, [(pack id, entry count, offset of entries)])."""
    view = memoryview(data)
    try:
        if bytes(view[:5]) != _MAGIC:
            raise ValueError("bad magic")
        pos = 5
        (n_replaced,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if n_replaced * ID_SIZE > len(view) - pos:
            raise ValueError("superseded list too long")
        replaced = [bytes(view[pos + i * ID_SIZE : pos + (i + 1) * ID_SIZE]) for i in range(n_replaced)]
        pos += n_replaced * ID_SIZE
        (n_packs,) = struct.unpack_from("<I", view, pos)
        pos += 4
        packs = []
        for _ in range(n_packs):
            pack, count = _PACK.unpack_from(view, pos)
            pos += _PACK.size
            if count * _ENTRY.size > len(view) - pos:
                raise ValueError("entry count exceeds file size")
            packs.append((pack, count, pos))
            pos += count * _ENTRY.size
        if pos != len(view):
            raise ValueError("trailing bytes")
    except (ValueError, struct.error) as exc:
        raise IntegrityError(f"{what}: malformed index ({exc})") from None
    return replaced, packs


def decode_index(data: bytes, what: str) -> tuple[dict[bytes, list[PackEntry]], list[bytes]]:
    """(packs, superseded index ids); IntegrityError on any structural problem."""
    replaced, layout = _layout(data, what)
    packs = {pack: [PackEntry(*e) for e in _ENTRY.iter_unpack(memoryview(data)[start : start + count * _ENTRY.size])]
             for pack, count, start in layout}
    return packs, replaced


def entries_at_most(stored_size: int) -> int:
    """How many blobs an index file of ``stored_size`` bytes can list (every byte an entry's)."""
    return stored_size // _ENTRY.size


def index_packs(data: bytes, what: str) -> Iterator[tuple[bytes, list[tuple]]]:
    """(pack id, [(type, id, offset, length, raw length), ...]) one pack at a time: loading an
    index of millions of blobs never holds them all as Python objects. The layout is checked at
    once, before the first pack is asked for."""
    _replaced, layout = _layout(data, what)
    view = memoryview(data)

    def packs() -> Iterator[tuple[bytes, list[tuple]]]:
        for pack, count, start in layout:
            yield pack, list(_ENTRY.iter_unpack(view[start : start + count * _ENTRY.size]))

    return packs()


def merge_index_files(plaintexts: list[bytes], supersedes: list[bytes], what: str) -> bytes:
    """One index listing the packs of several (whose packs are disjoint), built from their bytes."""
    out = bytearray(_MAGIC)
    out += struct.pack("<I", len(supersedes))
    for index_id in supersedes:
        out += index_id
    records = []
    for data in plaintexts:
        _replaced, layout = _layout(data, what)
        view = memoryview(data)
        for _pack, count, start in layout:
            records.append(view[start - _PACK.size : start + count * _ENTRY.size])
    out += struct.pack("<I", len(records))
    for record in records:
        out += record
    return bytes(out)
