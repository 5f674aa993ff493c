"""Stopping and starting Cells around a backup, and measuring the downtime."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from ..errors import CellsBackupError


def run_hook(command: str, what: str, timeout: float = 600) -> None:
    try:
        proc = subprocess.run(command, shell=True, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CellsBackupError(f"{what} command did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise CellsBackupError(
            f"{what} command failed with exit code {proc.returncode}" + (f": {detail[-1]}" if detail else "")
        )


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class StartOnce:
    """The start command, run once, whichever comes first: the files are read, or the backup failed.

    A failing start command is kept (`failure`), not raised: files and database are already
    captured by then, so the snapshot is still saved, and the caller says loudly that Cells may
    still be stopped.
    """

    def __init__(self, command: str, info: Callable[[str], None], stopped_at: float) -> None:
        self.command = command
        self.info = info
        self.stopped_at = stopped_at
        self.started_at: float | None = None
        self.failure: str | None = None

    def __call__(self) -> None:
        if self.started_at is not None:
            return
        self.started_at = time.monotonic()
        try:
            run_hook(self.command, "start")
        except CellsBackupError as exc:
            self.failure = str(exc)
            return
        self.info(f"Cells started again; downtime {time.monotonic() - self.stopped_at:.1f} s")

    def failure_message(self, snapshot_id: str | None = None) -> str | None:
        """One line for the administrator when the start command failed, else None."""
        if self.failure is None:
            return None
        saved = f"snapshot {snapshot_id} was saved, but " if snapshot_id else ""
        return (f"{saved}the {self.failure}: Cells may still be STOPPED; "
                f"check it and start it by hand: {self.command}")
