"""Units and crontab lines that run `cells-backup --config FILE run` unattended.

Generated rather than documented because the details matter and are easy to get wrong: an
absolute executable (timers and cron have a bare PATH), an absolute config path (cwd is /),
quoting (systemd expands % and $, cron turns % into newlines), a persistent timer so a backup
missed while the server was off runs at boot, and hardening that leaves Cells' folders, the
database socket and the `systemctl stop/start cells` hooks working.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from ..atomicfile import write_atomic
from ..errors import CellsBackupError, UsageError

SERVICE_NAME = "cells-backup.service"
TIMER_NAME = "cells-backup.timer"
ENABLE_COMMANDS = (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", TIMER_NAME])
# ProtectSystem=full makes these read-only; a repository, log or metrics file below them needs an exception.
_READ_ONLY_UNDER_FULL = ("/usr", "/boot", "/efi", "/etc")


def resolve_command(executable: str | None = None) -> list[str]:
    """The absolute command that starts this cells-backup: the given path, else the one running now.

    The one running now is the `cells-backup` script being executed (a link such as
    /usr/local/bin/cells-backup resolved to the virtualenv's script, which survives upgrades), else
    the script beside this interpreter, else this interpreter with `-m cells_backup`. Never a
    `cells-backup` found on PATH: that may be another installation, or a version manager's shim.
    """
    if executable:
        path = shutil.which(executable) if os.sep not in executable else executable
        if not path or not os.access(path, os.X_OK):
            raise UsageError(f"{executable} is not an executable file")
        return [os.path.abspath(path)]
    running = sys.argv[0] if sys.argv else ""
    if os.path.basename(running) == "cells-backup" and _is_executable_file(running):
        return [os.path.realpath(running)]
    beside_python = Path(sys.executable).parent / "cells-backup"  # the venv's script, even if not on PATH
    if _is_executable_file(str(beside_python)):
        return [os.path.abspath(beside_python)]
    # Not resolved: a virtualenv's python is a symlink whose target would lose the virtualenv.
    return [os.path.abspath(sys.executable), "-m", "cells_backup"]


def _is_executable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _systemd_quote(arg: str) -> str:
    """One ExecStart argument: %-specifiers and $-variables escaped, quoted when needed."""
    if any(c in arg for c in "\n\r\0"):
        raise UsageError(f"{arg!r} cannot appear in a systemd unit")
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if escaped and not any(c in escaped for c in " \t\"'\\;"):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _path_quote(arg: str) -> str:
    """A path setting (no $-expansion there, only %-specifiers), quoted when it has blanks."""
    if any(c in arg for c in "\n\r\0"):
        raise UsageError(f"{arg!r} cannot appear in a systemd unit")
    escaped = arg.replace("%", "%%")
    if not any(c in escaped for c in " \t\"'\\"):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unit_value(name: str, value: str) -> str:
    if not value or any(c in value for c in "\n\r\0"):
        raise UsageError(f"{name} must be one non-empty line, got {value!r}")
    return value


def _extra_writable_paths(config: Mapping) -> list[str]:
    """Directories the run writes that ProtectSystem=full would make read-only (rare, but silent breakage)."""
    candidates: list[str] = []
    repo = config.get("repository")
    if isinstance(repo, str) and "://" not in repo:
        candidates.append(repo)
    for value in (config.get("log_file"), (config.get("monitoring") or {}).get("prometheus_textfile")):
        if isinstance(value, str) and value:
            candidates.append(os.path.dirname(value))
    out: list[str] = []
    for path in candidates:
        path = os.path.abspath(os.path.expanduser(path))
        if any(path == top or path.startswith(top + "/") for top in _READ_ONLY_UNDER_FULL) and path not in out:
            out.append(path)
    return out


def systemd_units(
    config_path: str,
    *,
    user: str = "root",
    on_calendar: str = "daily",
    randomized_delay: str = "30m",
    executable: str | None = None,
    config: Mapping | None = None,
    private_tmp: bool = True,
) -> dict[str, str]:
    """``{"cells-backup.service": ..., "cells-backup.timer": ...}`` running ``run`` with this config.

    ``config`` (the parsed file) only adds ReadWritePaths= when the repository, log or metrics file
    lies below /etc or /usr. Set ``private_tmp=False`` when the database socket lives in /tmp.
    """
    config_path = os.path.abspath(os.path.expanduser(config_path))
    command = resolve_command(executable) + ["--config", config_path, "run"]
    exec_start = " ".join(_systemd_quote(a) for a in command)
    user = _unit_value("user", user)
    on_calendar = _unit_value("on_calendar", on_calendar)
    randomized_delay = _unit_value("randomized_delay", randomized_delay)

    hardening = [
        "# Hardening that keeps Cells' folders, the database socket (/run) and the stop/start hooks working:",
        "# read-only /usr, /boot and /etc; nothing else hidden. PrivateTmp: drop it if the DB socket is in /tmp.",
        "NoNewPrivileges=yes",
        "ProtectSystem=full",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictRealtime=yes",
        "LockPersonality=yes",
        "UMask=0077",
    ]
    if private_tmp:
        hardening.insert(2, "PrivateTmp=yes")
    writable = _extra_writable_paths(config or {})
    if writable:  # "-": a path that does not exist yet must not stop the unit from starting
        hardening.append("ReadWritePaths=" + " ".join(_path_quote("-" + p) for p in writable))

    service = "\n".join([
        "# Generated by `cells-backup schedule --systemd`.",
        "[Unit]",
        "Description=cells-backup: snapshot Pydio Cells, apply retention, check the repository",
        "Wants=network-online.target",
        "# Wait for a local database when the timer fires at boot (Persistent=true).",
        "After=network-online.target mariadb.service mysql.service mysqld.service postgresql.service",
        "",
        "[Service]",
        "Type=oneshot",
        f"User={user}",
        f"ExecStart={exec_start}",
        "# Gentle on the server, but not idle I/O: while Cells is stopped, a starved backup means longer downtime.",
        "Nice=10",
        "IOSchedulingClass=best-effort",
        "IOSchedulingPriority=7",
        "# start_command must start Cells through its own service (systemctl start cells): anything it",
        "# forks here is killed with this unit's cgroup when the run ends.",
        *hardening,
        "",
    ])
    timer = "\n".join([
        "# Generated by `cells-backup schedule --systemd`.",
        "[Unit]",
        "Description=cells-backup: scheduled backup of Pydio Cells",
        "",
        "[Timer]",
        f"OnCalendar={on_calendar}",
        f"RandomizedDelaySec={randomized_delay}",
        "# A run missed while the machine was off happens at the next boot.",
        "Persistent=true",
        f"Unit={SERVICE_NAME}",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])
    return {SERVICE_NAME: service, TIMER_NAME: timer}


def install_systemd(units: Mapping[str, str], directory: str = "/etc/systemd/system") -> list[str]:
    """Write the units (0644, atomically) and return their paths; enabling is `ENABLE_COMMANDS`."""
    written: list[str] = []
    try:
        os.makedirs(directory, exist_ok=True)  # ~/.config/systemd/user may not exist yet
    except OSError as exc:
        raise CellsBackupError(f"cannot create {directory}: {exc.strerror}") from None
    for name, text in units.items():
        target = os.path.join(directory, name)
        try:
            write_atomic(target, text.encode("utf-8"), 0o644)
        except OSError as exc:
            raise CellsBackupError(f"cannot write {target}: {exc.strerror}") from None
        written.append(target)
    return written


def default_minute(seed: str | None = None) -> int:
    """A stable minute from the host name, so a fleet does not hit the same S3 bucket at :00."""
    digest = hashlib.sha256((seed or socket.gethostname()).encode()).digest()
    return digest[0] % 60


def cron_line(
    config_path: str,
    minute: int | None = None,
    hour: int | str = 3,
    *,
    executable: str | None = None,
    user: str | None = None,
) -> str:
    """One crontab line running `-q run` (cron mails output, so only errors are printed).

    ``user`` adds the user field of /etc/cron.d files. ``minute`` defaults to one derived from the host name.
    """
    minute = default_minute() if minute is None else minute
    if not isinstance(minute, int) or not 0 <= minute <= 59:
        raise UsageError(f"minute must be 0-59, got {minute!r}")
    if isinstance(hour, int) and not 0 <= hour <= 23:
        raise UsageError(f"hour must be 0-23, got {hour!r}")
    hour_field = str(hour)
    if not hour_field or any(c.isspace() for c in hour_field):
        raise UsageError(f"hour must be a cron hour field like 3 or 1,13, got {hour!r}")
    config_path = os.path.abspath(os.path.expanduser(config_path))
    command = resolve_command(executable) + ["--config", config_path, "-q", "run"]
    text = " ".join(shlex.quote(a) for a in command)
    if "\n" in text:
        raise UsageError("the command cannot contain a newline")
    text = text.replace("%", "\\%")  # cron turns a bare % into a newline
    fields = [str(minute), hour_field, "*", "*", "*"] + ([user] if user else [])
    return " ".join(fields + [text])
