"""A backup killed with SIGKILL at random moments never damages the repository."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

from helpers import run_cli, spawn_cli, tree_state


def make_corpus(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    for d in range(8):
        sub = root / f"d{d}"
        sub.mkdir(parents=True)
        for f in range(40):
            size = rng.choice([100, 5000, 200_000, 1_000_000])
            (sub / f"f{f}").write_bytes(os.urandom(size))
    (root / "large.bin").write_bytes(os.urandom(48 * 1024 * 1024))


def test_sigkill_during_backup_leaves_valid_repository_and_next_run_reuses_data(repo, env, tmp_path):
    # Calibrate: how long does a whole first backup take on this machine?
    make_corpus(tmp_path / "corpus0", 0)
    started = time.monotonic()
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(tmp_path / "corpus0"), env=env, check=True)
    full = time.monotonic() - started
    victim = str(tmp_path / "victim-repo")
    run_cli("--repo", victim, "init", "--kdf-cost", "10", env=env, check=True)
    repo = victim
    rng = random.Random(42)
    killed: list[Path] = []
    # Each run backs up new data (a first backup as long as the calibration's): a run after a
    # kill re-uses what the killed one stored, and would be over before its own kill moment.
    for n, delay in enumerate([rng.uniform(0.15, 0.9) * full for _ in range(6)], start=1):
        src = tmp_path / f"corpus{n}"
        make_corpus(src, n)
        proc = spawn_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed.append(src)
        proc.wait()
        r = run_cli("--repo", repo, "check", env=env)
        assert r.code == 0, f"check failed after kill at {delay:.2f}s:\n{r.stdout}\n{r.stderr}"
    assert len(killed) >= 3
    indexed_before = len(os.listdir(Path(repo) / "index")) if (Path(repo) / "index").exists() else 0

    paths = [arg for src in killed for arg in ("--extra-path", str(src))]
    r = run_cli("--repo", repo, "backup", "--no-cells", *paths, "--json", env=env)
    assert r.code == 0, r.stderr
    summary = json.loads(r.stdout)["snapshot"]["summary"]
    if indexed_before:
        assert summary["data_added"] < summary["total_bytes"], "data stored by killed runs was not re-used"
    assert run_cli("--repo", repo, "check", "--read-data", env=env).code == 0
    out = tmp_path / "restored"
    assert run_cli("--repo", repo, "restore", "latest", "--target", str(out), env=env).code == 0
    for src in killed:
        assert tree_state(out / str(src).lstrip("/")) == tree_state(src)


def _stray_key(target: Path) -> str:
    """A key file as a killed `init` leaves it: same password, another master key, no config."""
    from cells_backup.repository.backends.local import LocalBackend
    from cells_backup.repository.crypto import MasterKey
    from cells_backup.repository.keys import make_key_file

    key_id, data = make_key_file(MasterKey.generate(), b"correct horse", {"n": 1024, "r": 8, "p": 1})
    LocalBackend(str(target)).write(f"keys/{key_id}", data, exclusive=True)
    return key_id


def test_a_key_file_left_by_an_interrupted_init_does_not_stop_the_next_one(tmp_path, env):
    """`init` writes its key file, then its config: killed in between, it leaves a key file that
    opens with the same password but holds another master key. The next `init` (or `copy` to a
    new target) removes it, and its repository opens and checks clean."""
    target = tmp_path / "target"
    stray = _stray_key(target)
    run_cli("--repo", str(target), "init", "--kdf-cost", "10", env=env, check=True)
    assert stray not in os.listdir(target / "keys") and len(os.listdir(target / "keys")) == 1
    run_cli("--repo", str(target), "backup", "--no-cells", "--extra-path", str(tmp_path / "target" / "keys"),
            env=env, check=True)
    assert run_cli("--repo", str(target), "check", env=env).code == 0


def test_key_files_beside_data_without_a_config_are_not_initialised_over(tmp_path, env):
    target = tmp_path / "target"
    stray = _stray_key(target)
    (target / "data" / "ab").mkdir(parents=True)
    (target / "data" / "ab" / "ab12").write_bytes(b"a pack of the repository that lost its config")
    r = run_cli("--repo", str(target), "init", "--kdf-cost", "10", env=env)
    assert r.code != 0 and "no config: a damaged repository" in r.stderr and "Traceback" not in r.stderr
    assert os.listdir(target / "keys") == [stray] and not (target / "config").exists()


def test_a_foreign_key_file_with_the_same_password_is_passed_over(tmp_path, env, repo):
    """Whichever key file is listed first, the one whose master key opens the config is used;
    `check` names the other as not this repository's."""
    for _ in range(40):  # key ids are random: until the foreign one sorts first
        stray = _stray_key(Path(repo))
        if sorted(os.listdir(Path(repo) / "keys"))[0] == stray:
            break
        os.unlink(Path(repo) / "keys" / stray)
    else:
        raise AssertionError("the foreign key file never sorted first")
    assert run_cli("--repo", repo, "snapshots", env=env).code == 0
    r = run_cli("--repo", repo, "check", env=env)
    assert r.code != 0 and f"keys/{stray}" in r.stdout
