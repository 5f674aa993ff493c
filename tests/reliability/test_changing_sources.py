"""Sources that change during the backup: files growing, shrinking, replaced or deleted, directories
renamed mid-walk. The snapshot is consistent or says what it missed; the repository stays valid."""

from __future__ import annotations

import json
import os
import threading
import time

from helpers import FAST_KDF, cli_env, run_cli, spawn_cli


def test_backup_of_a_tree_changing_under_it(tmp_path):
    env = cli_env()
    repo = str(tmp_path / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    src = tmp_path / "src"
    for d in range(20):
        sub = src / f"dir{d:02d}"
        sub.mkdir(parents=True)
        for f in range(50):
            (sub / f"f{f}").write_bytes(os.urandom(20_000))
    growing, shrinking = src / "growing.log", src / "shrinking.bin"
    growing.write_bytes(os.urandom(3_000_000))
    shrinking.write_bytes(os.urandom(6_000_000))
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            with open(growing, "ab") as f:
                f.write(os.urandom(50_000))
            os.truncate(shrinking, max(0, 6_000_000 - i * 100_000))
            a, b = src / "dir05", src / "dir05-renamed"
            if a.exists():
                a.rename(b)
            elif b.exists():
                b.rename(a)
            victim = src / f"dir10/f{i % 50}"
            if victim.exists():
                victim.unlink()
            replaced = src / "dir11" / f"f{i % 50}"
            tmp = src / "dir11" / ".tmp"
            tmp.write_bytes(os.urandom(1000))
            os.replace(tmp, replaced)
            i += 1
            time.sleep(0.002)

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        outcomes = []
        for _ in range(3):
            proc = spawn_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), "--json", env=env)
            out, err = proc.communicate(timeout=120)
            assert proc.returncode in (0, 3), err
            assert b"Traceback" not in err
            doc = json.loads(out)
            # partial is set exactly when something was reported
            assert doc["snapshot"]["partial"] == bool(doc["errors"]) == (proc.returncode == 3)
            outcomes.append(proc.returncode)
    finally:
        stop.set()
        thread.join()
    assert run_cli("--repo", repo, "check", "--read-data", env=env).code == 0
    for sid in [s["id"] for s in json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout)]:
        r = run_cli("--repo", repo, "restore", sid, "--target", str(tmp_path / f"out-{sid[:8]}"), env=env)
        assert r.code == 0, r.stdout + r.stderr
