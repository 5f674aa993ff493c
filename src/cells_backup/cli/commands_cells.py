"""Cells-aware backup, restore and database export (wired to the cells/ and database/ layers)."""

from __future__ import annotations

from ..errors import UsageError


def cells_backup(settings, **_kwargs) -> None:
    raise UsageError("Cells-aware backup is not available in this build; use --no-cells --extra-path")


def cells_restore(settings, repo, snap, **_kwargs) -> None:
    raise UsageError("Cells-aware restore is not available in this build; use --target")


def dump_database(settings, repo, snap, output) -> None:
    raise UsageError("this snapshot has no database")
