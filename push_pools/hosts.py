"""This host's heartbeat, and what becomes of the managed runs of a host that stops beating.

Servers sharing a store each bump their host's heartbeat count every few seconds. A server that
sees another host's count stay the same for `timeout` seconds of its own monotonic clock takes
that host for dead and marks its unfinished managed runs Crashed: their sandboxes were on that
host's disk, so nobody else can watch, stop or finish them. Counting beats instead of comparing
timestamps keeps the verdict independent of how far apart the hosts' wall clocks are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from push_pools.store import hosts as host_store
from push_pools.store.db import Store

log = logging.getLogger("push_pools.hosts")

# Beats per timeout: a host is taken for dead only after missing several in a row.
BEATS_PER_TIMEOUT = 4
MAX_BEAT_INTERVAL = 10.0


class HostWatch:
    """Beats for `host_id` and crashes the runs of hosts that stopped beating.

    `tick()` does both once; `start()` runs it every `interval` seconds in a thread of its own,
    so a dispatcher held up by a slow cloud call does not make its host look dead.
    """

    def __init__(
        self,
        store: Store,
        host_id: str,
        *,
        timeout: float,
        name: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.host_id = host_id
        self.timeout = timeout
        self.name = name
        self.interval = min(MAX_BEAT_INTERVAL, timeout / BEATS_PER_TIMEOUT)
        self._monotonic = monotonic
        # Each other host's beat count and when (on our clock) we first saw that count.
        self._seen: dict[str, tuple[int, float]] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> HostWatch:
        self._thread = threading.Thread(target=self._run, name="host-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception:  # a database hiccup: the next beat retries
                log.exception("host heartbeat failed")
            self._stopping.wait(self.interval)

    def tick(self) -> list[str]:
        """Beat once, then crash the runs of hosts silent for the timeout; the runs crashed."""
        with self.store.session() as session:
            host_store.beat(session, self.host_id)
        crashed = []
        for host_id, last in self.silent_hosts():
            crashed += self._crash_runs_on(host_id, last)
        return crashed

    def silent_hosts(self) -> list[tuple[str, datetime]]:
        """Other hosts whose beat count has not changed for `timeout` seconds, with the time
        of their last heartbeat."""
        with self.store.session() as session:
            counts = host_store.beats(session)
        now = self._monotonic()
        silent = []
        for host_id, (count, last) in counts.items():
            if host_id == self.host_id:
                continue
            seen = self._seen.get(host_id)
            if seen is None or seen[0] != count:
                self._seen[host_id] = (count, now)
            elif now - seen[1] >= self.timeout:
                silent.append((host_id, last))
        for host_id in set(self._seen) - set(counts):
            del self._seen[host_id]
        return silent

    def _crash_runs_on(self, host_id: str, last: datetime) -> list[str]:
        with self.store.session() as session:
            run_ids = host_store.active_runs_on(session, host_id)
        if not run_ids:
            return []
        message = (
            f"its host {host_id} stopped heartbeating (last heartbeat at "
            f"{last:%Y-%m-%d %H:%M:%S} UTC, none for {self.timeout:g} s); the run's sandbox "
            "was on that host, so no other server can watch or finish it"
        )
        details = {"host_id": host_id, "dispatcher": self.name}
        with self.store.session() as session:
            crashed = host_store.crash_runs_on(session, host_id, run_ids, message, details)
        if crashed:
            log.warning(
                "host %s stopped heartbeating: %d of its runs marked Crashed", host_id, len(crashed)
            )
        return crashed
