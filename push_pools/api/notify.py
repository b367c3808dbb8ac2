"""Wake-ups for long-polling workers: the API signals a pool when work for it appears."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class WorkNotifier:
    """Waiters per key (a pool id, or "deployment:<id>"), woken from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, keys: list[str]) -> asyncio.Event:
        event = asyncio.Event()
        for key in keys:
            self._waiters[key].add(event)
        return event

    def unsubscribe(self, keys: list[str], event: asyncio.Event) -> None:
        for key in keys:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[key]

    def notify(self, *keys: str | None) -> None:
        """Safe to call from request threads: the wake-up runs on the event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        live = [k for k in keys if k]
        if live:
            loop.call_soon_threadsafe(self._wake, live)

    def _wake(self, keys: list[str]) -> None:
        for key in keys:
            for event in list(self._waiters.get(key, ())):
                event.set()
