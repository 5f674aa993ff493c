"""A backend wrapper that misbehaves on purpose, for tests a real server cannot stage.

A real S3 server can be killed, but it cannot be told to fail the third PUT of a pack, to time
out exactly once, to hand back half an object, or to lose the reply of a write that succeeded.
`FaultyBackend` wraps any backend and does those things according to a plan: a list of `Fault`
rules, each naming an operation, a kind of misbehaviour, which object names it applies to, and
how many times. Example::

    backend = FaultyBackend(LocalBackend(tmp), [
        Fault("write", "transient", match="data/", times=2),   # first 2 pack writes fail
        Fault("read", "truncate", match="index/", keep=10),     # index reads return 10 bytes
        Fault("write", "permanent", skip=4),                    # the 5th write fails for good
        Fault("*", "slow", delay=0.05, times=None),             # every call takes 50 ms more
    ])

or, from a string (handy for an env var read by a test harness)::

    FaultyBackend(inner, "write:transient:match=data/:times=2; read:truncate:keep=10")

Operations: ``read`` (covers ``read_range`` too), ``read_range``, ``write``, ``delete``, ``list``,
``size``, ``exists_repository``, or ``*`` for all. Kinds:

- ``transient`` / ``permanent``: raise `TransientBackendError` / `BackendError` instead of the call.
- ``timeout``: sleep ``delay`` seconds, then raise a transient "timed out" (nothing is done).
- ``slow``: sleep ``delay`` seconds, then do the call normally.
- ``truncate``: reads return the first ``keep`` bytes (a negative ``keep`` drops that many from
  the end; default: half).
- ``corrupt``: reads return the data with one bit flipped at offset ``keep`` (default 0).
- ``partial_write``: a write "dies" after ``keep`` bytes: nothing is stored under the name, the
  first ``keep`` bytes are left as ``<name>.<random>.tmp`` (like an interrupted local write) unless
  ``leave_temp=False``, and a transient error is raised.
- ``rename``: the whole object is written to a temp name but the final rename fails (leftover temp
  file, transient error).
- ``lost_ack``: the call is done, then a transient error is raised as if the reply were lost.

Counting: a rule lets the first ``skip`` matching calls through, then fires ``times`` times
(``None``: forever), on every ``every``-th matching call (``every=3``: a flaky link failing one
call in three). ``match`` is a name prefix, a glob when it holds ``*?[``, or a predicate.
The first rule that fires wins. ``fired`` on each rule and ``calls`` on the backend let tests
assert what happened. All counters are thread-safe.
"""

from __future__ import annotations

import fnmatch
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from cells_backup.errors import BackendError
from cells_backup.repository.backends.base import Backend, BackendProperties
from cells_backup.repository.backends.retry import TransientBackendError

KINDS = frozenset({
    "transient", "permanent", "timeout", "slow", "truncate", "corrupt", "partial_write", "rename",
    "lost_ack",
})
OPERATIONS = frozenset({"read", "read_range", "write", "delete", "list", "size", "exists_repository", "*"})
_WRITE_ONLY = frozenset({"partial_write", "rename"})
_READ_ONLY = frozenset({"truncate", "corrupt"})


@dataclass
class Fault:
    """One rule of a fault plan (see the module docstring)."""

    op: str = "*"
    kind: str = "transient"
    match: str | Callable[[str], bool] | None = None
    times: int | None = 1
    skip: int = 0
    every: int = 1
    delay: float = 0.0
    keep: int | None = None
    leave_temp: bool = True
    permanent: bool = False  # raise a permanent error for timeout/partial_write/rename/lost_ack
    message: str | None = None
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(KINDS)}")
        if self.op not in OPERATIONS:
            raise ValueError(f"unknown operation {self.op!r}; one of {sorted(OPERATIONS)}")
        if self.kind in _WRITE_ONLY and self.op not in ("write", "*"):
            raise ValueError(f"fault {self.kind!r} applies to writes only")
        if self.kind in _READ_ONLY and self.op not in ("read", "read_range", "*"):
            raise ValueError(f"fault {self.kind!r} applies to reads only")

    def applies(self, op: str, name: str) -> bool:
        """Whether this rule concerns this call (before counting)."""
        if self.op != "*" and self.op != op and not (self.op == "read" and op == "read_range"):
            return False
        if self.kind in _WRITE_ONLY and op != "write":
            return False
        if self.kind in _READ_ONLY and op not in ("read", "read_range"):
            return False
        if self.match is None:
            return True
        if callable(self.match):
            return bool(self.match(name))
        if any(ch in self.match for ch in "*?["):
            return fnmatch.fnmatchcase(name, self.match)
        return name.startswith(self.match)

    def due(self) -> bool:
        """Whether the call just counted in ``seen`` is one this rule acts on."""
        if self.seen <= self.skip or (self.times is not None and self.fired >= self.times):
            return False
        return (self.seen - self.skip - 1) % max(1, self.every) == 0

    def error(self, op: str, name: str, what: str = "failure") -> BackendError:
        """The exception this rule raises."""
        text = self.message or f"injected {what} on {op} {name}"
        return BackendError(text) if self.permanent or self.kind == "permanent" else TransientBackendError(text)


def parse_plan(spec: str) -> list[Fault]:
    """``"op:kind[:key=value...]; ..."`` -> rules. Keys: match, times (or "none"), skip, delay,
    every, keep, leave_temp, permanent, message."""
    rules = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        op, _, rest = part.partition(":")
        kind, *options = rest.split(":") if rest else ["transient"]
        kwargs: dict[str, object] = {}
        for option in options:
            key, sep, value = option.partition("=")
            if not sep:
                raise ValueError(f"fault option {option!r} is not key=value in {part!r}")
            if key in ("times", "skip", "keep", "every"):
                kwargs[key] = None if value.lower() == "none" else int(value)
            elif key == "delay":
                kwargs[key] = float(value)
            elif key in ("leave_temp", "permanent"):
                kwargs[key] = value.lower() in ("1", "true", "yes")
            elif key in ("match", "message"):
                kwargs[key] = value
            else:
                raise ValueError(f"unknown fault option {key!r} in {part!r}")
        rules.append(Fault(op.strip(), kind.strip(), **kwargs))  # type: ignore[arg-type]
    return rules


class FaultyBackend(Backend):
    """Wrap ``inner`` and apply the fault plan to every call."""

    def __init__(
        self,
        inner: Backend,
        plan: Sequence[Fault] | str = (),
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.location = inner.location
        self.faults: list[Fault] = parse_plan(plan) if isinstance(plan, str) else list(plan)
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._sleep = sleep

    def add(self, *faults: Fault) -> None:
        """Add rules while running (e.g. start an outage half way through a backup)."""
        with self._lock:
            self.faults.extend(faults)

    def clear(self) -> None:
        """Remove every rule: from now on the backend behaves."""
        with self._lock:
            self.faults.clear()

    @property
    def properties(self) -> BackendProperties:  # type: ignore[override]
        """The wrapped backend's, but packs go whole through `write`, where the plan's faults
        apply (so `open_pack` is not offered)."""
        return replace(self.inner.properties, streams_pack_files=False)

    def _pick(self, op: str, name: str) -> Fault | None:
        with self._lock:
            self.calls.append((op, name))
            chosen = None
            for fault in self.faults:
                if not fault.applies(op, name):
                    continue
                fault.seen += 1
                if chosen is None and fault.due():
                    fault.fired += 1
                    chosen = fault
            return chosen

    def _before(self, op: str, name: str) -> Fault | None:
        """Apply what happens before the call; return the rule if it acts after the call."""
        fault = self._pick(op, name)
        if fault is None:
            return None
        if fault.kind in ("transient", "permanent"):
            raise fault.error(op, name)
        if fault.kind == "timeout":
            self._sleep(fault.delay)
            raise fault.error(op, name, "timeout")
        if fault.kind == "slow":
            self._sleep(fault.delay)
            return None
        return fault

    def exists_repository(self) -> bool:
        """Faults apply under the name ``config``."""
        fault = self._before("exists_repository", "config")
        result = self.inner.exists_repository()
        if fault is not None and fault.kind == "lost_ack":
            raise fault.error("exists_repository", "config", "lost reply")
        return result

    def read(self, name: str) -> bytes:
        """Read, possibly truncated or corrupted."""
        fault = self._before("read", name)
        return self._after_read(fault, "read", name, self.inner.read(name))

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """Ranged read, possibly truncated or corrupted."""
        fault = self._before("read_range", name)
        return self._after_read(fault, "read_range", name, self.inner.read_range(name, offset, length))

    def read_stream(self, name: str, offset: int, length: int) -> Iterator[bytes]:
        """A streamed read is one ranged read here, so that its faults apply to it too."""
        yield self.read_range(name, offset, length)

    def _after_read(self, fault: Fault | None, op: str, name: str, data: bytes) -> bytes:
        if fault is None:
            return data
        if fault.kind == "truncate":
            keep = len(data) // 2 if fault.keep is None else fault.keep
            return data[:keep] if keep >= 0 else data[: max(0, len(data) + keep)]
        if fault.kind == "corrupt":
            if not data:
                return data
            pos = min(fault.keep or 0, len(data) - 1)
            flipped = bytearray(data)
            flipped[pos] ^= 0x01
            return bytes(flipped)
        if fault.kind == "lost_ack":
            raise fault.error(op, name, "lost reply")
        return data

    def write(self, name: str, data: bytes | memoryview, *, exclusive: bool = False) -> None:
        """Write, or fail part way according to the plan."""
        fault = self._before("write", name)
        if fault is not None and fault.kind in ("partial_write", "rename"):
            view = memoryview(data)
            kept = view if fault.kind == "rename" else view[: fault.keep or 0]
            if fault.leave_temp:
                self.inner.write(f"{name}.{secrets.token_hex(6)}.tmp", kept)
            what = "rename failure" if fault.kind == "rename" else f"connection loss after {len(kept)} bytes"
            raise fault.error("write", name, what)
        self.inner.write(name, data, exclusive=exclusive)
        if fault is not None and fault.kind == "lost_ack":
            raise fault.error("write", name, "lost reply")

    def delete(self, name: str) -> None:
        """Delete per the plan."""
        fault = self._before("delete", name)
        self.inner.delete(name)
        if fault is not None and fault.kind == "lost_ack":
            raise fault.error("delete", name, "lost reply")

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Faults are checked once, when the listing starts (under the prefix as name)."""
        fault = self._before("list", prefix)
        items = self.inner.list(prefix)
        if fault is not None and fault.kind == "lost_ack":
            raise fault.error("list", prefix, "lost reply")
        return items

    def size(self, name: str) -> int:
        """Size per the plan."""
        fault = self._before("size", name)
        result = self.inner.size(name)
        if fault is not None and fault.kind == "lost_ack":
            raise fault.error("size", name, "lost reply")
        return result

    def remove_temp_files(self) -> int:
        """The wrapped backend's clean-up, without faults (it removes what they left)."""
        return self.inner.remove_temp_files()

    def close(self) -> None:
        """Close the wrapped backend."""
        self.inner.close()

    def __getattr__(self, attr: str) -> object:
        if attr == "inner":  # not yet set (copy, pickle): avoid endless recursion
            raise AttributeError(attr)
        return getattr(self.inner, attr)
