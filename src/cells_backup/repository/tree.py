"""Tree blobs: one per directory, a JSON list of nodes sorted by name.

Names are ``os.fsdecode``d (undecodable bytes survive as surrogate escapes and
round-trip through JSON's ``\\udcxx``). Trees are checked on decode so a hostile
repository cannot smuggle path separators, ``..`` or bogus types into a restore.
"""

from __future__ import annotations

import json

from ..errors import IntegrityError

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
FIFO = "fifo"
CHARDEV = "chardev"
BLOCKDEV = "blockdev"
SOCKET = "socket"
NODE_TYPES = frozenset({FILE, DIR, SYMLINK, FIFO, CHARDEV, BLOCKDEV, SOCKET})

_INT_FIELDS = ("mode", "uid", "gid", "mtime", "ctime", "inode", "dev", "nlink", "size", "rdev")


def encode_tree(nodes: list[dict]) -> bytes:
    nodes.sort(key=lambda n: n["name"])
    return json.dumps({"nodes": nodes}, separators=(",", ":")).encode()


def valid_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\x00" not in name
    )


def decode_tree(data: bytes, what: str) -> list[dict]:
    """Parse and validate a tree blob; IntegrityError when anything is off."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{what}: tree is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise IntegrityError(f"{what}: tree has no node list")
    seen: set[str] = set()
    for node in doc["nodes"]:
        if not isinstance(node, dict):
            raise IntegrityError(f"{what}: tree node is not an object")
        name = node.get("name")
        if not valid_name(name):
            raise IntegrityError(f"{what}: unsafe or invalid name {name!r}")
        if name in seen:
            raise IntegrityError(f"{what}: duplicate name {name!r}")
        seen.add(name)
        if node.get("type") not in NODE_TYPES:
            raise IntegrityError(f"{what}: {name!r} has unknown type {node.get('type')!r}")
        for field in _INT_FIELDS:
            value = node.get(field, 0)
            if not isinstance(value, int) or isinstance(value, bool):
                raise IntegrityError(f"{what}: {name!r} has a non-integer {field}")
        if node["type"] == FILE:
            content = node.get("content", [])
            if not isinstance(content, list) or not all(
                isinstance(c, str) and len(c) == 64 for c in content
            ):
                raise IntegrityError(f"{what}: {name!r} has invalid content ids")
        elif node["type"] == DIR:
            subtree = node.get("subtree")
            if not (isinstance(subtree, str) and len(subtree) == 64):
                raise IntegrityError(f"{what}: directory {name!r} has no valid subtree id")
        elif node["type"] == SYMLINK and not isinstance(node.get("target"), str):
            raise IntegrityError(f"{what}: symlink {name!r} has no target")
    return doc["nodes"]
