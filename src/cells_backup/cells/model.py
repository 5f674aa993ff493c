"""Plain data describing one Cells installation, as read from its pydio.json and environment.

The model is recorded inside each snapshot (``to_dict``), so a restore on another host has
everything it needs without the original machine. It holds facts only; deciding what to back
up lives in ``plan.py`` and changing the config in ``rewrite.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .dsn import mask_dsn

# Config shapes (docs/CELLS.md §2.2): they decide where URLs, sources and DSNs live.
SHAPE_LEGACY = "v1-v2.1"  # defaults.database is an id string, defaults.url / urlInternal
SHAPE_V2_V4 = "v2.2-v4"  # defaults.database is {"$ref"}, defaults.sites, go-sql-driver DSN
SHAPE_V5 = "v5"  # DSNs carry a scheme (mysql://, postgres://, sqlite://), bolt/bleve entries

LOCAL = "LOCAL"


@dataclass
class Datasource:
    """One datasource (a ``pydio.grpc.data.sync.<name>`` section)."""

    name: str
    storage_type: str = LOCAL  # LOCAL, S3, AZURE, GCS, ... (docs/CELLS.md §2.3)
    flat: bool = True
    folder: str | None = None  # absolute path of the bucket folder (local only)
    bucket: str | None = None
    parent_folder: str | None = None  # objects service LocalFolder: holds .minio.sys
    objects_service: str | None = None
    peer_address: str | None = None
    encryption_mode: str | None = None
    internal: bool = False  # StorageConfiguration.cellsInternal (versions, thumbnails)
    disabled: bool = False

    @property
    def is_local(self) -> bool:
        """Only filesystem datasources have bytes on this host to back up."""
        return self.storage_type == LOCAL

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["is_local"] = self.is_local
        return data


@dataclass
class ObjectsService:
    """One ``pydio.grpc.data.objects.<name>`` section (a MinIO server or gateway)."""

    name: str
    storage_type: str = LOCAL
    local_folder: str | None = None
    peer_address: str | None = None
    endpoint_url: str | None = None


@dataclass
class DatabaseRef:
    """One entry of ``databases`` (or the Mongo document store) and what it is used for."""

    key: str
    driver: str
    dsn: str
    role: str  # default | sql | documents | bolt | bleve | other
    engine: str  # mysql | postgres | sqlite | mongodb | boltdb | bleve | unknown

    @property
    def masked_dsn(self) -> str:
        """The DSN with its password replaced by ***, for display."""
        return mask_dsn(self.dsn)


@dataclass
class Site:
    """One entry of ``defaults.sites`` (or the ≤ v2.1 url/urlInternal pair)."""

    binds: list[str] = field(default_factory=list)
    external_url: str | None = None
    tls: str = "none"  # none | self-signed | letsencrypt | certificate
    cert_files: list[str] = field(default_factory=list)


def _path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None


@dataclass
class Installation:
    """Everything known about one installation; JSON round-trip via to_dict / from_dict."""

    working_dir: Path
    config_path: Path
    cells_version: str | None
    config_shape: str
    data_dir: Path
    services_dir: Path
    log_dir: Path
    datasources: list[Datasource] = field(default_factory=list)
    objects_services: list[ObjectsService] = field(default_factory=list)
    databases: list[DatabaseRef] = field(default_factory=list)
    document_store: str | None = None  # Mongo DSN when defaults.documentsDSN is set
    sites: list[Site] = field(default_factory=list)
    vault_file: Path | None = None
    key_file: Path | None = None
    key_location: str | None = None  # where the master key lives when not in a file (vault://, OS keyring)
    hostname: str = ""
    env: dict[str, str] = field(default_factory=dict)  # CELLS_* location variables in effect
    notes: list[str] = field(default_factory=list)  # oddities found while reading the config

    # --- convenient views -------------------------------------------------------------------
    @property
    def default_database(self) -> DatabaseRef | None:
        """The main SQL database (``defaults.database``)."""
        return next((d for d in self.databases if d.role == "default"), None)

    def sql_databases(self) -> list[DatabaseRef]:
        """Every distinct SQL database to dump: the default one first, then others by DSN."""
        seen: set[str] = set()
        out: list[DatabaseRef] = []
        for ref in sorted(self.databases, key=lambda d: d.role != "default"):
            if ref.role in ("default", "sql") and ref.dsn not in seen:
                seen.add(ref.dsn)
                out.append(ref)
        return out

    def local_datasources(self) -> list[Datasource]:
        return [d for d in self.datasources if d.is_local]

    def datasource(self, name: str) -> Datasource:
        for ds in self.datasources:
            if ds.name == name:
                return ds
        raise KeyError(name)

    # --- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (paths as strings) recorded in each snapshot."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif f.name == "datasources":
                value = [d.to_dict() for d in value]
            elif isinstance(value, list) and value and hasattr(value[0], "__dataclass_fields__"):
                value = [asdict(v) for v in value]
            elif isinstance(value, (list, dict)):
                value = type(value)(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Installation:
        """Rebuild from ``to_dict`` output; unknown keys are ignored for forward compatibility."""

        def only(kind: type, item: dict[str, Any]) -> Any:
            names = {f.name for f in fields(kind)}
            return kind(**{k: v for k, v in item.items() if k in names})

        return cls(
            working_dir=Path(data["working_dir"]),
            config_path=Path(data["config_path"]),
            cells_version=data.get("cells_version"),
            config_shape=data.get("config_shape", SHAPE_V2_V4),
            data_dir=Path(data["data_dir"]),
            services_dir=Path(data["services_dir"]),
            log_dir=Path(data["log_dir"]),
            datasources=[only(Datasource, d) for d in data.get("datasources", [])],
            objects_services=[only(ObjectsService, o) for o in data.get("objects_services", [])],
            databases=[only(DatabaseRef, d) for d in data.get("databases", [])],
            document_store=data.get("document_store"),
            sites=[only(Site, s) for s in data.get("sites", [])],
            vault_file=_path_or_none(data.get("vault_file")),
            key_file=_path_or_none(data.get("key_file")),
            key_location=data.get("key_location"),
            hostname=data.get("hostname", ""),
            env=dict(data.get("env", {})),
            notes=list(data.get("notes", [])),
        )
