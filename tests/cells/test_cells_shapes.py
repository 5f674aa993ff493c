"""One hand-made pydio.json per version shape docs/CELLS.md §2 describes, and the ways a file can be broken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cells_testdata import write_config

from cells_backup.cells import load_installation
from cells_backup.errors import CellsBackupError


def _sync(name: str, folder: str, **extra: Any) -> dict[str, Any]:
    return {
        "Name": name,
        "ObjectsBucket": folder.rsplit("/", 1)[1],
        "ObjectsServiceName": "local1",
        "StorageConfiguration": {"folder": folder},
        **extra,
    }


def v1_config() -> dict[str, Any]:
    # v1: id string database, JSON-string source lists, url/urlInternal, plain ApiSecret, cert.proxy.
    return {
        "version": "1.4.1",
        "cert": {"proxy": {"ssl": True, "certFile": "/etc/ssl/cells.crt", "keyFile": "/etc/ssl/cells.key"}},
        "databases": {
            "cellsdb": {"driver": "mysql", "dsn": "root:s3cret@tcp(127.0.0.1:3306)/cells?parseTime=true"}
        },
        "defaults": {
            "database": "cellsdb",
            "url": "https://files.example.com",
            "urlInternal": "https://0.0.0.0:443",
        },
        "services": {
            "pydio.grpc.data.sync": {"sources": '["pydiods1","personal"]'},
            "pydio.grpc.data.index": {"sources": '["pydiods1","personal"]'},
            "pydio.grpc.data.objects": {"sources": '["local1"]'},
            "pydio.grpc.data.objects.local1": {
                "LocalFolder": "/srv/cells/data",
                "ApiSecret": "plainSecret24charsLong!!",
            },
            "pydio.grpc.data.sync.pydiods1": _sync("pydiods1", "/srv/cells/data/pydiods1"),
            "pydio.grpc.data.sync.personal": _sync("personal", "/srv/cells/data/personal"),
        },
    }


def test_v1_shape(tmp_path: Path) -> None:
    write_config(tmp_path, v1_config())
    inst = load_installation(tmp_path, env={})
    assert inst.config_shape == "v1-v2.1"
    assert [d.name for d in inst.datasources] == ["pydiods1", "personal"]
    assert not inst.datasource("pydiods1").flat  # FlatStorage absent = structured (pre-v3)
    assert inst.datasource("personal").parent_folder == "/srv/cells/data"
    assert inst.default_database.key == "cellsdb" and inst.default_database.engine == "mysql"
    site = inst.sites[0]
    assert site.external_url == "https://files.example.com" and site.binds == ["0.0.0.0:443"]
    assert site.tls == "certificate" and site.cert_files == ["/etc/ssl/cells.crt", "/etc/ssl/cells.key"]


def test_v2_1_shape_with_updated_marker_and_self_signed(tmp_path: Path) -> None:
    config = v1_config()
    config["version"] = "2.1.0"
    config["cert"] = {"proxy": {"ssl": True, "self": True}}
    config["services"]["pydio.grpc.data.sync"]["sources"] = '["pydiods1","updated:1668512540"]'
    write_config(tmp_path, config)
    inst = load_installation(tmp_path, env={})
    assert inst.config_shape == "v1-v2.1"
    assert [d.name for d in inst.datasources] == ["pydiods1"]
    assert inst.sites[0].tls == "self-signed"


def v22_config(version: str = "2.2.12") -> dict[str, Any]:
    key = "a" * 40
    return {
        "version": version,
        "databases": {key: {"driver": "mysql", "dsn": "pydio:pw@tcp(db:3306)/cells?parseTime=true"}},
        "defaults": {
            "database": {"$ref": f"#/databases/{key}"},
            "sites": [{"Binds": ["10.0.0.5:8080"], "ReverseProxyURL": "https://cells.example.com"}],
        },
        "services": {
            "pydio.grpc.data.sync": {"sources": ["pydiods1", "s3ds"]},
            "pydio.grpc.data.objects": {"sources": ["local1", "gateway1"]},
            "pydio.grpc.data.objects.local1": {"LocalFolder": "/data/cells", "PeerAddress": "10.0.0.5"},
            "pydio.grpc.data.objects.gateway1": {"StorageType": 1, "EndpointUrl": "https://s3.example.com"},
            "pydio.grpc.data.sync.pydiods1": _sync(
                "pydiods1",
                "/data/cells/pydiods1",
                FlatStorage=True,
                PeerAddress="10.0.0.5",
                EncryptionMode="MASTER",
            ),
            "pydio.grpc.data.sync.s3ds": {
                "Name": "s3ds",
                "StorageType": "S3",
                "ObjectsBucket": "bucket1",
                "ObjectsServiceName": "gateway1",
            },
        },
    }


@pytest.mark.parametrize("version", ["2.2.12", "3.0.10", "4.4.13"])
def test_v2_2_to_v4_shape(tmp_path: Path, version: str) -> None:
    write_config(tmp_path, v22_config(version))
    inst = load_installation(tmp_path, env={})
    assert inst.config_shape == "v2.2-v4"
    ds = inst.datasource("pydiods1")
    assert ds.flat and ds.peer_address == "10.0.0.5" and ds.encryption_mode == "MASTER"
    s3 = inst.datasource("s3ds")
    assert not s3.is_local and s3.storage_type == "S3" and s3.folder is None
    assert inst.sites[0].external_url == "https://cells.example.com" and inst.sites[0].tls == "none"


def test_v4_with_mongo_document_store(tmp_path: Path) -> None:
    config = v22_config("4.4.13")
    config["databases"]["mongodb"] = {
        "driver": "mongodb",
        "dsn": "mongodb://u:p@mongo:27017/cells?maxPoolSize=20",
    }
    config["defaults"]["documentsDSN"] = {"$ref": "#/databases/mongodb"}
    write_config(tmp_path, config)
    inst = load_installation(tmp_path, env={})
    assert inst.document_store == "mongodb://u:p@mongo:27017/cells?maxPoolSize=20"
    assert [d.key for d in inst.databases if d.role == "documents"] == ["mongodb"]
    assert [d.key for d in inst.sql_databases()] == ["a" * 40]


@pytest.mark.parametrize(
    ("dsn", "engine"),
    [
        ("mysql://pydio:pw@tcp(db:3306)/cells?parseTime=true&prefix={{.Meta.prefix}}", "mysql"),
        ("mysql+tls://pydio:pw@tcp(db:3306)/cells?parseTime=true&tlsCertCAUUID=x", "mysql"),
        ("postgres://pydio:pw@pg:5432/cells?sslmode=disable&prefix={{.Meta.prefix}}", "postgres"),
        ("sqlite:///var/cells/cells.db?prefix={{.Meta.prefix}}", "sqlite"),
    ],
)
def test_v5_shape(tmp_path: Path, dsn: str, engine: str) -> None:
    config = v22_config("5.0.2")
    key = "a" * 40
    config["databases"][key] = {"driver": "sql", "dsn": dsn}
    config["databases"]["boltdb"] = {"driver": "bolt", "dsn": "boltdb://{{ .Meta.file }}"}
    write_config(tmp_path, config)
    inst = load_installation(tmp_path, env={})
    assert inst.config_shape == "v5"
    assert inst.default_database.engine == engine and inst.default_database.dsn == dsn


def test_v5_shape_is_recognised_from_the_dsn_without_version(tmp_path: Path) -> None:
    config = v22_config()
    del config["version"]
    config["databases"]["a" * 40]["dsn"] = "mysql://p:w@tcp(db:3306)/cells"
    write_config(tmp_path, config)
    inst = load_installation(tmp_path, env={})
    assert inst.config_shape == "v5" and inst.cells_version is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["defaults"].update(database={"id": "x"}), "defaults.database has an unknown shape"),
        (lambda c: c["defaults"].update(database={"$ref": "#/other/x"}), "expected '#/databases/<id>'"),
        (lambda c: c["defaults"].pop("database"), "no defaults.database"),
        (lambda c: c.update(databases={}), "which does not exist"),
        (lambda c: c.update(version="four"), "unknown \"version\" format 'four'"),
        (lambda c: c.update(version=4), 'unknown "version" format 4'),
        (lambda c: c["databases"]["a" * 40].update(driver="oracle", dsn="x"), "unsupported driver 'oracle'"),
        (lambda c: c["databases"]["a" * 40].pop("dsn"), 'has no "dsn" string'),
        (lambda c: c.update(databases=[1]), '"databases" is a list'),
        (lambda c: c["defaults"].update(documentsDSN={"$ref": "#/databases/nope"}), "documentsDSN names"),
    ],
)
def test_unknown_shapes_fail_closed(tmp_path: Path, mutate, message: str) -> None:
    config = v22_config()
    mutate(config)
    path = write_config(tmp_path, config)
    with pytest.raises(CellsBackupError) as err:
        load_installation(tmp_path, env={})
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "truncated"),
        (b"", "file is empty"),
        (b"[1, 2]", "top level is a JSON list"),
        (b'"just a string"', "top level is a JSON str"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b'{"version": "4.4.13",}', "invalid JSON"),
    ],
)
def test_broken_files_give_one_line_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "pydio.json"
    full = json.dumps(v22_config(), indent=2).encode()
    path.write_bytes(full[: len(full) // 2] if content is None else content)
    with pytest.raises(CellsBackupError) as err:
        load_installation(tmp_path, env={})
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(CellsBackupError, match="file not found"):
        load_installation(tmp_path, env={})


def test_listed_datasource_without_section_is_noted_not_dropped_silently(tmp_path: Path) -> None:
    config = v22_config()
    config["services"]["pydio.grpc.data.sync"]["sources"].append("ghost")
    write_config(tmp_path, config)
    inst = load_installation(tmp_path, env={})
    assert "ghost" not in [d.name for d in inst.datasources]
    assert any("ghost" in n for n in inst.notes)
