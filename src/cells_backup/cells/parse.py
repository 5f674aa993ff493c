"""Turn the sections of a parsed pydio.json into model objects (docs/CELLS.md §2.2–2.4).

Functions take the whole config dict and the file path (for messages). Where the file gives no
way to find the database the read fails closed; smaller oddities become notes that are shown to
the administrator, never silently dropped.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import CellsBackupError
from .config import default_database_key, ref_key
from .model import LOCAL, SHAPE_LEGACY, DatabaseRef, Datasource, ObjectsService, Site

STORAGE_TYPES = {
    0: "LOCAL",
    1: "S3",
    2: "SMB",
    4: "CELLS",
    5: "AZURE",
    6: "GCS",
    7: "B2",
    8: "MANTA",
    9: "SIA",
}
ENCRYPTION_MODES = {0: "CLEAR", 1: "MASTER", 2: "USER", 3: "USER_PWD"}
SYNC = "pydio.grpc.data.sync"
OBJECTS = "pydio.grpc.data.objects"
INDEX = "pydio.grpc.data.index"
SQL_ENGINES = ("mysql", "postgres", "sqlite")


def services(data: dict[str, Any]) -> dict[str, Any]:
    value = data.get("services")
    return value if isinstance(value, dict) else {}


def truthy(value: Any) -> bool:
    """Cells stores booleans as JSON booleans or as the strings "true"/"false"."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def source_names(data: dict[str, Any], service: str) -> list[str] | None:
    """``services[service].sources``: a list, or a JSON-encoded string ≤ v2.1; fake ``updated:`` dropped."""
    section = services(data).get(service)
    if not isinstance(section, dict) or "sources" not in section:
        return None
    sources = section["sources"]
    if isinstance(sources, str):
        try:
            sources = json.loads(sources) if sources.strip() else []
        except json.JSONDecodeError:
            sources = [s.strip() for s in sources.split(",")]
    if not isinstance(sources, list):
        return None
    return [s for s in sources if isinstance(s, str) and s and not s.startswith("updated:")]


def _names(data: dict[str, Any], service: str) -> list[str]:
    listed = source_names(data, service)
    if listed is not None:
        return listed
    prefix = service + "."
    return [
        k[len(prefix) :] for k, v in services(data).items() if k.startswith(prefix) and isinstance(v, dict)
    ]


def storage_type(value: Any) -> str:
    if value is None or value == "":
        return LOCAL
    if isinstance(value, int):
        return STORAGE_TYPES.get(value, f"TYPE_{value}")
    return str(value).upper()


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_objects_services(data: dict[str, Any]) -> list[ObjectsService]:
    """Every ``pydio.grpc.data.objects.<name>`` section: MinIO servers (local) and gateways."""
    out = []
    for name in _names(data, OBJECTS):
        section = services(data).get(f"{OBJECTS}.{name}")
        if not isinstance(section, dict):
            continue
        out.append(
            ObjectsService(
                name=name,
                storage_type=storage_type(section.get("StorageType")),
                local_folder=_str(section.get("LocalFolder")),
                peer_address=_str(section.get("PeerAddress")),
                endpoint_url=_str(section.get("EndpointUrl")),
            )
        )
    return out


def parse_datasources(
    data: dict[str, Any], objects: list[ObjectsService]
) -> tuple[list[Datasource], list[str]]:
    """Datasources from the sync services, with their objects service's LocalFolder as parent."""
    by_name = {o.name: o for o in objects}
    result: list[Datasource] = []
    notes: list[str] = []
    for name in _names(data, SYNC):
        section = services(data).get(f"{SYNC}.{name}")
        if not isinstance(section, dict):
            notes.append(f"datasource {name} is listed in {SYNC} but has no {SYNC}.{name} section")
            continue
        conf = section.get("StorageConfiguration")
        conf = conf if isinstance(conf, dict) else {}
        objects_name = _str(section.get("ObjectsServiceName"))
        obj = by_name.get(objects_name or "")
        ds = Datasource(
            name=_str(section.get("Name")) or name,
            storage_type=storage_type(section.get("StorageType")),
            flat=truthy(section.get("FlatStorage", False)),
            bucket=_str(section.get("ObjectsBucket")),
            objects_service=objects_name,
            peer_address=_str(section.get("PeerAddress")) or (obj.peer_address if obj else None),
            encryption_mode=_encryption(section.get("EncryptionMode")),
            internal=truthy(conf.get("cellsInternal", False)),
            disabled=truthy(section.get("Disabled", False)),
        )
        if ds.is_local:
            folder = _str(conf.get("folder"))
            parent = obj.local_folder if obj else None
            if folder is None and parent and ds.bucket:
                folder = posixpath.join(parent, ds.bucket)
            if parent is None and folder:
                parent = posixpath.dirname(folder.rstrip("/"))
            ds.folder, ds.parent_folder = folder, parent
            ds.bucket = ds.bucket or (posixpath.basename(folder.rstrip("/")) if folder else None)
            if folder is None:
                notes.append(f"local datasource {name} has no StorageConfiguration.folder nor LocalFolder")
            if objects_name and obj is None:
                notes.append(
                    f"datasource {name} uses objects service {objects_name}, which is not configured"
                )
        result.append(ds)
    return result, notes


def _encryption(value: Any) -> str:
    if isinstance(value, int):
        return ENCRYPTION_MODES.get(value, str(value))
    return str(value) if value else "CLEAR"


def database_engine(driver: str, dsn: str) -> str:
    """Which engine a ``databases`` entry uses, from its driver and DSN scheme."""
    d = driver.lower()
    scheme = dsn.split("://", 1)[0].lower() if "://" in dsn else ""
    if d == "mysql" or scheme in ("mysql", "mysql+tls"):
        return "mysql"
    if d in ("postgres", "postgresql", "pgx") or scheme in ("postgres", "postgresql"):
        return "postgres"
    if d in ("sqlite", "sqlite3") or scheme in ("sqlite", "sqlite3"):
        return "sqlite"
    if d in ("boltdb", "bolt"):
        return "boltdb"
    if d == "bleve":
        return "bleve"
    if d in ("mongodb", "mongo") or scheme in ("mongodb", "mongodb+srv"):
        return "mongodb"
    return "unknown"


class NoDefaultDatabaseError(CellsBackupError):
    """pydio.json names no usable main SQL database (absent, or a dangling id or ``$ref``)."""


def default_database_problem(data: dict[str, Any], path: Path | str) -> str | None:
    """Why pydio.json gives no main SQL database (absent, or naming a missing entry), or None."""
    dbs = data.get("databases") if isinstance(data.get("databases"), dict) else {}
    default_key = default_database_key(data, path)
    if default_key is None:
        return f"{path}: no defaults.database, cannot find the SQL database (Cells not configured yet?)"
    if default_key not in dbs:
        return f"{path}: defaults.database names databases/{default_key}, which does not exist"
    return None


def parse_databases(
    data: dict[str, Any], path: Path | str, *, database_optional: bool = False
) -> tuple[list[DatabaseRef], str | None]:
    """All ``databases`` entries with their role; fails closed when the main SQL DB cannot be found,
    unless ``database_optional`` (the caller brings its own database, or none)."""
    dbs = data.get("databases")
    if dbs is not None and not isinstance(dbs, dict):
        raise CellsBackupError(f'{path}: "databases" is a {type(dbs).__name__}, expected an object')
    dbs = dbs or {}
    problem = default_database_problem(data, path)
    if problem is not None and not database_optional:
        raise NoDefaultDatabaseError(problem)
    default_key = default_database_key(data, path)
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    docs_value = defaults.get("documentsDSN")
    docs_key = None
    document_store = None
    if isinstance(docs_value, str) and "://" in docs_value:
        document_store = docs_value
    else:
        docs_key = ref_key(docs_value, path, "defaults.documentsDSN")
    refs: list[DatabaseRef] = []
    for key, entry in dbs.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("dsn"), str):
            raise CellsBackupError(f'{path}: databases/{key} has no "dsn" string')
        driver, dsn = str(entry.get("driver", "")), entry["dsn"]
        engine = database_engine(driver, dsn)
        if key == default_key:
            role = "default"
            if engine not in SQL_ENGINES:
                raise CellsBackupError(
                    f"{path}: default database databases/{key} has unsupported driver {driver!r}"
                )
        elif key == docs_key:
            role = "documents"
            document_store = dsn
        elif engine in SQL_ENGINES:
            role = "sql"
        elif engine == "boltdb":
            role = "bolt"
        elif engine in ("bleve", "mongodb"):
            role = engine
        else:
            role = "other"
        refs.append(DatabaseRef(key=key, driver=driver, dsn=dsn, role=role, engine=engine))
    if docs_key and docs_key not in dbs:
        raise CellsBackupError(
            f"{path}: defaults.documentsDSN names databases/{docs_key}, which does not exist"
        )
    return refs, document_store


def parse_sites(data: dict[str, Any], shape: str) -> list[Site]:
    """Binds, external URL and TLS kind of every site (``defaults.sites`` or ≤ v2.1 url pair)."""
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    if shape == SHAPE_LEGACY and "sites" not in defaults:
        return _legacy_site(data, defaults)
    sites = defaults.get("sites")
    if not isinstance(sites, list):
        return []
    out = []
    for site in sites:
        if not isinstance(site, dict):
            continue
        binds = [b for b in site.get("Binds") or [] if isinstance(b, str)]
        tls, certs = _tls(site.get("TLSConfig"))
        out.append(
            Site(binds=binds, external_url=_str(site.get("ReverseProxyURL")), tls=tls, cert_files=certs)
        )
    return out


def _tls(value: Any) -> tuple[str, list[str]]:
    if not isinstance(value, dict) or not value:
        return "none", []
    lowered = {k.lower(): v for k, v in value.items()}
    if "certificate" in lowered:
        cert = lowered["certificate"] if isinstance(lowered["certificate"], dict) else {}
        files = [cert.get(k) for k in ("CertFile", "KeyFile", "CellsRootCA")]
        return "certificate", [f for f in files if isinstance(f, str) and f]
    if "letsencrypt" in lowered:
        return "letsencrypt", []
    if "selfsigned" in lowered:
        return "self-signed", []
    return "unknown", []


def _legacy_site(data: dict[str, Any], defaults: dict[str, Any]) -> list[Site]:
    url, internal = _str(defaults.get("url")), _str(defaults.get("urlInternal"))
    if not url and not internal:
        return []
    bind = urlsplit(internal or url or "").netloc
    cert = data.get("cert") if isinstance(data.get("cert"), dict) else {}
    proxy = cert.get("proxy") if isinstance(cert.get("proxy"), dict) else {}
    tls, files = "none", []
    if truthy(proxy.get("ssl")):
        files = [f for f in (proxy.get("certFile"), proxy.get("keyFile")) if isinstance(f, str) and f]
        tls = "self-signed" if truthy(proxy.get("self")) else "certificate" if files else "letsencrypt"
    return [Site(binds=[bind] if bind else [], external_url=url, tls=tls, cert_files=files)]


def peer_address_paths(data: dict[str, Any]) -> list[tuple[list[str], str]]:
    """(json path, value) of every non-empty PeerAddress in sync, objects and index services."""
    out = []
    for key, section in services(data).items():
        if not any(key.startswith(p + ".") for p in (SYNC, OBJECTS, INDEX)) or not isinstance(section, dict):
            continue
        value = section.get("PeerAddress")
        if isinstance(value, str) and value:
            out.append((["services", key, "PeerAddress"], value))
    return out
