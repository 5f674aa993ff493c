"""Fixtures: one private MariaDB per test session, and Cells-shaped databases in it."""

from __future__ import annotations

import itertools
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from cells_backup.database.dsn import ConnectionInfo  # noqa: E402
from dbserver import MariaDBServer  # noqa: E402

_names = itertools.count()


@pytest.fixture
def admin_conn(mariadb: MariaDBServer) -> ConnectionInfo:
    """Credentials of the admin user on a fresh, not yet created database name."""
    return ConnectionInfo(
        kind="mysql",
        host="127.0.0.1",
        port=mariadb.port,
        user=mariadb.admin_user,
        password=mariadb.admin_password,
        database=f"t{os.getpid()}_{next(_names)}",
    )



