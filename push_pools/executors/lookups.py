"""Per-run cloud reads made in parallel: a dispatcher asking about many runs should wait for
the slowest answer, not for the sum of them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["ParallelLookups"]

T = TypeVar("T")


class ParallelLookups:
    """A few threads, started on first need and stopped by `close`, that answer one lookup per
    id; a single id is answered in the caller's thread."""

    def __init__(self, name: str, threads: int = 8) -> None:
        self._name = name
        self._threads = threads
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def map(self, lookup: Callable[[str], T], ids: list[str]) -> dict[str, T]:
        if len(ids) <= 1:
            return {i: lookup(i) for i in ids}
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix=self._name)
            pool = self._pool
        return dict(zip(ids, pool.map(lookup, ids), strict=True))

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
