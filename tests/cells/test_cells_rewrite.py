"""Config rewrites change exactly what ties pydio.json to the old host, and nothing else."""

from __future__ import annotations

import os
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cells_backup.cells import (
    RewriteRequest,
    apply_edits,
    installation_from_config,
    plan_rewrite,
    read_pydio_json,
    rehost_in_place,
    render_diff,
    retarget_dsn,
)
from cells_backup.cells.rewrite import ABSENT, format_path, map_path
from cells_backup.cells.sample import make_sample_installation
from cells_backup.errors import CellsBackupError


def _leaves(node: Any, path: tuple = ()) -> dict[tuple, Any]:
    if isinstance(node, dict):
        out: dict[tuple, Any] = {}
        for k, v in node.items():
            out.update(_leaves(v, (*path, k)))
        return out
    if isinstance(node, list):
        return {path: node}  # lists compare as a whole (Binds)
    return {path: node}


def _changed(a: dict, b: dict) -> set[tuple]:
    la, lb = _leaves(a), _leaves(b)
    return {k for k in la.keys() | lb.keys() if la.get(k, ABSENT) != lb.get(k, ABSENT)}


@pytest.fixture
def moved(tmp_path: Path):
    sample = make_sample_installation(
        tmp_path / "old", external_parent=tmp_path / "ext", peer_address="oldhost"
    )
    config = read_pydio_json(sample.installation.config_path)
    return sample, config, tmp_path


def test_new_host_restore_changes_exactly_the_host_bound_values(moved) -> None:
    sample, config, tmp = moved
    inst = sample.installation
    old_wd, old_ext = str(inst.working_dir), str((tmp / "ext").resolve())
    dsn = retarget_dsn(inst.default_database.dsn, "mysql://cells:n3w@db2:3307/cells2")
    request = RewriteRequest(
        path_map=[(old_wd, "/srv/cells"), (old_ext, "/mnt/ext")],
        external_url="https://cells.new.example",
        bind="10.1.1.1:443",
        peer_address="newhost",
        database_dsn=dsn,
    )
    edits = plan_rewrite(config, inst, request)
    paths = {tuple(e.json_path) for e in edits}
    sync = [k for k in config["services"] if k.startswith("pydio.grpc.data.sync.")]
    objects = [k for k in config["services"] if k.startswith("pydio.grpc.data.objects.")]
    expected = (
        {("services", k, "StorageConfiguration", "folder") for k in sync}
        | {("services", k, "PeerAddress") for k in sync + objects}
        | {("services", k, "LocalFolder") for k in objects}
        | {("databases", k, "dsn") for k, v in config["databases"].items() if v["driver"] == "boltdb"}
        | {("databases", inst.default_database.key, "dsn")}
        | {("defaults", "sites", 0, "ReverseProxyURL"), ("defaults", "sites", 0, "Binds")}
    )
    assert paths == expected
    new = apply_edits(config, edits)
    changed = _changed(config, new)
    # every changed leaf is one of the planned edits (sites[0] is a list element: compare its parent)
    assert {p if "sites" not in p else ("defaults", "sites") for p in changed} == {
        p if "sites" not in p else ("defaults", "sites") for p in expected
    }
    assert (
        new["services"]["pydio.grpc.data.sync.archive"]["StorageConfiguration"]["folder"]
        == "/mnt/ext/archive"
    )
    assert new["services"]["pydio.grpc.data.objects.local1"]["LocalFolder"] == "/srv/cells/data"
    assert (
        new["databases"]["pydio.grpc.docstore"]["dsn"]
        == "/srv/cells/services/pydio.grpc.docstore/docstore.db"
    )
    assert (
        new["databases"][inst.default_database.key]["dsn"] == "cells:n3w@tcp(db2:3307)/cells2?parseTime=true"
    )
    assert new["defaults"]["sites"][0]["Binds"] == ["10.1.1.1:443"]
    assert (
        config["services"]["pydio.grpc.data.objects.local1"]["LocalFolder"] == f"{old_wd}/data"
    )  # untouched input


def test_clear_peer_address_removes_the_keys(moved) -> None:
    sample, config, _ = moved
    edits = plan_rewrite(config, sample.installation, RewriteRequest(clear_peer_address=True))
    assert edits and all(e.json_path[-1] == "PeerAddress" and e.new is ABSENT for e in edits)
    new = apply_edits(config, edits)
    assert all("PeerAddress" not in v for v in new["services"].values() if isinstance(v, dict))
    assert all(line.startswith("- ") for line in render_diff(edits).splitlines())


def test_empty_request_changes_nothing(moved) -> None:
    sample, config, _ = moved
    assert plan_rewrite(config, sample.installation, RewriteRequest()) == []
    same = RewriteRequest(path_map=[("/nowhere", "/else")], bind="0.0.0.0:8080")
    assert plan_rewrite(config, sample.installation, same) == []


def test_diff_masks_passwords_and_is_one_line_per_edit(moved) -> None:
    sample, config, _ = moved
    dsn = retarget_dsn(sample.installation.default_database.dsn, "mysql://root:topsecret@db:3306/cells")
    edits = plan_rewrite(
        config, sample.installation, RewriteRequest(database_dsn=dsn, external_url="https://x")
    )
    text = render_diff(edits)
    assert "topsecret" not in text and 'cells"' not in text
    assert "root:***@tcp(db:3306)/cells" in text and "pydio:***@tcp(localhost:3306)" in text
    assert len(text.splitlines()) == len(edits) == 2
    assert 'defaults.sites[0].ReverseProxyURL: "https://x"' in text
    assert all("topsecret" not in str(e.to_dict()) for e in edits)


def test_legacy_shape_edits_url_everywhere_and_url_internal(tmp_path: Path) -> None:
    sample = make_sample_installation(tmp_path / "c", version="2.1.0", external_url="https://old.example")
    config = read_pydio_json(sample.installation.config_path)
    edits = plan_rewrite(
        config, sample.installation, RewriteRequest(external_url="https://new.example", bind="0.0.0.0:8443")
    )
    assert {format_path(e.json_path) for e in edits} == {
        "defaults.url",
        "defaults.urlInternal",
        'services["pydio.web.oauth"].issuer',
    }
    new = apply_edits(config, edits)
    assert new["services"]["pydio.web.oauth"]["issuer"] == "https://new.example/oidc/"
    assert new["defaults"]["urlInternal"] == "https://0.0.0.0:8443"
    assert "sites" not in new["defaults"]


def test_v5_templates_untouched_sqlite_path_moved(tmp_path: Path) -> None:
    db = {"engine": "sqlite", "path": str(tmp_path / "c" / "cells.sqlite")}
    sample = make_sample_installation(tmp_path / "c", version="5.0.2", db=db)
    config = read_pydio_json(sample.installation.config_path)
    edits = plan_rewrite(
        config, sample.installation, RewriteRequest(path_map=[(str(tmp_path / "c"), "/var/cells")])
    )
    by_path = {format_path(e.json_path): e.new for e in edits}
    key = sample.installation.default_database.key
    assert by_path[f"databases.{key}.dsn"] == "sqlite:///var/cells/cells.sqlite?prefix={{.Meta.prefix}}"
    assert not any(p.startswith(("databases.boltdb", "databases.bleve")) for p in by_path)


def test_certificate_paths_follow_a_mapped_prefix(tmp_path: Path) -> None:
    sample = make_sample_installation(tmp_path / "c")
    config = read_pydio_json(sample.installation.config_path)
    cert = {"CertFile": f"{tmp_path}/c/certs/x.crt", "KeyFile": "/etc/ssl/x.key"}
    config["defaults"]["sites"][0]["TLSConfig"] = {"Certificate": cert}
    inst = installation_from_config(config, sample.installation.working_dir, env={})
    edits = plan_rewrite(config, inst, RewriteRequest(path_map=[(f"{tmp_path}/c", "/var/cells")]))
    new = apply_edits(config, edits)
    assert new["defaults"]["sites"][0]["TLSConfig"]["Certificate"] == {
        "CertFile": "/var/cells/certs/x.crt",
        "KeyFile": "/etc/ssl/x.key",
    }


def test_map_path_matches_whole_components_and_longest_prefix() -> None:
    m = [("/var/cells", "/srv/c"), ("/var/cells/data", "/mnt/d")]
    assert map_path("/var/cells", m) == "/srv/c"
    assert map_path("/var/cells/services/x.db", m) == "/srv/c/services/x.db"
    assert map_path("/var/cells/data/pydiods1", m) == "/mnt/d/pydiods1"
    assert map_path("/var/cellsdata", m) == "/var/cellsdata"
    assert map_path("boltdb:///var/cells/a.db", m) == "boltdb:///srv/c/a.db"
    assert map_path("https://host/var/cells", m) == "https://host/var/cells"


def test_apply_refuses_a_config_changed_since_planning(moved) -> None:
    sample, config, _ = moved
    edits = plan_rewrite(config, sample.installation, RewriteRequest(bind="1.2.3.4:80"))
    config["defaults"]["sites"][0]["Binds"] = ["9.9.9.9:80"]
    with pytest.raises(CellsBackupError, match="changed since the edits were planned"):
        apply_edits(config, edits)


def test_missing_sites_get_a_default_self_signed_site(tmp_path: Path) -> None:
    sample = make_sample_installation(tmp_path / "c")
    config = read_pydio_json(sample.installation.config_path)
    del config["defaults"]["sites"]
    edits = plan_rewrite(config, sample.installation, RewriteRequest(external_url="https://e"))
    assert [(e.op, e.json_path) for e in edits] == [("add", ["defaults", "sites"])]
    assert edits[0].new == [
        {"Binds": ["0.0.0.0:8080"], "TLSConfig": {"SelfSigned": {}}, "ReverseProxyURL": "https://e"}
    ]


def test_rehost_in_place_keeps_a_dated_copy(moved) -> None:
    sample, config, _ = moved
    path = sample.installation.config_path
    os.chmod(path, 0o640)
    original = path.read_bytes()
    when = datetime(2025, 1, 2, 3, 4, 5)
    result = rehost_in_place(
        sample.installation.working_dir, RewriteRequest(peer_address="newhost"), env={}, now=when
    )
    assert result.backup_path == path.with_name("pydio.json.20250102-030405.bak")
    assert result.backup_path.read_bytes() == original
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    new = read_pydio_json(path)
    assert _changed(config, new) == {tuple(e.json_path) for e in result.edits}
    again = rehost_in_place(
        sample.installation.working_dir, RewriteRequest(bind="1.1.1.1:1"), env={}, now=when
    )
    assert again.backup_path.name == "pydio.json.20250102-030405-1.bak"


def test_rehost_dry_run_writes_nothing(moved) -> None:
    sample, _, _ = moved
    before = sorted(p.name for p in sample.installation.working_dir.iterdir())
    result = rehost_in_place(
        sample.installation.working_dir, RewriteRequest(clear_peer_address=True), env={}, dry_run=True
    )
    assert result.edits and result.backup_path is None
    assert sorted(p.name for p in sample.installation.working_dir.iterdir()) == before
