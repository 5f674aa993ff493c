"""Prometheus textfile, ping URL, webhook and command notifications."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cells_backup.engine.monitoring import (
    METRICS,
    Notifier,
    RunSummary,
    parse_prometheus_text,
    read_prometheus_textfile,
    report_run,
    write_prometheus_textfile,
)

T0 = 1_700_000_000.0
SECRET_DSN = "mysql://cells:hunter2@db.internal:3306/cells"


def summary(status: str = "ok", **kw) -> RunSummary:
    defaults = dict(started=T0, finished=T0 + 125.5, bytes_added=4096, snapshot_id="0123456789abcdef",
                    snapshot_count=7, repository_size=10_000_000, downtime=12.25, check_ok=True,
                    message="backup done", hostname="cells1")
    defaults.update(kw)
    return RunSummary(status=status, **defaults)


# ---------------------------------------------------------------- Prometheus

_LINE = re.compile(r"^(# HELP [a-z_]+ .+|# TYPE [a-z_]+ (gauge|counter)|[a-z_]+(\{[^}]*\})? -?[0-9.e+]+)$")


def check_format(text: str) -> None:
    """The textfile-collector (exposition) format: HELP, TYPE, then the sample, for each metric."""
    assert text.endswith("\n")
    lines = text.splitlines()
    for line in lines:
        assert _LINE.match(line), line
    names = [line.split()[0].split("{")[0] for line in lines if not line.startswith("#")]
    assert len(names) == len(set(names))
    for name in names:
        i = lines.index(f"# TYPE {name} gauge")
        assert lines[i - 1].startswith(f"# HELP {name} ")
        assert lines[i + 1].split()[0].split("{")[0] == name


def test_success_metrics(tmp_path):
    path = str(tmp_path / "cells_backup.prom")
    write_prometheus_textfile(path, summary())
    text = Path(path).read_text()
    check_format(text)
    values = parse_prometheus_text(text)
    assert values == {
        "cells_backup_last_success_timestamp_seconds": T0 + 125.5,
        "cells_backup_last_snapshot_timestamp_seconds": T0 + 125.5,
        "cells_backup_last_run_timestamp_seconds": T0 + 125.5,
        "cells_backup_last_run_status": 1,
        "cells_backup_last_run_partial": 0,
        "cells_backup_duration_seconds": 125.5,
        "cells_backup_bytes_added": 4096,
        "cells_backup_snapshots": 7,
        "cells_backup_repository_size_bytes": 10_000_000,
        "cells_backup_downtime_seconds": 12.25,
        "cells_backup_last_check_ok": 1,
    }
    assert set(values) == set(METRICS)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # node_exporter runs as another user
    assert os.listdir(tmp_path) == ["cells_backup.prom"]  # no temp file left behind


def test_failure_keeps_last_success(tmp_path):
    path = str(tmp_path / "cells_backup.prom")
    write_prometheus_textfile(path, summary())
    later = T0 + 86_400
    failed = summary("failed", started=later, finished=later + 3, bytes_added=None, snapshot_id=None,
                     snapshot_count=None, repository_size=None, downtime=None, check_ok=None,
                     errors=["cannot reach the database"])
    text = write_prometheus_textfile(path, failed)
    check_format(text)
    values = read_prometheus_textfile(path)
    assert values["cells_backup_last_success_timestamp_seconds"] == T0 + 125.5  # kept from the previous file
    assert values["cells_backup_last_run_timestamp_seconds"] == later + 3
    assert values["cells_backup_last_run_status"] == 0
    assert values["cells_backup_duration_seconds"] == 3
    assert values["cells_backup_bytes_added"] == 0
    assert values["cells_backup_snapshots"] == 7  # repository facts kept
    assert values["cells_backup_last_check_ok"] == 1


def test_first_run_failing_has_no_success_time(tmp_path):
    path = str(tmp_path / "c.prom")
    write_prometheus_textfile(path, summary("failed", check_ok=False, snapshot_count=None))
    values = read_prometheus_textfile(path)
    assert "cells_backup_last_success_timestamp_seconds" not in values
    assert values["cells_backup_last_check_ok"] == 0


def test_partial_and_explicit_previous(tmp_path):
    path = str(tmp_path / "c.prom")
    previous = {"cells_backup_last_success_timestamp_seconds": 42.0}
    write_prometheus_textfile(path, summary("partial", errors=["/var/cells/x: permission denied"]), previous,
                              labels={"repository": "/srv/backups/cells"})
    text = Path(path).read_text()
    check_format(text)
    assert 'cells_backup_last_run_status{repository="/srv/backups/cells"} 0' in text
    values = parse_prometheus_text(text)
    assert values["cells_backup_last_success_timestamp_seconds"] == 42
    assert values["cells_backup_last_snapshot_timestamp_seconds"] == T0 + 125.5
    assert values["cells_backup_last_run_partial"] == 1


# ---------------------------------------------------------------- HTTP notifications


class Recorder(BaseHTTPRequestHandler):
    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server = self.server
        server.requests.append((self.command, self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        code = server.codes.pop(0) if server.codes else 200  # type: ignore[attr-defined]
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = do_HEAD = _handle

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    srv.requests = []  # type: ignore[attr-defined]
    srv.codes = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"  # type: ignore[attr-defined]
    yield srv
    srv.shutdown()
    srv.server_close()


def test_ping_start_success_and_fail(server):
    notifier = Notifier(ping_url=f"{server.base}/ping/abc-uuid/", retry_delay=0)
    assert notifier.start() == []
    assert notifier.finish(summary()) == []
    assert notifier.finish(summary("failed", errors=[f"dump failed: {SECRET_DSN}"])) == []
    assert notifier.finish(summary("partial")) == []
    methods_paths = [(m, p) for m, p, _, _ in server.requests]
    assert methods_paths == [("GET", "/ping/abc-uuid/start"), ("POST", "/ping/abc-uuid"),
                             ("POST", "/ping/abc-uuid/fail"), ("POST", "/ping/abc-uuid/fail")]
    ok_body = server.requests[1][3].decode()
    assert "cells1: ok" in ok_body and "snapshot 01234567" in ok_body
    fail_body = server.requests[2][3].decode()
    assert "dump failed" in fail_body and "hunter2" not in fail_body
    assert server.requests[1][2]["Content-Type"].startswith("text/plain")


def test_webhook_posts_json_without_secrets(server):
    notifier = Notifier(webhook_url=f"{server.base}/hook/T0K3N", retry_delay=0)
    assert notifier.start() == []  # the webhook is told only at the end
    failed = summary("failed", errors=[f"cannot connect to {SECRET_DSN}", "root:pw123@tcp(localhost:3306)/cells"],
                     message="password=s3cret given to mysqldump was refused")
    assert notifier.finish(failed) == []
    [(method, path, headers, body)] = server.requests
    assert (method, path) == ("POST", "/hook/T0K3N")
    assert headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["status"] == "failed"
    assert doc["snapshot_id"] == "0123456789abcdef"
    assert doc["bytes_added"] == 4096 and doc["downtime"] == 12.25 and doc["check_ok"] is True
    assert doc["started"] == "2023-11-14T22:13:20Z"
    assert doc["duration"] == 125.5
    assert doc["hostname"] == "cells1"
    for secret in ("hunter2", "pw123", "s3cret"):
        assert secret not in body.decode()
    assert doc["errors"][0] == "cannot connect to mysql://cells:***@db.internal:3306/cells"


def test_retries_on_server_errors(server):
    server.codes = [503, 500]
    notifier = Notifier(ping_url=f"{server.base}/p", retry_delay=0)
    assert notifier.finish(summary()) == []
    assert len(server.requests) == 3


def test_gives_up_after_retries_with_a_warning(server, caplog):
    server.codes = [503, 503, 503, 503]
    notifier = Notifier(webhook_url=f"{server.base}/hook/secret-token", retry_delay=0)
    warnings = notifier.finish(summary())
    assert len(server.requests) == 3  # 1 attempt + 2 retries
    assert len(warnings) == 1 and "HTTP 503" in warnings[0]
    assert "secret-token" not in warnings[0]  # webhook URLs carry their secret in the path


def test_client_errors_are_not_retried(server):
    server.codes = [404]
    warnings = Notifier(ping_url=f"{server.base}/p", retry_delay=0).start()
    assert len(server.requests) == 1
    assert "HTTP 404" in warnings[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_closed_port_warns_and_does_not_raise():
    port = free_port()
    notifier = Notifier(ping_url=f"http://127.0.0.1:{port}/ping/uuid", webhook_url=f"http://127.0.0.1:{port}/h",
                        retry_delay=0, timeout=2)
    started = time.monotonic()
    start_warnings = notifier.start()
    finish_warnings = notifier.finish(summary("failed"))
    assert time.monotonic() - started < 10
    assert len(start_warnings) == 1 and len(finish_warnings) == 2
    for warning in start_warnings + finish_warnings:
        assert "\n" not in warning
        assert warning.startswith("monitoring: ")
        assert f"127.0.0.1:{port}" in warning
        assert "refused" in warning.lower()


def test_timeout_is_a_warning():
    with socket.socket() as listener:  # accepts (via the backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/p"
        warnings = Notifier(ping_url=url, timeout=0.3, retries=1, retry_delay=0).start()
    assert len(warnings) == 1 and "timed out" in warnings[0]


# ---------------------------------------------------------------- command and report_run


def test_command_gets_json_and_status(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLS_BACKUP_PASSWORD", "top-secret")
    out = tmp_path / "out"
    command = (f'cat > "{out}.json"; '
               f'echo "$CELLS_BACKUP_STATUS $CELLS_BACKUP_SNAPSHOT_ID ${{CELLS_BACKUP_PASSWORD:-none}}" > "{out}.env"')
    assert Notifier(command=command).finish(summary("partial")) == []
    assert json.loads((tmp_path / "out.json").read_text())["status"] == "partial"
    assert (tmp_path / "out.env").read_text().split() == ["partial", "0123456789abcdef", "none"]


def test_failing_command_is_a_warning():
    warnings = Notifier(command="echo boom >&2; exit 4").finish(summary())
    assert len(warnings) == 1 and "exit code 4: boom" in warnings[0]


def test_report_run_never_raises(tmp_path):
    port = free_port()
    config = {"monitoring": {"prometheus_textfile": str(tmp_path / "missing-dir" / "c.prom"),
                             "ping_url": f"http://127.0.0.1:{port}/p"}}
    notifier = Notifier.from_config(config, retry_delay=0)
    warnings = report_run(config, summary(), notifier)
    assert len(warnings) == 2
    assert "cannot write metrics file" in warnings[0]


def test_report_run_writes_metrics(tmp_path, server):
    config = {"monitoring": {"prometheus_textfile": str(tmp_path / "c.prom"), "webhook_url": f"{server.base}/h"}}
    assert report_run(config, summary()) == []
    assert read_prometheus_textfile(str(tmp_path / "c.prom"))["cells_backup_last_run_status"] == 1
    assert len(server.requests) == 1


def test_summary_rejects_unknown_status():
    with pytest.raises(ValueError):
        RunSummary(status="great", started=T0, finished=T0)
