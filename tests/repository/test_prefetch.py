"""The metadata walkers started beside a backup: how trees are dealt out, and that none outlives it."""

from __future__ import annotations

import os

from cells_backup.repository.prefetch import _groups, prefetch_metadata
from helpers import cli_env, run_cli


def test_subdirectories_are_dealt_out_in_name_order(tmp_path):
    tree = tmp_path / "tree"
    for name in ("b", "a", "d", "c", "e"):
        (tree / name).mkdir(parents=True)
    (tree / "file.txt").write_text("left to the archiver")
    flat = tmp_path / "flat"  # no subdirectory to split on: walked whole
    flat.mkdir()
    (flat / "x").write_text("x")
    single = tmp_path / "single.txt"
    single.write_text("s")
    groups = _groups([str(tree), str(flat), str(single), str(tmp_path / "missing")], 4)
    assert groups == [
        [str(tree / "a"), str(tree / "e")],
        [str(tree / "b"), str(flat)],
        [str(tree / "c"), str(single)],
        [str(tree / "d"), str(tmp_path / "missing")],
    ]


def test_walkers_run_during_the_block_and_are_reaped_after(tmp_path):
    for i in range(6):
        (tmp_path / f"d{i}").mkdir()
    with prefetch_metadata([str(tmp_path)]) as procs:
        assert 1 <= len(procs) <= 4
        assert all(os.path.basename(p.args[0]) == "du" for p in procs)
    assert all(p.returncode is not None for p in procs)  # ended and reaped: no zombie, no stray walker


def test_backup_without_du_on_the_path_still_works(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("data")
    env = cli_env(PATH="/nonexistent")
    repo = str(tmp_path / "repo")
    run_cli("--repo", repo, "init", "--kdf-cost", "10", env=env, check=True)
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    listed = run_cli("--repo", repo, "ls", "latest", str(src), env=env).stdout
    assert "sub/f" in listed


def test_counting_walkers_count_every_file_once_and_are_reaped(tmp_path):
    """With a progress line, the walkers count regular files and bytes: those directly in a split
    directory, in its subdirectories, and a path that is one file; not symlinks or directories."""
    tree = tmp_path / "tree"
    for name in ("a", "b", "c"):
        (tree / name / "deep").mkdir(parents=True)
        (tree / name / "deep" / "f").write_bytes(b"x" * 1000)
    (tree / "top.txt").write_bytes(b"y" * 10)
    (tree / "link").symlink_to("top.txt")
    single = tmp_path / "single.bin"
    single.write_bytes(b"z" * 5)
    counted: list[tuple[int, int]] = []
    with prefetch_metadata([str(tree), str(single)], on_counted=lambda n, size: counted.append((n, size))) as procs:
        assert all(os.path.basename(p.args[0]) in ("find", "awk") for p in procs)
        for proc in procs:
            proc.wait()  # the walk is done before the backup is
    assert all(p.returncode is not None for p in procs)
    assert counted == [(5, 3015)]


def test_walkers_ended_early_report_no_count(tmp_path):
    """Counts cut short by the end of the backup would be too low: none is reported then."""
    for i in range(20):
        for j in range(250):
            (tmp_path / f"d{i}" / f"e{j}").mkdir(parents=True)
    counted: list[tuple[int, int]] = []
    with prefetch_metadata([str(tmp_path)], on_counted=lambda n, size: counted.append((n, size))) as procs:
        walkers = [proc for proc in procs if os.path.basename(proc.args[0]) == "find"]
        for proc in walkers:  # ended as when the block ends first; their adders then sum what came
            proc.kill()
        for proc in procs:
            proc.wait()
    assert any(proc.returncode < 0 for proc in walkers)  # 5000 directories: not all walked that soon
    assert counted == []
