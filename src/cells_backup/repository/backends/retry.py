"""Retrying failed backend calls, for any backend.

Network storage fails in two ways: briefly (throttling, a 5xx, a dropped connection, a timeout),
where waiting and trying again is the right answer, and for good (wrong credentials, a missing
bucket), where trying again only delays a clear error. Backends say which by raising
`TransientBackendError` for the first kind; `RetryingBackend` retries those, and only those, with
capped exponential backoff and full jitter, within a bounded number of attempts and total time.

`S3Backend` already retries inside obstore with the same policy, so it is not wrapped again; this
wrapper serves backends without their own retries and the fault-injection tests.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ...errors import AlreadyExistsError, BackendError
from .base import Backend, BackendProperties

if TYPE_CHECKING:
    from .pack_file import PackFile

T = TypeVar("T")


class TransientBackendError(BackendError):
    """A failure that may go away if the same call is made again a little later."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: at most ``attempts`` calls and ``deadline`` seconds in all.

    The delay before retry n (1-based) is uniform in [0, min(max_delay, base_delay * 2**(n-1))]
    ("full jitter"), so many threads that fail together do not retry together.
    """

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 8.0
    deadline: float = 30.0

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        cap = min(self.max_delay, self.base_delay * (2 ** (retry - 1)))
        return (rng or random).uniform(0.0, cap)


DEFAULT_POLICY = RetryPolicy()


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy = DEFAULT_POLICY,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Call ``fn`` until it returns, raises a non-transient error, or the policy is spent.

    The last `TransientBackendError` is re-raised as is when attempts or time run out, so the
    caller sees the backend's own one-line message.
    """
    start = clock()
    attempt = 1
    while True:
        try:
            return fn()
        except TransientBackendError as exc:
            if attempt >= policy.attempts:
                raise
            wait = policy.delay(attempt)
            if clock() - start + wait > policy.deadline:
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            sleep(wait)
            attempt += 1


class RetryingBackend(Backend):
    """Wrap any backend so that transient errors are retried and permanent ones pass through.

    Exclusive writes need care: when a try fails transiently the object may nevertheless have
    been stored (the reply was lost). A later try then meets `AlreadyExistsError` for its own
    object; if the stored bytes equal ours the write is counted as done. Callers that use
    exclusive writes as a lock must therefore make the content unique to the writer (a random
    id, a nonce), which the repository's lock and key objects do.
    """

    def __init__(
        self,
        inner: Backend,
        attempts: int = DEFAULT_POLICY.attempts,
        base_delay: float = DEFAULT_POLICY.base_delay,
        *,
        max_delay: float = DEFAULT_POLICY.max_delay,
        deadline: float = DEFAULT_POLICY.deadline,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.location = inner.location
        self.policy = RetryPolicy(attempts=attempts, base_delay=base_delay, max_delay=max_delay,
                                  deadline=deadline)
        self._sleep = sleep
        self._lock = threading.Lock()
        self.retries = 0  # how many retries were made, for tests and progress reports

    @property
    def properties(self) -> BackendProperties:  # type: ignore[override]
        """Those of the wrapped backend: retrying adds no capability and takes none away."""
        return self.inner.properties

    def _count(self, _attempt: int, _exc: BaseException) -> None:
        with self._lock:
            self.retries += 1

    def _call(self, fn: Callable[[], T]) -> T:
        return call_with_retry(fn, self.policy, sleep=self._sleep, on_retry=self._count)

    def exists_repository(self) -> bool:
        """Retried like every read."""
        return self._call(self.inner.exists_repository)

    def read(self, name: str) -> bytes:
        """Retried whole: a read has no side effect."""
        return self._call(lambda: self.inner.read(name))

    def read_buffer(self, name: str) -> bytes | memoryview:
        """`read` without a copy where the backend offers one (S3), retried alike."""
        return self._call(lambda: self.inner.read_buffer(name))

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """Retried whole."""
        return self._call(lambda: self.inner.read_range(name, offset, length))

    def read_stream(self, name: str, offset: int, length: int) -> Iterator[bytes]:
        """One ranged read, retried whole: a stream cut halfway could not be retried here."""
        yield self.read_range(name, offset, length)

    def write(self, name: str, data: bytes | memoryview, *, exclusive: bool = False) -> None:
        """Retried; a plain write is idempotent, an exclusive one is checked as described above."""
        if not exclusive:
            self._call(lambda: self.inner.write(name, data))
            return
        failed_before = False

        def attempt() -> None:
            nonlocal failed_before
            try:
                self.inner.write(name, data, exclusive=True)
            except AlreadyExistsError:
                if failed_before and self._stored_equals(name, data):
                    return
                raise
            except TransientBackendError:
                failed_before = True
                raise

        self._call(attempt)

    def _stored_equals(self, name: str, data: bytes | memoryview) -> bool:
        try:
            return self._call(lambda: self.inner.read(name)) == bytes(data)
        except BackendError:
            return False

    def delete(self, name: str) -> None:
        """Retried: deleting twice is the same as deleting once."""
        self._call(lambda: self.inner.delete(name))

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Listed whole inside the retry, so a failure half way restarts cleanly, then yielded."""
        yield from self._call(lambda: list(self.inner.list(prefix)))

    def size(self, name: str) -> int:
        """Retried like every read."""
        return self._call(lambda: self.inner.size(name))

    def open_pack(self) -> PackFile:
        """The wrapped backend's, not retried: a pack file is written locally, as it comes."""
        return self.inner.open_pack()

    def remove_temp_files(self) -> int:
        """The wrapped backend's clean-up."""
        return self.inner.remove_temp_files()

    def close(self) -> None:
        """Close the wrapped backend."""
        self.inner.close()

    def __getattr__(self, attr: str) -> object:
        # Backend-specific extras (LocalBackend.root, ...) stay reachable.
        if attr == "inner":  # not yet set (copy, pickle): avoid endless recursion
            raise AttributeError(attr)
        return getattr(self.inner, attr)
