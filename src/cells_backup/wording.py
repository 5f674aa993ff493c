"""Counts in messages that read as English, for every layer ("1 snapshot", "2 snapshots")."""

from __future__ import annotations


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 snapshot``, ``2 snapshots``; ``plural_form`` for nouns that do not just take an s."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"
