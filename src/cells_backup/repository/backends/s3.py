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

The URL, credentials, endpoint, region and timeouts are resolved by `s3_config.resolve_settings`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

import obstore.exceptions as obe
from obstore.store import S3Store

from ...errors import AlreadyExistsError, BackendError, NotFoundError
from .base import Backend, BackendProperties
from .retry import TransientBackendError
from .s3_config import S3Options, resolve_settings

SINGLE_PUT_LIMIT = 5 * 1024**3
MULTIPART_CHUNK = 16 * 1024 * 1024
STREAM_CHUNK = 512 * 1024  # streamed reads: below the allocator's mmap threshold, so buffers are reused

_STATUS_RE = re.compile(r"status code: (\d{3})")
_CODE_RE = re.compile(r"<Code>([A-Za-z]+)</Code>")
_CREDENTIAL_HINT = "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and ~/.aws/credentials)"


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
    def from_url(cls, url: str, *, environ: Mapping[str, str] | None = None, **options: Any) -> S3Backend:
        """Open ``s3://bucket/prefix``, taking what ``options`` (see `S3Options`) leaves open from
        the AWS_* environment. Nothing is sent until the first operation."""
        settings = resolve_settings(url, S3Options(**options), os.environ if environ is None else environ)
        try:
            store = S3Store(settings.bucket, **settings.store_kwargs())
        except obe.BaseError as exc:
            raise BackendError(
                f"invalid S3 configuration for bucket {settings.bucket}: {_first_line(exc)}"
            ) from None
        return cls(store, bucket=settings.bucket, prefix=settings.prefix, endpoint_label=settings.label,
                   conditional_writes=settings.conditional_writes, secrets=settings.secrets)

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

