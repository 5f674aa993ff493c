"""A ``psql`` session that holds a REPEATABLE READ transaction open for the length of a dump.

Why a psql process and not a driver: the session only has to export its snapshot, answer a few
catalog and hash queries inside the same transaction, and stay idle until pg_dump (which imported
the snapshot) has finished; psql reading statements from a pipe does that with no dependency.
psql flushes each result, so answers are read line by line (``-A -t -F |``); every query ends with
a marker row so the reader knows where its answer stops. If the session dies, the dump fails.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading

from cells_backup.database.dsn import ConnectionInfo
from cells_backup.database.errors import DatabaseError
from cells_backup.database.postgres_client import SESSION_SETTINGS, classify, client_env, require_tool
from cells_backup.database.stderr_tail import StderrTail

END = "E"
TIMEOUT = 120.0


class SnapshotHolder:
    """Start it, read `snapshot`, `query()` inside the transaction, then `commit()` / `close()`."""

    def __init__(self, conn: ConnectionInfo):
        self.conn = conn
        self.snapshot = ""
        self._proc: subprocess.Popen | None = None
        self._env = contextlib.ExitStack()
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._stderr: StderrTail | None = None
        self._pending_results = False

    def start(self) -> None:
        """Connect, begin, export the snapshot; DatabaseError (one line) if psql cannot."""
        psql = require_tool("psql")
        env = self._env.enter_context(client_env(self.conn))
        try:
            self._proc = subprocess.Popen(
                [psql, "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as e:
            raise DatabaseError(f"cannot run {psql}: {e}") from None
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self._stderr = StderrTail(self._proc.stderr)
        rows = self.query(
            SESSION_SETTINGS
            + "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSELECT 'S', pg_catalog.pg_export_snapshot();\n"
        )
        self.snapshot = rows[0][1]

    def _read_stdout(self) -> None:
        assert self._proc and self._proc.stdout
        for raw in self._proc.stdout:
            self._lines.put(raw.decode("utf-8").rstrip("\n"))
        self._lines.put(None)

    def _error(self) -> DatabaseError:
        assert self._proc
        try:
            rc = self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        text = self._stderr.text(timeout=5) if self._stderr is not None else ""
        return DatabaseError(classify(text, self.conn, rc))

    def send(self, sql: str) -> None:
        """Queue statements in the session (answers are read with `results()` or `query()`)."""
        assert self._proc and self._proc.stdin
        try:
            self._proc.stdin.write(sql.encode("utf-8"))
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise self._error() from None
        self._pending_results = True

    def _collect(self, timeout: float | None) -> list[list[str]]:
        rows = []
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise DatabaseError(f"database server at {self.conn.where} did not answer in {timeout:.0f} s") from None
            if line is None:
                raise self._error()
            if line == END:
                self._pending_results = False
                return rows
            rows.append(line.split("|"))

    def query(self, sql: str) -> list[list[str]]:
        """Run statements in the transaction and return their rows (fields split on ``|``)."""
        self.send(sql + f"SELECT '{END}';\n")
        return self._collect(TIMEOUT)

    def results(self) -> dict[str, list[str]]:
        """The rows answered to what `send()` queued (which must end with ``SELECT 'E';``), by tag."""
        return {row[0]: row[1:] for row in self._collect(None)}

    def commit(self) -> None:
        """End the transaction (the snapshot is no longer needed) and let psql exit."""
        if self._proc is None or self._proc.poll() is not None:
            raise self._error()
        self.send("COMMIT;\n")
        with contextlib.suppress(BrokenPipeError, OSError):
            self._proc.stdin.close()  # type: ignore[union-attr]
        try:
            rc = self._proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            rc = None
        if rc != 0:
            raise self._error()

    def close(self) -> None:
        """Stop the session whatever its state (rolls the transaction back if still open)."""
        try:
            if self._proc is not None and self._proc.poll() is None:
                with contextlib.suppress(OSError):
                    self._proc.stdin.close()  # type: ignore[union-attr]
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self._reader is not None:
                self._reader.join(timeout=5)
            if self._stderr is not None:
                self._stderr.text(timeout=5)
            if self._proc is not None:
                for stream in (self._proc.stdout, self._proc.stderr):
                    if stream:
                        stream.close()
        finally:
            self._env.close()
