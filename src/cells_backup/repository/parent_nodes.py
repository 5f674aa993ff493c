"""What the parent snapshot recorded of a directory, and whether an entry is unchanged since.

The archiver walks a directory and the parent's tree of it side by side, both in name order; an
entry whose inode state is the one the parent recorded keeps the parent's node as it is.
"""

from __future__ import annotations

import os
import stat

from . import tree
from .fsmeta import base_node, node_type

_TYPE_OF_FORMAT = {stat.S_IFMT(m): node_type(m) for m in (
    stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK)}


def same_inode_state(prev: dict, st: os.stat_result) -> bool:
    """True when the parent's node was taken from this very inode state (nothing changed since)."""
    return (
        prev.get("ctime") == st.st_ctime_ns
        and prev.get("inode") == st.st_ino
        and prev.get("dev") == st.st_dev
        and prev.get("mtime") == st.st_mtime_ns
        and prev.get("mode") == stat.S_IMODE(st.st_mode)
        and prev.get("uid") == st.st_uid
        and prev.get("gid") == st.st_gid
        and prev.get("type") == _TYPE_OF_FORMAT.get(stat.S_IFMT(st.st_mode))
    )


FILE_NODE_KEYS = frozenset(base_node("", os.stat_result((0o100644,) + (0,) * 9), tree.FILE)) | {"content", "size"}


class ParentListing:
    """The parent snapshot's nodes of a directory, looked up in name order (a merge walk)."""

    def __init__(self, blob: bytes) -> None:
        self._nodes = tree.iter_encoded(blob)
        self._next: tuple[dict, str] | None = next(self._nodes, None)

    def find(self, name: str) -> tuple[dict | None, str | None]:
        """(node, text) of ``name``, or (None, None); names must be asked in increasing order."""
        while self._next is not None:
            node, text = self._next
            if node["name"] > name:
                break
            self._next = next(self._nodes, None)
            if node["name"] == name:
                return node, text
        return None, None
