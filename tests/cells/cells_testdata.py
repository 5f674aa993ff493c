"""Paths of the shared Cells samples and small helpers used by the Cells layer tests.

The samples live in ``<repo>/../shared/cells/samples`` (CI copies ``shared/`` beside the clone).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SAMPLES = SHARED / "cells" / "samples"
V4_MOCK = SAMPLES / "v4_pydio.json__from_common-config-mock-mock.go.json"
V5_TEMPLATE = SAMPLES / "v5_pydio.json-initial-template__from_common-config-sample.go.json"
V3_PARTIAL = (
    SAMPLES / "v3_pydio.json-partial_objects-services__from_common-config-migrations-4.0.1_test.go.json"
)
V5_BOOTSTRAP = SAMPLES / "v5_bootstrap__cmd-start-bootstrap.yaml"


def load_sample(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def write_config(wd: Path, config: dict[str, Any]) -> Path:
    wd.mkdir(parents=True, exist_ok=True)
    path = wd / "pydio.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path
