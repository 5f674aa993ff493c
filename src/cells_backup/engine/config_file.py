"""The TOML config file: keys mirror the command-line flags (README.md, "Nightly timer", has a sample).

A config file is written once and then run unattended by a timer, so a typo must fail loudly at
load time (`keep_dialy = 7` silently keeping every snapshot forever is the failure we prevent),
with one line naming the key and where it is. `validate_config` returns every problem (for
`config check`); `load_config` raises on the first; `check_complete` adds what `run` needs
(a repository and a password source) without making partial configs unloadable.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from urllib.parse import urlsplit

from ..errors import UsageError
from .config_lines import find_line

DEFAULT_LOCATIONS = ("/etc/cells-backup/config.toml", "~/.config/cells-backup/config.toml")
PASSWORD_ENV = ("CELLS_BACKUP_PASSWORD", "CELLS_BACKUP_PASSWORD_FILE", "CELLS_BACKUP_PASSWORD_COMMAND")
REPOSITORY_ENV = "CELLS_BACKUP_REPOSITORY"


class ConfigError(UsageError):
    """A config file that cannot be used; `problems` holds every line found (the message is the first)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0])
        self.problems = problems


@dataclass(frozen=True)
class Problem:
    section: str | None  # None: top level
    key: str | None  # None: the whole table
    text: str  # the message without the location prefix


# ---------------------------------------------------------------- value checks

Check = Callable[[object], str | None]  # returns the complaint (after "<key> "), or None when fine


def _show(value: object) -> str:
    """A value as the admin wrote it in TOML, for "got ..." in messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime | date | time):
        return f"the date/time {value.isoformat()}"
    return repr(value)


def _string(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, got {_show(value)}"
    if not value.strip():
        return "must not be empty"
    return None


def _boolean(value: object) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {_show(value)}"


def _string_list(value: object) -> str | None:
    if not isinstance(value, list):
        return f"must be an array of strings, got {_show(value)}"
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            return f"must be an array of non-empty strings, got {_show(item)} at position {i + 1}"
    return None


def _string_or_list(value: object) -> str | None:
    return _string(value) if isinstance(value, str) else _string_list(value)


def _count(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer, got {_show(value)}"
    if value < -1:
        return f"must be 0 or more (or -1 for unlimited), got {value}"
    return None


def _http_url(value: object) -> str | None:
    problem = _string(value)
    if problem:
        return problem
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL, got {_show(value)}"
    return None


def _duration(value: object) -> str | None:
    from .retention import parse_duration  # one parser for the file and for `forget --keep-within`

    if not isinstance(value, str):
        return f"must be a duration string like \"7d\" or \"1y6m\", got {_show(value)}"
    try:
        parse_duration(value)
    except UsageError:
        return f"must be a duration: numbers with units y, m, w, d, h (e.g. \"7d\", \"1y6m\"), got {_show(value)}"
    return None


def _group_by(value: object) -> str | None:
    from .forget_plan import parse_group_by  # the parser `forget --group-by` uses

    if not isinstance(value, str):
        return f"must be a string like \"host,paths\", got {_show(value)}"
    try:
        parse_group_by(value)
    except UsageError as exc:
        return str(exc).replace("unknown --group-by field", "has an unknown field")
    return None


def _share(value: object) -> str | None:
    from .retention_keys import parse_share  # the parser `forget --max-unused` uses

    if not isinstance(value, str):
        return f"must be a percentage string like \"10%\", got {_show(value)}"
    try:
        parse_share(value)
    except UsageError:
        return f"must be a percentage like \"10%\", got {_show(value)}"
    return None


def _retention_checks() -> dict[str, Check]:
    """`[retention]`: the keys of `forget`'s flags (engine.retention_keys), each checked by kind."""
    from .retention_keys import RETENTION_KEYS

    by_kind: dict[str, Check] = {"count": _count, "duration": _duration, "tags": _string_or_list,
                                 "group_by": _group_by, "switch": _boolean, "share": _share}
    return {key.name: by_kind[key.kind] for key in RETENTION_KEYS}


def _subset(value: object) -> str | None:
    from ..repository.check import parse_subset  # the parser `check --read-data-subset` uses

    if not isinstance(value, str):
        return f"must be a string like \"5%\" or \"1/7\", got {_show(value)}"
    try:
        parse_subset(value)
    except UsageError as exc:
        return str(exc).replace("read data subset ", "")
    return None


def _repository(value: object) -> str | None:
    problem = _string(value)
    if problem:
        return problem
    text = str(value)
    if text.startswith("s3://"):
        return None if urlsplit(text).netloc else f"must name a bucket: s3://bucket/prefix, got {_show(value)}"
    if "://" in text:
        return f"must be a local path or s3://bucket/prefix, got {_show(value)}"
    return None


def _prom_file(value: object) -> str | None:
    problem = _string(value)
    if problem:
        return problem
    if not str(value).endswith(".prom"):  # node_exporter's textfile collector reads *.prom only
        return f"must end in .prom (the textfile collector ignores other files), got {_show(value)}"
    return None


# ---------------------------------------------------------------- the schema

# section None is the top level; add keys here when the CLI grows a flag.
SCHEMA: dict[str | None, dict[str, Check]] = {
    None: {
        "repository": _repository,
        "password_file": _string,
        "password_command": _string,
        "cells_dir": _string,
        "exclude": _string_list,
        "extra_paths": _string_list,
        "tags": _string_or_list,
        "live": _boolean,
        "log_file": _string,
    },
    "hooks": {"stop_command": _string, "start_command": _string},
    "retention": _retention_checks(),
    "check": {"read_data_subset": _subset, "read_data": _boolean},
    "monitoring": {
        "prometheus_textfile": _prom_file,
        "ping_url": _http_url,
        "webhook_url": _http_url,
        "command": _string,
    },
    "s3": {"endpoint": _http_url, "region": _string, "path_style": _boolean},
    "drill": {"target_dir": _string, "database_url": _string, "snapshot": _string},
}


def _problems(data: Mapping) -> list[Problem]:
    out: list[Problem] = []
    for key, value in data.items():
        if isinstance(value, dict) and key in SCHEMA and key is not None:
            out.extend(_table_problems(key, value))
            continue
        if key in SCHEMA[None]:
            complaint = SCHEMA[None][key](value)
            if complaint:
                out.append(Problem(None, key, f"{key} {complaint}"))
        elif key in SCHEMA:
            out.append(Problem(None, key, f"[{key}] must be a table, got {_show(value)}"))
        elif isinstance(value, dict):
            out.append(Problem(key, None, _unknown(key, None, data)))  # located by its [header]
        else:
            out.append(Problem(None, key, _unknown(key, None, data)))
    if data.get("password_file") and data.get("password_command"):
        out.append(Problem(None, "password_command", "give password_file or password_command, not both"))
    return out


def _table_problems(section: str, table: dict) -> list[Problem]:
    schema = SCHEMA[section]
    out: list[Problem] = []
    for key, value in table.items():
        if key not in schema:
            out.append(Problem(section, key, _unknown(key, section, table)))
            continue
        complaint = schema[key](value)
        if complaint:
            out.append(Problem(section, key, f"[{section}] {key} {complaint}"))
    if section == "retention" and not table:
        out.append(Problem(section, None, "[retention] is empty: give at least one keep_* key, or remove the table"))
    if section == "hooks" and table.get("stop_command") and not table.get("start_command"):
        out.append(Problem(section, "stop_command",
                           "[hooks] stop_command is set without start_command: Cells would stay stopped"))
    if section == "check" and table.get("read_data") is True and "read_data_subset" in table:
        out.append(Problem(section, "read_data_subset", "[check] give read_data or read_data_subset, not both"))
    return out


def _unknown(key: str, section: str | None, siblings: Mapping) -> str:
    known = list(SCHEMA[section]) + ([s for s in SCHEMA if s] if section is None else [])
    close = difflib.get_close_matches(key, known, n=1)
    where = f"[{section}] " if section else ""
    hint = f" (did you mean {close[0]}?)" if close else ""
    if section is None and isinstance(siblings.get(key), dict):
        return f"unknown table [{key}]{hint}"
    return f"unknown key {where}{key}{hint}"


def _locate(path: str | None, text: str | None, problem: Problem) -> str:
    where = f"config {path}" if path else "config"
    line = find_line(text, problem.section, problem.key) if text is not None else None
    return f"{where} line {line}: {problem.text}" if line else f"{where}: {problem.text}"


_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _syntax_message(path: str | None, exc: tomllib.TOMLDecodeError) -> str:
    where = f"config {path}" if path else "config"
    text = str(exc)
    m = _TOML_POS.search(text)
    if m:
        return f"{where} line {m.group(1)}: invalid TOML: {text[:m.start()]} (column {m.group(2)})"
    return f"{where}: invalid TOML: {text}"


# ---------------------------------------------------------------- public API


def validate_config(text_or_dict: str | bytes | Mapping, path: str | None = None) -> list[str]:
    """Every problem of a config, each one line naming the key and its line; [] when it is good.

    Given a dict and the path of an existing file, the file is read for line numbers only.
    """
    text: str | None
    if isinstance(text_or_dict, Mapping):
        data = text_or_dict
        text = _read_text(path) if path else None
    else:
        text = text_or_dict.decode("utf-8", "replace") if isinstance(text_or_dict, bytes) else text_or_dict
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            return [_syntax_message(path, exc)]
    return [_locate(path, text, p) for p in _problems(data)]


def check_complete(config: Mapping, env: Mapping[str, str] | None = None, path: str | None = None) -> list[str]:
    """What an unattended `run` still lacks: a repository and a non-interactive password source.

    Flags override the file: the CLI merges --repo/--password-* into a copy of ``config`` first.
    """
    env = os.environ if env is None else env
    text = _read_text(path) if path else None
    problems: list[str] = []
    repo = config.get("repository") or env.get(REPOSITORY_ENV)
    if not repo:
        problems.append(_locate(path, text, Problem(None, None,
                        f"no repository: set repository (or {REPOSITORY_ENV} / --repo)")))
    has_password = (config.get("password_file") or config.get("password_command")
                    or any(env.get(name) for name in PASSWORD_ENV))
    if repo and not has_password:
        problems.append(_locate(path, text, Problem(None, "repository" if config.get("repository") else None,
                        "repository is set but no password source: set password_file or password_command "
                        "(or CELLS_BACKUP_PASSWORD_FILE / CELLS_BACKUP_PASSWORD_COMMAND / CELLS_BACKUP_PASSWORD)")))
    return problems


def require_complete(config: Mapping, env: Mapping[str, str] | None = None, path: str | None = None) -> None:
    """`check_complete`, raising ConfigError on the first gap (for `run`)."""
    problems = check_complete(config, env, path)
    if problems:
        raise ConfigError(problems)


def find_config_path(path: str | None) -> str | None:
    """``path`` as given, else the first default location that exists, else None."""
    if path is not None:
        return path
    for candidate in DEFAULT_LOCATIONS:
        candidate = os.path.expanduser(candidate)
        if os.path.isfile(candidate):
            return candidate
    return None


def read_config_text(path: str) -> str:
    """The file's text; a missing or unreadable file is one clear line."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise UsageError(f"config {path} line {line}: not UTF-8 text (TOML files must be UTF-8)") from None
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"config file {path} is a directory") from None
    except OSError as exc:
        raise UsageError(f"config file {path}: {exc.strerror}") from None


def load_config(path: str | None) -> dict:
    """Parse and validate ``path`` (or the first default location that exists); {} when there is none.

    Raises ConfigError (exit code 2) naming the first bad key and its line; ``.problems`` has all.
    ``tags`` and ``[retention] keep_tag`` are normalised to lists.
    """
    path = find_config_path(path)
    if path is None:
        return {}
    text = read_config_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_message(path, exc)]) from None
    problems = [_locate(path, text, p) for p in _problems(data)]
    if problems:
        raise ConfigError(problems)
    if isinstance(data.get("tags"), str):
        data["tags"] = [data["tags"]]
    retention = data.get("retention")
    if isinstance(retention, dict) and isinstance(retention.get("keep_tag"), str):
        retention["keep_tag"] = [retention["keep_tag"]]
    return data


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None
