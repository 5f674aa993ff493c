"""Where a key stands in a TOML config file, so a mistake is reported with its line.

tomllib keeps no positions: the text is scanned again for the key.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[(?!\[)\s*([^\]]+?)\s*\]\s*(?:#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[")


def _key_pattern(key: str, prefix: str = "") -> re.Pattern[str]:
    quoted = rf"(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
    return re.compile(rf"^\s*{prefix}{quoted}\s*=")


def find_line(text: str, section: str | None, key: str | None) -> int | None:
    """1-based line of ``key =`` inside ``[section]`` (or of the header), by scanning the text.

    tomllib keeps no positions, so this is a best effort: it understands plain ``[table]``
    headers, dotted keys at the top level (``retention.keep_daily = 7``) and quoted keys.
    """
    lines = text.splitlines()
    current: str | None = None
    header_line: int | None = None
    dotted = None
    if section and key:
        dotted = _key_pattern(key, rf"(?:{re.escape(section)}|\"{re.escape(section)}\")\s*\.\s*")
    plain = _key_pattern(key) if key else None
    for number, line in enumerate(lines, 1):
        m = _HEADER.match(line)
        if m:
            current = m.group(1).strip().strip("\"'")
            if section is not None and current == section and header_line is None:
                header_line = number
                if key is None:
                    return number
            continue
        if _ARRAY_HEADER.match(line):
            current = "\0array"
            continue
        if plain is None:
            continue
        if current == section and plain.match(line):
            return number
        if current is None and dotted is not None and dotted.match(line):
            return number
        if current is None and section is not None and key is None and _key_pattern(section).match(line):
            return number  # inline table: retention = { ... }
    if section is not None and header_line is None:
        for number, line in enumerate(lines, 1):  # inline table: retention = { keep_daily = "7" }
            if _key_pattern(section).match(line):
                return number
    return header_line
