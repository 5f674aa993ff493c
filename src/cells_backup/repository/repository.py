"""The repository: open or create it, and read or write blobs, trees and snapshots.

Write order keeps a snapshot whole or absent (docs/ARCHITECTURE.md, invariant 1): blobs go
into packs, a pack is stored before the index file that names it, and the snapshot is stored
only after every index file it depends on.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

import zstandard

from ..errors import (
    BackendError,
    CellsBackupError,
    IntegrityError,
    NotFoundError,
    RepositoryNotFoundError,
)
from .backends.base import Backend
from .crypto import MasterKey, blob_id, content_hash, open_sealed, seal
from .index import ChunkIndex, entries_at_most, index_packs
from .keys import KeyFile, make_key_file, open_master_key
from .pack import decode_blob
from .packcache import PackCache
from .snapshot import Snapshot
from .tree import decode_tree, iter_tree

REPO_FORMAT_VERSION = 1
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
DEFAULT_CHUNKER = {"min": 256 * 1024, "avg": 1024 * 1024, "max": 4 * 1024 * 1024}


def check_new_location(backend: Backend) -> None:
    """Refuse to create a repository over one, over a file, or among other files: `init` writes
    nothing there, and a typo in the path does not scatter a repository into a data folder."""
    if backend.exists_repository():
        raise CellsBackupError(f"a repository already exists at {backend.location}")
    try:
        if next(iter(backend.list("keys/")), None) is not None:
            for prefix in ("data/", "index/", "snapshots/"):
                if next(iter(backend.list(prefix)), None) is not None:
                    raise CellsBackupError(
                        f"{backend.location} holds key files and {prefix.rstrip('/')} but no config: a damaged "
                        "repository; not creating one over it (restore its config, or choose another location)"
                    )
        foreign = [name for name, _size in itertools.islice(
            (entry for entry in backend.list("") if not entry[0].startswith("keys/")), 3)]
    except BackendError as exc:
        raise CellsBackupError(f"cannot create a repository: {exc}") from None
    if foreign:
        raise CellsBackupError(
            f"cannot create a repository at {backend.location}: it is not empty and holds no repository "
            f"({', '.join(foreign)}{', ...' if len(foreign) == 3 else ''}); give a new or empty directory")


def _clear_interrupted_init(backend: Backend) -> None:
    """Remove the key file of an `init` (or `copy` to a new target) killed before it wrote its
    config: it holds a master key nothing was stored with, and would fail `check` beside the new
    one. (Key files next to stored data but no config, a damaged repository, were refused by
    `check_new_location`.)"""
    for name in [name for name, _size in backend.list("keys/")]:
        backend.delete(name)


def pack_name(pack: bytes | str) -> str:
    hexid = pack if isinstance(pack, str) else pack.hex()
    return f"data/{hexid[:2]}/{hexid}"


class Repository:
    """An opened repository: its backend, master key, config and (lazily) index."""

    def __init__(self, backend: Backend, master: MasterKey, config: dict, key: KeyFile | None) -> None:
        self.backend = backend
        self.master = master
        self.config = config
        self.key = key
        self.cipher = master.cipher()
        self.index = ChunkIndex()
        self.index_files: set[str] = set()
        self._index_loaded = False
        self._compressor_level = int(config.get("compression_level", 3))
        # Remote backends: fetch whole packs once instead of one request per blob.
        self._pack_cache = PackCache(backend) if backend.properties.remote else None

    # ---------------------------------------------------------------- opening
    @classmethod
    def create(
        cls,
        backend: Backend,
        password: bytes,
        *,
        kdf: dict | None = None,
        pack_size: int = DEFAULT_PACK_SIZE,
        chunker: dict | None = None,
        like: Repository | None = None,
    ) -> Repository:
        """A new repository; ``like`` shares its blob-id key and chunker so `copy` between the two
        moves only what the target lacks, without re-hashing."""
        check_new_location(backend)
        _clear_interrupted_init(backend)
        master = MasterKey.generate()
        if like is not None:
            master = MasterKey(master.encryption, like.master.identity)
        config = {
            "version": REPO_FORMAT_VERSION,
            "id": secrets.token_hex(16),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "chunker": dict(like.config["chunker"]) if like is not None
            else {**(chunker or DEFAULT_CHUNKER), "seed": secrets.randbits(63) | 1},
            "pack_size": pack_size,
            "compression": "zstd",
            "compression_level": 3,
        }
        key_id, key_bytes = make_key_file(master, password, kdf)
        backend.write(f"keys/{key_id}", key_bytes, exclusive=True)
        sealed = seal(master.cipher(), json.dumps(config).encode())
        backend.write("config", sealed, exclusive=True)
        return cls.open(backend, password)

    @classmethod
    def open(cls, backend: Backend, password: bytes) -> Repository:
        if not backend.exists_repository():
            raise RepositoryNotFoundError(f"no repository at {backend.location} (create one with `init`)")
        sealed = backend.read("config")

        def opens_config(master: MasterKey) -> bool:
            try:
                open_sealed(master.cipher(), sealed, "config")
            except IntegrityError:
                return False
            return True

        master, key = open_master_key(backend, password, belongs=opens_config)
        config = cls._read_config(sealed, master)
        return cls(backend, master, config, key)

    @staticmethod
    def _read_config(sealed: bytes, master: MasterKey) -> dict:
        plain = open_sealed(master.cipher(), sealed, "config")
        try:
            config = json.loads(plain)
            version = int(config["version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"config: malformed ({exc})") from None
        if version > REPO_FORMAT_VERSION:
            raise CellsBackupError(
                f"repository format {version} is newer than this cells-backup supports "
                f"({REPO_FORMAT_VERSION}); upgrade cells-backup"
            )
        return config

    @property
    def id(self) -> str:
        return self.config["id"]

    @property
    def pack_size(self) -> int:
        return int(self.config.get("pack_size", DEFAULT_PACK_SIZE))

    def compressor(self, level: int | None = None) -> zstandard.ZstdCompressor:
        """A new compressor (they are not thread-safe: one per thread); `level` overrides the default."""
        return zstandard.ZstdCompressor(level=self._compressor_level if level is None else level)

    def blob_id(self, data: bytes | memoryview) -> bytes:
        return blob_id(self.master.identity, data)

    # ------------------------------------------------------------ sealed files
    def seal(self, plaintext: bytes) -> bytes:
        return seal(self.cipher, plaintext)

    def write_sealed(self, directory: str, plaintext: bytes) -> str:
        """Store an encrypted file named by the hash of its bytes; returns the hex id."""
        sealed = seal(self.cipher, plaintext)
        file_id = content_hash(sealed)
        self.backend.write(f"{directory}/{file_id}", sealed)
        return file_id

    def read_sealed(self, directory: str, file_id: str) -> bytes:
        name = f"{directory}/{file_id}"
        data = self.backend.read(name)
        if content_hash(data) != file_id:
            raise IntegrityError(f"{name}: content does not match its name")
        return open_sealed(self.cipher, data, name)

    # ------------------------------------------------------------------ index
    def load_index(self, *, strict: bool = False) -> list[str]:
        """Read every index file into memory; returns the names that could not be read.

        With ``strict`` a damaged index file raises instead.
        """
        if self._index_loaded:
            return []
        damaged: list[str] = []
        listing = list(self.backend.list("index/"))
        self.index.reserve(len(self.index) + sum(entries_at_most(size) for _name, size in listing))
        for name, _size in listing:
            file_id = name.split("/", 1)[1]
            try:
                data = self.read_sealed("index", file_id)
                packs = index_packs(data, name)  # validates the whole layout first
            except (IntegrityError, NotFoundError) as exc:
                if strict:
                    raise
                damaged.append(f"{name}: {exc}")
                continue
            self.index_files.add(file_id)
            for pack, rows in packs:
                self.index.add_pack(pack, rows)
        self._index_loaded = True
        return damaged

    # ------------------------------------------------------------------ blobs
    @property
    def remote(self) -> bool:
        """Objects come over the network (whole packs are cached for reads)."""
        return self._pack_cache is not None

    def read_blob(self, blob: bytes) -> bytes:
        loc = self.index.get(blob)
        if loc is None:
            raise IntegrityError(f"blob {blob.hex()[:16]} is not in any index")
        name = pack_name(loc.pack)
        reader = self._pack_cache if self._pack_cache is not None else self.backend
        stored = reader.read_range(name, loc.offset, loc.length)
        if len(stored) != loc.length:
            raise IntegrityError(f"{name}: truncated (blob {blob.hex()[:16]})")
        return self.open_stored(blob, stored, loc.raw_length, name)

    def read_stream(self, name: str, offset: int, length: int) -> Iterable[bytes]:
        """Bytes ``offset`` to ``offset + length`` of a stored object, in chunks as they arrive
        (one chunk from backends that cannot stream); short when the object is."""
        return self.backend.read_stream(name, offset, length)

    def open_stored(self, blob: bytes, stored: bytes | memoryview, raw_length: int, name: str) -> bytes:
        """The plain bytes of blob ``blob``, read from pack ``name`` by the caller: verified."""
        return decode_blob(self.cipher, self.master.identity, stored, blob, raw_length,
                           f"{name} blob {blob.hex()[:16]}")

    def read_tree(self, tree_id: str) -> list[dict]:
        """The validated nodes of a tree."""
        return decode_tree(self.read_blob(bytes.fromhex(tree_id)), f"tree {tree_id[:16]}")

    def iter_tree(self, tree_id: str) -> Iterator[dict]:
        """The validated nodes of a tree one at a time (`tree.iter_tree`): a huge directory is
        not held as a dict per entry. The blob is read before the first node is asked for."""
        return iter_tree(self.read_blob(bytes.fromhex(tree_id)), f"tree {tree_id[:16]}")

    # -------------------------------------------------------------- sizes and keys
    def stored_bytes(self, *, packs_only: bool = False) -> int:
        """Bytes the repository takes in its store: every file, or only the packs (data/)."""
        return sum(size for _name, size in self.backend.list("data/" if packs_only else ""))

    def add_key(self, password: bytes) -> str:
        """Store a new key file that opens this repository with ``password``; returns its id."""
        key_id, data = make_key_file(self.master, password)
        self.backend.write(f"keys/{key_id}", data, exclusive=True)
        return key_id

    def remove_key(self, key: KeyFile) -> None:
        """Delete a key file; the caller makes sure it is not the only way in."""
        self.backend.delete(key.name)

    # -------------------------------------------------------------- snapshots
    def save_snapshot(self, snapshot: Snapshot) -> str:
        snapshot.id = self.write_sealed("snapshots", snapshot.to_bytes())
        return snapshot.id

    def load_snapshot(self, snapshot_id: str) -> Snapshot:
        return Snapshot.from_bytes(self.read_sealed("snapshots", snapshot_id), snapshot_id)

    def snapshot_ids(self) -> list[str]:
        return [name.split("/", 1)[1] for name, _ in self.backend.list("snapshots/")]

    def remove_snapshot(self, snapshot: Snapshot | str) -> None:
        """Delete one snapshot file (its data stays until `prune`); the caller holds the exclusive lock."""
        snapshot_id = snapshot.id if isinstance(snapshot, Snapshot) else snapshot
        self.backend.delete(f"snapshots/{snapshot_id}")

    def list_snapshots(self, *, damaged: list[str] | None = None) -> list[Snapshot]:
        """All readable snapshots, oldest first; unreadable ones are named in ``damaged``."""
        snaps = []
        for sid in self.snapshot_ids():
            try:
                snaps.append(self.load_snapshot(sid))
            except (IntegrityError, NotFoundError) as exc:
                if damaged is not None:
                    damaged.append(f"snapshots/{sid}: {exc}")
        snaps.sort(key=lambda s: (s.datetime, s.id))
        return snaps

    def resolve_snapshot(self, ref: str, warn: Callable[[str], None] | None = None) -> Snapshot:
        """A snapshot by full id, unique id prefix, or ``latest``; ``warn`` hears of snapshot
        files that could not be read while looking for the latest (it may be older than them)."""
        if ref == "latest":
            damaged: list[str] = []
            snaps = self.list_snapshots(damaged=damaged)
            if damaged and warn is not None:
                newest = f"{snaps[-1].short_id} of {snaps[-1].time}" if snaps else "none"
                warn(f"{len(damaged)} snapshot file(s) could not be read, so 'latest' is the newest readable "
                     f"one ({newest}): " + "; ".join(damaged))
            if not snaps:
                raise CellsBackupError("the repository has no snapshot yet" if not damaged
                                       else "no snapshot of the repository can be read")
            return snaps[-1]
        matches = [sid for sid in self.snapshot_ids() if sid.startswith(ref.lower())]
        if not matches or not ref:
            raise CellsBackupError(f"no snapshot matches {ref!r}")
        if len(matches) > 1:
            raise CellsBackupError(f"{ref!r} matches {len(matches)} snapshots; give more characters")
        return self.load_snapshot(matches[0])

    def walk_trees(self, roots: Iterable[str], seen: set[str]) -> Iterator[tuple[str, list[dict] | CellsBackupError]]:
        """(tree id, nodes or the error reading it) of every tree under ``roots`` not yet in ``seen``,
        each once: snapshots share most of their trees."""
        stack = list(roots)
        while stack:
            tree_id = stack.pop()
            if tree_id in seen:
                continue
            seen.add(tree_id)
            try:
                nodes = self.read_tree(tree_id)
            except (IntegrityError, NotFoundError) as exc:
                yield tree_id, exc
                continue
            stack.extend(n["subtree"] for n in nodes if n["type"] == "dir")
            yield tree_id, nodes

    def walk(self, tree_id: str, prefix: str = "/") -> Iterator[tuple[str, dict]]:
        """(path, node) of every node under a tree, depth first, parents before children."""
        for node in self.read_tree(tree_id):
            path = os.path.join(prefix, node["name"])
            yield path, node
            if node["type"] == "dir":
                yield from self.walk(node["subtree"], path)

