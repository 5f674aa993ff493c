"""A realistic Cells installation on disk, for tests and for trying cells-backup without Cells.

It has what a real one has where a backup tool looks (docs/CELLS.md §1.2, §3): pydio.json in the
requested version's shape, a sealed pydio-vault.json with its cells-vault-key, structured and
flat datasources with a shared ``.minio.sys``, embedded service databases (fake bytes: only their
presence and locks matter here), logs, a bleve index and certs. Flat blobs are returned so a
test can fill the matching index table.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .load import load_installation
from .model import SHAPE_LEGACY, SHAPE_V5, Installation
from .sample_config import SampleDatasource, SampleSpec, build_config, shape_for_version
from .vault import encode_key_file, seal_vault

DEFAULT_DB = {"host": "localhost", "port": 3306, "user": "pydio", "password": "cells", "name": "cells"}
STRUCTURED_DIRS = ("", "Documents", "Documents/Reports", "Photos", "Photos/2024")


@dataclass
class SampleFile:
    uuid: str
    relpath: str  # relative to the datasource folder
    size: int


@dataclass
class Sample:
    installation: Installation
    master_password: bytes
    secrets: dict[str, bytes]
    files: dict[str, list[SampleFile]] = field(default_factory=dict)  # datasource -> files written

    def blobs(self, datasource: str) -> list[tuple[str, int]]:
        """(uuid, size) of a flat datasource's blobs: what its index table must list."""
        return [(f.uuid, f.size) for f in self.files.get(datasource, [])]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _write(path: Path, data: bytes, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mode is not None:
        os.chmod(path, mode)


def _minio_meta(parent: Path, bucket: str, relpath: str, content: bytes) -> None:
    meta = {
        "version": "1.0.2",
        "checksum": {"algorithm": "", "blocksize": 0, "hashes": None},
        "meta": {"etag": hashlib.md5(content).hexdigest(), "content-type": "application/octet-stream"},
    }
    _write(parent / ".minio.sys" / "buckets" / bucket / relpath / "fs.json", json.dumps(meta).encode())


def _fill_flat(parent: Path, ds: SampleDatasource, n: int, rng: random.Random) -> list[SampleFile]:
    out = []
    for _ in range(n):
        uid = _uuid(rng)
        content = rng.randbytes(rng.randint(0, 4096))
        _write(parent / ds.bucket / uid, content)
        _minio_meta(parent, ds.bucket, uid, content)
        out.append(SampleFile(uid, uid, len(content)))
    return out


def _fill_structured(parent: Path, ds: SampleDatasource, n: int, rng: random.Random) -> list[SampleFile]:
    root = parent / ds.bucket
    out = []
    for d in STRUCTURED_DIRS:
        folder_uuid = _uuid(rng)
        _write(root / d / ".pydio", folder_uuid.encode())
    for i in range(n):
        rel = f"{STRUCTURED_DIRS[i % len(STRUCTURED_DIRS)]}/file-{i:03d}.txt".lstrip("/")
        content = rng.randbytes(rng.randint(1, 4096))
        _write(root / rel, content)
        _minio_meta(parent, ds.bucket, rel, content)
        out.append(SampleFile(_uuid(rng), rel, len(content)))
    return out


def _services(wd: Path, shape: str, rng: random.Random) -> None:
    services = wd / "services"
    dbs = [
        "pydio.grpc.docstore/docstore.db",
        "pydio.grpc.versions/versions.db",
        "pydio.grpc.activity/activities.db",
        "pydio.grpc.chat/chat.db",
        "pydio.grpc.jobs/jobs.db",
        "pydio.grpc.mailer/queue.db",
    ]
    for rel in dbs:
        _write(services / rel, rng.randbytes(4096), 0o600)
    search = "search.bleve" if shape == SHAPE_V5 else "searchengine.bleve"
    indexes = [f"pydio.grpc.search/{search}", "pydio.grpc.log/syslog.bleve"]
    if shape == SHAPE_V5:
        indexes += ["pydio.grpc.jobs/tasklogs.bleve", "pydio.grpc.docstore/docstore.bleve"]
    for rel in indexes:
        _write(services / rel / "index_meta.json", b'{"storage":"scorch","index_type":"scorch"}')
        _write(services / rel / "store" / "root.bolt", rng.randbytes(2048))
    _write(services / "pydio.grpc.data.objects" / "local1" / "config.json", b'{"version":"33"}')
    _write(wd / "configs-versions.db", rng.randbytes(4096), 0o600)


def make_sample_installation(
    root: Path,
    *,
    version: str = "4.4.13",
    db: dict[str, Any] | None = None,
    external_parent: Path | None = None,
    n_files: int = 8,
    seed: int = 0,
    bind: str = "0.0.0.0:8080",
    external_url: str | None = None,
    peer_address: str | None = None,
) -> Sample:
    """Create an installation whose working dir is ``root``; returns it with its secrets and files.

    ``version`` picks the pydio.json shape (≤ 2.1, 2.2–4, 5). ``db`` (host/port/user/password/name,
    or ``{"engine": "sqlite", "path": ...}`` for v5) is what the default DSN points at.
    ``external_parent`` adds datasource ``archive`` whose parent folder is outside the working dir.
    """
    rng = random.Random(seed)
    wd = Path(root).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    shape = shape_for_version(version)
    data = str(wd / "data")
    datasources = [
        SampleDatasource("pydiods1", "pydiods1", data, "local1", flat=False),
        SampleDatasource("personal", "personal", data, "local1", flat=True),
        SampleDatasource("cellsdata", "cellsdata", data, "local1", flat=True),
        SampleDatasource("versions", "versions", data, "local1", flat=True, internal=True),
        SampleDatasource("thumbnails", "thumbs", data, "local1", flat=True, internal=True),
    ]
    objects = {"local1": data}
    if external_parent is not None:
        ext = Path(external_parent).resolve()
        objects["local2"] = str(ext)
        datasources.append(SampleDatasource("archive", "archive", str(ext), "local2", flat=True))
    secret_uuid = _uuid(rng)
    spec = SampleSpec(
        version=version,
        shape=shape,
        working_dir=str(wd),
        db=dict(db or DEFAULT_DB),
        bind=bind,
        external_url=external_url,
        datasources=datasources,
        objects=objects,
        api_key="Kx2sPw7dQa4nRv9T",
        api_secret_uuid=secret_uuid,
        peer_address=peer_address,
    )
    _write(wd / "pydio.json", json.dumps(build_config(spec), indent=2).encode(), 0o600)

    master = rng.randbytes(50)
    secrets = {secret_uuid: rng.randbytes(24).hex().encode()}
    seal_vault(wd / "pydio-vault.json", master, secrets)
    os.chmod(wd / "pydio-vault.json", 0o600)
    legacy_key = shape == SHAPE_LEGACY or version.startswith("3.")
    _write(wd / "cells-vault-key", encode_key_file(master, legacy_raw=legacy_key), 0o400)

    files: dict[str, list[SampleFile]] = {}
    for ds in datasources:
        parent = Path(ds.parent)
        (parent / ds.bucket).mkdir(parents=True, exist_ok=True)
        if ds.flat:
            files[ds.name] = _fill_flat(parent, ds, n_files, rng)
        else:
            files[ds.name] = _fill_structured(parent, ds, n_files, rng)
    for parent in {Path(p) for p in objects.values()}:
        _write(
            parent / ".minio.sys" / "format.json",
            json.dumps({"version": "1", "format": "fs", "id": _uuid(rng), "fs": {"version": "2"}}).encode(),
        )
    (wd / "data" / "binaries").mkdir(parents=True, exist_ok=True)
    _services(wd, shape, rng)
    _write(wd / "logs" / "pydio.log", b'{"level":"info","msg":"started"}\n')
    _write(wd / "certs" / "rootCA.pem", b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    inst = load_installation(wd, env={})
    return Sample(installation=inst, master_password=master, secrets=secrets, files=files)
