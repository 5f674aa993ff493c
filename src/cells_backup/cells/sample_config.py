"""pydio.json documents in each version's shape, for the sample installation generator.

Modelled on the shapes of docs/CELLS.md §2: the v4 shape is that of a config a v4 install
writes, ≤ v2.1 uses an id string for ``defaults.database``, JSON-string source lists and
``defaults.url``/``urlInternal``; v5 uses scheme DSNs with template parameters and bolt/bleve entries.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .dsn import SqlDsn, format_dsn, format_mysql_dsn
from .model import SHAPE_LEGACY, SHAPE_V2_V4, SHAPE_V5

V5_PARAMS = "parseTime=true&prefix={{.Meta.prefix}}&policies={{.Meta.policies}}&singular={{.Meta.singular}}"
BOLT_SERVICES = {
    "pydio.grpc.activity": "activities.db",
    "pydio.grpc.chat": "chat.db",
    "pydio.grpc.docstore": "docstore.db",
    "pydio.grpc.versions": "versions.db",
}


@dataclass
class SampleDatasource:
    name: str
    bucket: str
    parent: str
    objects: str  # objects service name
    flat: bool
    internal: bool = False


@dataclass
class SampleSpec:
    version: str
    shape: str
    working_dir: str
    db: dict[str, Any]
    bind: str
    external_url: str | None
    datasources: list[SampleDatasource]
    objects: dict[str, str]  # objects service name -> LocalFolder
    api_key: str
    api_secret_uuid: str
    peer_address: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def shape_for_version(version: str) -> str:
    major, minor = (int(x) for x in version.split(".")[:2])
    if major >= 5:
        return SHAPE_V5
    if (major, minor) < (2, 2):
        return SHAPE_LEGACY
    return SHAPE_V2_V4


def sql_dsn(spec: SampleSpec) -> str:
    db = spec.db
    engine = db.get("engine", "mysql")
    if engine == "sqlite":
        return f"sqlite://{db['path']}?prefix={{{{.Meta.prefix}}}}"
    if engine == "postgres":
        return format_dsn(
            SqlDsn(
                "postgres",
                "postgres",
                db["user"],
                db["password"],
                "tcp",
                db["host"],
                int(db["port"]),
                db["name"],
                "sslmode=disable&prefix={{.Meta.prefix}}",
            )
        )
    v5 = spec.shape == SHAPE_V5
    params = V5_PARAMS if v5 else "parseTime=true"
    return format_mysql_dsn(
        db["user"], db["password"], db["host"], int(db["port"]), db["name"], params, v5=v5
    )


def build_config(spec: SampleSpec) -> dict[str, Any]:
    """A complete pydio.json for ``spec`` in its version's shape."""
    dsn = sql_dsn(spec)
    db_key = hashlib.sha1(dsn.encode()).hexdigest()
    legacy = spec.shape == SHAPE_LEGACY
    names = [d.name for d in spec.datasources]
    databases: dict[str, Any] = {db_key: {"driver": "sql" if spec.shape == SHAPE_V5 else "mysql", "dsn": dsn}}
    if spec.shape == SHAPE_V5:
        template = "{{ autoMkdir (serviceDataDir .Service) }}/{{ .Meta.file }}"
        databases["boltdb"] = {"driver": "bolt", "dsn": f"boltdb://{template}"}
        databases["bleve"] = {"driver": "bleve", "dsn": f"bleve://{template}"}
    elif not legacy:
        for svc, file in BOLT_SERVICES.items():
            databases[svc] = {"driver": "boltdb", "dsn": f"{spec.working_dir}/services/{svc}/{file}"}

    def sources(items: list[str]) -> Any:
        return json.dumps(items) if legacy else items

    services: dict[str, Any] = {
        "pydio.docstore-binaries": {"bucket": "binaries", "datasource": "default"},
        "pydio.grpc.acl": {"dsn": "default"},
        "pydio.grpc.data.index": {"sources": sources(names)},
        "pydio.grpc.data.sync": {"sources": sources(names)},
        "pydio.grpc.data.objects": {"sources": sources(list(spec.objects))},
        "pydio.grpc.policy": {"dsn": "databaseParseTime"},
        "pydio.thumbs_store": {"bucket": "thumbs", "datasource": "thumbnails"},
        "pydio.versions-store": {"bucket": "versions", "datasource": "versions"},
        "pydio.web.oauth": {
            "secret": "sample-oauth-secret.Qe7Lw2Nz_x9Rt4Vb",
            "insecureRedirects": ["#insecure_binds...#/auth/callback"],
        },
    }
    for i, (name, folder) in enumerate(spec.objects.items()):
        section: dict[str, Any] = {
            "ApiKey": spec.api_key,
            "ApiSecret": spec.api_secret_uuid,
            "LocalFolder": folder,
            "Name": name,
            "RunningPort": 9001 + i,
        }
        if spec.peer_address:
            section["PeerAddress"] = spec.peer_address
        services[f"pydio.grpc.data.objects.{name}"] = section
    for ds in spec.datasources:
        conf = {"folder": f"{ds.parent}/{ds.bucket}"}
        if ds.internal:
            conf["cellsInternal"] = "true"
        sync: dict[str, Any] = {
            "ApiKey": spec.api_key,
            "ApiSecret": spec.api_secret_uuid,
            "FlatStorage": ds.flat,
            "Name": ds.name,
            "ObjectsBucket": ds.bucket,
            "ObjectsPort": 9001 + list(spec.objects).index(ds.objects),
            "ObjectsServiceName": ds.objects,
            "StorageConfiguration": conf,
        }
        if spec.peer_address:
            sync["PeerAddress"] = spec.peer_address
        services[f"pydio.grpc.data.sync.{ds.name}"] = sync
        services[f"pydio.grpc.data.index.{ds.name}"] = {
            "dsn": "default",
            "tables": {k: f"data_{ds.name}_{k}" for k in ("commits", "nodes", "tree")},
        }
    defaults: dict[str, Any] = {
        "datasource": "pydiods1",
        "personalTokens": {"secureKey": "c2FtcGxlLXBlcnNvbmFsLXRva2Vucy1zZWN1cmUta2V5"},
    }
    config: dict[str, Any] = {
        "databases": databases,
        "defaults": defaults,
        "frontend": {"plugin": {"core.pydio": {"APPLICATION_TITLE": "Sample Cells"}}},
        "services": services,
        "version": spec.version,
    }
    if legacy:
        defaults["database"] = db_key
        defaults["url"] = spec.external_url or f"https://{spec.bind}"
        defaults["urlInternal"] = f"https://{spec.bind}"
        config["cert"] = {"proxy": {"ssl": True, "self": True}}
        services["pydio.web.oauth"]["issuer"] = defaults["url"] + "/oidc/"
    else:
        defaults["database"] = {"$ref": f"#/databases/{db_key}"}
        site: dict[str, Any] = {"Binds": [spec.bind], "TLSConfig": {"SelfSigned": {}}}
        if spec.external_url:
            site["ReverseProxyURL"] = spec.external_url
        defaults["sites"] = [site]
        config["ports"] = {"nats": 4222}
    config.update(spec.extra)
    return config
