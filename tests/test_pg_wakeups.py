"""Servers sharing one PostgreSQL wake each other (LISTEN/NOTIFY) instead of waiting for a poll.

PostgreSQL only: run by the store pass of ./scripts/test (PUSH_POOLS_TEST_DATABASE_URL).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from push_pools.api.pg_wakeups import PostgresWakeups
from push_pools.client import Client
from push_pools.embedded import EmbeddedServer
from tests.conftest import deploy
from tests.dispatch_helpers import wake_up_latencies, write_trivial_flow

pytestmark = [
    pytest.mark.store,
    pytest.mark.skipif(
        not os.environ.get("PUSH_POOLS_TEST_DATABASE_URL"),
        reason="set PUSH_POOLS_TEST_DATABASE_URL (scripts/postgres.sh)",
    ),
]


def test_a_server_hears_the_keys_another_one_publishes_and_not_its_own(
    database_url: str,
) -> None:
    heard: dict[str, list[list[str]]] = {"a": [], "b": []}
    got_one = threading.Event()

    def hear(name: str) -> Callable[[list[str]], None]:
        def on_wake(keys: list[str]) -> None:
            heard[name].append(keys)
            got_one.set()

        return on_wake

    a = PostgresWakeups(database_url, hear("a")).start()
    b = PostgresWakeups(database_url, hear("b")).start()
    try:
        assert a.wait_listening(10) and b.wait_listening(10)
        a.publish(["pool-1", "scheduler"])
        assert got_one.wait(5), "the other server heard nothing"
        time.sleep(0.3)  # time for an echo to a, were it not skipped
    finally:
        a.stop()
        b.stop()
    assert heard == {"a": [], "b": [["pool-1", "scheduler"]]}


def test_a_run_created_through_one_server_is_submitted_by_another_at_once(
    server_factory: Callable[..., EmbeddedServer], home: Path, readable_dir: Path
) -> None:
    front = server_factory(run_dispatcher=False)  # takes the API calls, dispatches nothing
    back = server_factory()  # only its dispatcher submits
    assert back.app.state.wakeups.wait_listening(10)
    # Readable by the unprivileged user managed runs drop to (tmp_path is private).
    flow_dir = write_trivial_flow(readable_dir / "trivial")
    with Client(front.api_url) as client:
        client.create_work_pool({"name": "managed", "type": "managed"})
        deployment = deploy(client, flow_dir, "trivial", pool="managed")
        # Only a wake-up from the front server makes the back server's idle dispatcher start.
        latencies = wake_up_latencies(client, deployment["id"], home / "managed" / "runs", 6)
    print(f"created on one server -> Submitted by another: max {max(latencies):.3f} s")
    # Polling alone would take 0.5 s on average, and up to 1 s. The median, not the maximum:
    # one sample slowed by a busy machine must not decide (every one of them was 0.05-0.15 s
    # on a quiet one).
    assert statistics.median(latencies) < 0.5, latencies
