"""Tree blobs: one per directory, a JSON list of nodes sorted by name.

Names are ``os.fsdecode``d (undecodable bytes survive as surrogate escapes and
round-trip through JSON's ``\\udcxx``). Trees are checked on decode so a hostile
repository cannot smuggle path separators, ``..`` or bogus types into a restore.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

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


_HEAD = '{"nodes":['
_TAIL = "]}"
encode_node = json.JSONEncoder(separators=(",", ":")).encode  # one node, as it appears in a tree


def encode_tree(nodes: list[dict]) -> bytes:
    nodes.sort(key=lambda n: n["name"])
    return json.dumps({"nodes": nodes}, separators=(",", ":")).encode()


def start_encoded() -> bytearray:
    """A tree to fill node by node: append ``encode_node`` texts (UTF-8) in name order, separated
    by commas, then `end_encoded`; the bytes are those `encode_tree` gives for the same nodes."""
    return bytearray(_HEAD.encode())


def end_encoded(out: bytearray) -> bytearray:
    out += _TAIL.encode()
    return out


def iter_encoded(data: bytes) -> Iterator[tuple[dict, str]]:
    """(node, its text) of a tree written by `encode_tree`, one at a time and unchecked: reading a
    parent's huge directory this way holds its text, not a dict per entry. Stops at anything
    unexpected (the caller then simply has no parent node for the rest)."""
    text = _compact_text(data)
    del data  # only the text is needed from here on (this frame would keep both alive)
    if text is None:
        return
    try:
        for node, start, stop in _elements(text):
            if not isinstance(node, dict) or not isinstance(node.get("name"), str):
                return
            yield node, text[start:stop]
    except ValueError:
        return


def _compact_text(data: bytes) -> str | None:
    """The text of a tree laid out as `encode_tree` writes it, or None."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    return text if text.startswith(_HEAD) and text.endswith(_TAIL) else None


def _elements(text: str) -> Iterator[tuple[object, int, int]]:
    """(value, start, end) of each element of a tree text's node list; ValueError where the text
    is not a list of JSON values (whitespace between them is allowed)."""
    decode, skip = _DECODER.raw_decode, _WHITESPACE.match
    at, end = skip(text, len(_HEAD)).end(), len(text) - len(_TAIL)
    while at < end:
        value, stop = decode(text, at)
        yield value, at, stop
        stop = skip(text, stop).end()
        if text.startswith(",", stop) and stop + 1 < end:
            stop = skip(text, stop + 1).end()
        elif stop != end:
            raise ValueError(f"unexpected text at {stop}")
        at = stop


_DECODER = json.JSONDecoder()
_ID = re.compile(r"[0-9a-f]{64}")
_WHITESPACE = re.compile(r"[ \t\n\r]*")


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
        _check_node(node, what, seen)
    return doc["nodes"]


def iter_tree(data: bytes, what: str) -> Iterator[dict]:
    """The nodes of a tree blob one at a time, each validated as `decode_tree` does; a huge
    directory is then held as its text, not as a dict per entry. IntegrityError at the first
    node that is off (the nodes before it have been given)."""
    text = _compact_text(data)
    if text is None:
        yield from decode_tree(data, what)  # not as `encode_tree` writes it: the whole document
        return
    del data
    seen: set[str] = set()
    try:
        for node, _start, _stop in _elements(text):
            _check_node(node, what, seen)
            yield node
    except ValueError as exc:
        raise IntegrityError(f"{what}: tree is not valid JSON ({exc})") from None


def _check_node(node: object, what: str, seen: set[str]) -> None:
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
        if not isinstance(content, list) or not all(isinstance(c, str) and _ID.fullmatch(c) for c in content):
            raise IntegrityError(f"{what}: {name!r} has invalid content ids")
    elif node["type"] == DIR:
        subtree = node.get("subtree")
        if not (isinstance(subtree, str) and _ID.fullmatch(subtree)):
            raise IntegrityError(f"{what}: directory {name!r} has no valid subtree id")
    elif node["type"] == SYMLINK and not isinstance(node.get("target"), str):
        raise IntegrityError(f"{what}: symlink {name!r} has no target")
