"""Shared fixtures for the Cells layer tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def sample(tmp_path: Path):
    """A v4 sample installation with one datasource outside the working dir."""
    from cells_backup.cells.sample import make_sample_installation

    return make_sample_installation(tmp_path / "cells", external_parent=tmp_path / "ext" / "storage")
