"""Logging for people (short lines on stderr) and for timers (a rotating, timestamped file).

A nightly run has no terminal: the log file is what the administrator reads the morning after,
so it keeps INFO even under -q, and it is rotated so it never fills /var/log. Messages pass
through `redact` on their way out, so a DSN quoted in an error never lands in a file in clear.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys

from ..errors import CellsBackupError

LOGGER_NAME = "cells_backup"
_MARK = "_cells_backup_handler"  # handlers we installed, so a second call replaces rather than duplicates

_SECRETS = [
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]+@"), r"\1***@"),  # scheme://user:pw@host
    (re.compile(r"(\b[^:/@\s]+:)[^@\s]+(@(?:tcp|unix|udp)\()"), r"\1***\2"),  # Go DSN user:pw@tcp(host)
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api_key|apikey)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"),
     r"\1\2***"),
]


def redact(text: str) -> str:
    """``text`` with passwords in URLs, Go DSNs and ``password=...`` pairs replaced by ***."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactFilter(logging.Filter):
    """Rewrites each record's final message through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class HumanFormatter(logging.Formatter):
    """``message`` for info, ``warning: message`` otherwise; the logger name at -vv."""

    def __init__(self, show_names: bool = False) -> None:
        super().__init__()
        self.show_names = show_names

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and self.show_names:
            message += "\n" + self.formatException(record.exc_info)
        prefix = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        if self.show_names:
            prefix = f"{record.name}: {prefix}"
        return prefix + message


def _open_private(path: str) -> None:
    """Create the log file 0600 before the handler opens it (it may name paths and hosts)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)


def setup_logging(
    verbose: int = 0,
    quiet: bool = False,
    log_file: str | None = None,
    max_bytes: int = 10 * 1024 * 1024,
    backups: int = 5,
) -> logging.Logger:
    """Configure and return the ``cells_backup`` logger; engine modules log to its children.

    stderr: errors only with ``quiet``, INFO by default, DEBUG from -v (with logger names from -vv).
    ``log_file``: INFO (DEBUG from -v) with ISO timestamps, rotated at ``max_bytes`` keeping ``backups``.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, _MARK, False):
            logger.removeHandler(handler)
            handler.close()
    logger.propagate = False
    logger.setLevel(logging.DEBUG)

    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO)
    stderr.setFormatter(HumanFormatter(show_names=verbose >= 2))
    stderr.addFilter(RedactFilter())
    setattr(stderr, _MARK, True)
    logger.addHandler(stderr)

    if log_file:
        path = os.path.abspath(os.path.expanduser(log_file))
        try:
            _open_private(path)
            handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups,
                                                           encoding="utf-8")
        except OSError as exc:
            logger.removeHandler(stderr)
            stderr.close()
            raise CellsBackupError(f"cannot open log file {path}: {exc.strerror}") from None
        handler.setLevel(logging.DEBUG if verbose else logging.INFO)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                               datefmt="%Y-%m-%dT%H:%M:%S%z"))
        handler.addFilter(RedactFilter())
        setattr(handler, _MARK, True)
        logger.addHandler(handler)
    return logger
