"""Snapshot objects: the root of one backup, written last so it is whole or absent."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

from ..errors import IntegrityError

SNAPSHOT_VERSION = 1


@dataclass
class Snapshot:
    time: str
    hostname: str
    username: str
    paths: list[str]
    tree: str
    parent: str | None = None
    tags: list[str] = field(default_factory=list)
    partial: bool = False
    live: bool = False
    errors: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    components: list[str] = field(default_factory=list)
    cells_version: str | None = None
    extra: dict = field(default_factory=dict)
    program_version: str = ""
    version: int = SNAPSHOT_VERSION
    id: str = ""  # file name; not stored inside the object

    def to_bytes(self) -> bytes:
        doc = asdict(self)
        doc.pop("id")
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, snapshot_id: str) -> Snapshot:
        what = f"snapshot {snapshot_id[:8]}"
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
            if int(doc.get("version", 0)) > SNAPSHOT_VERSION:
                raise IntegrityError(f"{what}: format {doc['version']} is newer than this cells-backup")
            known = {f for f in cls.__dataclass_fields__ if f != "id"}
            snap = cls(**{k: v for k, v in doc.items() if k in known}, id=snapshot_id)
            datetime.fromisoformat(snap.time)
            if not (isinstance(snap.tree, str) and len(snap.tree) == 64):
                raise ValueError("bad tree id")
        except IntegrityError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise IntegrityError(f"{what}: malformed ({exc})") from None
        return snap

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def datetime(self) -> datetime:
        return datetime.fromisoformat(self.time)

    def describe(self) -> dict:
        """The stable JSON shape `snapshots --json` promises."""
        return {
            "id": self.id,
            "short_id": self.short_id,
            "time": self.time,
            "hostname": self.hostname,
            "username": self.username,
            "paths": self.paths,
            "tags": self.tags,
            "parent": self.parent,
            "cells_version": self.cells_version,
            "live": self.live,
            "partial": self.partial,
            "components": self.components,
            "summary": self.summary,
        }
