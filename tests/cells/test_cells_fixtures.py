"""The project's pydio.json fixtures of each Cells version (docs/CELLS.md section 2) are read as Cells reads them."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from cells_testdata import (
    PYDIO_JSON_FIXTURES,
    V3_OBJECTS,
    V4_CONFIG,
    V5_BOOTSTRAP,
    V5_FIRST_START,
    load_fixture,
    write_config,
)

from cells_backup.cells import backup_plan, installation_from_config, load_installation
from cells_backup.cells.config import read_pydio_json
from cells_backup.cells.parse import parse_objects_services, source_names
from cells_backup.errors import CellsBackupError

V4_WD = "/srv/cells-demo"
V4_DB_KEY = "b1a14e9e1559ea683964d71020ad724050bbe468"


def test_v4_config_is_modelled_completely() -> None:
    inst = installation_from_config(load_fixture(V4_CONFIG), Path(V4_WD), env={})
    assert inst.cells_version == "4.4.13"
    assert inst.config_shape == "v2.2-v4"
    assert [d.name for d in inst.datasources] == [
        "pydiods1",
        "personal",
        "cellsdata",
        "versions",
        "thumbnails",
    ]
    thumbs = inst.datasource("thumbnails")
    assert (thumbs.bucket, thumbs.folder) == ("thumbs", f"{V4_WD}/data/thumbs")
    assert thumbs.internal and thumbs.flat and thumbs.is_local
    assert {d.parent_folder for d in inst.datasources} == {f"{V4_WD}/data"}
    assert {d.objects_service for d in inst.datasources} == {"local1"}
    assert not inst.datasource("pydiods1").internal
    default = inst.default_database
    assert default is not None and default.key == V4_DB_KEY
    assert default.engine == "mysql"
    assert default.dsn == "cellsadmin:Demo-db-pass@tcp(db.cells.test:3306)/cells_demo?parseTime=true"
    assert sorted(d.key for d in inst.databases if d.role == "bolt") == [
        "pydio.grpc.activity",
        "pydio.grpc.chat",
        "pydio.grpc.docstore",
        "pydio.grpc.versions",
    ]
    assert [d.key for d in inst.sql_databases()] == [default.key]
    assert inst.document_store is None
    assert len(inst.sites) == 1
    assert inst.sites[0].binds == ["files.cells.test:8080"] and inst.sites[0].tls == "self-signed"


def test_v4_plan_at_its_own_location_has_no_extra_parent() -> None:
    inst = installation_from_config(load_fixture(V4_CONFIG), Path(V4_WD), env={})
    assert [c.kind for c in backup_plan(inst)] == ["workdir"]


def test_v4_moved_working_dir_backs_up_the_old_parent(tmp_path: Path) -> None:
    inst = installation_from_config(load_fixture(V4_CONFIG), tmp_path, env={})
    parents = [c for c in backup_plan(inst) if c.kind == "datasource-parent"]
    assert len(parents) == 1
    assert str(parents[0].path) == f"{V4_WD}/data"
    assert parents[0].includes == ["cellsdata", "personal", "pydiods1", "thumbs", "versions", ".minio.sys"]


def test_v5_unfilled_version_placeholder_fails_closed(tmp_path: Path) -> None:
    """A config whose version is a template placeholder (never filled in) is refused in one line."""
    config = load_fixture(V5_FIRST_START)
    config["version"] = "__CELLS_VERSION__"
    write_config(tmp_path, config)
    with pytest.raises(CellsBackupError) as err:
        load_installation(tmp_path, env={})
    assert str(tmp_path / "pydio.json") in str(err.value)
    assert "__CELLS_VERSION__" in str(err.value) and "\n" not in str(err.value)


def test_v5_first_start_before_install_has_no_database(tmp_path: Path) -> None:
    write_config(tmp_path, load_fixture(V5_FIRST_START))
    with pytest.raises(CellsBackupError, match="no defaults.database"):
        load_installation(tmp_path, env={})


def test_v5_after_install_is_modelled(tmp_path: Path) -> None:
    # What the v5 installer adds (docs/CELLS.md section 2.2): a sha1-keyed sql DSN with templates, bolt and bleve.
    config = copy.deepcopy(load_fixture(V5_FIRST_START))
    config["version"] = "5.0.0"
    dsn = "mysql://pydio:pw@tcp(db:3306)/cells?parseTime=true&prefix={{.Meta.prefix}}&singular={{.Meta.singular}}"
    tmpl = "{{ autoMkdir (serviceDataDir .Service) }}/{{ .Meta.file }}"
    config["databases"] = {
        "0123456789abcdef0123456789abcdef01234567": {"driver": "sql", "dsn": dsn},
        "boltdb": {"driver": "bolt", "dsn": f"boltdb://{tmpl}"},
        "bleve": {"driver": "bleve", "dsn": f"bleve://{tmpl}"},
    }
    config["defaults"]["database"] = {"$ref": "#/databases/0123456789abcdef0123456789abcdef01234567"}
    write_config(tmp_path, config)
    inst = load_installation(tmp_path, env={})
    assert inst.config_shape == "v5"
    assert inst.default_database.engine == "mysql"
    assert {d.role for d in inst.databases} == {"default", "bolt", "bleve"}
    assert inst.sites[0].binds == ["0.0.0.0:8080"]
    assert inst.datasources == []


def test_v3_objects_only_fails_closed_but_its_objects_services_are_read(tmp_path: Path) -> None:
    data = load_fixture(V3_OBJECTS)
    write_config(tmp_path, data)
    with pytest.raises(CellsBackupError, match="no defaults.database"):
        load_installation(tmp_path, env={})
    # the "updated:<timestamp>" entry Cells appends to source lists is not a source
    assert source_names(data, "pydio.grpc.data.objects") == ["gateway2", "local1", "local2", "local3", "gateway1"]
    objects = {o.name: o for o in parse_objects_services(data)}
    assert objects["gateway1"].storage_type == "S3"
    assert objects["gateway1"].endpoint_url == "https://s3.storage.cells.test"
    assert objects["gateway2"].storage_type == "AZURE" and objects["gateway2"].endpoint_url is None
    assert objects["local2"].peer_address == "192.168.10.21" and objects["local1"].peer_address is None
    assert objects["local3"].local_folder == "/mnt/archive/cells"
    assert objects["local1"].storage_type == "LOCAL"


def test_read_pydio_json_accepts_every_json_fixture() -> None:
    for fixture in PYDIO_JSON_FIXTURES:
        assert isinstance(read_pydio_json(fixture), dict)


def test_default_excludes_cover_exactly_the_v5_bootstrap_indexes(tmp_path: Path) -> None:
    """Search, log and task-log bleve files named in the v5 bootstrap are skipped; docstore's is kept."""
    text = V5_BOOTSTRAP.read_text(encoding="utf-8")
    files: dict[str, list[str]] = {}
    service = None
    for line in text.splitlines():
        m = re.match(r"^  (pydio\.[\w.-]+):\s*$", line)
        if m:
            service = m.group(1)
        m = re.match(r"^\s+file: ([\w.]+)", line)
        if m and service:
            files.setdefault(service, []).append(m.group(1))
    assert files["pydio.grpc.search"] == ["search.bleve"]
    inst = installation_from_config(load_fixture(V4_CONFIG), tmp_path, env={})
    work = backup_plan(inst)[0]
    skipped = {
        f"{svc}/{name}"
        for svc, names in files.items()
        for name in names
        if work.excluded_by(f"services/{svc}/{name}", is_dir=name.endswith(".bleve"))
    }
    assert skipped == {
        "pydio.grpc.search/search.bleve",
        "pydio.grpc.log/syslog.bleve",
        "pydio.grpc.jobs/tasklogs.bleve",
    }
