"""The Backend contract, run unchanged against every backend.

Backends: a local directory; S3 on a real SeaweedFS; and a local directory behind a flaky link
(`FaultyBackend` injecting transient errors, timeouts and lost replies, behind `RetryingBackend`),
which proves that retries keep the contract. Each backend's declared properties are checked
against what it does (pack files streamed to storage, a remote read through the pack cache).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import blake3
import pytest

from cells_backup.errors import AlreadyExistsError, BackendError, NotFoundError
from cells_backup.repository.backends import LocalBackend, pack_file
from cells_backup.repository.backends.base import BackendProperties
from cells_backup.repository.backends.direct_write import PIECE
from cells_backup.repository.backends.retry import RetryingBackend
from cells_backup.repository.index import DATA
from cells_backup.repository.repository import Repository, pack_name
from cells_backup.repository.writer import BlobWriter
from faulty_backend import Fault, FaultyBackend


def flaky_plan() -> list[Fault]:
    """Fail often, but never more than two calls in a row for one caller."""
    return [
        Fault("*", "transient", times=None, every=3),
        Fault("write", "lost_ack", times=None, every=5),
        Fault("read", "timeout", delay=0.001, times=None, every=4),
    ]


@pytest.fixture(params=["local", "s3", "flaky-local"])
def backend(request: pytest.FixtureRequest, tmp_path) -> Iterator[object]:
    if request.param == "local":
        b = LocalBackend(str(tmp_path / "repo"))
    elif request.param == "s3":
        server = request.getfixturevalue("s3_server")
        server.start()  # in case a previous test left it stopped
        b = server.backend(request.getfixturevalue("s3_prefix"))
    else:
        inner = LocalBackend(str(tmp_path / "repo"))
        # Fault counters are shared by all threads, so one caller can meet several faults in a row.
        b = RetryingBackend(FaultyBackend(inner, flaky_plan()), attempts=40, base_delay=0.001, max_delay=0.01)
    yield b
    b.close()


def hexname(i: int) -> str:
    return f"{i:064x}"


@pytest.mark.parametrize("size", [0, 1, 10 * 1024 * 1024], ids=["empty", "1byte", "10MiB"])
def test_round_trip(backend, size: int) -> None:
    data = os.urandom(size)
    name = f"data/ab/{hexname(size)}"
    backend.write(name, data)
    assert backend.read(name) == data
    assert backend.size(name) == size


def test_write_accepts_memoryview(backend) -> None:
    buf = bytearray(b"0123456789")
    backend.write("index/" + hexname(1), memoryview(buf)[2:6])
    assert backend.read("index/" + hexname(1)) == b"2345"


def test_read_range(backend) -> None:
    data = bytes(range(256)) * 4
    backend.write("pack", data)
    assert backend.read_range("pack", 0, 10) == data[:10]
    assert backend.read_range("pack", 100, 50) == data[100:150]
    assert backend.read_range("pack", 1000, 100) == data[1000:]  # short at the end
    assert backend.read_range("pack", 5000, 10) == b""  # past the end
    assert backend.read_range("pack", -16, 16) == data[-16:]  # negative: from the end
    assert backend.read_range("pack", -16, 4) == data[-16:-12]
    assert backend.read_range("pack", -16, 100) == data[-16:]
    assert backend.read_range("pack", 3, 0) == b""


def test_streamed_read_joins_to_the_ranged_read(backend) -> None:
    """Backends that stream reads (S3, several chunks here) give the bytes `read_range` would."""
    data = os.urandom(3 * 1024 * 1024 + 5)
    backend.write("pack", data)
    stream = backend.read_stream
    assert b"".join(stream("pack", 0, len(data))) == data
    assert b"".join(stream("pack", 1000, 2 * 1024 * 1024)) == data[1000 : 1000 + 2 * 1024 * 1024]
    assert b"".join(stream("pack", len(data) - 10, 100)) == data[-10:]  # short at the end
    assert b"".join(stream("pack", len(data) + 10, 100)) == b""  # past the end
    with pytest.raises(NotFoundError):
        b"".join(stream("missing", 0, 10))


def test_overwrite_replaces_whole_object(backend) -> None:
    backend.write("snapshots/" + hexname(1), b"first version, longer")
    backend.write("snapshots/" + hexname(1), b"second")
    assert backend.read("snapshots/" + hexname(1)) == b"second"
    assert backend.size("snapshots/" + hexname(1)) == 6


def test_exclusive_write(backend) -> None:
    name = "locks/" + hexname(7)
    backend.write(name, b"mine", exclusive=True)
    with pytest.raises(AlreadyExistsError):
        backend.write(name, b"theirs", exclusive=True)
    assert backend.read(name) == b"mine"
    backend.write("config", b"plain")
    with pytest.raises(AlreadyExistsError):
        backend.write("config", b"other", exclusive=True)
    assert backend.read("config") == b"plain"


def test_concurrent_exclusive_writers_exactly_one_wins(backend) -> None:
    writers = 8
    for round_ in range(3):
        name = f"locks/{hexname(100 + round_)}"
        barrier = threading.Barrier(writers)

        def attempt(i: int, name: str = name, barrier: threading.Barrier = barrier) -> int | None:
            barrier.wait()
            try:
                backend.write(name, f"writer {i}".encode(), exclusive=True)
                return i
            except AlreadyExistsError:
                return None

        with ThreadPoolExecutor(writers) as pool:
            winners = [r for r in pool.map(attempt, range(writers)) if r is not None]
        assert len(winners) == 1
        assert backend.read(name) == f"writer {winners[0]}".encode()


def test_concurrent_writes_and_reads_from_threads(backend) -> None:
    blobs = {f"data/{i:02x}/{hexname(i)}": os.urandom(64 * 1024 + i) for i in range(24)}

    def roundtrip(item: tuple[str, bytes]) -> bool:
        name, data = item
        backend.write(name, data)
        return backend.read(name) == data and backend.size(name) == len(data)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(roundtrip, blobs.items()))
    assert dict(backend.list("data/")) == {name: len(data) for name, data in blobs.items()}


def test_delete_is_idempotent(backend) -> None:
    backend.delete("keys/" + hexname(1))  # never existed
    backend.write("keys/" + hexname(1), b"k")
    backend.delete("keys/" + hexname(1))
    with pytest.raises(NotFoundError):
        backend.read("keys/" + hexname(1))
    backend.delete("keys/" + hexname(1))
    assert list(backend.list("keys/")) == []


def test_list_with_prefixes(backend) -> None:
    names = {
        "config": 3,
        f"keys/{hexname(1)}": 4,
        f"data/ab/{hexname(0xAB01)}": 5,
        f"data/ab/{hexname(0xAB02)}": 6,
        f"data/ac/{hexname(0xAC01)}": 7,
        f"index/{hexname(2)}": 8,
        f"snapshots/{hexname(3)}": 9,
        f"locks/{hexname(4)}": 10,
    }
    for name, size in names.items():
        backend.write(name, b"x" * size)
    assert dict(backend.list("")) == names
    assert dict(backend.list("data/")) == {n: s for n, s in names.items() if n.startswith("data/")}
    assert dict(backend.list("data/ab/")) == {n: s for n, s in names.items() if n.startswith("data/ab/")}
    assert list(backend.list("nothing/")) == []
    assert list(backend.list("data/zz/")) == []


def test_list_with_prefix_inside_a_name(backend) -> None:
    """The contract says "names starting with prefix", not "names under directory prefix"; this is
    what resolving a snapshot id prefix (``snapshots/3fa9``) needs."""
    names = {f"data/ab/{hexname(0xAB01)}": 5, f"data/ac/{hexname(0xAC01)}": 7, f"data/b0/{hexname(0xB0)}": 1,
             f"snapshots/{hexname(0x3FA9)}": 9, f"snapshots/{hexname(0x4000)}": 2}
    for name, size in names.items():
        backend.write(name, b"x" * size)
    assert dict(backend.list("data/a")) == {n: s for n, s in names.items() if n.startswith("data/a")}
    assert dict(backend.list("snap")) == {n: s for n, s in names.items() if n.startswith("snap")}
    assert dict(backend.list(f"snapshots/{hexname(0x3FA9)[:62]}")) == {f"snapshots/{hexname(0x3FA9)}": 9}


def test_missing_objects_raise_not_found(backend) -> None:
    name = "data/00/" + hexname(0)
    with pytest.raises(NotFoundError):
        backend.read(name)
    with pytest.raises(NotFoundError):
        backend.read_range(name, 0, 10)
    with pytest.raises(NotFoundError):
        backend.read_range(name, -10, 10)
    with pytest.raises(NotFoundError):
        backend.size(name)


def test_exists_repository(backend) -> None:
    assert backend.exists_repository() is False
    backend.write("keys/" + hexname(9), b"key")
    assert backend.exists_repository() is False
    backend.write("config", b"cfg")
    assert backend.exists_repository() is True


@pytest.mark.parametrize("name", ["../escape", "/absolute", "data/../../x"])
def test_invalid_names_are_refused(backend, name: str) -> None:
    with pytest.raises(BackendError):
        backend.write(name, b"x")


def test_errors_are_backend_errors_with_one_line(backend) -> None:
    with pytest.raises(NotFoundError) as info:
        backend.read("index/" + hexname(404))
    message = str(info.value)
    assert "\n" not in message
    assert hexname(404) in message
    assert isinstance(info.value, BackendError)


DECLARED = {
    "local": BackendProperties(remote=False, streams_pack_files=True),
    "s3": BackendProperties(remote=True, streams_pack_files=False),
    # The fault wrapper sends packs whole through `write`, so that its faults reach them.
    "flaky-local": BackendProperties(remote=False, streams_pack_files=False),
}


def test_declared_properties(backend, request: pytest.FixtureRequest) -> None:
    assert backend.properties == DECLARED[request.node.callspec.params["backend"]]


def test_pack_files_are_streamed_only_where_declared(backend) -> None:
    parts = [os.urandom(n) for n in (PIECE + 3, 10, 2 * PIECE)]
    if not backend.properties.streams_pack_files:
        with pytest.raises(NotImplementedError, match="does not stream pack files"):
            backend.open_pack()
        return
    sink = backend.open_pack()
    for part in parts:
        sink.write(part)
    data = b"".join(parts)
    hexid = sink.commit(pack_name)
    assert hexid == blake3.blake3(data).hexdigest()
    assert list(backend.list("data/")) == [(pack_name(hexid), len(data))]
    assert backend.read(pack_name(hexid)) == data


def test_a_repository_uses_what_the_backend_declares(backend, monkeypatch) -> None:
    """Blobs written through the repository read back from a reopened one: from the pack cache
    where the backend is remote, from packs streamed to storage where it streams pack files."""
    streamed: list[int] = []
    real_commit = pack_file.PackFile.commit

    def commit(self, name_of):
        streamed.append(self.size)
        return real_commit(self, name_of)

    monkeypatch.setattr(pack_file.PackFile, "commit", commit)
    Repository.create(backend, b"pw", kdf={"n": 1024, "r": 8, "p": 1}, pack_size=1024 * 1024)
    blobs = [os.urandom(300_000 + i) for i in range(8)]
    repo = Repository.open(backend, b"pw")
    with BlobWriter(repo) as writer:
        ids = [writer.save(DATA, blob) for blob in blobs]
        writer.flush()
    assert bool(streamed) == backend.properties.streams_pack_files
    fresh = Repository.open(backend, b"pw")
    fresh.load_index()
    assert fresh.remote == backend.properties.remote
    assert [fresh.read_blob(blob_id) for blob_id in ids] == blobs
