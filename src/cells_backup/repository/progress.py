"""How far a long operation is: counters it adds to as it goes, read by a display.

Plain integers, no lock: each counter is added to by one thread (or under the caller's own lock),
and a reader a quarter of a second late sees a number a quarter of a second old. The hot paths
pay one integer add per file or per chunk, nothing more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    """``files`` and ``bytes`` done; ``files_total`` and ``bytes_total`` known to do so far
    (final once ``totals_final``). While they are not final, estimates: ``expected_*`` from the
    parent snapshot, else ``walked_*`` from the metadata walkers. ``unit`` names what ``files``
    counts."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    files_total: int = 0
    bytes_total: int = 0
    totals_final: bool = False
    expected_files: int = 0
    expected_bytes: int = 0
    walked_files: int = 0
    walked_bytes: int = 0
    unit: str = "files"
    current: str = ""
    started: float = field(default_factory=time.monotonic)
    passes: int = 1  # a second pass over the same work (`restart`) starts the display again

    def restart(self) -> None:
        """Count a new pass from zero (a backup's files read again once Cells is stopped); the
        walkers' counts still hold."""
        self.files = self.dirs = self.bytes = self.files_total = self.bytes_total = 0
        self.expected_files = self.expected_bytes = 0
        self.totals_final = False
        self.started = time.monotonic()
        self.passes += 1

    def set_totals(self, files: int, bytes_: int) -> None:
        """Totals known before the work starts (restore, check, prune, copy)."""
        self.files_total, self.bytes_total, self.totals_final = files, bytes_, True

    def walked(self, files: int, bytes_: int) -> None:
        """What the metadata walkers counted under the paths to back up."""
        self.walked_files, self.walked_bytes = files, bytes_

    def totals(self) -> tuple[int | None, int | None]:
        """The best known (files, bytes) to do, never below what is done; None when nothing
        tells yet (a first backup's scanner is only a few thousand entries ahead)."""
        if self.totals_final:
            files, size = self.files_total, self.bytes_total
        elif self.expected_files or self.expected_bytes:
            files = max(self.expected_files, self.files_total)
            size = max(self.expected_bytes, self.bytes_total)
        elif self.walked_files:
            files = max(self.walked_files, self.files_total)
            size = max(self.walked_bytes, self.bytes_total)
        else:
            return None, None
        return max(files, self.files), max(size, self.bytes)
