"""The Installation recorded in a snapshot is enough to rebuild it, and pydio.json is written like Cells."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cells_testdata import V4_CONFIG

from cells_backup.cells import Installation, read_pydio_json, save_pydio_json
from cells_backup.cells.sample import make_sample_installation


@pytest.mark.parametrize("version", ["1.4.1", "2.1.0", "3.0.10", "4.4.13", "5.0.2"])
def test_to_dict_round_trips_through_json(tmp_path: Path, version: str) -> None:
    sample = make_sample_installation(tmp_path / "cells", version=version, external_parent=tmp_path / "ext")
    inst = sample.installation
    data = json.loads(json.dumps(inst.to_dict()))
    assert Installation.from_dict(data) == inst
    assert data["datasources"][0]["is_local"] is True
    assert data["cells_version"] == version


def test_from_dict_ignores_unknown_keys(sample) -> None:
    data = sample.installation.to_dict()
    data["future"] = 1
    data["datasources"][0]["future"] = 2
    assert Installation.from_dict(data) == sample.installation


def test_save_writes_like_cells_byte_for_byte(tmp_path: Path) -> None:
    """Cells writes 2-space indented JSON; re-saving its own file changes nothing."""
    target = tmp_path / "pydio.json"
    target.write_bytes(V4_CONFIG.read_bytes())
    save_pydio_json(target, read_pydio_json(target))
    assert target.read_bytes() == V4_CONFIG.read_bytes()


def test_save_keeps_mode_and_key_order_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "pydio.json"
    target.write_text('{"b": 1, "a": {"z": "é", "y": [1, 2]}}')
    os.chmod(target, 0o640)
    save_pydio_json(target, {"b": 2, "a": {"z": "é", "y": [1, 2]}})
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    text = target.read_text(encoding="utf-8")
    assert text.index('"b"') < text.index('"a"') and "é" in text and '\n  "a": {' in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pydio.json"]


def test_new_file_is_private(tmp_path: Path) -> None:
    save_pydio_json(tmp_path / "pydio.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "pydio.json").stat().st_mode) == 0o600
