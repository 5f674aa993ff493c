"""systemd units and the crontab line for `run`."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import stat
import subprocess
import sys

import pytest

from cells_backup.engine.schedule import (
    SERVICE_NAME,
    TIMER_NAME,
    cron_line,
    default_minute,
    install_systemd,
    resolve_command,
    systemd_units,
)
from cells_backup.errors import UsageError


@pytest.fixture
def exe(tmp_path):
    """A real executable standing in for cells-backup (systemd-analyze verify checks it exists)."""
    path = tmp_path / "bin dir" / "cells-backup"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


def parse_unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, comment_prefixes=("#", ";"))
    parser.optionxform = str  # keys are case-sensitive in units
    parser.read_string(text)
    return parser


def test_service_structure(exe):
    units = systemd_units("/etc/cells-backup/config.toml", executable=exe)
    assert set(units) == {SERVICE_NAME, TIMER_NAME}
    service = parse_unit(units[SERVICE_NAME])["Service"]
    assert service["Type"] == "oneshot"
    assert service["User"] == "root"
    assert service["ExecStart"] == f'"{exe}" --config /etc/cells-backup/config.toml run'
    assert service["Nice"] == "10"
    assert service["IOSchedulingClass"] == "best-effort" and service["IOSchedulingPriority"] == "7"
    assert service["PrivateTmp"] == "yes"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "full"  # not strict: Cells' folders and the repository stay writable
    for forbidden in ("ProtectHome", "PrivateNetwork", "PrivateDevices", "ReadOnlyPaths", "InaccessiblePaths",
                      "RestrictAddressFamilies"):  # each could hide Cells' dirs or the DB socket
        assert forbidden not in service
    assert "ReadWritePaths" not in service
    assert "Install" not in parse_unit(units[SERVICE_NAME])  # started by the timer only


def test_timer_structure(exe):
    units = systemd_units("/etc/cells-backup/config.toml", executable=exe, on_calendar="*-*-* 02:30:00",
                          randomized_delay="1h")
    timer = parse_unit(units[TIMER_NAME])
    assert timer["Timer"]["OnCalendar"] == "*-*-* 02:30:00"
    assert timer["Timer"]["RandomizedDelaySec"] == "1h"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == SERVICE_NAME
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_paths_are_absolute_and_quoted(exe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    units = systemd_units("my 100% config.toml", executable=exe, user="backup")
    service = parse_unit(units[SERVICE_NAME])["Service"]
    assert service["User"] == "backup"
    assert service["ExecStart"].endswith(f'--config "{tmp_path}/my 100%% config.toml" run')


def test_read_write_paths_only_for_protected_locations(exe):
    config = {"repository": "/etc/backups/cells", "log_file": "/var/log/cells-backup.log",
              "monitoring": {"prometheus_textfile": "/usr/local/node/cells.prom"}}
    service = parse_unit(systemd_units("/c.toml", executable=exe, config=config)[SERVICE_NAME])["Service"]
    assert "ReadWritePaths" in service
    text = systemd_units("/c.toml", executable=exe, config=config)[SERVICE_NAME]
    assert service["ReadWritePaths"] == "-/etc/backups/cells -/usr/local/node"
    assert "/var/log" not in text
    s3 = systemd_units("/c.toml", executable=exe, config={"repository": "s3://bucket/cells"})[SERVICE_NAME]
    assert "ReadWritePaths" not in s3


def test_private_tmp_can_be_turned_off(exe):
    text = systemd_units("/c.toml", executable=exe, private_tmp=False)[SERVICE_NAME]
    assert "PrivateTmp=" not in text


def test_newlines_are_refused(exe):
    with pytest.raises(UsageError):
        systemd_units("/c.toml", executable=exe, on_calendar="daily\nExecStartPre=/bin/evil")
    with pytest.raises(UsageError):
        systemd_units("/c\n.toml", executable=exe)


def test_default_command_is_absolute():
    command = resolve_command()
    assert os.path.isabs(command[0])
    assert command == [command[0]] or command[1:] == ["-m", "cells_backup"]


def _script(path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def other_on_path(tmp_path, monkeypatch):
    """Another cells-backup first on PATH (another installation, a version manager's shim): never chosen."""
    other = _script(tmp_path / "elsewhere" / "cells-backup")
    monkeypatch.setenv("PATH", f"{os.path.dirname(other)}:{os.environ.get('PATH', '')}")
    return other


def test_units_run_the_command_being_run_through_its_link(tmp_path, monkeypatch, other_on_path):
    """`/usr/local/bin/cells-backup schedule --systemd` -> ExecStart is the virtualenv's script the link points to."""
    installed = _script(tmp_path / "opt" / "cells-backup" / "bin" / "cells-backup")
    link = tmp_path / "usr-local-bin" / "cells-backup"
    link.parent.mkdir()
    link.symlink_to(installed)
    monkeypatch.setattr(sys, "argv", [str(link), "schedule", "--systemd"])
    assert resolve_command() == [installed]
    service = parse_unit(systemd_units("/etc/cells-backup/config.toml")[SERVICE_NAME])["Service"]
    assert service["ExecStart"] == f"{installed} --config /etc/cells-backup/config.toml run"
    assert shlex.split(cron_line("/c.toml", minute=5))[5] == installed


def test_python_m_uses_the_script_beside_the_running_python(tmp_path, monkeypatch, other_on_path):
    venv_bin = tmp_path / "venv" / "bin"
    beside = _script(venv_bin / "cells-backup")
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "src" / "cells_backup" / "__main__.py")])
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    assert resolve_command() == [beside]


def test_python_m_without_a_script_keeps_the_interpreter_unresolved(tmp_path, monkeypatch, other_on_path):
    """A virtualenv's python is a symlink: resolving it would run the base interpreter without the venv."""
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    monkeypatch.setattr(sys, "argv", ["-m"])
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    assert resolve_command() == [str(venv_bin / "python"), "-m", "cells_backup"]


def test_install_writes_0644_files(tmp_path, exe):
    units = systemd_units("/etc/cells-backup/config.toml", executable=exe)
    paths = install_systemd(units, directory=str(tmp_path))
    assert sorted(paths) == sorted(str(tmp_path / n) for n in units)
    for path in paths:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        with open(path) as f:
            assert f.read() == units[os.path.basename(path)]
    assert sorted(os.listdir(tmp_path)) == sorted([*units, "bin dir"])  # no temp files left


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("config_path", ["/etc/cells-backup/config.toml", "/etc/cells backup/100% sure.toml"])
def test_units_pass_systemd_analyze_verify(tmp_path, exe, config_path):
    units = systemd_units(config_path, executable=exe, config={"repository": "/etc/repo"})
    unit_dir = tmp_path / "units"
    paths = install_systemd(units, directory=str(unit_dir))
    proc = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})
    ours = [line for line in proc.stderr.splitlines() if "cells-backup" in line or str(unit_dir) in line]
    assert proc.returncode == 0, proc.stderr
    assert ours == [], proc.stderr  # no "Unknown key ... ignoring" or bad-setting warnings for our units


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_verify_catches_a_missing_executable(tmp_path, exe):
    """Proves the verify test above can fail: systemd-analyze does check ExecStart."""
    units = systemd_units("/c.toml", executable=exe)
    units[SERVICE_NAME] = units[SERVICE_NAME].replace(exe, "/nonexistent/cells-backup")
    paths = install_systemd(units, directory=str(tmp_path))
    proc = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0


def test_cron_line(exe):
    line = cron_line("/etc/cells-backup/config.toml", minute=17, hour=3, executable=exe)
    fields = line.split(" ", 5)
    assert fields[:5] == ["17", "3", "*", "*", "*"]
    assert shlex.split(fields[5]) == [exe, "--config", "/etc/cells-backup/config.toml", "-q", "run"]


def test_cron_line_for_cron_d_and_percent(exe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = cron_line("50%.toml", minute=0, hour="1,13", executable=exe, user="root")
    assert line.startswith("0 1,13 * * * root ")
    assert f"{tmp_path}/50\\%.toml" in line  # a bare % would end the command in cron


def test_cron_default_minute_is_stable():
    assert default_minute("host-a") == default_minute("host-a")
    assert 0 <= default_minute() <= 59
    assert cron_line("/c.toml", executable=sys.executable).split()[0] == str(default_minute())


def test_cron_rejects_bad_fields(exe):
    with pytest.raises(UsageError):
        cron_line("/c.toml", minute=60, executable=exe)
    with pytest.raises(UsageError):
        cron_line("/c.toml", minute=1, hour=24, executable=exe)
