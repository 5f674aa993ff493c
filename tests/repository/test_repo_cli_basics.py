"""The generic commands on a plain tree, through the real CLI."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

from helpers import cli_env, normalize_link_groups, run_cli, tree_state


def test_backup_restore_roundtrip_keeps_contents_and_metadata(repo, source, tmp_path, env):
    os.setxattr(source / "a.txt", "user.cells.note", b"kept \x00 as bytes")
    r = run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), "--json", env=env)
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["snapshot"]["partial"] is False
    target = tmp_path / "out"
    r = run_cli("--repo", repo, "restore", "latest", "--target", str(target), env=env)
    assert r.code == 0, r.stderr
    restored = target / str(source).lstrip("/")
    assert normalize_link_groups(tree_state(restored)) == normalize_link_groups(tree_state(source))
    a, h = os.stat(restored / "a.txt"), os.stat(restored / "dir" / "hardlink-to-a")
    assert (a.st_ino, a.st_mtime_ns) == (h.st_ino, 1_600_000_000_123_456_789)
    assert os.path.isdir(restored / "empty-dir")
    assert os.getxattr(restored / "a.txt", "user.cells.note") == b"kept \x00 as bytes"
    # the 2 MiB of zeros at the end of big.bin come back as a hole
    assert os.stat(restored / "dir" / "big.bin").st_blocks * 512 < 4 * 1024 * 1024


def test_unchanged_rerun_reads_no_file_and_adds_nothing(repo, source, env):
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), env=env, check=True)
    r = run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), "--json", env=env)
    summary = json.loads(r.stdout)["snapshot"]["summary"]
    assert summary["files_new"] == 0 and summary["files_changed"] == 0
    assert summary["data_added"] < 4096  # at most a directory listing whose parent's mtime moved
    (source / "a.txt").write_text("changed\n")
    r = run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), "--json", env=env)
    summary = json.loads(r.stdout)["snapshot"]["summary"]
    assert summary["files_changed"] >= 1  # a.txt (and its hard link)
    assert summary["data_added"] < 4096


def test_metadata_only_changes_reach_the_next_snapshot(repo, source, tmp_path, env):
    """Unchanged files are taken from the parent snapshot; a change of xattr, mode or owner alone
    (which moves only ctime) must still be seen, and untouched xattrs must be carried over."""
    a, c = source / "a.txt", source / "c.txt"
    c.write_text("kept as is\n")
    os.setxattr(a, "user.cells.note", b"first")
    os.setxattr(c, "user.cells.note", b"untouched")
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), env=env, check=True)
    before = os.stat(a)
    os.setxattr(a, "user.cells.note", b"second")
    os.chmod(source / "dir", 0o711)
    os.utime(a, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime and size: only ctime moved
    if os.geteuid() == 0:
        os.chown(c, 4321, 4321)
    r = run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), "--json", env=env)
    assert r.code == 0, r.stderr
    target = tmp_path / "out"
    run_cli("--repo", repo, "restore", "latest", "--target", str(target), env=env, check=True)
    restored = target / str(source).lstrip("/")
    assert os.getxattr(restored / "a.txt", "user.cells.note") == b"second"
    assert os.getxattr(restored / "c.txt", "user.cells.note") == b"untouched"
    assert os.stat(restored / "dir").st_mode & 0o777 == 0o711
    if os.geteuid() == 0:
        assert (os.stat(restored / "c.txt").st_uid, os.stat(restored / "c.txt").st_gid) == (4321, 4321)
    assert tree_state(restored) == tree_state(source)


def test_snapshots_json_has_the_promised_keys(repo, source, env):
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), "--tag", "nightly",
            env=env, check=True)
    r = run_cli("--repo", repo, "snapshots", "--json", env=env)
    snaps = json.loads(r.stdout)
    assert len(snaps) == 1
    for key in ("id", "short_id", "time", "hostname", "tags", "cells_version", "live", "partial", "components"):
        assert key in snaps[0]
    assert snaps[0]["tags"] == ["nightly"]
    r = run_cli("--repo", repo, "snapshots", "--tag", "other", "--json", env=env)
    assert json.loads(r.stdout) == []


def test_ls_and_dump_tar(repo, source, env, tmp_path):
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), env=env, check=True)
    r = run_cli("--repo", repo, "ls", "latest", str(source / "dir"), env=env)
    assert r.code == 0
    listed = set(r.stdout.splitlines())
    assert str(source / "dir" / "big.bin") in listed and str(source / "dir" / "sub") in listed
    out = tmp_path / "x.tar"
    r = run_cli("--repo", repo, "dump", "latest", str(source / "dir"), "-o", str(out), env=env)
    assert r.code == 0, r.stderr
    with tarfile.open(out) as tar:
        member = tar.getmember(str(source / "dir" / "big.bin").lstrip("/"))
        assert tar.extractfile(member).read() == (source / "dir" / "big.bin").read_bytes()


def test_stats_reports_dedup(repo, source, env):
    for _ in range(2):
        run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), env=env, check=True)
    doc = json.loads(run_cli("--repo", repo, "stats", "--json", env=env).stdout)
    assert doc["snapshots"] == 2
    assert doc["dedup_ratio"] >= 1.9  # two identical snapshots stored once


def test_wrong_password_is_exit_12_one_line(repo, source):
    r = run_cli("--repo", repo, "snapshots", env=cli_env(password="wrong"))
    assert r.code == 12
    assert r.stderr.count("\n") == 1 and "wrong password" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_repository_is_exit_10(tmp_path):
    r = run_cli("--repo", str(tmp_path / "nothing-here"), "snapshots")
    assert r.code == 10
    assert "no repository" in r.stderr and "Traceback" not in r.stderr


def test_restore_refuses_non_empty_target(repo, source, env, tmp_path):
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), env=env, check=True)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep-me").write_text("precious")
    r = run_cli("--repo", repo, "restore", "latest", "--target", str(target), env=env)
    assert r.code == 14
    assert (target / "keep-me").read_text() == "precious"
    assert sorted(os.listdir(target)) == ["keep-me"]


def test_init_generates_password_file_when_none_given(tmp_path):
    home = tmp_path / "cfg"
    env = cli_env(password=None, XDG_CONFIG_HOME=str(home))
    r = run_cli("--repo", str(tmp_path / "r"), "init", "--kdf-cost", "10", env=env)
    assert r.code == 0, r.stderr
    pw = home / "cells-backup" / "password"
    assert pw.exists() and (os.stat(pw).st_mode & 0o777) == 0o600
    assert str(pw) in r.stdout and "without it nothing" in r.stdout
    # the generated file is used by later commands without any flag
    assert run_cli("--repo", str(tmp_path / "r"), "snapshots", env=env).code == 0


def test_keys_add_remove_passwd(repo, env, tmp_path):
    newpw = tmp_path / "new"
    newpw.write_text("second password\n")
    os.chmod(newpw, 0o600)
    r = run_cli("--repo", repo, "key", "add", "--new-password-file", str(newpw), "--json", env=env)
    assert r.code == 0, r.stderr
    added = json.loads(r.stdout)["id"]
    env2 = cli_env(password="second password")
    assert run_cli("--repo", repo, "snapshots", env=env2).code == 0
    keys = json.loads(run_cli("--repo", repo, "key", "list", "--json", env=env).stdout)
    assert len(keys) == 2
    original = next(k["id"] for k in keys if k["current"])
    assert run_cli("--repo", repo, "key", "remove", original, env=env2).code == 0
    assert run_cli("--repo", repo, "snapshots", env=env).code == 12
    third = tmp_path / "third"
    third.write_text("third\n")
    os.chmod(third, 0o600)
    assert run_cli("--repo", repo, "key", "passwd", "--new-password-file", str(third), env=env2).code == 0
    assert run_cli("--repo", repo, "snapshots", env=env2).code == 12
    assert run_cli("--repo", repo, "snapshots", env=cli_env(password="third")).code == 0
    assert added


def test_world_readable_password_file_is_refused(repo, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    os.chmod(pw, 0o644)
    r = run_cli("--repo", repo, "--password-file", str(pw), "snapshots", env=cli_env(password=None))
    assert r.code == 1 and "readable by every user" in r.stderr


def test_unreadable_file_makes_partial_snapshot_exit_3(repo, env, tmp_path):
    """Root reads everything, so the backup runs without the capabilities that bypass permissions."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine")
    (src / "secret.txt").write_text("no access")
    os.chmod(src / "secret.txt", 0o000)
    import subprocess
    import sys

    r = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-m",
                        "cells_backup", "--repo", repo, "backup", "--no-cells", "--extra-path", str(src), "--json"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 3, r.stderr
    doc = json.loads(r.stdout)
    assert doc["snapshot"]["partial"] is True
    assert any(e["path"].endswith("secret.txt") for e in doc["errors"])
    assert "secret.txt" in r.stderr and "Traceback" not in r.stderr
    listed = run_cli("--repo", repo, "ls", "latest", str(src), env=env).stdout
    assert "ok.txt" in listed and "secret.txt" not in listed
    snaps = json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout)
    assert snaps[0]["partial"] is True


def test_exclude_patterns(repo, source, env, tmp_path):
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), "--exclude", "*.bin",
            "--exclude", "dir/sub", env=env, check=True)
    listed = run_cli("--repo", repo, "ls", "latest", env=env).stdout
    assert "big.bin" not in listed and "/dir/sub" not in listed and "a.txt" in listed


def test_tar_stream_to_stdout(repo, source, env):
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), env=env, check=True)
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "cells_backup", "--repo", repo, "dump", "latest",
                           str(source / "a.txt")], env=env, capture_output=True)
    assert proc.returncode == 0
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        assert tar.extractfile(str(source / "a.txt").lstrip("/")).read() == Path(source / "a.txt").read_bytes()


def test_every_command_is_found_where_the_command_table_says() -> None:
    """A command run imports only its own module: the table must name every command's module."""
    import importlib

    from cells_backup.cli.main import COMMAND_MODULES, cli

    modules = sorted(set(COMMAND_MODULES.values()))
    for module in modules:
        importlib.import_module(f"cells_backup.cli.{module}")
    registered = {name: cmd.callback.__module__.rsplit(".", 1)[-1] for name, cmd in cli.commands.items()}
    assert registered == COMMAND_MODULES


def test_help_lists_every_command(env) -> None:
    r = run_cli("--help", env=env)
    assert r.code == 0
    for name in ("backup", "restore", "verify-install", "key", "forget", "schedule", "drill"):
        assert f"  {name} " in r.stdout


def test_modes_and_owners_restored_whatever_the_umask(repo, tmp_path, env) -> None:
    """Files are created with their own mode where it can be: what the umask took, set-id bits,
    read-only files and foreign owners are still set afterwards."""
    src = tmp_path / "modes"
    src.mkdir()
    modes = {"rw-all": 0o666, "read-only": 0o444, "setuid": 0o4755, "group": 0o640, "private": 0o600}
    for name, mode in modes.items():
        (src / name).write_bytes(name.encode() * 1000)
        os.chmod(src / name, mode)
    if os.geteuid() == 0:
        os.chown(src / "group", 4242, 4343)
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    old = os.umask(0o077)  # inherited by the restore: strips group and other bits at creation
    try:
        run_cli("--repo", repo, "restore", "latest", "--target", str(tmp_path / "out"), env=env, check=True)
    finally:
        os.umask(old)
    out = tmp_path / "out" / str(src).lstrip("/")
    for name, mode in modes.items():
        st = os.stat(out / name)
        assert (name, st.st_mode & 0o7777) == (name, mode)
        assert (out / name).read_bytes() == name.encode() * 1000
    if os.geteuid() == 0:
        assert (os.stat(out / "group").st_uid, os.stat(out / "group").st_gid) == (4242, 4343)
        assert os.stat(out / "private").st_uid == 0
