"""Wake-ups across servers sharing one PostgreSQL: NOTIFY when work appears, LISTEN for it.

Without this, a run created through one server reaches another server's dispatcher (and the
workers long-polling that server) on their next poll, up to a second later. A server publishes
the keys it wakes locally (pool ids, "scheduler", ...) on one channel; every other server
wakes the same keys when it hears them. Notifications are hints: a lost one only costs the
poll interval, so failures here are logged, never raised into a request.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any

log = logging.getLogger("push_pools.wakeups")

CHANNEL = "push_pools_work"
# pg_notify payloads must stay under 8000 bytes; keys beyond this are dropped (a hint only).
MAX_PAYLOAD = 7000


class PostgresWakeups:
    """Two threads, each with its own connection: one listens, one publishes what `publish`
    queued (so that a request, or the event loop, never waits on the database for a hint)."""

    def __init__(self, url: str, on_wake: Callable[[list[str]], None]) -> None:
        self.url = _libpq_url(url)
        self.on_wake = on_wake
        # Our own notifications come back to us too; the sender id lets us skip them.
        self.sender = uuid.uuid4().hex[:12]
        self._outbox: queue.SimpleQueue[list[str] | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> PostgresWakeups:
        for target, name in (
            (self._listen_forever, "pg-listen"),
            (self._publish_forever, "pg-notify"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wait_listening(self, timeout: float) -> bool:
        return self._listening.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()
        self._outbox.put(None)
        for thread in self._threads:
            thread.join(5)

    def publish(self, keys: list[str]) -> None:
        """Tell the other servers; returns at once."""
        self._outbox.put(keys)

    def _publish_forever(self) -> None:
        import psycopg

        connection: Any = None
        while True:
            keys = self._outbox.get()
            if keys is None:
                break
            # Whatever queued up meanwhile goes in the same notification.
            pending = set(keys)
            while not self._outbox.empty():
                more = self._outbox.get()
                if more is None:
                    self._outbox.put(None)
                    break
                pending.update(more)
            payload = self.sender + "|" + ",".join(sorted(pending))
            if len(payload) > MAX_PAYLOAD:
                payload = payload[:MAX_PAYLOAD].rsplit(",", 1)[0]
            try:
                if connection is None or connection.closed:
                    connection = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            except psycopg.Error as exc:
                log.warning("could not tell other servers about new work: %s", exc)
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()

    def _listen_forever(self) -> None:
        import psycopg

        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    while not self._stopping.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            self._received(notice.payload)
            except psycopg.Error as exc:
                self._listening.clear()
                log.warning("listening for other servers' work failed (%s); retrying", exc)
                self._stopping.wait(2.0)

    def _received(self, payload: str) -> None:
        sender, _, joined = payload.partition("|")
        if sender == self.sender or not joined:
            return
        try:
            self.on_wake(joined.split(","))
        except Exception:  # a wake-up must never end the listening thread
            log.exception("waking for other servers' work failed")


def _libpq_url(url: str) -> str:
    """SQLAlchemy's `postgresql+psycopg://` as libpq reads it: `postgresql://`."""
    scheme, sep, rest = url.partition("://")
    return "postgresql://" + rest if sep and scheme.startswith("postgres") else url
