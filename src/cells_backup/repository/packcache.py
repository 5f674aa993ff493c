"""Whole packs kept in memory for remote backends, where one request per blob would be slow.

Restores read blobs in roughly the order they were packed, so a handful of recent packs gives
high hit rates. Memory is bounded by ``capacity`` bytes of packs (four packs of the default
size; more when a repository has small packs); concurrent readers of the same pack share one
download.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future

from .backends.base import Backend

CAPACITY = 64 * 1024 * 1024


class PackCache:
    def __init__(self, backend: Backend, capacity: int = CAPACITY) -> None:
        self.backend = backend
        self.capacity = capacity
        self._packs: OrderedDict[str, Future] = OrderedDict()
        self._sizes: dict[str, int] = {}  # downloaded packs only
        self._lock = threading.Lock()

    def read_range(self, name: str, offset: int, length: int) -> memoryview:
        with self._lock:
            future = self._packs.get(name)
            owner = future is None
            if owner:
                future = self._packs[name] = Future()
            else:
                self._packs.move_to_end(name)
        if owner:
            try:
                data = memoryview(self.backend.read_buffer(name))
                with self._lock:
                    self._sizes[name] = len(data)
                    self._evict(keep=name)
                future.set_result(data)
            except BaseException as exc:
                with self._lock:
                    if self._packs.get(name) is future:
                        del self._packs[name]  # a failed download is not cached
                future.set_exception(exc)
        data = future.result()
        return data[offset : offset + length]  # a view: blobs are decrypted from the pack without a copy

    def _evict(self, keep: str) -> None:
        """Drop the least recently used downloaded packs beyond the capacity (lock held)."""
        total = sum(self._sizes.values())
        for name in list(self._packs):
            if total <= self.capacity:
                break
            if name != keep and name in self._sizes:
                total -= self._sizes.pop(name)
                del self._packs[name]
