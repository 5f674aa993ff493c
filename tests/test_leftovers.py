"""The end-of-session check finds what a test left running: by marker, or as a descendant."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from leftovers import MARKER_VAR, find_leftovers, kill_all


def _wait_started(pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and b"sleep" not in Path(f"/proc/{pid}/cmdline").read_bytes():
        time.sleep(0.01)


def test_marked_daemon_and_unmarked_child_are_found_and_killed() -> None:
    marker = "probe-" + os.urandom(8).hex()
    env = {**os.environ, MARKER_VAR: marker}
    # a daemon: its parent shell exits at once, so it re-parents away from this process
    shell = subprocess.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], env=env,
                           capture_output=True, text=True, check=True)
    daemon = int(shell.stdout)
    child = subprocess.Popen(["sleep", "301"], env={"PATH": os.environ["PATH"]})  # clean environment
    _wait_started(daemon)
    _wait_started(child.pid)

    found = {left.pid: left.cmdline for left in find_leftovers(marker)}
    assert found.get(daemon) == "sleep 300" and found.get(child.pid) == "sleep 301"
    assert os.getpid() not in found

    kill_all([left for left in find_leftovers(marker) if left.pid in (daemon, child.pid)])
    assert child.poll() is not None
    assert {daemon, child.pid}.isdisjoint(left.pid for left in find_leftovers(marker))
