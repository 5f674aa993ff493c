"""Fault injection (`FaultyBackend`) and retries (`RetryingBackend`) around a local backend."""

from __future__ import annotations

import os
import random
import time

import pytest

from cells_backup.errors import AlreadyExistsError, BackendError, NotFoundError
from cells_backup.repository.backends import LocalBackend
from cells_backup.repository.backends.retry import (
    RetryingBackend,
    RetryPolicy,
    TransientBackendError,
    call_with_retry,
)
from faulty_backend import Fault, FaultyBackend, parse_plan

NO_WAIT = {"base_delay": 0.0, "sleep": lambda _s: None}


@pytest.fixture
def local(tmp_path) -> LocalBackend:
    return LocalBackend(str(tmp_path / "repo"))


def test_transient_errors_are_retried_then_succeed(local) -> None:
    faulty = FaultyBackend(local, [Fault("write", "transient", match="data/", times=3)])
    backend = RetryingBackend(faulty, attempts=5, **NO_WAIT)
    backend.write("data/ab/p1", b"pack")
    assert local.read("data/ab/p1") == b"pack"
    assert backend.retries == 3
    assert faulty.faults[0].fired == 3
    assert faulty.calls.count(("write", "data/ab/p1")) == 4


def test_transient_errors_beyond_the_budget_surface_as_one_line(local) -> None:
    faulty = FaultyBackend(local, [Fault("read", "transient", times=None, message="S3 is throttling")])
    backend = RetryingBackend(faulty, attempts=3, **NO_WAIT)
    local.write("index/i", b"x")
    with pytest.raises(TransientBackendError, match="^S3 is throttling$"):
        backend.read("index/i")
    assert faulty.calls.count(("read", "index/i")) == 3


def test_permanent_errors_are_not_retried(local) -> None:
    faulty = FaultyBackend(local, [Fault("size", "permanent", times=None)])
    backend = RetryingBackend(faulty, attempts=5, **NO_WAIT)
    with pytest.raises(BackendError) as info:
        backend.size("config")
    assert not isinstance(info.value, TransientBackendError)
    assert "\n" not in str(info.value)
    assert len(faulty.calls) == 1
    with pytest.raises(NotFoundError):  # not-found is permanent too
        RetryingBackend(local, **NO_WAIT).read("missing")


def test_deadline_bounds_total_time() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    calls = []

    def always_fails() -> None:
        calls.append(now[0])
        now[0] += 1.0  # each try takes a second
        raise TransientBackendError("down")

    policy = RetryPolicy(attempts=100, base_delay=1.0, max_delay=4.0, deadline=10.0)
    with pytest.raises(TransientBackendError):
        call_with_retry(always_fails, policy, sleep=sleep, clock=lambda: now[0])
    assert now[0] <= 10.0 + 1.0
    assert 2 <= len(calls) < 100


def test_backoff_is_capped_exponential_with_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    rng = random.Random(1)
    for retry in range(1, 10):
        cap = min(4.0, 0.5 * 2 ** (retry - 1))
        delays = [policy.delay(retry, rng) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8  # jitter spreads over the whole range


def test_timeout_sleeps_then_fails(local) -> None:
    faulty = FaultyBackend(local, [Fault("read", "timeout", delay=0.05)])
    local.write("config", b"c")
    started = time.monotonic()
    with pytest.raises(TransientBackendError, match="timeout"):
        faulty.read("config")
    assert time.monotonic() - started >= 0.05
    assert faulty.read("config") == b"c"  # times=1: once only


def test_slow_responses(local) -> None:
    faulty = FaultyBackend(local, [Fault("*", "slow", delay=0.02, times=None)])
    started = time.monotonic()
    faulty.write("a", b"1")
    assert faulty.read("a") == b"1"
    assert time.monotonic() - started >= 0.04


def test_truncated_and_corrupted_reads(local) -> None:
    data = os.urandom(1000)
    local.write("data/ab/p", data)
    faulty = FaultyBackend(local, [
        Fault("read", "truncate", keep=10),
        Fault("read", "truncate", keep=-100),
        Fault("read_range", "truncate"),
        Fault("read", "corrupt", keep=5),
    ])
    assert faulty.read("data/ab/p") == data[:10]
    assert faulty.read("data/ab/p") == data[:900]
    assert faulty.read_range("data/ab/p", 0, 100) == data[:50]
    corrupted = faulty.read("data/ab/p")
    assert len(corrupted) == len(data) and corrupted != data
    assert sum(a != b for a, b in zip(corrupted, data, strict=True)) == 1
    assert faulty.read("data/ab/p") == data


def test_partial_write_leaves_only_a_temp_file(local) -> None:
    faulty = FaultyBackend(local, [Fault("write", "partial_write", keep=100)])
    with pytest.raises(TransientBackendError, match="after 100 bytes"):
        faulty.write("data/ab/p", os.urandom(1000))
    with pytest.raises(NotFoundError):
        local.read("data/ab/p")
    assert list(local.list("data/")) == []  # the leftover is a temp file, invisible to list
    assert local.remove_temp_files() == 1


def test_failing_rename(local) -> None:
    faulty = FaultyBackend(local, [Fault("write", "rename", permanent=True)])
    with pytest.raises(BackendError, match="rename") as info:
        faulty.write("snapshots/s", b"whole object")
    assert not isinstance(info.value, TransientBackendError)
    assert not local.exists_repository() and list(local.list("snapshots/")) == []
    assert local.remove_temp_files() == 1


def test_fail_on_the_nth_write_only(local) -> None:
    faulty = FaultyBackend(local, [Fault("write", "permanent", skip=2)])
    faulty.write("a", b"1")
    faulty.write("b", b"2")
    with pytest.raises(BackendError):
        faulty.write("c", b"3")
    faulty.write("d", b"4")
    assert sorted(name for name, _ in local.list("")) == ["a", "b", "d"]


def test_every_nth_call(local) -> None:
    faulty = FaultyBackend(local, [Fault("write", "transient", times=None, every=3)])
    outcomes = []
    for i in range(7):
        try:
            faulty.write(f"n{i}", b"x")
            outcomes.append(True)
        except TransientBackendError:
            outcomes.append(False)
    assert outcomes == [False, True, True, False, True, True, False]


def test_match_by_glob_and_predicate(local) -> None:
    faulty = FaultyBackend(local, [
        Fault("write", "permanent", match="data/*/ff*", times=None),
        Fault("write", "permanent", match=lambda name: name.endswith(".lock"), times=None),
    ])
    faulty.write("data/ab/00", b"ok")
    with pytest.raises(BackendError):
        faulty.write("data/ab/ff01", b"no")
    with pytest.raises(BackendError):
        faulty.write("locks/x.lock", b"no")


def test_lost_reply_on_exclusive_write_is_recognised_on_retry(local) -> None:
    faulty = FaultyBackend(local, [Fault("write", "lost_ack")])
    backend = RetryingBackend(faulty, attempts=3, **NO_WAIT)
    backend.write("locks/mine", b"unique nonce 1", exclusive=True)  # stored, reply lost, retried
    assert local.read("locks/mine") == b"unique nonce 1"
    with pytest.raises(AlreadyExistsError):  # someone else's object is still refused
        backend.write("locks/mine", b"unique nonce 2", exclusive=True)


def test_outage_added_and_cleared_at_run_time(local) -> None:
    faulty = FaultyBackend(local)
    faulty.write("a", b"1")
    faulty.add(Fault("*", "transient", times=None))
    with pytest.raises(TransientBackendError):
        faulty.read("a")
    with pytest.raises(TransientBackendError):
        list(faulty.list(""))
    faulty.clear()
    assert faulty.read("a") == b"1"


def test_list_is_retried_from_the_start(local) -> None:
    for i in range(5):
        local.write(f"index/{i}", b"x")
    faulty = FaultyBackend(local, [Fault("list", "transient", times=2)])
    backend = RetryingBackend(faulty, attempts=3, **NO_WAIT)
    assert sorted(n for n, _ in backend.list("index/")) == [f"index/{i}" for i in range(5)]


def test_plan_from_string(local) -> None:
    plan = parse_plan("write:transient:match=data/:times=2; read:truncate:keep=3 ;size:slow:delay=0.01:times=none")
    assert [(f.op, f.kind, f.times) for f in plan] == [("write", "transient", 2), ("read", "truncate", 1),
                                                       ("size", "slow", None)]
    assert plan[0].match == "data/" and plan[1].keep == 3 and plan[2].delay == 0.01
    faulty = FaultyBackend(local, "read:truncate:keep=2")
    local.write("x", b"abcdef")
    assert faulty.read("x") == b"ab"
    with pytest.raises(ValueError):
        parse_plan("read:explode")
    with pytest.raises(ValueError):
        parse_plan("read:partial_write")


def test_wrappers_expose_backend_extras(local) -> None:
    backend = RetryingBackend(FaultyBackend(local), **NO_WAIT)
    assert backend.location == local.location
    assert backend.remove_temp_files() == 0


def test_flaky_link_keeps_the_contract(local) -> None:
    faulty = FaultyBackend(local, [
        Fault("*", "transient", times=None, every=3),
        Fault("write", "lost_ack", times=None, every=5),
    ])
    backend = RetryingBackend(faulty, attempts=6, **NO_WAIT)
    for i in range(20):
        backend.write(f"data/{i:02x}/p", bytes([i]) * 10)
    backend.write("locks/l", b"nonce", exclusive=True)
    assert all(backend.read(f"data/{i:02x}/p") == bytes([i]) * 10 for i in range(20))
    assert len(list(backend.list("data/"))) == 20
    assert backend.retries >= 10
