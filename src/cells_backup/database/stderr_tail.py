"""The end of a client tool's stderr, read in a thread: a chatty client never blocks on a full pipe,
and its last lines are there for the one-line error when it fails."""

from __future__ import annotations

import threading
from typing import BinaryIO

KEEP = 64 * 1024


class StderrTail:
    def __init__(self, stream: BinaryIO, keep: int = KEEP) -> None:
        self._stream = stream
        self._keep = keep
        self._data = bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for chunk in iter(lambda: self._stream.read(4096), b""):
            self._data += chunk
            del self._data[: -self._keep]

    def text(self, timeout: float = 10.0) -> str:
        """What the client wrote (its last ``keep`` bytes), once it closed stderr or ``timeout`` passed."""
        self._thread.join(timeout=timeout)
        return self._data.decode("utf-8", "replace")
