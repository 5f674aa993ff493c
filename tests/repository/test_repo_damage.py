"""One flipped byte anywhere is found by `check --read-data`, named, and restore saves the rest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import flip_byte, run_cli


@pytest.fixture
def filled(repo, env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"file{i}.bin").write_bytes(os.urandom(300_000))
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    return src


def _objects(repo: str, prefix: str) -> list[Path]:
    return sorted(p for p in (Path(repo) / prefix).rglob("*") if p.is_file())


@pytest.mark.parametrize("kind", ["data", "index", "snapshots", "keys", "config"])
def test_flipped_byte_is_found_and_named(repo, env, filled, kind):
    victim = Path(repo) / "config" if kind == "config" else _objects(repo, kind)[0]
    flip_byte(victim)
    r = run_cli("--repo", repo, "check", "--read-data", env=env)
    assert r.code != 0
    assert "Traceback" not in r.stderr
    name = "config" if kind == "config" else f"{kind}/"
    assert name in (r.stdout + r.stderr)
    assert victim.name in (r.stdout + r.stderr) or kind == "config"


def test_damaged_pack_names_affected_files_and_restore_keeps_the_rest(repo, env, filled, tmp_path):
    pack = max(_objects(repo, "data"), key=lambda p: p.stat().st_size)  # a data pack (trees have their own)
    data = bytearray(pack.read_bytes())
    data[100] ^= 0xFF  # inside the first blob
    os.chmod(pack, 0o600)
    pack.write_bytes(bytes(data))
    r = run_cli("--repo", repo, "check", "--read-data", "--json", env=env)
    assert r.code == 1
    report = json.loads(r.stdout)
    affected = [e for e in report["errors"] if "affected" in e]
    assert affected, report
    damaged_files = [p for paths in affected[0]["affected"].values() for p in paths]
    assert damaged_files and all(str(filled) in p for p in damaged_files)

    out = tmp_path / "out"
    r = run_cli("--repo", repo, "restore", "latest", "--target", str(out), "--json", env=env)
    assert r.code == 1
    result = json.loads(r.stdout)
    failed = {e["path"] for e in result["errors"]}
    assert failed
    restored_dir = out / str(filled).lstrip("/")
    for src_file in filled.iterdir():
        target = restored_dir / src_file.name
        if str(target) in failed:
            assert not target.exists()
        else:
            assert target.read_bytes() == src_file.read_bytes()
