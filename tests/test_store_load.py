"""The API under concurrent load and a busy store, through a real uvicorn server on 127.0.0.1.

Verdicts are about answers (every request 2xx, or a 503 that says when to retry), never about
how fast they came: the only clock involved is the server's own busy timeout.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest

from push_pools.client import Client
from push_pools.embedded import EmbeddedServer

pytestmark = pytest.mark.store

READERS = 200
LOG_POSTERS = 50
LINES_PER_POST = 10
# Far enough ahead that no worker, dispatcher or Late marking touches these runs.
LATER = {"scheduled_time": "2100-01-01T00:00:00+00:00"}


def make_runs(client: Client, count: int) -> list[str]:
    client.create_work_pool({"name": "pool", "type": "process"})
    deployment = client.upsert_deployment(
        {
            "name": "load",
            "flow_name": "load",
            "entrypoint": "flows.py:load",
            "work_pool_name": "pool",
        }
    )
    return [client.create_run(deployment["id"], LATER)["id"] for _ in range(count)]


async def burst(requests: list[tuple[str, str, Any]]) -> list[httpx.Response | BaseException]:
    """Every request at once, each on its own connection."""
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        return await asyncio.gather(
            *(http.request(method, url, json=body) for method, url, body in requests),
            return_exceptions=True,
        )


def outcome(answer: httpx.Response | BaseException) -> str:
    if isinstance(answer, BaseException):
        return type(answer).__name__
    return f"{answer.status_code} {answer.text[:200]}" if answer.status_code >= 300 else "2xx"


@pytest.mark.timeout(240)
def test_200_reads_and_50_log_posts_at_once_all_succeed(
    server: EmbeddedServer, client: Client
) -> None:
    for i in range(4):
        client.create_work_pool({"name": f"other-{i}", "type": "process"})
    runs = make_runs(client, LOG_POSTERS)
    api = server.api_url
    requests: list[tuple[str, str, Any]] = [("GET", f"{api}/work_pools", None)] * READERS
    for run_id in runs:
        lines = [{"message": f"{run_id} line {i}"} for i in range(LINES_PER_POST)]
        requests.append(("POST", f"{api}/flow_runs/{run_id}/logs", lines))

    answers = asyncio.run(burst(requests))

    assert Counter(outcome(a) for a in answers) == {"2xx": READERS + LOG_POSTERS}
    assert all(len(a.json()) == 5 for a in answers[:READERS])  # type: ignore[union-attr]
    for run_id in runs:
        stored = [line["message"] for line in client.get_logs(run_id)]
        assert stored == [f"{run_id} line {i}" for i in range(LINES_PER_POST)]


@contextmanager
def sqlite_write_lock(server: EmbeddedServer) -> Iterator[None]:
    """Another process's writer, holding SQLite's write lock for the whole block."""
    path = server.store.engine.url.database
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def test_reads_go_on_while_another_writer_holds_the_lock(
    server: EmbeddedServer, client: Client
) -> None:
    if not server.store.is_sqlite:
        pytest.skip("checks SQLite's write lock; this run's store is not SQLite")
    client.create_work_pool({"name": "pool", "type": "process"})
    with sqlite_write_lock(server):
        assert [p["name"] for p in client.list_work_pools()] == ["pool"]
        assert client.get_work_pool("pool")["name"] == "pool"


def test_a_write_that_cannot_get_the_lock_answers_503_with_retry_after(
    server: EmbeddedServer, client: Client
) -> None:
    if not server.store.is_sqlite:
        pytest.skip("checks SQLite's write lock; this run's store is not SQLite")
    with sqlite_write_lock(server):
        response = httpx.post(
            f"{server.api_url}/work_pools", json={"name": "pool", "type": "process"}, timeout=60
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "detail": "the server is busy: the store's write lock stayed taken within 5 s; "
        "retry in 1 s",
        "code": "server_busy",
    }
    # Nothing was half-written: the retry succeeds.
    assert client.create_work_pool({"name": "pool", "type": "process"})["name"] == "pool"


def test_a_request_that_gets_no_connection_answers_503_with_retry_after(
    server: EmbeddedServer, client: Client
) -> None:
    from push_pools.store.db import POOL_CONNECTIONS

    client.create_work_pool({"name": "pool", "type": "process"})
    with ExitStack() as held:
        # Every connection of the server's pool taken, as by requests stuck behind a slow one.
        for _ in range(POOL_CONNECTIONS):
            held.callback(server.store.engine.raw_connection().close)
        response = httpx.get(f"{server.api_url}/work_pools", timeout=60)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "server_busy"
    assert "no database connection became free within 5 s" in response.json()["detail"]
    assert [p["name"] for p in client.list_work_pools()] == ["pool"]
