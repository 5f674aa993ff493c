"""Whole packs kept in memory for remote backends, where one request per blob would be slow.

Restores read blobs in roughly the order they were packed, so a handful of recent packs gives
high hit rates. Memory is bounded by ``capacity`` packs; concurrent readers of the same pack
share one download.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future

from .backends.base import Backend


class PackCache:
    def __init__(self, backend: Backend, capacity: int = 6) -> None:
        self.backend = backend
        self.capacity = capacity
        self._packs: OrderedDict[str, Future] = OrderedDict()
        self._lock = threading.Lock()

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        with self._lock:
            future = self._packs.get(name)
            owner = future is None
            if owner:
                future = self._packs[name] = Future()
                while len(self._packs) > self.capacity:
                    self._packs.popitem(last=False)
            else:
                self._packs.move_to_end(name)
        if owner:
            try:
                future.set_result(self.backend.read(name))
            except BaseException as exc:
                with self._lock:
                    if self._packs.get(name) is future:
                        del self._packs[name]  # a failed download is not cached
                future.set_exception(exc)
        data = future.result()
        return data[offset : offset + length]
