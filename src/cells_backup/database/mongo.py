"""The MongoDB document store (``defaults.documentsDSN``): dumped with mongodump, loaded with
mongorestore, each streaming one archive (``--archive``) through a pipe, no temp file.

The connection string, password included, reaches the tools in a 0600 YAML file (``--config``,
mongodump/mongorestore 100.3+), never on a command line other processes can read. A standalone
MongoDB has no snapshot to open: the archive is consistent when Cells is stopped while it is read
(the backup keeps Cells stopped until mongodump ends) and is marked live otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from cells_backup.database.errors import DatabaseError
from cells_backup.database.stderr_tail import StderrTail

ARCHIVE_NAME = "mongodump.archive"
_DUMPED = re.compile(r"done dumping (\S+) \((\d+) documents?\)")
_RESTORED = re.compile(r"(\d+) document\(s\) restored successfully\. (\d+) document\(s\) failed to restore")
_STDERR_KEEP = 256 * 1024


def find_tool(name: str) -> str | None:
    """``mongodump`` / ``mongorestore`` on PATH."""
    return shutil.which(name)


@contextmanager
def _uri_file(uri: str) -> Iterator[str]:
    """The tools' ``--config`` file holding the URI (JSON strings are valid YAML scalars)."""
    fd, path = tempfile.mkstemp(prefix="cells-backup-mongo-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as f:  # mkstemp creates it 0600
            f.write(f"uri: {json.dumps(uri)}\n")
        yield path
    finally:
        os.unlink(path)


def _last_line(text: str) -> str:
    lines = [ln.split("\t")[-1].strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


class _Client:
    """A mongodump/mongorestore process whose stderr is collected in a thread (never blocks it)."""

    def __init__(self, tool: str, uri: str, args: list[str], what: str) -> None:
        self._what = what
        self._cleanup = contextlib.ExitStack()  # removes the URI file; closing twice is harmless
        config = self._cleanup.enter_context(_uri_file(uri))
        try:
            self.proc = subprocess.Popen([tool, f"--config={config}", "--archive", *args],
                                         stdin=subprocess.PIPE if what == "mongorestore" else subprocess.DEVNULL,
                                         stdout=subprocess.PIPE if what == "mongodump" else subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
        except OSError as exc:
            self._cleanup.close()
            raise DatabaseError(f"cannot run {tool}: {exc.strerror}") from None
        self._stderr = StderrTail(self.proc.stderr, _STDERR_KEEP)

    def finish(self) -> str:
        """Wait for the tool; its stderr, or DatabaseError (one line) when it failed."""
        try:
            rc = self.proc.wait()
            text = self._stderr.text()
        finally:
            self._cleanup.close()
        if rc != 0:
            raise DatabaseError(f"{self._what} failed (exit {rc}): {_last_line(text)}")
        return text

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.finish()
        except DatabaseError:
            pass


def dump_documents(uri: str, tool: str) -> Iterator[tuple[str, BinaryIO]]:
    """Yield the archive of ``uri`` as one stream; afterwards, raise DatabaseError if mongodump
    failed (so no snapshot is written with a cut-short archive). Returns the document count of
    each collection, as mongodump reported them."""
    client = _Client(tool, uri, [], "mongodump")
    try:
        yield ARCHIVE_NAME, client.proc.stdout  # read to its end (and closed) by the archiver
        text = client.finish()
    except BaseException:
        client.kill()
        raise
    return {ns: int(n) for ns, n in _DUMPED.findall(text)}


class DocumentsDump:
    """The document store's part of a backup: `entries` for the archiver, then `manifest`."""

    def __init__(self, uri: str, tool: str) -> None:
        self.uri = uri
        self.tool = tool
        self.counts: dict[str, int] | None = None
        self.after_done: Callable[[], None] | None = None  # called once mongodump has ended well

    def entries(self) -> Iterator[tuple[str, BinaryIO]]:
        self.counts = yield from dump_documents(self.uri, self.tool)
        if self.after_done is not None:
            self.after_done()

    def manifest(self) -> dict:
        counts = self.counts or {}
        return {"tool": "mongodump", "archive": ARCHIVE_NAME, "collections": counts,
                "documents": sum(counts.values())}


def restore_documents(uri: str, archive: BinaryIO, manifest: dict, *, tool: str, drop: bool) -> dict:
    """Load an archive with mongorestore (``--drop`` replaces existing collections), then check
    that it restored as many documents as mongodump dumped and none failed."""
    client = _Client(tool, uri, ["--drop"] if drop else [], "mongorestore")
    try:
        shutil.copyfileobj(archive, client.proc.stdin, 1024 * 1024)
        client.proc.stdin.close()
    except BrokenPipeError:
        pass  # the tool stopped reading: its exit status says why
    except BaseException:
        client.kill()
        raise
    text = client.finish()
    found = _RESTORED.findall(text)
    if not found:
        raise DatabaseError("mongorestore did not report how many documents it restored")
    restored, failed = (int(x) for x in found[-1])
    expected = int(manifest.get("documents", 0))
    if failed or restored != expected:
        raise DatabaseError(f"mongorestore restored {restored} of {expected} documents ({failed} failed)"
                            + ("" if drop else "; the target may hold documents already (use --force)"))
    return {"documents": restored, "collections": len(manifest.get("collections", {}))}
