"""S3-only behaviour, against a real SeaweedFS: configuration, clear errors, outages."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from cells_backup.errors import AlreadyExistsError, BackendError, NotFoundError, UsageError
from cells_backup.repository.backends import open_backend
from cells_backup.repository.backends.retry import TransientBackendError
from cells_backup.repository.backends.s3 import S3Backend
from cells_backup.repository.backends.s3_config import parse_s3_url, shared_profile

FAST = {"attempts": 2, "deadline": 2.0, "connect_timeout": 1.0, "timeout": 5.0}


def assert_one_clear_line(exc: BaseException, *, secret: str | None = None) -> str:
    message = str(exc)
    assert "\n" not in message
    assert "Traceback" not in message and "Debug source" not in message and "<Error>" not in message
    if secret:
        assert secret not in message
    return message


def test_parse_url() -> None:
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b")
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://bucket//x//y") == ("bucket", "x/y")
    with pytest.raises(UsageError):
        parse_s3_url("s3:///prefix")


def test_from_url_uses_environment(s3_server, s3_prefix: str) -> None:
    env = s3_server.env()
    backend = S3Backend.from_url(s3_server.url(s3_prefix), environ=env)
    backend.write("config", b"from env")
    assert backend.read("config") == b"from env"
    assert s3_server.endpoint in backend.location


def test_open_backend_routes_s3_urls(s3_server, s3_prefix: str, monkeypatch) -> None:
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    backend = open_backend(s3_server.url(s3_prefix))
    assert isinstance(backend, S3Backend)
    assert backend.exists_repository() is False


def test_shared_credentials_file_and_profile(s3_server, s3_prefix: str, tmp_path) -> None:
    creds = tmp_path / "credentials"
    creds.write_text(
        "[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n"
        f"[backup]\naws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile backup]\nregion = us-east-1\nendpoint_url = {s3_server.endpoint}\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "backup"}
    assert shared_profile(env)["endpoint_url"] == s3_server.endpoint
    backend = S3Backend.from_url(s3_server.url(s3_prefix), environ=env)
    backend.write("keys/k", b"via profile")
    assert backend.read("keys/k") == b"via profile"
    # The default profile's (wrong) keys give a clear access-denied error.
    env["AWS_PROFILE"] = "default"
    wrong = S3Backend.from_url(s3_server.url(s3_prefix), endpoint=s3_server.endpoint, environ=env, **FAST)
    with pytest.raises(BackendError, match="access denied|unknown access key"):
        wrong.read("keys/k")


def test_no_credentials_for_custom_endpoint(s3_server, tmp_path) -> None:
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    with pytest.raises(BackendError, match="no S3 credentials") as info:
        S3Backend.from_url(s3_server.url("x"), endpoint=s3_server.endpoint, environ=env)
    assert_one_clear_line(info.value)


def test_wrong_secret_key(s3_server, s3_prefix: str) -> None:
    secret = "definitely-not-the-secret-0123456789"
    backend = s3_server.backend(s3_prefix, secret_access_key=secret, **FAST)
    for op in (lambda: backend.read("config"), lambda: backend.write("config", b"x"),
               lambda: list(backend.list("")), backend.exists_repository):
        started = time.monotonic()
        with pytest.raises(BackendError) as info:
            op()
        assert time.monotonic() - started < 2, "permanent errors are not retried"
        assert not isinstance(info.value, TransientBackendError | NotFoundError)
        message = assert_one_clear_line(info.value, secret=secret)
        assert s3_server.bucket in message and s3_server.endpoint in message
        assert "AWS_ACCESS_KEY_ID" in message


def test_unknown_access_key(s3_server, s3_prefix: str) -> None:
    backend = s3_server.backend(s3_prefix, access_key_id="nosuchkey", **FAST)
    with pytest.raises(BackendError) as info:
        backend.write("config", b"x")
    message = assert_one_clear_line(info.value, secret=s3_server.secret_key)
    assert "AWS_ACCESS_KEY_ID" in message


def test_missing_bucket(s3_server) -> None:
    backend = S3Backend.from_url("s3://no-such-bucket/repo", endpoint=s3_server.endpoint,
                                 access_key_id=s3_server.access_key, secret_access_key=s3_server.secret_key,
                                 environ={}, **FAST)
    for op in (backend.exists_repository, lambda: backend.read("config"), lambda: backend.size("config"),
               lambda: backend.write("config", b"x"), lambda: list(backend.list("snapshots/")),
               lambda: backend.delete("locks/x")):
        with pytest.raises(BackendError) as info:
            op()
        assert not isinstance(info.value, NotFoundError)
        message = assert_one_clear_line(info.value)
        assert message == f"S3 bucket no-such-bucket does not exist at {s3_server.endpoint}"


def test_second_bucket_and_root_prefix(s3_server) -> None:
    s3_server.create_bucket("cells-backup-other")
    backend = S3Backend.from_url("s3://cells-backup-other", endpoint=s3_server.endpoint,
                                 access_key_id=s3_server.access_key, secret_access_key=s3_server.secret_key,
                                 environ={})
    backend.write("config", b"at the bucket root")
    assert dict(backend.list("")) == {"config": 18}


def test_unreachable_endpoint_fails_fast_and_clearly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    backend = S3Backend.from_url("s3://b/p", endpoint=f"http://127.0.0.1:{port}", access_key_id="k",
                                 secret_access_key="s3cr3t-value", environ={}, **FAST)
    started = time.monotonic()
    with pytest.raises(TransientBackendError) as info:
        backend.read("config")
    assert time.monotonic() - started < 5
    message = assert_one_clear_line(info.value, secret="s3cr3t-value")
    assert "cannot reach S3 endpoint" in message and str(port) in message


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_timeouts_are_bounded(black_hole: int) -> None:
    backend = S3Backend.from_url("s3://b/p", endpoint=f"http://127.0.0.1:{black_hole}", access_key_id="k",
                                 secret_access_key="s", environ={}, attempts=2, deadline=3.0, timeout=0.5,
                                 connect_timeout=0.5)
    for op in (lambda: backend.read("x"), lambda: backend.write("x", b"data")):
        started = time.monotonic()
        with pytest.raises(TransientBackendError, match="did not answer in time"):
            op()
        assert time.monotonic() - started < 4


def test_server_killed_then_restarted(s3_server_running, s3_prefix: str) -> None:
    server = s3_server_running
    backend = server.backend(s3_prefix, **FAST)
    backend.write("data/ab/" + "0" * 64, b"before the crash")
    server.kill()
    for op in (lambda: backend.read("data/ab/" + "0" * 64), lambda: backend.write("index/x", b"y"),
               lambda: list(backend.list("data/")), backend.exists_repository):
        started = time.monotonic()
        with pytest.raises(TransientBackendError) as info:
            op()
        assert time.monotonic() - started < 5
        assert_one_clear_line(info.value, secret=server.secret_key)
    server.start()
    assert backend.read("data/ab/" + "0" * 64) == b"before the crash"  # same client, data kept
    backend.write("index/x", b"after")
    assert dict(backend.list("")) == {"data/ab/" + "0" * 64: 16, "index/x": 5}


def test_graceful_restart_keeps_data(s3_server_running, s3_prefix: str) -> None:
    backend = s3_server_running.backend(s3_prefix)
    backend.write("snapshots/s1", b"snap")
    s3_server_running.restart()
    assert backend.read("snapshots/s1") == b"snap"


def test_list_paginates_past_1000_keys(s3_server, s3_prefix: str) -> None:
    backend = s3_server.backend(s3_prefix)
    names = [f"data/{i % 256:02x}/{i:064x}" for i in range(1100)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: backend.write(n, b"p"), names))
    listed = list(backend.list("data/"))
    assert len(listed) == 1100 and {n for n, _ in listed} == set(names)


def test_check_then_put_fallback(s3_server, s3_prefix: str) -> None:
    """For servers without If-None-Match: weaker (not atomic), but still refuses an existing name."""
    backend = s3_server.backend(s3_prefix, conditional_writes=False)
    backend.write("locks/l1", b"first", exclusive=True)
    with pytest.raises(AlreadyExistsError):
        backend.write("locks/l1", b"second", exclusive=True)
    assert backend.read("locks/l1") == b"first"


def test_cli_environment(s3_server) -> None:
    env = s3_server.env(fast_fail=True)
    assert env["AWS_ENDPOINT_URL"] == s3_server.endpoint
    backend = S3Backend.from_url(s3_server.url("cli-env"), environ=env)
    backend.write("config", b"c")
    assert backend.exists_repository()
