"""Wake-ups for long-polling workers: the API signals a pool when work for it appears."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable


class WorkNotifier:
    """Waiters per key (a pool id, or "deployment:<id>"), woken from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        # Called in the notifying thread with the keys; for the dispatcher's thread.
        self._listeners: list[Callable[[list[str]], None]] = []
        # Told about work noticed here (not about work heard of from them): other servers.
        self._publishers: list[Callable[[list[str]], None]] = []

    def add_listener(self, listener: Callable[[list[str]], None]) -> None:
        self._listeners.append(listener)

    def add_publisher(self, publisher: Callable[[list[str]], None]) -> None:
        self._publishers.append(publisher)

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
        live = [k for k in keys if k]
        if not live:
            return
        for publisher in self._publishers:
            publisher(live)
        self.receive(live)

    def receive(self, live: list[str]) -> None:
        """Wake this server's waiters and listeners for `live` (work another server saw)."""
        for listener in self._listeners:
            listener(live)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._wake, live)

    def _wake(self, keys: list[str]) -> None:
        for key in keys:
            for event in list(self._waiters.get(key, ())):
                event.set()
