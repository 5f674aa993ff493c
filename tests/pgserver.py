"""A private, throw-away PostgreSQL server for the database tests.

Like `dbserver` for MariaDB: the tests must not depend on the machine's own cluster, so each
session runs ``initdb`` in a temp dir (password authentication, scram-sha-256, for TCP and the
socket alike), starts it with ``pg_ctl`` on a free port bound to 127.0.0.1 with its socket in the
same dir, creates the users the tests need, and stops it at the end. PostgreSQL refuses to run as
root, so as root the dir is given to the ``postgres`` OS user and the binaries run through
``runuser -u postgres --``.

A fresh machine needs the server binaries: ``apt-get install -y postgresql`` (done here if they are
missing and we are root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from dbserver import free_port

SUPERUSER, SUPERPASSWORD = "postgres", "sup'er pa:ss\\wd"  # awkward on purpose (passfile escaping)
ADMIN_USER, ADMIN_PASSWORD = "cbadmin", "adm'in\"pa ss#;:"
LIMITED_USER, LIMITED_PASSWORD = "cblimited", "limited-pw"


def _bindir() -> str | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2].split(".")[0]))
    return dirs[-1] if dirs else None


def _ensure_installed() -> str:
    bindir = _bindir()
    if bindir is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-q", "postgresql"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        bindir = _bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install -y postgresql")
    return bindir


@dataclass
class PostgresServer:
    """A running private server: `port`, socket dir `basedir`, and credentials to reach it."""

    basedir: str
    datadir: str
    bindir: str
    port: int
    as_user: list[str]
    superuser: str = SUPERUSER
    superpassword: str = SUPERPASSWORD
    admin_user: str = ADMIN_USER
    admin_password: str = ADMIN_PASSWORD

    def psql(self, sql: str, database: str = "postgres", check: bool = True, admin: bool = False) -> str:
        """Run `sql` as the superuser (or the admin user); its unaligned output."""
        user, password = (self.admin_user, self.admin_password) if admin else (self.superuser, self.superpassword)
        env = dict(os.environ, PGPASSWORD=password, PGHOST="127.0.0.1", PGPORT=str(self.port))
        proc = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", user, "-d", database],
            input=sql.encode(),
            capture_output=True,
            env=env,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.decode()}")
        return proc.stdout.decode()

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, f"{self.bindir}/pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.basedir, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """Initialise and start a private PostgreSQL; RuntimeError with a hint if impossible."""
    bindir = _ensure_installed()
    basedir = tempfile.mkdtemp(prefix="cells-backup-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(basedir, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    os.chmod(basedir, 0o700)
    datadir = os.path.join(basedir, "data")
    pwfile = os.path.join(basedir, "pw")
    with open(pwfile, "w") as f:
        f.write(SUPERPASSWORD + "\n")
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    init = subprocess.run(
        [
            *as_user,
            f"{bindir}/initdb",
            "-D",
            datadir,
            "-U",
            SUPERUSER,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        shutil.rmtree(basedir, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
    port = free_port()
    opts = f"-p {port} -k {basedir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    start = subprocess.run(
        [*as_user, f"{bindir}/pg_ctl", "-D", datadir, "-o", opts, "-l", os.path.join(basedir, "log"), "-w", "start"],
        capture_output=True,
        text=True,
    )
    server = PostgresServer(basedir=basedir, datadir=datadir, bindir=bindir, port=port, as_user=as_user)
    if start.returncode != 0:
        try:
            with open(os.path.join(basedir, "log"), errors="replace") as f:
                log = f.read()[-3000:]
        except OSError:
            log = start.stderr
        server.stop()
        raise RuntimeError(f"PostgreSQL did not start: {log}")
    a_pw = ADMIN_PASSWORD.replace("'", "''")
    server.psql(
        f"CREATE ROLE {ADMIN_USER} LOGIN CREATEDB PASSWORD '{a_pw}';\n"
        f"CREATE ROLE {LIMITED_USER} LOGIN PASSWORD '{LIMITED_PASSWORD}';\n"
    )
    return server
