"""The config file: a good one loads, each mistake is one line naming the key and its line."""

from __future__ import annotations

import pytest

from cells_backup.engine import config_file
from cells_backup.engine.config_file import (
    ConfigError,
    check_complete,
    load_config,
    require_complete,
    validate_config,
)
from cells_backup.errors import ExitCode, UsageError

# The config sample of README.md ("Nightly timer"), plus the keys it leaves out (`exclude`,
# `webhook_url`) and end-of-line comments as administrators write them.
SAMPLE_CONFIG = """\
repository = "/srv/backups/cells"          # or "s3://bucket/prefix"
password_file = "/etc/cells-backup/password"   # or password_command = "..."
cells_dir = "/var/cells"
exclude = ["data/personal/tmp"]
extra_paths = ["/etc/nginx/sites-enabled/cells"]

[hooks]
stop_command = "systemctl stop cells"
start_command = "systemctl start cells"

[retention]                                  # applied by `run`; keys mirror forget: keep_last, keep_hourly, ...
keep_daily = 7
keep_weekly = 4
keep_monthly = 12

[check]                                      # run by `run` after the backup
read_data_subset = "5%"

[monitoring]
prometheus_textfile = "/var/lib/prometheus/node-exporter/cells_backup.prom"
ping_url = "https://hc.example.com/ping/UUID"    # GET on start, /fail on failure, plain on success
webhook_url = "https://hooks.example.com/x"       # POST with a JSON summary
"""

EXTRA_TOP = """\
log_file = "/var/log/cells-backup.log"
tags = "nightly"
"""
EXTRA_TABLES = """\
[s3]
endpoint = "https://s3.example.com"
region = "eu-west-1"
path_style = true
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def test_sample_config_loads(tmp_path):
    config = load_config(write(tmp_path, SAMPLE_CONFIG))
    assert config["repository"] == "/srv/backups/cells"
    assert config["retention"] == {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}
    assert config["check"]["read_data_subset"] == "5%"
    assert config["monitoring"]["ping_url"].startswith("https://")
    assert validate_config(SAMPLE_CONFIG, "x") == []
    assert check_complete(config, env={}) == []


def test_every_documented_key_and_extra_keys_load(tmp_path):
    text = EXTRA_TOP + SAMPLE_CONFIG.replace(
        "keep_monthly = 12",
        'keep_monthly = 12\nkeep_last = 3\nkeep_hourly = -1\nkeep_yearly = 0\nkeep_within = "1y6m"\n'
        'keep_tag = ["keep"]\nprune = true',
    ).replace("webhook_url", 'command = "logger cells-backup"\nwebhook_url') + EXTRA_TABLES
    config = load_config(write(tmp_path, text))
    assert config["tags"] == ["nightly"]  # a single string is normalised to a list
    assert config["s3"]["path_style"] is True
    assert config["retention"]["keep_within"] == "1y6m"


# (description, text, line, words the message must contain)
MISTAKES = [
    ("unknown key", 'repository = "/r"\npassword_file = "/p"\ncolour = 3\n', 3, ["unknown key colour"]),
    ("typo in a table", '[retention]\nkeep_daily = 7\nkeep_montly = 12\n', 3,
     ["[retention] keep_montly", "did you mean keep_monthly"]),
    ("unknown table", 'cells_dir = "/var/cells"\n\n[monitorin]\nping_url = "https://x"\n', 3,
     ["unknown table [monitorin]", "monitoring"]),
    ("wrong type", '[hooks]\nstop_command = "a"\nstart_command = "b"\n\n[retention]\nkeep_weekly = 4\n'
     'keep_daily = "7"\n', 7, ['[retention] keep_daily must be an integer, got "7"']),
    ("bool is not an int", '[retention]\nkeep_last = true\n', 2, ["[retention] keep_last must be an integer"]),
    ("wrong list type", 'exclude = "data/tmp"\n', 1, ["exclude must be an array of strings"]),
    ("negative retention", '[retention]\nkeep_daily = 7\nkeep_weekly = -2\n', 3,
     ["[retention] keep_weekly", "-1 for unlimited", "-2"]),
    ("bad duration", '[retention]\nkeep_within = "2x"\n', 2, ['[retention] keep_within', '"2x"']),
    ("empty retention", 'cells_dir = "/c"\n[retention]\n# nothing yet\n[check]\nread_data_subset = "1/7"\n', 2,
     ["[retention] is empty"]),
    ("bad subset", '[check]\nread_data_subset = "5"\n', 2, ['[check] read_data_subset', '"5%"', '"1/7"', 'got "5"']),
    ("subset over 100%", '[check]\nread_data_subset = "150%"\n', 2, ["[check] read_data_subset", "at most 100"]),
    ("subset n > t", '[check]\nread_data_subset = "8/7"\n', 2, ["[check] read_data_subset", "1 <= n <= t"]),
    ("bad ping URL", '[monitoring]\nwebhook_url = "https://h.example.com/x"\nping_url = "hc.example.com/ping/1"\n', 3,
     ["[monitoring] ping_url", "http:// or https://"]),
    ("bad webhook URL", '[monitoring]\nwebhook_url = "ftp://h.example.com/x"\n', 2, ["[monitoring] webhook_url"]),
    ("dotted key", 'retention.keep_daily = "7"\n', 1, ["[retention] keep_daily must be an integer"]),
    ("inline table", 'cells_dir = "/c"\nretention = { keep_daily = "7" }\n', 2, ["[retention] keep_daily"]),
    ("stop without start", '[hooks]\nstop_command = "systemctl stop cells"\n', 2, ["start_command"]),
    ("both password sources", 'password_file = "/p"\npassword_command = "pass show x"\n', 2, ["not both"]),
    ("repository scheme", 'repository = "sftp://host/x"\n', 1, ["repository", "s3://bucket/prefix"]),
    ("textfile name", '[monitoring]\nprometheus_textfile = "/var/lib/node/cells.txt"\n', 2, [".prom"]),
]


@pytest.mark.parametrize("text,line,words", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_each_mistake_is_one_line_with_key_and_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config {path} line {line}: "), message
    for word in words:
        assert word in message, message
    assert info.value.exit_code == ExitCode.USAGE
    assert validate_config(text, path) == [message]


def test_syntax_error_names_its_line(tmp_path):
    path = write(tmp_path, 'repository = "/r"\n\n[retention]\nkeep_daily = 7 7\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"config {path} line 4: invalid TOML")
    assert "\n" not in str(info.value)


def test_validate_returns_every_problem_in_order(tmp_path):
    text = 'colour = 1\n[retention]\nkeep_daily = "7"\nkeep_within = "2x"\n[check]\nread_data_subset = "x"\n'
    problems = validate_config(text, "/etc/cells-backup/config.toml")
    assert [p.split(":")[0] for p in problems] == [
        "config /etc/cells-backup/config.toml line 1",
        "config /etc/cells-backup/config.toml line 3",
        "config /etc/cells-backup/config.toml line 4",
        "config /etc/cells-backup/config.toml line 6",
    ]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert len(info.value.problems) == 4


def test_validate_a_dict_reads_the_file_for_lines(tmp_path):
    text = '[retention]\nkeep_daily = "7"\n'
    path = write(tmp_path, text)
    assert validate_config({"retention": {"keep_daily": "7"}}, path) == [
        f'config {path} line 2: [retention] keep_daily must be an integer, got "7"'
    ]
    assert validate_config({"retention": {"keep_daily": "7"}}) == [
        'config: [retention] keep_daily must be an integer, got "7"'
    ]


def test_key_in_another_section_is_not_mistaken(tmp_path):
    # keep_daily appears first in a comment under [hooks]; the line must be the [retention] one.
    text = '[hooks]\n# keep_daily = 1\nstart_command = "a"\n\n[retention]\nkeep_daily = "7"\n'
    assert validate_config(text, "c")[0].startswith("config c line 6:")


def test_missing_password_source_is_a_separate_check(tmp_path):
    path = write(tmp_path, 'cells_dir = "/var/cells"\nrepository = "/srv/backups/cells"\n')
    config = load_config(path)  # a partial config still loads
    problems = check_complete(config, env={}, path=path)
    assert len(problems) == 1
    assert problems[0].startswith(f"config {path} line 2: repository is set but no password source")
    assert "password_file" in problems[0] and "password_command" in problems[0]
    for name in ("CELLS_BACKUP_PASSWORD", "CELLS_BACKUP_PASSWORD_FILE", "CELLS_BACKUP_PASSWORD_COMMAND"):
        assert check_complete(config, env={name: "x"}, path=path) == []
    with pytest.raises(ConfigError):
        require_complete(config, env={}, path=path)


def test_missing_repository(tmp_path):
    assert "no repository" in check_complete({"password_file": "/p"}, env={})[0]
    assert check_complete({"password_file": "/p"}, env={"CELLS_BACKUP_REPOSITORY": "/r"}) == []
    assert "no password source" in check_complete({}, env={"CELLS_BACKUP_REPOSITORY": "/r"})[0]


def test_default_locations(tmp_path, monkeypatch):
    first, second = tmp_path / "etc.toml", tmp_path / "home.toml"
    monkeypatch.setattr(config_file, "DEFAULT_LOCATIONS", (str(first), str(second)))
    assert load_config(None) == {}
    second.write_text('cells_dir = "/home"\n')
    assert load_config(None) == {"cells_dir": "/home"}
    first.write_text('cells_dir = "/etc"\n')
    assert load_config(None) == {"cells_dir": "/etc"}
    explicit = write(tmp_path, 'cells_dir = "/explicit"\n')
    assert load_config(explicit) == {"cells_dir": "/explicit"}


def test_missing_explicit_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_config(str(tmp_path / "nope.toml"))


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'cells_dir = "/x"\nexclude = ["caf\xe9"]\n')
    with pytest.raises(UsageError, match=r"line 2: not UTF-8"):
        load_config(str(path))
