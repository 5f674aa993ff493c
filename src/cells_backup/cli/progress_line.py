"""The progress line itself, drawn with rich: percent, files (or packs, blobs) and bytes done of
the total, rate and ETA, and for a backup the path being stored.

rich's auto-refresh thread redraws it (REFRESH_PER_SECOND); each redraw first copies the
operation's plain counters into the rich task, so the operation never calls into rich.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, RenderableType
from rich.progress import Progress as RichProgress
from rich.progress import ProgressColumn, Task, TaskProgressColumn, TextColumn
from rich.table import Column
from rich.text import Text

from ..repository.progress import Progress
from .output import human_bytes, human_duration

REFRESH_PER_SECOND = 4
PATH_WIDTH = 48  # the end of the current path shown, at most


class CountColumn(ProgressColumn):
    """``files 1,234/3,300`` (or ``packs``, ``blobs``); no total: ``files 1,234``."""

    def render(self, task: Task) -> Text:
        done, total, unit = task.fields["count"], task.fields["count_total"], task.fields["unit"]
        if not done and total is None:
            return Text("")
        return Text(f"{unit} {done:,}" + (f"/{total:,}" if total is not None else ""))


class BytesColumn(ProgressColumn):
    """``1.2 GiB/3.4 GiB``; no total: ``1.2 GiB``."""

    def render(self, task: Task) -> Text:
        done, total = task.fields["bytes"], task.fields["bytes_total"]
        if not done and not total:
            return Text("")
        return Text(human_bytes(done) + (f"/{human_bytes(total)}" if total else ""))


class RateColumn(ProgressColumn):
    """Bytes a second over rich's recent window (items a second when no bytes are counted)."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        if speed is None:
            return Text("")
        if task.fields["by_bytes"]:
            return Text(f"{human_bytes(speed)}/s")
        return Text(f"{speed:.1f} {task.fields['unit']}/s")


class EtaColumn(ProgressColumn):
    """``ETA 1m05s``, from rich's rate; nothing while no total or no rate is known."""

    def render(self, task: Task) -> Text:
        remaining = task.time_remaining
        if task.total is None or remaining is None:
            return Text("")
        return Text(f"ETA {human_duration(remaining)}")


class _Line(RichProgress):
    """A rich Progress whose one task follows a plain `Progress` at each redraw."""

    def __init__(self, source: Progress, *columns: ProgressColumn, **options: object) -> None:
        self._source = source
        self._passes = source.passes
        self._task = None
        super().__init__(*columns, **options)  # asks for the renderables once, before the task is there
        self._task = self.add_task("", total=None, count=0, count_total=None, bytes=0, bytes_total=None,
                                   unit=source.unit, by_bytes=True, path="")

    def get_renderables(self) -> Iterable[RenderableType]:
        if self._task is not None:
            self._follow()
        return super().get_renderables()

    def _follow(self) -> None:
        source = self._source
        if source.passes != self._passes:  # counting again from zero: no rate from the pass before
            self._passes = source.passes
            self.reset(self._task)
        files_total, bytes_total = source.totals()
        by_bytes = not (files_total and not bytes_total)  # count packs or files when no bytes are known
        self.update(self._task, completed=source.bytes if by_bytes else source.files,
                    total=bytes_total if by_bytes else files_total, count=source.files, count_total=files_total,
                    bytes=source.bytes, bytes_total=bytes_total, unit=source.unit, by_bytes=by_bytes,
                    path=_tail(source.current))


def _tail(text: str, width: int = PATH_WIDTH) -> str:
    """The end of a long path, where the file's own name is."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


class ProgressLine:
    """The context in which the line is shown on stderr."""

    def __init__(self, source: Progress, label: str, *, show_path: bool = False) -> None:
        columns: list[ProgressColumn] = [
            TextColumn(label),
            TaskProgressColumn(),
            CountColumn(),
            BytesColumn(),
            RateColumn(),
            EtaColumn(),
        ]
        if show_path:
            columns.append(TextColumn("{task.fields[path]}",
                                      table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)))
        console = Console(stderr=True)
        self._line = _Line(source, *columns, console=console, refresh_per_second=REFRESH_PER_SECOND,
                           transient=True, redirect_stdout=False, expand=show_path)

    def __enter__(self) -> ProgressLine:
        self._line.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._line.stop()
