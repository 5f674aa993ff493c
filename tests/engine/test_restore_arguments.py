"""What `restore` and `rehost` accept on their command line, refused before anything is opened."""

from __future__ import annotations

import pytest

from cells_backup.cells.sample import make_sample_installation
from helpers import FAST_KDF, cli_env, run_cli


@pytest.mark.parametrize("command", ["restore", "rehost"])
@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--external-url", "cells.example.com", "expected a URL with scheme and host"),
    ("--external-url", "https://", "expected a URL with scheme and host"),
    ("--external-url", "ftp://cells.example.com", "expected a URL with scheme and host"),
    ("--external-url", "https://cells.example.com:port", "expected a URL with scheme and host"),
    ("--bind", "8080", "expected HOST:PORT"),
    ("--bind", "0.0.0.0:", "expected HOST:PORT"),
    ("--bind", ":8080", "expected HOST:PORT"),
    ("--bind", "0.0.0.0:70000", "expected HOST:PORT"),
    ("--bind", "https://cells.example.com:443", "expected HOST:PORT"),
])
def test_malformed_site_options_exit_2_with_one_line(tmp_path, command, option, value, expected):
    make_sample_installation(tmp_path / "cells")
    before = (tmp_path / "cells" / "pydio.json").read_bytes()
    args = (["--repo", str(tmp_path / "no-repo"), "restore", "latest"] if command == "restore"
            else ["rehost", "--cells-dir", str(tmp_path / "cells")])
    r = run_cli(*args, option, value, env=cli_env())
    assert r.code == 2, r.stderr
    assert r.stderr == f"cells-backup: error: {option} {value!r}: {expected}" + r.stderr.split(expected, 1)[1]
    assert r.stderr.count("\n") == 1
    assert (tmp_path / "cells" / "pydio.json").read_bytes() == before


@pytest.mark.parametrize(("option", "value"), [
    ("--external-url", "https://cells.example.com"), ("--external-url", "http://10.0.0.5:8080/cells"),
    ("--bind", "0.0.0.0:8443"), ("--bind", "[::]:443"), ("--bind", "cells.local:8443"),
])
def test_well_formed_site_options_are_taken(tmp_path, option, value):
    make_sample_installation(tmp_path / "cells")
    r = run_cli("rehost", "--cells-dir", str(tmp_path / "cells"), option, value, "--dry-run", env=cli_env())
    assert r.code == 0, r.stderr
    assert value in r.stdout


def test_restore_help_says_what_snapshot_may_be():
    r = run_cli("restore", "--help", env=cli_env())
    assert r.code == 0
    text = " ".join(r.stdout.split())
    assert "Usage: cells-backup restore [OPTIONS] SNAPSHOT" in text
    assert 'SNAPSHOT is a snapshot id as `snapshots` lists it, any prefix of one that matches no other snapshot' in text
    assert '"latest" for the newest snapshot' in text


def test_restore_to_a_bind_this_host_does_not_have_is_not_whole_and_rehost_fixes_it(tmp_path):
    env = cli_env()
    make_sample_installation(tmp_path / "cells")
    repo = str(tmp_path / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    run_cli("--repo", repo, "backup", "--cells-dir", str(tmp_path / "cells"), "--no-database", env=env, check=True)
    new = tmp_path / "new"
    r = run_cli("--repo", repo, "restore", "latest", "--cells-dir", str(new), "--bind", "192.0.2.10:443", env=env)
    assert r.code == 1
    assert ("error: defaults.sites[0].Binds: 192.0.2.10:443 is not an address of this host, Cells cannot listen "
            "there (use --bind, e.g. --bind 0.0.0.0:8080)\n"
            "installation is NOT whole: see the errors above\n") in r.stdout
    assert run_cli("rehost", "--cells-dir", str(new), "--bind", "0.0.0.0:8443", env=env).code == 0
    r = run_cli("verify-install", "--cells-dir", str(new), "--no-database", env=env)
    assert (r.code, r.stdout) == (0, "installation is whole\n")
