"""`run` for timers (metrics, notifications) and `drill` (restore proof), with the real MariaDB."""

from __future__ import annotations

import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from cells_backup.engine.monitoring import read_prometheus_textfile
from helpers import cli_env, run_cli


class Recorder(BaseHTTPRequestHandler):
    hits: list = []

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        Recorder.hits.append((self.command, self.path, self.rfile.read(length) if length else b""))
        self.send_response(200)
        self.end_headers()

    do_GET = do_POST = _record

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_sink():
    Recorder.hits = []
    server = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Recorder.hits
    server.shutdown()


def write_config(base: Path, url: str, **extra: str) -> Path:
    pw = base / "password"
    pw.write_text("correct horse\n")
    os.chmod(pw, 0o600)
    config = base / "config.toml"
    config.write_text(f'''
repository = "{base / 'repo'}"
password_file = "{pw}"
cells_dir = "{extra.get('cells_dir', base / 'cells')}"

[retention]
keep_last = 2

[check]
read_data_subset = "50%"

[monitoring]
prometheus_textfile = "{base / 'metrics' / 'cells_backup.prom'}"
ping_url = "{url}/ping/abc"
webhook_url = "{url}/hook"
''')
    (base / "metrics").mkdir(exist_ok=True)
    return config


def test_run_backs_up_applies_policy_checks_and_reports(installation, http_sink):
    sample, dbname, base = installation
    url, hits = http_sink
    config = write_config(base, url)
    env = cli_env(password=None)
    assert run_cli("--config", str(config), "init", "--kdf-cost", "10", env=env).code == 0
    for _ in range(3):
        r = run_cli("--config", str(config), "run", "--json", env=env)
        assert r.code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "ok" and doc["check_ok"] is True
    snaps = json.loads(run_cli("--config", str(config), "snapshots", "--json", env=env).stdout)
    assert len(snaps) == 2  # keep_last = 2 applied
    metrics = read_prometheus_textfile(str(base / "metrics" / "cells_backup.prom"))
    assert metrics["cells_backup_last_run_status"] == 1
    assert metrics["cells_backup_snapshots"] == 2
    assert metrics["cells_backup_last_check_ok"] == 1
    assert metrics["cells_backup_repository_size_bytes"] > 0
    paths = [(m, p) for m, p, _b in hits]
    assert ("GET", "/ping/abc/start") in paths and ("POST", "/ping/abc") in paths
    webhook = [json.loads(b) for m, p, b in hits if p == "/hook"]
    assert webhook and webhook[-1]["status"] == "ok" and webhook[-1]["snapshot_id"] == snaps[-1]["id"]
    assert "correct horse" not in json.dumps(webhook)

    # failure path: the database is unreachable -> exit 1, /fail pinged, last success kept
    last_success = metrics["cells_backup_last_success_timestamp_seconds"]
    broken = base / "cells" / "pydio.json"
    broken.write_text(re.sub(r"tcp\([^)]*\)", "tcp(127.0.0.1:1)", broken.read_text()))
    r = run_cli("--config", str(config), "run", env=env)
    assert r.code == 1
    assert "unreachable" in r.stdout + r.stderr
    assert ("POST", "/ping/abc/fail") in [(m, p) for m, p, _b in hits]
    metrics = read_prometheus_textfile(str(base / "metrics" / "cells_backup.prom"))
    assert metrics["cells_backup_last_run_status"] == 0
    assert metrics["cells_backup_last_success_timestamp_seconds"] == last_success


def test_notification_failure_never_fails_the_backup(installation):
    sample, dbname, base = installation
    config = write_config(base, "http://127.0.0.1:9")  # nothing listens on the discard port
    env = cli_env(password=None)
    assert run_cli("--config", str(config), "init", "--kdf-cost", "10", env=env).code == 0
    r = run_cli("--config", str(config), "run", env=env)
    assert r.code == 0, r.stderr
    assert "warning" in r.stderr


def test_config_check_names_the_key_and_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('repository = "/srv/x"\npassword_file = "/etc/pw"\n\n[retention]\nkeep_daily = "7"\n')
    r = run_cli("--config", str(config), "config", "check", env=cli_env(password=None))
    assert r.code == 2
    assert "line 5" in r.stdout + r.stderr and "keep_daily" in r.stdout + r.stderr


def test_drill_passes_then_fails_loudly_on_damage(installation, mariadb):
    sample, dbname, base = installation
    env = cli_env()
    repo = str(base / "repo")
    run_cli("--repo", repo, "init", "--kdf-cost", "10", env=env, check=True)
    run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), env=env, check=True)
    r = run_cli("--repo", repo, "drill", "--json", env=env)
    assert r.code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["whole"] is True and doc["seconds"] >= 0
    # the scratch database was dropped and the scratch directory removed
    import pymysql

    with pymysql.connect(host="127.0.0.1", port=mariadb.port, user=mariadb.admin_user,
                         password=mariadb.admin_password) as c, c.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'cells_drill_%'")
        assert cur.fetchall() == ()

    # a backup without the vault key cannot be a working installation
    run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), "--exclude", "cells-vault-key",
            env=env, check=True)
    r = run_cli("--repo", repo, "drill", env=env)
    assert r.code == 1 and "DRILL FAILED" in r.stdout
    assert "key" in r.stdout.lower()

    # damage a pack: the drill fails and says what is missing
    packs = sorted((Path(repo) / "data").rglob("*"))
    for pack in (p for p in packs if p.is_file()):
        data = bytearray(pack.read_bytes())
        data[len(data) // 3] ^= 0xFF
        os.chmod(pack, 0o600)
        pack.write_bytes(bytes(data))
    r = run_cli("--repo", repo, "drill", env=env)
    assert r.code != 0 and "Traceback" not in r.stderr
