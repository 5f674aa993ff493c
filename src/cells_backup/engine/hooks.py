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
