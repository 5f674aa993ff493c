"""Running the CLI with stderr on a pseudo-terminal, as a person at a terminal would, to read its
progress line."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from dataclasses import dataclass

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
REDRAW = "\r\x1b[2K"  # rich goes back to the start of the line and clears it before each redraw
MAX_PER_SECOND = 4


@dataclass
class TerminalRun:
    code: int
    stdout: str
    terminal: str  # all that was written to stderr, the terminal
    seconds: float

    def frames(self) -> list[str]:
        """Each drawing of the line, escapes removed."""
        return [f.strip() for f in re.split(r"[\r\n]+", ANSI.sub("", self.terminal)) if f.strip()]

    def redraws(self) -> int:
        """Redraws of the line alone; a message printed above the line (a new line, then the line
        again) is not one."""
        return sum(1 for piece in self.terminal.split(REDRAW)[1:] if "\n" not in piece)


def run_on_terminal(*args: str, env: dict[str, str], program: list[str] | None = None,
                    timeout: float = 300) -> TerminalRun:
    """Run the CLI (or ``program``) with stderr on a pseudo-terminal 200 columns wide, stdout a pipe."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    started = time.monotonic()
    try:
        proc = subprocess.Popen(program or [sys.executable, "-m", "cells_backup", *args], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    finally:
        os.close(slave)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        proc.wait()
        seconds = time.monotonic() - started
        reader.join(timeout=30)
        os.close(master)
    run = TerminalRun(proc.returncode, stdout.decode(errors="replace"), b"".join(chunks).decode(errors="replace"),
                      seconds)
    # At most 4 redraws a second, whatever the command: the first drawing and the last one come
    # with the start and the end of the line, the rest with rich's refresh thread.
    assert run.redraws() <= MAX_PER_SECOND * run.seconds + 2, (run.redraws(), run.seconds)
    return run


def last_frame(run: TerminalRun, label: str) -> str:
    lines = [f for f in run.frames() if f.startswith(label + " ")]
    assert lines, run.terminal
    return lines[-1]
