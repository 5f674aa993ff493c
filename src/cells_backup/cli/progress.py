"""Progress of the long commands (backup, restore, check --read-data, prune, copy) on stderr.

One line, redrawn at most 4 times a second, wiped when the command ends; only when stderr is a
terminal and neither -q nor --json is given. rich is imported only then: every other run starts
without it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..repository.progress import Progress
from .output import Output


def progress_wanted(out: Output) -> bool:
    return not (out.quiet or out.json) and sys.stderr.isatty()


def new_progress(out: Output) -> Progress | None:
    """Counters for a line to show, or None when none is shown (work done only for the line,
    such as counting what a restore or a copy has to do, is then skipped)."""
    return Progress() if progress_wanted(out) else None


def also_on_line(progress: Progress | None, echo: Callable[[str], None]) -> Callable[[str], None]:
    """``echo``, also putting each message on the progress line as the step it is at."""

    def say(message: str) -> None:
        if progress is not None:
            progress.current = message
        echo(message)

    return say


@contextmanager
def progress_shown(progress: Progress | None, label: str, *, show_path: bool = False) -> Iterator[None]:
    """Show ``progress`` (from `new_progress`) on stderr while the block runs."""
    if progress is None:
        yield
        return
    from .progress_line import ProgressLine  # rich: only for a terminal

    with ProgressLine(progress, label, show_path=show_path):
        yield
