"""verify-install finds what would break a restored installation, and passes a whole one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cells_backup.cells import index_table_candidates, verify_installation
from cells_backup.cells.sample import make_sample_installation
from cells_backup.cells.vault import encode_key_file

HOST = ["cells-host", "10.0.0.7"]


def _fake_db(
    sample,
    *,
    drop: set[str] = frozenset(),
    leaves: dict[str, int] | None = None,
    uuids: dict[str, list[str]] | None = None,
):
    """A database_check double built from the sample's own files (what a correct restore holds)."""
    seen: list[list[str]] = []

    def check(tables: list[str], counted: set[str]) -> dict:
        seen.append(tables)
        out = {}
        for ds, files in sample.files.items():
            table = index_table_candidates(ds)[0]
            if ds in drop:
                continue
            out[table] = {
                "exists": True,
                "leaf_rows": (leaves or {}).get(ds, len(files)),
                "sample_uuids": (uuids or {}).get(ds, [f.uuid for f in files[:5]]),
            }
        return out

    check.seen = seen
    return check


def _by_severity(report, severity: str) -> list[str]:
    return [f.message for f in report.findings if f.severity == severity]


def test_whole_installation_passes(tmp_path: Path) -> None:
    sample = make_sample_installation(tmp_path / "c", external_parent=tmp_path / "ext")
    report = verify_installation(sample.installation.working_dir, hostname_addrs=HOST, env={})
    assert report.whole, report.findings
    assert _by_severity(report, "warning") == []
    assert any("vault secrets decrypt" in m for m in _by_severity(report, "ok"))


def test_database_check_contract(tmp_path: Path) -> None:
    sample = make_sample_installation(tmp_path / "c")
    check = _fake_db(sample)
    # structured pydiods1 is not compared; flat ones use blob names = node uuids
    report = verify_installation(sample.installation, database_check=check, hostname_addrs=HOST)
    assert report.whole, report.errors
    assert "data_index_personal_idx_tree" in check.seen[0]
    assert sum("indexed files match the blobs" in m for m in _by_severity(report, "ok")) == 4


def test_missing_index_table_is_an_error(sample) -> None:
    report = verify_installation(
        sample.installation, database_check=_fake_db(sample, drop={"personal"}), hostname_addrs=HOST
    )
    assert not report.whole
    assert _by_severity(report, "error") == ["personal: index table data_index_personal_idx_tree is missing"]


def test_flat_files_and_index_from_different_times(sample) -> None:
    folder = Path(sample.installation.datasource("cellsdata").folder)
    gone = sample.blobs("cellsdata")[0][0]
    (folder / gone).unlink()
    report = verify_installation(sample.installation, database_check=_fake_db(sample), hostname_addrs=HOST)
    errors = " | ".join(_by_severity(report, "error"))
    assert "cellsdata: 1 indexed files have no blob" in errors and gone in errors
    assert "index lists 8 files but" in errors


def test_orphan_blobs_are_a_warning(sample) -> None:
    report = verify_installation(
        sample.installation, database_check=_fake_db(sample, leaves={"personal": 5}), hostname_addrs=HOST
    )
    assert report.whole
    assert any("personal: 8 blobs" in m for m in _by_severity(report, "warning"))


def test_broken_installation_reports_each_problem(tmp_path: Path) -> None:
    sample = make_sample_installation(
        tmp_path / "c", external_parent=tmp_path / "ext", peer_address="old-host"
    )
    wd = sample.installation.working_dir
    shutil.rmtree(tmp_path / "ext")
    shutil.rmtree(wd / "data" / ".minio.sys")
    os.chmod(wd / "cells-vault-key", 0o600)
    (wd / "cells-vault-key").write_bytes(encode_key_file(os.urandom(50)))
    report = verify_installation(wd, hostname_addrs=HOST, env={})
    assert not report.whole
    errors = " | ".join(_by_severity(report, "error"))
    assert "wrong cells-vault-key" in errors
    assert "archive: folder" in errors and "does not exist" in errors
    assert "LocalFolder" in errors
    assert "PeerAddress old-host is not this host" in errors
    assert any(".minio.sys is missing" in m for m in _by_severity(report, "warning"))


def test_peer_address_matching_this_host_is_fine(tmp_path: Path) -> None:
    sample = make_sample_installation(tmp_path / "c", peer_address="10.0.0.7")
    report = verify_installation(sample.installation, hostname_addrs=HOST)
    assert report.whole


def test_vault_without_key_is_an_error(sample) -> None:
    (sample.installation.working_dir / "cells-vault-key").unlink()
    report = verify_installation(sample.installation.working_dir, hostname_addrs=HOST, env={})
    assert any("no cells-vault-key" in m for m in _by_severity(report, "error"))


def test_unreadable_config_is_a_finding_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "pydio.json").write_text('{"version": ')
    report = verify_installation(tmp_path, env={})
    assert not report.whole and "invalid JSON" in report.errors[0].message


def test_missing_tls_certificate_is_an_error(tmp_path: Path) -> None:
    import json

    sample = make_sample_installation(tmp_path / "c")
    path = sample.installation.config_path
    config = json.loads(path.read_text())
    config["defaults"]["sites"][0]["TLSConfig"] = {"Certificate": {"CertFile": str(tmp_path / "none.crt")}}
    path.write_text(json.dumps(config))
    report = verify_installation(sample.installation.working_dir, hostname_addrs=HOST, env={})
    assert any("none.crt does not exist" in m for m in _by_severity(report, "error"))


@pytest.mark.parametrize(
    ("name", "tables"),
    [
        ("pydiods1", ["data_index_pydiods1_idx_tree"]),
        ("my.ds", ["data_index_my_ds_idx_tree"]),
        ("my-ds", ["data_index_my-ds_idx_tree", "data_index_my_ds_idx_tree"]),
    ],
)
def test_index_table_names(name: str, tables: list[str]) -> None:
    assert index_table_candidates(name) == tables


@pytest.mark.parametrize(
    ("version", "bind", "where", "whole"),
    [
        ("4.4.13", "10.0.0.7:8443", "defaults.sites[0].Binds", True),
        ("4.4.13", "[::]:443", "defaults.sites[0].Binds", True),
        ("4.4.13", "cells-host:8080", "defaults.sites[0].Binds", True),
        ("4.4.13", "192.0.2.10:443", "defaults.sites[0].Binds", False),
        ("2.0.9", "10.0.0.7:8443", "defaults.urlInternal", True),
        ("2.0.9", "192.0.2.10:443", "defaults.urlInternal", False),
    ],
)
def test_binds_and_url_internal_are_checked_against_this_host(tmp_path: Path, version, bind, where, whole) -> None:
    sample = make_sample_installation(tmp_path / "c", version=version, bind=bind)
    report = verify_installation(sample.installation.working_dir, hostname_addrs=HOST, env={})
    assert report.whole is whole
    if whole:
        assert f"{where}: {bind} can be bound on this host" in _by_severity(report, "ok")
    else:
        assert _by_severity(report, "error") == [
            f"{where}: {bind} is not an address of this host, Cells cannot listen there "
            "(use --bind, e.g. --bind 0.0.0.0:8080)"
        ]


def test_a_note_of_the_database_check_is_a_warning_line(sample) -> None:
    def check(tables: list[str], counted: set[str]) -> dict:
        out = {t: {"exists": True, "leaf_rows": None, "sample_uuids": []} for t in tables}
        out[index_table_candidates("personal")[0]]["note"] = "index table of an unexpected shape"
        return out

    report = verify_installation(sample.installation, database_check=check, hostname_addrs=HOST)
    assert report.whole
    assert _by_severity(report, "warning") == ["personal: index table of an unexpected shape"]
