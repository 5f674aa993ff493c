"""`dump`: a snapshot (or part of it) as a tar stream, readable by any tar."""

from __future__ import annotations

import tarfile
from typing import BinaryIO

from ..errors import CellsBackupError
from ..repository.reader import open_content
from ..repository.repository import Repository
from ..repository.restorer import find_node
from ..repository.snapshot import Snapshot

_TYPES = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "fifo": tarfile.FIFOTYPE,
          "chardev": tarfile.CHRTYPE, "blockdev": tarfile.BLKTYPE}


def write_tar(repo: Repository, snapshot: Snapshot, path: str, out: BinaryIO) -> int:
    """Write the subtree at ``path`` as a tar stream; returns the number of entries."""
    repo.load_index()
    start = find_node(repo, snapshot.tree, path)
    if start is None:
        raise CellsBackupError(f"{path} is not in snapshot {snapshot.short_id}")
    count = 0
    hardlinks: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if start["type"] == "dir":
            entries = repo.walk(start["subtree"], path.rstrip("/") or "/")
        else:
            entries = iter([(path, start)])
        for node_path, node in entries:
            info = tarfile.TarInfo(node_path.lstrip("/"))
            info.mode = node.get("mode", 0o644)
            info.uid, info.gid = node.get("uid", 0), node.get("gid", 0)
            info.uname, info.gname = node.get("user", ""), node.get("group", "")
            info.mtime = node.get("mtime", 0) / 1e9
            kind = node["type"]
            fileobj = None
            if kind == "file":
                key = (node.get("dev", 0), node.get("inode", 0))
                if node.get("nlink", 1) > 1 and key in hardlinks:
                    info.type, info.linkname = tarfile.LNKTYPE, hardlinks[key]
                else:
                    if node.get("nlink", 1) > 1:
                        hardlinks[key] = info.name
                    info.size = node.get("size", 0)
                    fileobj = open_content(repo, node.get("content", []))
            elif kind in _TYPES:
                info.type = _TYPES[kind]
                info.linkname = node.get("target", "")
                rdev = node.get("rdev", 0)
                info.devmajor, info.devminor = rdev >> 8, rdev & 0xFF
            else:
                continue
            tar.addfile(info, fileobj)
            count += 1
    return count
