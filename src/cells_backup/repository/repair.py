"""Rebuilding the index from the packs themselves (their headers list every blob they hold)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import CellsBackupError
from .crypto import content_hash
from .index import PackEntry, decode_index, encode_index
from .pack import decode_header, header_length
from .repository import Repository


def rebuild_index(repo: Repository, say: Callable[[str], None] | None = None) -> dict:
    say = say or (lambda _m: None)
    # Entries from whatever old index files are still readable: a fallback for packs whose
    # header is damaged.
    old_files = [name.split("/", 1)[1] for name, _ in repo.backend.list("index/")]
    from_old: dict[bytes, list[PackEntry]] = {}
    for file_id in old_files:
        try:
            packs, _ = decode_index(repo.read_sealed("index", file_id), f"index/{file_id}")
            from_old.update(packs)
        except CellsBackupError:
            continue
    rebuilt: dict[bytes, list[PackEntry]] = {}
    damaged: list[str] = []
    names = list(repo.backend.list("data/"))
    for i, (name, size) in enumerate(names):
        say(f"reading pack header {i + 1}/{len(names)}")
        pack_hex = name.rsplit("/", 1)[1]
        try:
            pack = bytes.fromhex(pack_hex)
            if len(pack) != 32:
                raise ValueError
        except ValueError:
            damaged.append(f"{name}: not a pack name")
            continue
        try:
            hlen = header_length(repo.backend.read_range(name, -4, 4), size, name)
            sealed = repo.backend.read_range(name, size - 4 - hlen, hlen)
            rebuilt[pack] = decode_header(repo.cipher, sealed, size, name)
        except CellsBackupError as exc:
            if pack in from_old:
                rebuilt[pack] = from_old[pack]
                damaged.append(f"{name}: header unreadable ({exc}); kept the entries of an old index")
            else:
                damaged.append(f"{name}: header unreadable ({exc}); its blobs are lost")
    new_id = content_hash(b"")
    if rebuilt or old_files:
        new_id = repo.write_sealed("index", encode_index(rebuilt, supersedes=[bytes.fromhex(f) for f in old_files]))
        for file_id in old_files:
            if file_id != new_id:
                repo.backend.delete(f"index/{file_id}")
    return {"packs": len(rebuilt), "blobs": sum(len(v) for v in rebuilt.values()), "index": new_id,
            "replaced_index_files": len(old_files), "problems": damaged}
