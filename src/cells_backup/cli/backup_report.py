"""What a finished backup prints: the snapshot, what it holds, what was added and how long it took."""

from __future__ import annotations

from ..wording import plural
from .main import Settings
from .output import human_bytes, human_duration


def report_backup(settings: Settings, snapshot, elapsed: float) -> None:
    s = snapshot.summary
    text = (
        f"snapshot {snapshot.short_id} saved"
        + (" (PARTIAL: some files could not be read)" if snapshot.partial else "")
        + f"\nfiles: {s.get('files_new', 0)} new, {s.get('files_changed', 0)} changed, "
        f"{s.get('files_unmodified', 0)} unmodified; {plural(s.get('dirs', 0), 'dir')}"
        f"\n{human_bytes(s.get('total_bytes', 0))} in the snapshot; added {human_bytes(s.get('data_added', 0))} "
        f"to the repository ({human_bytes(s.get('data_stored', 0))} stored) in {human_duration(elapsed, fraction=True)}"
    )
    settings.out.result({"snapshot": snapshot.describe(), "errors": snapshot.errors}, text)
