"""A repository in an S3-compatible bucket (AWS, MinIO, SeaweedFS, Ceph, Garage, ...), via obstore.

Objects are stored as ``<prefix>/<name>``. Every object is written by one PUT, so a reader sees
the whole object or none (docs/ARCHITECTURE.md, invariant 1); packs are tens of MiB, far below
the 5 GiB single-PUT limit, and a single PUT leaves no hidden multipart debris when a run is killed.

Create-only writes (``exclusive=True``) send ``If-None-Match: *``: the server refuses the PUT with
412 when the name exists, which is atomic between concurrent writers. A server that answers
"not implemented" makes this backend fall back to HEAD-then-PUT for the rest of its life; that
fallback is NOT atomic (two writers can both see "absent" and both write, the last one wins), so
locks on such servers are advisory only.

Retries happen inside obstore (exponential backoff with jitter on 5xx, 429, connection errors and
timeouts), bounded by a `RetryPolicy`. When they run out, or for a permanent failure, the obstore
error is turned into one line: `TransientBackendError` for the kinds that may pass, `BackendError`
for access denied or a missing bucket. Messages name the bucket and endpoint, never a secret.

Credentials and the URL are read by `s3_config`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import obstore.exceptions as obe
from obstore.store import S3Store

from ...errors import AlreadyExistsError, BackendError, NotFoundError, UsageError
from .base import Backend, BackendProperties
from .retry import DEFAULT_POLICY, RetryPolicy, TransientBackendError
from .s3_config import has_ambient_credentials, parse_s3_url, resolve_credentials, shared_profile

# Tuning knobs read from the environment when the matching option is not given, so that a CLI
# run under test (or on a flaky link) can be made to give up sooner or later.
ENV_ATTEMPTS = "CELLS_BACKUP_S3_ATTEMPTS"
ENV_DEADLINE = "CELLS_BACKUP_S3_DEADLINE"  # seconds, all retries of one call
ENV_TIMEOUT = "CELLS_BACKUP_S3_TIMEOUT"  # seconds, one whole request including the body
ENV_CONNECT_TIMEOUT = "CELLS_BACKUP_S3_CONNECT_TIMEOUT"

DEFAULT_TIMEOUT = 300.0  # a 64 MiB pack over a slow uplink needs minutes, not obstore's 30 s
DEFAULT_CONNECT_TIMEOUT = 5.0
SINGLE_PUT_LIMIT = 5 * 1024**3
MULTIPART_CHUNK = 16 * 1024 * 1024
STREAM_CHUNK = 512 * 1024  # streamed reads: below the allocator's mmap threshold, so buffers are reused

_STATUS_RE = re.compile(r"status code: (\d{3})")
_CODE_RE = re.compile(r"<Code>([A-Za-z]+)</Code>")
_CREDENTIAL_HINT = "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and ~/.aws/credentials)"


def _float_env(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a number") from None


class S3Backend(Backend):
    """Objects live under ``prefix/`` in one bucket. Thread-safe: obstore stores are."""

    # Packs are read whole into the repository's cache; each is uploaded by one PUT.
    properties = BackendProperties(remote=True, streams_pack_files=False)

    def __init__(
        self,
        store: S3Store,
        *,
        bucket: str,
        prefix: str,
        endpoint_label: str,
        conditional_writes: bool | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self._store = store
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_label = endpoint_label
        self.location = f"s3://{bucket}/{prefix}" + (f" at {endpoint_label}" if endpoint_label else "")
        # None: try If-None-Match, switch to check-then-put if the server cannot do it.
        self._conditional = conditional_writes
        self._bucket_ok = False
        self._secrets = tuple(s for s in secrets if s)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        path_style: bool | None = None,
        allow_http: bool | None = None,
        profile: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        retry: RetryPolicy | None = None,
        attempts: int | None = None,
        deadline: float | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        conditional_writes: bool | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> S3Backend:
        """Open ``s3://bucket/prefix``, taking what is not given from the AWS_* environment.

        ``endpoint`` (else ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``/the profile's
        ``endpoint_url``) selects a non-AWS server; plain ``http://`` endpoints are allowed
        automatically. ``path_style`` defaults to path-style requests (what self-hosted servers
        expect); False asks for virtual-hosted ``bucket.host`` requests. Nothing is sent until
        the first operation.
        """
        env = os.environ if environ is None else environ
        bucket, prefix = parse_s3_url(url)
        profile_values = shared_profile(env, profile)
        creds = resolve_credentials(env, profile_values, access_key_id, secret_access_key, session_token)

        endpoint = (
            endpoint
            or env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL")
            or profile_values.get("endpoint_url")
            or None
        )
        region = (
            region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
            or profile_values.get("region") or "us-east-1"
        )
        if endpoint is not None:
            endpoint = endpoint.rstrip("/")
            if not re.match(r"^https?://[^/]+", endpoint):
                raise UsageError(f"S3 endpoint must look like http(s)://host[:port], got {endpoint!r}")
        if allow_http is None:
            allow_http = endpoint is not None and endpoint.startswith("http://")
        label = endpoint or f"AWS S3 ({region})"

        if creds is None and endpoint is not None and not has_ambient_credentials(env):
            raise BackendError(
                f"no S3 credentials for bucket {bucket} at {label}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials (AWS_PROFILE)"
            )

        # Precedence: explicit option > explicit policy > environment knob > default.
        policy = retry or DEFAULT_POLICY
        attempts = attempts or (retry and retry.attempts) or _int_or_none(_float_env(env, ENV_ATTEMPTS)) \
            or policy.attempts
        deadline = deadline or (retry and retry.deadline) or _float_env(env, ENV_DEADLINE) or policy.deadline
        timeout = timeout or _float_env(env, ENV_TIMEOUT) or DEFAULT_TIMEOUT
        connect_timeout = connect_timeout or _float_env(env, ENV_CONNECT_TIMEOUT) or DEFAULT_CONNECT_TIMEOUT

        config: dict[str, Any] = {"region": region}
        if endpoint is not None:
            if path_style is False:
                scheme, _, host = endpoint.partition("://")
                if not host.startswith(f"{bucket}."):
                    endpoint = f"{scheme}://{bucket}.{host}"
            config["endpoint"] = endpoint
        if path_style is not None:
            config["virtual_hosted_style_request"] = not path_style
        if creds is not None:
            config["access_key_id"] = creds.access_key_id
            config["secret_access_key"] = creds.secret_access_key
            if creds.session_token:
                config["session_token"] = creds.session_token
        client_options: dict[str, Any] = {
            "allow_http": allow_http,
            "connect_timeout": timedelta(seconds=connect_timeout),
            "timeout": timedelta(seconds=timeout),
        }
        retry_config: dict[str, Any] = {
            "max_retries": max(0, attempts - 1),
            "retry_timeout": timedelta(seconds=deadline),
            "backoff": {
                "init_backoff": timedelta(seconds=policy.base_delay),
                "max_backoff": timedelta(seconds=policy.max_delay),
                "base": 2,
            },
        }
        try:
            store = S3Store(
                bucket,
                prefix=prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options=client_options,  # type: ignore[arg-type]
                retry_config=retry_config,  # type: ignore[arg-type]
            )
        except obe.BaseError as exc:
            raise BackendError(f"invalid S3 configuration for bucket {bucket}: {_first_line(exc)}") from None
        secrets = (creds.secret_access_key, creds.session_token or "") if creds else ()
        return cls(store, bucket=bucket, prefix=prefix, endpoint_label=label,
                   conditional_writes=conditional_writes, secrets=secrets)

    # --- the Backend protocol -------------------------------------------------------------

    def exists_repository(self) -> bool:
        """True when ``config`` is there; a missing bucket is an error, not "no repository"."""
        try:
            self.size("config")
        except NotFoundError:
            return False
        return True

    def read(self, name: str) -> bytes:
        """Whole object in memory: packs are tens of MiB and the caller bounds how many at once."""
        key = _check_name(name)
        try:
            return self._store.get(key).bytes().to_bytes()
        except Exception as exc:
            raise self._error(exc, "read", name) from None

    def read_buffer(self, name: str) -> memoryview:
        """Whole object as a read-only view of the client's buffer: no copy into Python bytes."""
        key = _check_name(name)
        try:
            return memoryview(self._store.get(key).bytes())
        except Exception as exc:
            raise self._error(exc, "read", name) from None

    def read_stream(self, name: str, offset: int, length: int) -> Iterator[bytes]:
        """Bytes ``offset`` to ``offset + length`` in chunks of ``STREAM_CHUNK`` as they arrive
        (one request; short at the end of the object)."""
        key = _check_name(name)
        if length <= 0:
            return
        try:
            chunks = self._store.get(key, options={"range": (offset, offset + length)}).stream(STREAM_CHUNK)
        except Exception as exc:
            if _is_range_error(exc):
                self.size(name)
                return
            raise self._error(exc, "read", name) from None
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except Exception as exc:
                raise self._error(exc, "read", name) from None
            yield chunk

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """Like a file's seek+read: short or empty at the end, negative offsets from the end."""
        key = _check_name(name)
        if length <= 0:
            self.size(name)  # still report a missing object
            return b""
        try:
            if offset < 0:
                if length >= -offset:
                    result = self._store.get(key, options={"range": {"suffix": -offset}})
                    return result.bytes().to_bytes()[:length]
                offset = max(0, self.size(name) + offset)
            return self._store.get_range(key, start=offset, length=length).to_bytes()
        except Exception as exc:
            if _is_range_error(exc):
                self.size(name)
                return b""
            raise self._error(exc, "read", name) from None

    def write(self, name: str, data: bytes | memoryview, *, exclusive: bool = False) -> None:
        """One PUT (atomic); ``exclusive`` adds If-None-Match so the first writer wins."""
        key = _check_name(name)
        size = memoryview(data).nbytes
        multipart = size > SINGLE_PUT_LIMIT
        if not exclusive:
            self._put(key, name, data, multipart=multipart)
            return
        if multipart:
            raise BackendError(f"{name}: exclusive writes are limited to 5 GiB on S3")
        if self._conditional is not False:
            try:
                self._store.put(key, data, mode="create", use_multipart=False)
                return
            except Exception as exc:
                if not (self._conditional is None and _is_not_implemented(exc)):
                    raise self._error(exc, "write", name) from None
                self._conditional = False  # this server ignores or rejects If-None-Match
        # Weaker fallback (see module docstring): not atomic between concurrent writers.
        try:
            self.size(name)
        except NotFoundError:
            self._put(key, name, data, multipart=False)
            return
        raise AlreadyExistsError(f"{name} already exists in {self.location}")

    def _put(self, key: str, name: str, data: bytes | memoryview, *, multipart: bool) -> None:
        try:
            self._store.put(key, data, use_multipart=multipart, chunk_size=MULTIPART_CHUNK)
        except Exception as exc:
            raise self._error(exc, "write", name) from None

    def delete(self, name: str) -> None:
        """Deleting a missing object succeeds (S3 says 204), a missing bucket does not."""
        key = _check_name(name)
        try:
            self._store.delete(key)
        except Exception as exc:
            err = self._error(exc, "delete", name)
            if not isinstance(err, NotFoundError):
                raise err from None

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Streams pages of 1000 keys; obstore follows the continuation tokens."""
        # S3 prefixes are plain strings but obstore's are whole path segments: list the parent
        # "directory" of the prefix and keep the names that really start with it.
        parent = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if parent:
            _check_name(parent)
        stream = self._store.list(parent or None, chunk_size=1000)
        while True:
            try:
                batch = next(stream)
            except StopIteration:
                return
            except Exception as exc:
                raise self._error(exc, "list", prefix or "/") from None
            self._bucket_ok = True
            for meta in batch:
                path = meta["path"]
                if path.startswith(prefix):
                    yield path, int(meta["size"])

    def size(self, name: str) -> int:
        """HEAD the object."""
        key = _check_name(name)
        try:
            return int(self._store.head(key)["size"])
        except Exception as exc:
            raise self._error(exc, "stat", name) from None

    def close(self) -> None:
        """Nothing to release: obstore closes its connection pool when the store is dropped."""
        return None

    # --- errors ----------------------------------------------------------------------------

    def _error(self, exc: BaseException, op: str, name: str) -> BackendError:
        """Turn an obstore exception into one line, checking once whether the bucket exists."""
        err = self._classify(exc, op, name)
        if isinstance(err, NotFoundError) and not self._bucket_ok:
            # A HEAD on a missing bucket is a bodiless 404, just like a missing object.
            probe = self._probe_bucket()
            if probe is not None:
                return probe
        return err

    def _probe_bucket(self) -> BackendError | None:
        try:
            self._store.list_with_delimiter(None)
        except Exception as exc:
            err = self._classify(exc, "list", "/")
            return err if not isinstance(err, NotFoundError) else self._missing_bucket()
        self._bucket_ok = True
        return None

    def _missing_bucket(self) -> BackendError:
        return BackendError(f"S3 bucket {self.bucket} does not exist at {self.endpoint_label}")

    def _classify(self, exc: BaseException, op: str, name: str) -> BackendError:
        text = str(exc)
        status_match = _STATUS_RE.search(text)
        status = int(status_match.group(1)) if status_match else None
        code_match = _CODE_RE.search(text)
        code = code_match.group(1) if code_match else None
        where = f"bucket {self.bucket} at {self.endpoint_label}"

        if code == "NoSuchBucket":
            return self._missing_bucket()
        if isinstance(exc, FileNotFoundError | obe.NotFoundError) or status == 404:
            return NotFoundError(f"{name}: not found in {self.location}")
        if isinstance(exc, obe.AlreadyExistsError | obe.PreconditionError) or status == 412:
            return AlreadyExistsError(f"{name} already exists in {self.location}")
        if isinstance(exc, obe.PermissionDeniedError | obe.UnauthenticatedError) or status in (401, 403):
            reason = {
                "InvalidAccessKeyId": "unknown access key",
                "SignatureDoesNotMatch": "wrong secret key",
                "ExpiredToken": "session token expired",
                "InvalidToken": "invalid session token",
            }.get(code or "", "access denied")
            return BackendError(f"S3 {reason} for {where}: {_CREDENTIAL_HINT}")
        if code in ("AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException") \
                or status == 301:
            return BackendError(f"S3 {where} is in another region: set --s3-region/AWS_REGION to the bucket's region")
        if status == 429 or code in ("SlowDown", "RequestLimitExceeded", "Throttling"):
            return TransientBackendError(f"S3 is throttling requests to {where} ({op} {name}); try later")
        if status is not None and status >= 500:
            detail = f"HTTP {status}" + (f" {code}" if code else "")
            return TransientBackendError(f"S3 server error for {where} ({op} {name}): {detail}")
        lowered = text.lower()
        if "dns error" in lowered or "failed to lookup address" in lowered:
            return TransientBackendError(f"cannot resolve the S3 endpoint host of {self.endpoint_label}")
        if "connection refused" in lowered or "connectionrefused" in lowered:
            return TransientBackendError(f"cannot reach S3 endpoint {self.endpoint_label}: connection refused")
        if "kind: timeout" in lowered or "timedout" in lowered or "timed out" in lowered:
            return TransientBackendError(
                f"S3 endpoint {self.endpoint_label} did not answer in time ({op} {name})"
            )
        if "error sending request" in lowered or "connection" in lowered or "connect" in lowered:
            return TransientBackendError(f"cannot reach S3 endpoint {self.endpoint_label} ({op} {name})")
        if status is not None:
            detail = f"HTTP {status}" + (f" {code}" if code else "")
            return BackendError(f"S3 {op} of {name} failed for {where}: {detail}")
        return BackendError(f"S3 {op} of {name} failed for {where}: {self._scrub(_first_line(exc))}")

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _check_name(name: str) -> str:
    if not name or name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise BackendError(f"invalid object name {name!r}")
    return name


def _first_line(exc: BaseException) -> str:
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    line = line.split(" - Server returned")[0]
    return line[:200]


def _is_range_error(exc: BaseException) -> bool:
    text = str(exc)
    return "416" in text or "InvalidRange" in text or "range starting at" in text.lower()


def _is_not_implemented(exc: BaseException) -> bool:
    if isinstance(exc, obe.NotSupportedError):
        return True
    text = str(exc)
    return "status code: 501" in text or "<Code>NotImplemented</Code>" in text


def _int_or_none(value: float | None) -> int | None:
    return int(value) if value is not None else None
