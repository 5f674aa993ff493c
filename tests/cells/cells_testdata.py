"""Paths of the project's Cells fixtures (``tests/fixtures/cells``) and small helpers for the Cells tests.

What each fixture stands for is described in docs/CELLS.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cells"
V3_OBJECTS = FIXTURES / "pydio-v3.json"  # the objects services of a v3 config (S3/Azure gateways, PeerAddress)
V4_CONFIG = FIXTURES / "pydio-v4.json"  # a complete v4 config, as Cells writes it
V5_FIRST_START = FIXTURES / "pydio-v5.json"  # a v5 config as written at first start, before install
V5_BOOTSTRAP = FIXTURES / "bootstrap-v5.yaml"  # the storages each v5 service uses
PYDIO_JSON_FIXTURES = (V3_OBJECTS, V4_CONFIG, V5_FIRST_START)


def load_fixture(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def write_config(wd: Path, config: dict[str, Any]) -> Path:
    wd.mkdir(parents=True, exist_ok=True)
    path = wd / "pydio.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path
