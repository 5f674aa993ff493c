"""Running detection uses real evidence: a BoltDB-style flock held by another process, an open bind."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from cells_backup.cells import detect_running
from cells_backup.cells.model import Site
from cells_backup.cells.running import lock_held

HOLD = (
    "import fcntl, sys, time\n"
    "f = open(sys.argv[1], 'rb+')\n"
    "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
    "print('locked', flush=True)\n"
    "time.sleep(60)\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quiet(inst) -> None:
    inst.sites = [Site(binds=[f"0.0.0.0:{_free_port()}"])]


def test_stopped_installation_is_not_running(sample) -> None:
    inst = sample.installation
    _quiet(inst)
    status = detect_running(inst)
    assert not status.running and status.evidence == []


def test_flock_held_by_another_process_is_detected(sample) -> None:
    inst = sample.installation
    _quiet(inst)
    db = inst.services_dir / "pydio.grpc.docstore" / "docstore.db"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        status = detect_running(inst)
        assert status.running
        assert any(str(db) in e for e in status.evidence)
        # our probe must not leave a lock behind nor disturb the holder
        assert lock_held(db)
    finally:
        proc.kill()
        proc.wait()
    assert not detect_running(inst).running


def test_configs_versions_db_lock_is_detected(sample) -> None:
    inst = sample.installation
    _quiet(inst)
    db = inst.working_dir / "configs-versions.db"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        assert any("configs-versions.db" in e for e in detect_running(inst).evidence)
    finally:
        proc.kill()
        proc.wait()


def test_listening_site_bind_is_detected(sample) -> None:
    inst = sample.installation
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        inst.sites = [Site(binds=[f"0.0.0.0:{port}"])]
        status = detect_running(inst)
        assert status.running and any(f"port {port}" in e for e in status.evidence)
    assert not detect_running(inst).running


def test_our_own_probe_is_not_mistaken_for_cells(tmp_path: Path) -> None:
    f = tmp_path / "x.db"
    f.write_bytes(b"x")
    assert not lock_held(f) and not lock_held(f)
    assert not lock_held(tmp_path / "missing.db")
