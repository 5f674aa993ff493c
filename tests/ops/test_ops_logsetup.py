"""Logging: short lines on stderr, a rotating timestamped file, no secrets in either."""

from __future__ import annotations

import logging
import os
import re
import stat

import pytest

from cells_backup.engine.logsetup import LOGGER_NAME, redact, setup_logging
from cells_backup.errors import CellsBackupError


@pytest.fixture(autouse=True)
def reset_logger():
    yield
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def test_human_lines_on_stderr(capsys):
    logger = setup_logging(verbose=0, quiet=False, log_file=None)
    child = logging.getLogger(f"{LOGGER_NAME}.engine.backup")
    child.info("snapshot 1a2b3c saved")
    child.warning("Cells was running: snapshot taken live")
    child.debug("not shown")
    err = capsys.readouterr().err
    assert err == "snapshot 1a2b3c saved\nwarning: Cells was running: snapshot taken live\n"
    assert logger.name == LOGGER_NAME


def test_quiet_and_verbose(capsys):
    setup_logging(verbose=0, quiet=True, log_file=None)
    log = logging.getLogger(f"{LOGGER_NAME}.x")
    log.info("info")
    log.warning("warn")
    log.error("bad")
    assert capsys.readouterr().err == "error: bad\n"
    setup_logging(verbose=2, quiet=False, log_file=None)
    log.debug("detail")
    assert capsys.readouterr().err == f"{LOGGER_NAME}.x: debug: detail\n"  # one handler: no duplicates


def test_log_file_has_timestamps_and_is_private(tmp_path, capsys):
    path = tmp_path / "cells-backup.log"
    setup_logging(verbose=0, quiet=True, log_file=str(path))
    logging.getLogger(f"{LOGGER_NAME}.run").info("backup finished")
    text = path.read_text()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} INFO cells_backup.run: backup finished$", text.strip())
    assert capsys.readouterr().err == ""  # -q silences stderr, not the file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_log_file_rotates(tmp_path):
    path = tmp_path / "cells-backup.log"
    setup_logging(0, False, str(path), max_bytes=1000, backups=2)
    log = logging.getLogger(f"{LOGGER_NAME}.r")
    for i in range(100):
        log.warning("line %03d %s", i, "x" * 50)
    names = sorted(os.listdir(tmp_path))
    assert names == ["cells-backup.log", "cells-backup.log.1", "cells-backup.log.2"]
    assert all(os.path.getsize(tmp_path / n) <= 1000 for n in names)


def test_secrets_are_redacted(tmp_path, capsys):
    path = tmp_path / "log"
    setup_logging(0, False, str(path))
    logging.getLogger(LOGGER_NAME).error("cannot connect to %s", "mysql://root:hunter2@db/cells")
    assert "hunter2" not in capsys.readouterr().err
    assert "hunter2" not in path.read_text()
    assert redact("root:pw@tcp(127.0.0.1:3306)/cells") == "root:***@tcp(127.0.0.1:3306)/cells"
    assert redact('password="a b" user=x') == "password=*** user=x"
    assert redact("/var/cells/data/report.pdf") == "/var/cells/data/report.pdf"


def test_unwritable_log_file_is_a_clear_error(tmp_path):
    with pytest.raises(CellsBackupError, match="cannot open log file"):
        setup_logging(0, False, str(tmp_path / "missing" / "x.log"))
