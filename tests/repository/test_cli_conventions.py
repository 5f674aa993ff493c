"""Command-line conventions every command follows: global options on either side of the command,
one JSON document also on failure, -q printing only errors, `init` refusing foreign places,
counts read as English."""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers import FAST_KDF, cli_env, run_cli


def test_global_options_are_accepted_after_the_command(tmp_path, env):
    repo = str(tmp_path / "repo")
    r = run_cli("init", *FAST_KDF, "--repo", repo, env=env)
    assert r.code == 0, r.stderr
    assert (Path(repo) / "config").is_file()
    assert "0 snapshots" in run_cli("snapshots", "-r", repo, env=env, check=True).stdout

    new_password = tmp_path / "second-password"
    new_password.write_text("second password\n")
    new_password.chmod(0o600)
    r = run_cli("key", "add", "--new-password-file", str(new_password), "--repo", repo, env=env)
    assert r.code == 0, r.stderr
    without_env_password = cli_env(password=None)
    r = run_cli("key", "list", "--json", "--repo", repo, "--password-file", str(new_password),
                env=without_env_password)
    assert r.code == 0, r.stderr
    assert len(json.loads(r.stdout)) == 2

    config = tmp_path / "config.toml"
    config.write_text(f'repository = "{repo}"\npassword_file = "{new_password}"\n')
    r = run_cli("config", "check", "--config", str(config), env=without_env_password)
    assert r.code == 0, r.stderr
    assert f"{config}: ok" in r.stdout
    r = run_cli("snapshots", "--config", str(config), "--json", env=without_env_password)
    assert r.code == 0 and json.loads(r.stdout) == []


def test_an_option_after_the_command_wins_over_the_environment_and_the_one_before(tmp_path, env):
    repo = str(tmp_path / "repo")
    run_cli("init", *FAST_KDF, "--repo", repo, env=env, check=True)
    missing = str(tmp_path / "missing")
    from_env = cli_env(CELLS_BACKUP_REPOSITORY=missing)
    assert run_cli("snapshots", env=from_env).code == 10  # the environment still gives the default
    assert run_cli("snapshots", "--repo", repo, env=from_env).code == 0
    assert run_cli("--repo", missing, "snapshots", "--repo", repo, env=env).code == 0
    r = run_cli("--repo", repo, "snapshots", "--repo", missing, env=env)
    assert r.code == 10 and f"no repository at {missing}" in r.stderr


def test_json_failure_prints_exactly_one_document_with_error_and_exit_code(tmp_path, env):
    missing = str(tmp_path / "missing")
    r = run_cli("snapshots", "--repo", missing, "--json", env=env)
    assert r.code == 10
    assert json.loads(r.stdout) == {"error": f"no repository at {missing} (create one with `init`)",
                                    "exit_code": 10}

    repo = str(tmp_path / "repo")
    run_cli("init", *FAST_KDF, "--repo", repo, env=env, check=True)
    r = run_cli("--json", "--repo", repo, "snapshots", env=cli_env(password="wrong password"))
    assert r.code == 12
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 12 and "password" in doc["error"]

    r = run_cli("snapshots", "--repo", repo, "--no-such-option", "--json", env=env)
    assert r.code == 2
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 2 and "--no-such-option" in doc["error"]


def test_json_document_of_a_command_that_fails_after_its_result_keeps_the_result(repo, env, tmp_path):
    """`check` finds damage: its report and the error are one document, not two."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("hello\n" * 1000)
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), env=env, check=True)
    index = next((Path(repo) / "index").iterdir())
    index.write_bytes(b"damaged")
    r = run_cli("--repo", repo, "check", "--json", env=env)
    assert r.code == 1
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["errors"]
    assert doc["exit_code"] == 1 and re.fullmatch(r"check found \d+ errors?", doc["error"])


def test_quiet_prints_only_errors(repo, env, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("hello\n")
    r = run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), "-q", env=env)
    assert r.code == 0, r.stderr
    assert (r.stdout, r.stderr) == ("", "")
    listed = run_cli("--repo", repo, "-q", "snapshots", env=env)  # a listing is what was asked for
    assert "1 snapshot\n" in listed.stdout and listed.stderr == ""
    r = run_cli("--repo", str(tmp_path / "missing"), "snapshots", "-q", env=env)
    assert r.code == 10 and r.stdout == ""
    assert r.stderr == f"cells-backup: error: no repository at {tmp_path / 'missing'} (create one with `init`)\n"


def test_init_refuses_a_file_and_a_foreign_directory_and_writes_nothing(tmp_path):
    config_home = tmp_path / "config-home"
    env = cli_env(password=None, XDG_CONFIG_HOME=str(config_home))  # init would generate a password
    a_file = tmp_path / "a-file"
    a_file.write_text("not a repository\n")
    r = run_cli("init", *FAST_KDF, "--repo", str(a_file), env=env)
    assert r.code == 1
    assert r.stderr == f"cells-backup: error: cannot create a repository: {a_file} is a file, not a directory\n"
    assert a_file.read_text() == "not a repository\n"

    data = tmp_path / "data"
    (data / "photos").mkdir(parents=True)
    (data / "notes.txt").write_text("mine\n")
    r = run_cli("init", *FAST_KDF, "--repo", str(data), env=env)
    assert r.code == 1
    assert r.stderr == (f"cells-backup: error: cannot create a repository at {data}: it is not empty and holds "
                        "no repository (notes.txt); give a new or empty directory\n")
    assert sorted(p.name for p in data.iterdir()) == ["notes.txt", "photos"]
    assert not config_home.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("init", *FAST_KDF, "--repo", str(empty), env=env)
    assert r.code == 0, r.stderr
    assert (empty / "config").is_file() and (config_home / "cells-backup" / "password").is_file()


def test_counts_read_as_english(repo, env, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("hello\n")
    assert run_cli("--repo", repo, "snapshots", env=env).stdout.endswith("\n0 snapshots\n")
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), env=env, check=True)
    assert run_cli("--repo", repo, "snapshots", env=env).stdout.endswith("\n1 snapshot\n")
    checked = run_cli("--repo", repo, "check", env=env)
    assert checked.stdout.startswith("1 snapshot, ") and "packs: no errors" in checked.stdout
    assert run_cli("--repo", repo, "unlock", env=env).stdout == "removed 0 locks\n"


def test_log_file_and_s3_options_after_the_command(tmp_path, s3_server_running, s3_prefix):
    server = s3_server_running
    env = cli_env(**server.env())
    env.pop("AWS_PROFILE", None)
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # wrong: the option after the command must win
    env["AWS_REGION"] = "nowhere-1"
    url = server.url(s3_prefix)
    log = tmp_path / "cells-backup.log"
    r = run_cli("init", *FAST_KDF, "--repo", url, "--s3-endpoint", server.endpoint, "--s3-region", server.region,
                "--s3-path-style", "--log-file", str(log), env=env)
    assert r.code == 0, r.stderr
    assert log.exists()
    assert next(iter(server.backend(s3_prefix).list("config")), None) is not None
    r = run_cli("snapshots", "--json", "-r", url, "--s3-endpoint", server.endpoint, "--s3-region", server.region,
                env=env)
    assert r.code == 0 and json.loads(r.stdout) == []


def test_a_backup_report_says_what_the_snapshot_holds_what_was_added_and_how_long_it_took(tmp_path, env):
    repo, src = str(tmp_path / "repo"), tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x" * 5000)
    run_cli("init", *FAST_KDF, "--repo", repo, env=env, check=True)
    r = run_cli("backup", "--no-cells", "--extra-path", str(src), "--repo", repo, env=env, check=True)
    line = r.stdout.splitlines()[-1]
    m = re.fullmatch(r"4\.9 KiB in the snapshot; added (\S+ \S+) to the repository \(\S+ \S+ stored\) in (\S+)", line)
    assert m, line
    assert re.fullmatch(r"0\.\d\ds|\d\.\ds", m[2]) and m[2] != "0.00s", line  # a short run is not "0s"
