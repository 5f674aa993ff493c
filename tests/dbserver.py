"""A private, throw-away MariaDB server for the database tests.

The tests must not depend on how the machine's own server is configured (users, sql_mode, binlog,
charset), so each test session initialises a fresh data directory in a temp dir, starts `mariadbd`
on a free port bound to 127.0.0.1, creates the users the tests need, and stops it at the end.

A fresh machine needs the server binaries: ``scripts/db-server install`` (apt-get install
mariadb-server mariadb-client) provides them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import pymysql

ADMIN_USER, ADMIN_PASSWORD = "cbadmin", "adm'in\"pa ss#;"  # awkward on purpose (option-file quoting)
LIMITED_USER, LIMITED_PASSWORD = "cblimited", "limited-pw"


def _which(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MariaDBServer:
    """A running private server; `port`, `socket` and the admin credentials to reach it."""

    basedir: str
    port: int
    socket: str
    process: subprocess.Popen
    admin_user: str = ADMIN_USER
    admin_password: str = ADMIN_PASSWORD

    def root(self, database: str | None = None) -> pymysql.connections.Connection:
        return pymysql.connect(
            unix_socket=self.socket,
            user="root",
            password="",
            database=database,
            charset="utf8mb4",
            autocommit=True,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.basedir, ignore_errors=True)


def start_mariadb() -> MariaDBServer:
    """Initialise and start a private MariaDB; raises RuntimeError with a hint if impossible."""
    install_db = _which("mariadb-install-db", "mysql_install_db")
    mariadbd = _which("mariadbd", "mysqld")
    if not install_db or not mariadbd:
        raise RuntimeError(
            "MariaDB server binaries not found: run `scripts/db-server install` "
            "(apt-get install -y mariadb-server mariadb-client)"
        )
    basedir = tempfile.mkdtemp(prefix="cells-backup-mariadb-")
    datadir = os.path.join(basedir, "data")
    sock = os.path.join(basedir, "mysqld.sock")
    user = ["--user=root"] if os.geteuid() == 0 else []
    init = subprocess.run(
        [
            install_db,
            "--no-defaults",
            *user,
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ],
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        shutil.rmtree(basedir, ignore_errors=True)
        raise RuntimeError(f"mariadb-install-db failed: {init.stderr[-2000:]}")
    port = free_port()
    log = open(os.path.join(basedir, "error.log"), "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [
            mariadbd,
            "--no-defaults",
            *user,
            f"--datadir={datadir}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={basedir}/mysqld.pid",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=256M",
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-log-file-size=256M",
            "--max-allowed-packet=64M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--log-error=" + os.path.join(basedir, "error.log"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = MariaDBServer(basedir=basedir, port=port, socket=sock, process=proc)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.root().close()
            break
        except pymysql.MySQLError:
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(basedir, "error.log"), errors="replace") as f:
                    text = f.read()[-3000:]
                server.stop()
                raise RuntimeError(f"mariadbd did not start: {text}") from None
            time.sleep(0.1)
    with server.root() as c, c.cursor() as cur:
        for u, pw in ((ADMIN_USER, ADMIN_PASSWORD), (LIMITED_USER, LIMITED_PASSWORD)):
            cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (u, pw))
            cur.execute("CREATE USER %s@'localhost' IDENTIFIED BY %s", (u, pw))
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'{host}' WITH GRANT OPTION")
    return server
