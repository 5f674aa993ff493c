"""Output conventions: results on stdout (text or one JSON document), progress and
messages on stderr, progress only when stderr is a terminal.

With ``--json`` the result is held and printed once, when the command ends: on success the
command's document, on failure the same document (or an empty one) with ``error`` and
``exit_code``, so that a script always reads exactly one JSON document. With ``-q`` only
errors are printed: a command's report is shown only when the command fails.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

# What a bare exit code means, for a JSON document of a command that ended with it.
EXIT_MEANINGS = {
    1: "the command failed",
    2: "usage error",
    3: "backup saved, but some files could not be read (snapshot marked partial)",
    10: "no repository",
    11: "repository locked",
    12: "wrong password",
    13: "Cells is running",
    14: "target or database not empty",
    130: "interrupted",
}


@dataclass
class Output:
    json: bool = False
    quiet: bool = False
    verbose: int = 0
    warnings: list[str] = field(default_factory=list)  # every warning, for the JSON document
    document: object = None  # the JSON result, printed by `finish`
    held_text: str | None = None  # with -q: the report, printed by `finish` only on failure
    failure: str | None = None  # why a command that printed its result exits non-zero

    def result(self, doc: object, text: str | None = None, *, data: bool = False) -> None:
        """The command's result: JSON when asked, else ``text``.

        ``data``: the text is what the user asked to see (a listing), printed even with -q.
        """
        if self.json:
            self.document = doc
            return
        if text is None or text == "":
            return
        if self.quiet and not data:
            self.held_text = text
            return
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()

    def info(self, message: str) -> None:
        if not self.quiet:
            sys.stderr.write(message + "\n")

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if not self.quiet:
            sys.stderr.write(f"warning: {message}\n")

    def debug(self, message: str) -> None:
        if self.verbose:
            sys.stderr.write(message + "\n")

    def finish(self, exit_code: int, error: str | None = None) -> None:
        """Print what was held back: the one JSON document, or with -q a failed command's report."""
        if self.json:
            doc = self.final_document(exit_code, error)
            if doc is not None:
                sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        elif self.held_text is not None and exit_code != 0:
            text = self.held_text
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()

    def final_document(self, exit_code: int, error: str | None) -> object:
        """The result with the warnings; on failure also ``error`` and ``exit_code``."""
        doc = self.document
        if exit_code == 0 and error is None:
            return self._with_warnings(doc) if isinstance(doc, dict) else doc
        failed = dict(doc) if isinstance(doc, dict) else {} if doc is None else {"result": doc}
        failed["error"] = error or self.failure or EXIT_MEANINGS.get(exit_code, f"exit code {exit_code}")
        failed["exit_code"] = exit_code
        return self._with_warnings(failed)

    def _with_warnings(self, doc: dict) -> dict:
        if not self.warnings:
            return doc
        listed = doc.get("warnings")
        if listed is None:
            return doc | {"warnings": list(self.warnings)}
        if isinstance(listed, list):
            return doc | {"warnings": listed + [w for w in self.warnings if w not in listed]}
        return doc

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


def human_duration(seconds: float, *, fraction: bool = False) -> str:
    """``1m05s``; with ``fraction``, a run of under 10 s keeps its fraction (a short run is not "0s")."""
    if fraction and seconds < 10:
        return f"{max(seconds, 0):.2f}s" if seconds < 1 else f"{seconds:.1f}s"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"

