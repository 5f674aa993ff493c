"""A backup with stop/start hooks: what the summary counts and times, and a failing start command."""

from __future__ import annotations

import json
import re

from helpers import FAST_KDF, cli_env, run_cli


def test_first_backup_with_hooks_counts_every_file_as_new_and_times_the_whole_run(repo, install, env, tmp_path):
    """The read-ahead pass stores the files before the stop: they are still new to this snapshot,
    and the time includes the hooks (here a stop command that takes 1.5 s)."""
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database",
                "--stop-command", "sleep 1.5", "--start-command", "true", "--json", env=env)
    assert r.code == 0, r.stderr
    summary = json.loads(r.stdout)["snapshot"]["summary"]
    assert summary["files_new"] == summary["total_files"] > 100
    assert summary["files_changed"] == 0 and summary["files_unmodified"] == 0
    assert summary["duration"] >= 1.5

    text = run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database",
                   "--stop-command", "sleep 1.2", "--start-command", "true", env=env)
    assert text.code == 0, text.stderr
    assert f"files: 0 new, 0 changed, {summary['total_files']} unmodified" in text.stdout
    assert float(re.search(r" in (\d+\.\d+)s\n", text.stdout).group(1)) >= 1.2  # the hook's time counts


def test_a_failing_start_command_keeps_the_snapshot_and_says_cells_may_be_stopped(repo, install, env, tmp_path):
    start = "echo 'cells.service: unit not found' >&2; exit 5"
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database",
                "--stop-command", "true", "--start-command", start, env=env)
    assert r.code == 1
    assert "Traceback" not in r.stderr
    snaps = json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout)
    assert len(snaps) == 1
    short = snaps[0]["short_id"]
    assert f"snapshot {short} saved" in r.stdout
    error = [line for line in r.stderr.splitlines() if line.startswith("cells-backup: error:")]
    assert error == [
        f"cells-backup: error: snapshot {short} was saved, but the start command failed with exit code 5: "
        f"cells.service: unit not found: Cells may still be STOPPED; check it and start it by hand: {start}"
    ]
    listed = run_cli("--repo", repo, "snapshots", env=env)
    assert short in listed.stdout and "1 snapshot\n" in listed.stdout


def test_a_failing_start_command_in_json_is_one_document_with_the_snapshot_and_the_error(repo, install, env):
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database",
                "--stop-command", "true", "--start-command", "exit 3", "--json", env=env)
    assert r.code == 1
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 1
    assert "Cells may still be STOPPED" in doc["error"] and "start it by hand: exit 3" in doc["error"]
    snaps = json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout)
    assert [s["id"] for s in snaps] == [doc["snapshot"]["id"]]


def test_a_failing_backup_and_a_failing_start_command_are_both_reported(repo, install, env, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database", "--extra-path", str(extra),
                "--stop-command", f"rm -r {extra}", "--start-command", "exit 4", env=env)
    assert r.code == 1
    assert "does not exist" in r.stderr and "Cells may still be STOPPED" in r.stderr
    assert "was saved" not in r.stderr
    assert json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout) == []


def test_run_with_a_failing_start_command_fails_and_keeps_the_snapshot(installation, tmp_path):
    """The nightly job: the same failure is its status (exit 1), the snapshot is kept."""
    _sample, _dbname, base = installation
    password = tmp_path / "password"
    password.write_text("correct horse\n")
    password.chmod(0o600)
    config = tmp_path / "config.toml"
    config.write_text(f'repository = "{tmp_path / "job-repo"}"\npassword_file = "{password}"\n'
                      f'cells_dir = "{base / "cells"}"\n\n[hooks]\nstop_command = "true"\n'
                      'start_command = "exit 7"\n')
    env = cli_env(password=None)
    run_cli("init", *FAST_KDF, "--config", str(config), env=env, check=True)
    r = run_cli("run", "--config", str(config), "--json", env=env)
    assert r.code == 1
    doc = json.loads(r.stdout)
    assert doc["status"] == "failed" and doc["snapshot_id"] and doc["exit_code"] == 1
    assert doc["error"] == f"run failed: {doc['message']}"
    assert "start command failed with exit code 7" in doc["message"]
    assert "Cells may still be STOPPED" in doc["message"] and "start it by hand: exit 7" in doc["message"]
    snaps = json.loads(run_cli("snapshots", "--config", str(config), "--json", env=env).stdout)
    assert [s["id"] for s in snaps] == [doc["snapshot_id"]]
