"""Output conventions: results on stdout (text or one JSON document), progress and
messages on stderr, progress only when stderr is a terminal."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass


@dataclass
class Output:
    json: bool = False
    quiet: bool = False
    verbose: int = 0

    def result(self, doc: object, text: str | None = None) -> None:
        """The command's result: JSON when asked, else ``text``."""
        if self.json:
            sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        elif text is not None and text != "":
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()

    def info(self, message: str) -> None:
        if not self.quiet:
            sys.stderr.write(message + "\n")

    def warn(self, message: str) -> None:
        sys.stderr.write(f"warning: {message}\n")

    def debug(self, message: str) -> None:
        if self.verbose:
            sys.stderr.write(message + "\n")

    def table(self, columns: list[str], rows: list[list[str]], title: str | None = None) -> str:
        """A plain aligned table (cheap to import, readable in mail and logs)."""
        widths = [len(c) for c in columns]
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        lines = []
        if title:
            lines.append(title)
        lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for row in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        return "\n".join(lines)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
