"""What a backup takes and skips, on a generated installation laid out like a real one."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from cells_backup.cells import (
    backup_plan,
    installation_from_config,
    load_installation,
    not_backed_up,
    warnings,
)
from cells_backup.cells.config import read_pydio_json
from cells_backup.cells.sample import make_sample_installation


def _walk(component) -> tuple[set[str], set[str]]:
    """Files the engine would take / skip, honouring pruning of excluded directories."""
    taken, skipped = set(), set()
    for root, dirs, files in os.walk(component.path):
        rel_root = os.path.relpath(root, component.path)
        rel = "" if rel_root == "." else rel_root + "/"
        for d in list(dirs):
            if component.excluded_by(rel + d, is_dir=True):
                dirs.remove(d)
                skipped.add(rel + d + "/")
        for f in files:
            (skipped if component.excluded_by(rel + f) else taken).add(rel + f)
    return taken, skipped


def test_workdir_keeps_what_restore_needs_and_skips_regenerable_parts(sample) -> None:
    plan = backup_plan(sample.installation)
    work = plan[0]
    assert work.kind == "workdir" and work.path == sample.installation.working_dir
    taken, skipped = _walk(work)
    for needed in (
        "pydio.json",
        "pydio-vault.json",
        "cells-vault-key",
        "configs-versions.db",
        "certs/rootCA.pem",
        "services/pydio.grpc.docstore/docstore.db",
        "services/pydio.grpc.versions/versions.db",
        "data/.minio.sys/format.json",
    ):
        assert needed in taken, needed
    assert skipped == {
        "logs/",
        "services/pydio.grpc.search/searchengine.bleve/",
        "services/pydio.grpc.log/syslog.bleve/",
        "services/pydio.grpc.data.objects/local1/config.json",
    }
    blobs = sample.blobs("personal")
    assert blobs and all(f"data/personal/{uid}" in taken for uid, _ in blobs)
    assert all(e.reason for e in work.excludes)


def test_external_parent_is_one_component_limited_to_its_buckets(tmp_path: Path) -> None:
    ext = tmp_path / "ext" / "storage"
    sample = make_sample_installation(tmp_path / "cells", external_parent=ext)
    (ext / "unrelated").mkdir()
    (ext / "unrelated" / "big.iso").write_bytes(b"x")
    parents = [c for c in backup_plan(sample.installation) if c.kind == "datasource-parent"]
    assert len(parents) == 1 and parents[0].path == ext.resolve()
    taken, _ = _walk(parents[0])
    assert "unrelated/big.iso" not in taken
    assert ".minio.sys/format.json" in taken
    assert {f"archive/{uid}" for uid, _ in sample.blobs("archive")} <= taken


def test_parents_shared_by_several_datasources_are_deduplicated(tmp_path: Path) -> None:
    sample = make_sample_installation(tmp_path / "cells")
    config = read_pydio_json(sample.installation.config_path)
    new_parent = str(tmp_path / "moved")
    config["services"]["pydio.grpc.data.objects.local1"]["LocalFolder"] = new_parent
    for key, section in config["services"].items():
        if key.startswith("pydio.grpc.data.sync.") and isinstance(section, dict):
            bucket = section["ObjectsBucket"]
            section["StorageConfiguration"]["folder"] = f"{new_parent}/{bucket}"
    inst = installation_from_config(config, sample.installation.working_dir, env={})
    parents = [c for c in backup_plan(inst) if c.kind == "datasource-parent"]
    assert len(parents) == 1
    assert parents[0].includes == ["cellsdata", "personal", "pydiods1", "thumbs", "versions", ".minio.sys"]


def test_extra_excludes_relative_and_absolute(sample) -> None:
    ext = sample.installation.datasource("archive").folder
    plan = backup_plan(sample.installation, extra_excludes=["data/personal", f"{ext}/"])
    assert plan[0].excluded_by("data/personal/abc")
    parent = next(c for c in plan if c.kind == "datasource-parent")
    assert parent.excluded_by("archive/x")
    assert not parent.excluded_by(".minio.sys/format.json")


def test_services_dir_outside_workdir_gets_its_own_component(tmp_path: Path) -> None:
    sample = make_sample_installation(tmp_path / "cells")
    shutil.move(tmp_path / "cells" / "services", tmp_path / "services")
    inst = load_installation(tmp_path / "cells", env={"CELLS_SERVICES_DIR": str(tmp_path / "services")})
    services = [c for c in backup_plan(inst) if c.kind == "services-dir"]
    assert len(services) == 1
    assert services[0].excluded_by("pydio.grpc.search/searchengine.bleve", is_dir=True)
    assert not services[0].excluded_by("pydio.grpc.docstore/docstore.db")
    assert sample  # the sample stays valid otherwise


def test_clean_sample_has_no_warnings(sample) -> None:
    assert warnings(sample.installation) == []
    assert not_backed_up(sample.installation) == []


def test_warnings_name_every_risk(tmp_path: Path) -> None:
    sample = make_sample_installation(tmp_path / "cells")
    config = read_pydio_json(sample.installation.config_path)
    svc = config["services"]
    svc["pydio.grpc.data.sync"]["sources"].append("s3data")
    svc["pydio.grpc.data.sync.s3data"] = {"Name": "s3data", "StorageType": "S3", "ObjectsBucket": "b"}
    svc["pydio.grpc.data.sync.personal"]["EncryptionMode"] = "MASTER"
    config["databases"]["mongodb"] = {"driver": "mongodb", "dsn": "mongodb://u:pw@mongo:27017/cells"}
    config["defaults"]["documentsDSN"] = {"$ref": "#/databases/mongodb"}
    (tmp_path / "cells" / "pydio.json").write_text(json.dumps(config))
    shutil.rmtree(tmp_path / "cells" / "data" / ".minio.sys")
    shutil.rmtree(tmp_path / "cells" / "data" / "cellsdata")
    inst = load_installation(tmp_path / "cells", env={"CELLS_KEYRING": "vault://vault:8200/cells"})
    text = "\n".join(warnings(inst))
    assert "s3data is on S3 storage" in text
    assert "personal is encrypted (MASTER)" in text
    assert "mongodb://u:***@mongo:27017/cells" in text and "pw@" not in text
    assert "cellsdata: folder" in text and "does not exist" in text
    assert "no .minio.sys" in text
    assert "vault://vault:8200/cells" in text
    skipped = {s.name for s in not_backed_up(inst)}
    assert skipped == {"datasource s3data", "master key"}  # the document store goes through mongodump
