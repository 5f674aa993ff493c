"""Every retention key can be given both ways: as a `forget` flag and in the config's [retention],
and `run` applies the config's keys the way `forget` applies the flags."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cells_backup.cli.commands_maintenance import forget, repair
from cells_backup.engine.config_file import SCHEMA, load_config
from cells_backup.engine.job import forget_by_config
from cells_backup.repository.backends.local import LocalBackend
from cells_backup.repository.repository import Repository
from cells_backup.repository.snapshot import Snapshot
from helpers import cli_env, run_cli, save_tree

RETENTION = """\
[retention]
keep_last = 1
keep_within_daily = "3d"
group_by = "host"
prune = false
"""


def write_config(tmp_path, retention: str) -> str:
    password = tmp_path / "password"
    password.write_text("pw\n")
    password.chmod(0o600)
    config = tmp_path / "config.toml"
    config.write_text(f'repository = "{tmp_path / "repo"}"\npassword_file = "{password}"\n\n{retention}')
    return str(config)


@pytest.fixture
def history(tmp_path) -> tuple[Repository, dict[str, str]]:
    """A real repository: host alpha backed up daily at noon from 1 to 20 January (plus two earlier
    runs on the 20th), host beta once on 1 January from /x and once on 12 January from /y."""
    backend = LocalBackend(str(tmp_path / "repo"))
    repo = Repository.create(backend, b"pw", kdf={"n": 1024, "r": 8, "p": 1})
    tree = save_tree(repo, [])
    names: dict[str, str] = {}

    def save(name: str, host: str, moment: datetime, path: str) -> None:
        snap = Snapshot(time=moment.isoformat(), hostname=host, username="root", paths=[path], tree=tree)
        names[repo.save_snapshot(snap)] = name

    for day in range(1, 21):
        save(f"alpha-{day:02d}", "alpha", datetime(2024, 1, day, 12, tzinfo=UTC), "/var/cells")
    for hour in (6, 8):
        save(f"alpha-20-{hour:02d}h", "alpha", datetime(2024, 1, 20, hour, tzinfo=UTC), "/var/cells")
    save("beta-x", "beta", datetime(2024, 1, 1, 12, tzinfo=UTC), "/x")
    save("beta-y", "beta", datetime(2024, 1, 12, 12, tzinfo=UTC), "/y")
    return repo, names


# keep_last 1 and one a day within 3 days of each group's newest; beta's two paths are one group.
KEPT = {"alpha-20", "alpha-19", "alpha-18", "beta-y"}


def test_forget_flags_and_config_keys_are_the_same_list():
    common = {p.name for p in repair.params}
    flags = {p.name for p in forget.params} - common - {"dry_run"}
    assert flags == set(SCHEMA["retention"])
    assert {"group_by", "keep_within_daily", "keep_within_weekly", "keep_within_monthly"} <= flags


def test_config_check_accepts_group_by_and_keep_within_daily(tmp_path):
    config = write_config(tmp_path, RETENTION + 'keep_within_weekly = "2m"\nmax_unused = "5%"\n')
    r = run_cli("--config", config, "config", "check", env=cli_env(password=None))
    assert r.code == 0, r.stdout + r.stderr


@pytest.mark.parametrize("line, words", [
    ('keep_within_dialy = "3d"', ["line 6", "unknown key [retention] keep_within_dialy",
                                  "did you mean keep_within_daily"]),
    ('group_by = "colour"', ["line 6", "[retention] group_by", "'colour'"]),
    ("group_by = 3", ["line 6", "[retention] group_by must be a string"]),
    ('keep_within_daily = "3x"', ["line 6", "[retention] keep_within_daily must be a duration"]),
    ('max_unused = "lots"', ["line 6", "[retention] max_unused must be a percentage"]),
])
def test_config_check_reports_a_bad_retention_key_with_its_line(tmp_path, line, words):
    config = write_config(tmp_path, "[retention]\nkeep_last = 1\n" + line + "\n")
    r = run_cli("--config", config, "config", "check", env=cli_env(password=None))
    assert r.code == 2
    for word in words:
        assert word in r.stdout + r.stderr


def test_run_applies_group_by_and_keep_within_daily_from_the_config(tmp_path, history):
    repo, names = history
    retention = load_config(write_config(tmp_path, RETENTION))["retention"]
    steps = forget_by_config(repo, retention)
    assert steps == ["forget: removed 20 snapshots"]  # prune = false: no prune step
    assert {names[s.id] for s in repo.list_snapshots()} == KEPT


def test_forget_flags_keep_what_the_config_keeps(tmp_path, history):
    repo, names = history
    env = cli_env(password="pw")
    flags = ["--keep-last", "1", "--keep-within-daily", "3d", "--group-by", "host"]
    dry = run_cli("--repo", str(tmp_path / "repo"), "forget", *flags, "--dry-run", env=env)
    assert dry.code == 0, dry.stderr
    assert dry.stdout.rstrip().endswith("(dry run: nothing removed)")
    assert "Total: 4 kept, 20 removed" in dry.stdout
    assert len(repo.snapshot_ids()) == 24
    r = run_cli("--repo", str(tmp_path / "repo"), "forget", *flags, "--json", env=env)
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"plan", "removed"}
    assert {names[s.id] for s in repo.list_snapshots()} == KEPT
    assert sorted(doc["removed"]) == sorted(set(names) - {s.id for s in repo.list_snapshots()})

