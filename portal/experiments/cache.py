"""A small thread-safe cache whose entries expire after a fixed number of seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
PRUNE_ABOVE = 1000


class ExpiringCache(Generic[K, V]):
    """Values kept for ``seconds`` (0: nothing is kept), shared by all threads."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        """Return the value kept for ``key``, or None when there is none or it expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self.clock():
                return None
            return entry[1]

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` for ``key`` (dropping expired entries once the cache grows)."""
        if self.seconds <= 0:
            return
        with self._lock:
            now = self.clock()
            if len(self._entries) > PRUNE_ABOVE:
                self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            self._entries[key] = (now + self.seconds, value)
