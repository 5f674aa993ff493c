"""Every kind of repository object truncated, bit-flipped, deleted, swapped with another of its
kind or copied under another name: `check --read-data` finds it and names it, restore gives back
every file whose data is intact (byte for byte) and reports the others, and nothing crashes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cells_backup.repository.backends.local import LocalBackend
from cells_backup.repository.index import TREE
from cells_backup.repository.repository import Repository, pack_name
from helpers import FAST_KDF, cli_env, flip_byte, run_cli

KINDS = ["config", "keys", "index", "data-pack", "tree-pack", "snapshots"]
DAMAGES = ["truncate", "flip", "delete", "swap", "duplicate"]
# There is one config and one key: nothing to swap them with, and a copy of a key is a valid key.
CASES = [(k, d) for k in KINDS for d in DAMAGES if not (k in ("config", "keys") and d in ("swap", "duplicate"))]
PASSWORD = "correct horse"


def _writable(path: Path) -> None:
    os.chmod(path, 0o600)


def _objects(repo: Path, kind: str) -> list[Path]:
    """The files of one kind, most interesting first (tree packs and data packs told apart)."""
    if kind == "config":
        return [repo / "config"]
    if kind in ("keys", "index", "snapshots"):
        return sorted(p for p in (repo / kind).rglob("*") if p.is_file())
    r = Repository.open(LocalBackend(str(repo)), PASSWORD.encode())
    r.load_index()
    tree_packs = {pack_name(loc.pack) for _blob, loc in r.index.items() if loc is not None and loc.type == TREE}
    packs = sorted(p for p in (repo / "data").rglob("*") if p.is_file())
    chosen = [p for p in packs if (f"data/{p.parent.name}/{p.name}" in tree_packs) == (kind == "tree-pack")]
    return sorted(chosen, key=lambda p: -p.stat().st_size)


def _damage(repo: Path, kind: str, damage: str) -> Path:
    """Apply ``damage`` to an object of ``kind``; returns the object that check should name."""
    objects = _objects(repo, kind)
    victim = objects[0]
    if damage == "truncate":
        _writable(victim)
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    elif damage == "flip":
        flip_byte(victim)
    elif damage == "delete":
        victim.unlink()
    elif damage == "swap":
        assert len(objects) >= 2
        _writable(victim)
        victim.write_bytes(objects[1].read_bytes())
    elif damage == "duplicate":
        copy = victim.with_name("0" * 64 if not victim.name.startswith("0") else "1" * 64)
        shutil.copy(victim, copy)
        return copy
    return victim


@pytest.mark.parametrize(("kind", "damage"), CASES)
def test_damage_is_found_named_and_restore_keeps_the_rest(tmp_path, kind, damage):
    env = cli_env(password=PASSWORD)
    repo = tmp_path / "repo"
    run_cli("--repo", str(repo), "init", *FAST_KDF, env=env, check=True)
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(4):
        (src / f"f{i}.bin").write_bytes(os.urandom(200_000 + i))
        (src / "d" / f"t{i}.txt").write_text(f"text {i}\n" * 500)
    run_cli("--repo", str(repo), "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    (src / "f9.bin").write_bytes(os.urandom(300_000))  # a second snapshot with its own packs and index
    run_cli("--repo", str(repo), "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)

    victim = _damage(repo, kind, damage)
    r = run_cli("--repo", str(repo), "check", "--read-data", env=env)
    out = r.stdout + r.stderr
    assert "Traceback" not in out
    if (kind, damage) == ("snapshots", "delete"):
        # Nothing refers to a snapshot file: its loss cannot be seen; the other snapshot is whole.
        assert r.code == 0 and out.startswith("1 snapshot, "), out
    else:
        assert r.code != 0, f"check passed after {damage} of {kind}:\n{out}"
    if damage == "delete" and kind == "index":
        assert "not in any index" in out, out  # what the lost index listed is named instead
    elif damage != "delete" and kind != "config":
        assert victim.name[:16] in out, out

    target = tmp_path / "restored"
    r = run_cli("--repo", str(repo), "restore", "latest", "--target", str(target), "--json", env=env)
    assert "Traceback" not in r.stdout + r.stderr
    doc = json.loads(r.stdout)
    if "files" not in doc:  # the repository cannot be opened at all: one clear line, one JSON error
        assert r.code != 0 and r.stderr.count("\n") == 1, r.stderr
        assert doc["exit_code"] == r.code and doc["error"] in r.stderr
        return
    restored = target / str(src).lstrip("/")
    failed = {e["path"] for e in doc.get("errors", [])}
    older_latest = "could not be read" in r.stderr or (kind, damage) == ("snapshots", "delete")
    for original in sorted(p for p in src.rglob("*") if p.is_file()):
        copy = restored / original.relative_to(src)
        if copy.exists():
            assert copy.read_bytes() == original.read_bytes(), f"{copy} restored with other bytes"
        else:
            assert failed or (older_latest and original.name == "f9.bin"), f"{copy} missing, nothing said"
