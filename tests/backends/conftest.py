"""Fixtures for backend tests: the shared SeaweedFS server and one of each backend kind."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:  # tests/s3server.py is shared by every test folder
    sys.path.insert(0, _TESTS_DIR)

from s3server import s3_prefix, s3_server, s3_server_running  # noqa: E402,F401  (re-exported fixtures)
