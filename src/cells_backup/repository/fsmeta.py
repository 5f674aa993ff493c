"""Reading and applying file metadata: owners, modes, times, extended attributes."""

from __future__ import annotations

import base64
import grp
import os
import pwd
import stat
from functools import lru_cache

from . import tree


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@lru_cache(maxsize=4096)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


@lru_cache(maxsize=4096)
def uid_for(name: str, fallback: int) -> int:
    try:
        return pwd.getpwnam(name).pw_uid if name else fallback
    except KeyError:
        return fallback


@lru_cache(maxsize=4096)
def gid_for(name: str, fallback: int) -> int:
    try:
        return grp.getgrnam(name).gr_gid if name else fallback
    except KeyError:
        return fallback


def node_type(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return tree.FILE
    if stat.S_ISDIR(mode):
        return tree.DIR
    if stat.S_ISLNK(mode):
        return tree.SYMLINK
    if stat.S_ISFIFO(mode):
        return tree.FIFO
    if stat.S_ISCHR(mode):
        return tree.CHARDEV
    if stat.S_ISBLK(mode):
        return tree.BLOCKDEV
    if stat.S_ISSOCK(mode):
        return tree.SOCKET
    return None


def base_node(name: str, st: os.stat_result, kind: str) -> dict:
    node = {
        "name": name,
        "type": kind,
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "user": user_name(st.st_uid),
        "group": group_name(st.st_gid),
        "mtime": st.st_mtime_ns,
        "ctime": st.st_ctime_ns,
        "inode": st.st_ino,
        "dev": st.st_dev,
    }
    if kind != tree.DIR and st.st_nlink > 1:
        node["nlink"] = st.st_nlink
    if kind in (tree.CHARDEV, tree.BLOCKDEV):
        node["rdev"] = st.st_rdev
    return node


def read_xattrs(path: str | int) -> dict[str, str]:
    """Extended attributes of ``path`` (not followed if a symlink) or of an open file descriptor."""
    nofollow = {} if isinstance(path, int) else {"follow_symlinks": False}
    try:
        names = os.listxattr(path, **nofollow)
    except OSError:
        return {}
    attrs = {}
    for attr in names:
        try:
            attrs[attr] = base64.b64encode(os.getxattr(path, attr, **nofollow)).decode()
        except OSError:
            continue
    return attrs


def apply_metadata(path: str, node: dict, *, owner: tuple[int, int] | None, is_root: bool,
                   fd: int | None = None, created: tuple[int, int, int] | None = None) -> list[str]:
    """Set owner, mode, xattrs and mtime; returns warnings for what could not be applied.

    ``created`` is the (uid, gid, mode) a file was just created with (gid -1 when not known):
    what already matches is not set again, two system calls fewer per file for most restores.
    """
    warnings: list[str] = []
    is_link = node["type"] == tree.SYMLINK
    try:
        if owner is not None:
            uid, gid = owner
        else:
            uid, gid = uid_for(node.get("user", ""), node["uid"]), gid_for(node.get("group", ""), node["gid"])
        if (is_root or owner is not None) and (created is None or (uid, gid) != created[:2]):
            if fd is not None:
                os.fchown(fd, uid, gid)
            else:
                os.chown(path, uid, gid, follow_symlinks=False)
    except OSError as exc:
        warnings.append(f"{path}: cannot set owner: {exc.strerror}")
    for attr, value in node.get("xattrs", {}).items():
        try:
            os.setxattr(path if fd is None else fd, attr, base64.b64decode(value),
                        **({} if fd is not None else {"follow_symlinks": False}))
        except (OSError, ValueError) as exc:
            warnings.append(f"{path}: cannot set xattr {attr}: {getattr(exc, 'strerror', exc)}")
    try:
        if not is_link and (created is None or node["mode"] != created[2]):
            if fd is not None:
                os.fchmod(fd, node["mode"])
            else:
                os.chmod(path, node["mode"])
        times = (node["mtime"], node["mtime"])
        if fd is not None:
            os.utime(fd, ns=times)
        else:
            os.utime(path, ns=times, follow_symlinks=False)
    except OSError as exc:
        warnings.append(f"{path}: cannot set mode/time: {exc.strerror}")
    return warnings
