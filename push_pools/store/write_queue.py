"""A first-come, first-served queue for the API's writers on SQLite.

SQLite has one write lock, and its busy handler lets waiters poll for it with growing sleeps:
under 50 concurrent writers some keep losing and wait seconds while others go through in
milliseconds. Writers of this process take their turn here instead, in arrival order, and reach
SQLite's lock only when it is (almost always) free.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class StoreBusy(Exception):
    """No turn to write within the wait allowed; the API answers 503 with Retry-After."""


class WriteQueue:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiting: deque[threading.Lock] = deque()

    @contextmanager
    def turn(self, timeout: float) -> Iterator[None]:
        """Hold the turn for the block; StoreBusy if it does not come within `timeout` s."""
        if not self._acquire(timeout):
            raise StoreBusy(f"no turn to write within {timeout:g} s")
        try:
            yield
        finally:
            self._release()

    def _acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            baton = threading.Lock()
            baton.acquire()
            self._waiting.append(baton)
        if baton.acquire(timeout=timeout):
            return True  # handed over by _release, already ours
        with self._mutex:
            if baton in self._waiting:
                self._waiting.remove(baton)
                return False
        # Handed over between the timeout and taking the mutex: the turn is ours after all.
        return True

    def _release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().release()  # the turn passes on without being free
            else:
                self._held = False
