"""Routes for work pools, their types and queues, and worker polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from push_pools import pool_types, templates
from push_pools.api.deps import IsolationDep, NotifierDep, SessionDep, StoreDep, StoreRoute
from push_pools.api.notify import WorkNotifier
from push_pools.errors import InvalidInput
from push_pools.models import (
    ClaimedRun,
    PollRequest,
    PollResponse,
    PoolTypeOut,
    WorkPoolCreate,
    WorkPoolOut,
    WorkPoolUpdate,
    WorkQueueCreate,
    WorkQueueOut,
    WorkQueueUpdate,
)
from push_pools.store import pools as pool_store
from push_pools.store import run_tokens
from push_pools.store import runs as run_store
from push_pools.store.db import Store
from push_pools.store.tables import utcnow

router = APIRouter(route_class=StoreRoute)


@router.get("/work_pool_types", response_model=list[PoolTypeOut], tags=["work pools"])
def list_pool_types() -> list[PoolTypeOut]:
    return [
        PoolTypeOut(name=t.name, description=t.description, is_push=t.is_push)
        for t in (pool_types.get(n) for n in pool_types.names())
    ]


@router.get("/work_pool_types/{pool_type}/base_job_template", tags=["work pools"])
def default_base_job_template(pool_type: str) -> dict:
    return pool_types.get(pool_type).default_template()


@router.post("/work_pools", status_code=201, response_model=WorkPoolOut, tags=["work pools"])
def create_work_pool(
    body: WorkPoolCreate, session: SessionDep, isolation: IsolationDep
) -> WorkPoolOut:
    pool = pool_store.create_pool(session, body)
    return pool_store.pool_out(session, pool, isolation)


@router.get("/work_pools", response_model=list[WorkPoolOut], tags=["work pools"])
def list_work_pools(session: SessionDep, isolation: IsolationDep) -> list[WorkPoolOut]:
    return pool_store.pools_out(session, pool_store.list_pools(session), isolation)


@router.get("/work_pools/{name}", response_model=WorkPoolOut, tags=["work pools"])
def get_work_pool(name: str, session: SessionDep, isolation: IsolationDep) -> WorkPoolOut:
    return pool_store.pool_out(session, pool_store.get_pool(session, name), isolation)


@router.patch("/work_pools/{name}", response_model=WorkPoolOut, tags=["work pools"])
def update_work_pool(
    name: str,
    body: WorkPoolUpdate,
    session: SessionDep,
    notifier: NotifierDep,
    isolation: IsolationDep,
) -> WorkPoolOut:
    pool = pool_store.update_pool(session, name, body)
    out = pool_store.pool_out(session, pool, isolation)
    session.commit()
    notifier.notify(pool.id)  # a resume or a higher limit may free work for waiting workers
    return out


@router.delete("/work_pools/{name}", status_code=204, tags=["work pools"])
def delete_work_pool(name: str, session: SessionDep) -> None:
    pool_store.delete_pool(session, name)


@router.post(
    "/work_pools/{name}/queues", status_code=201, response_model=WorkQueueOut, tags=["work queues"]
)
def create_work_queue(name: str, body: WorkQueueCreate, session: SessionDep) -> WorkQueueOut:
    pool = pool_store.get_pool(session, name)
    return pool_store.queue_out(pool, pool_store.create_queue(session, pool, body))


@router.get("/work_pools/{name}/queues", response_model=list[WorkQueueOut], tags=["work queues"])
def list_work_queues(name: str, session: SessionDep) -> list[WorkQueueOut]:
    pool = pool_store.get_pool(session, name)
    return [pool_store.queue_out(pool, q) for q in pool_store.list_queues(session, pool)]


@router.get("/work_pools/{name}/queues/{queue}", response_model=WorkQueueOut, tags=["work queues"])
def get_work_queue(name: str, queue: str, session: SessionDep) -> WorkQueueOut:
    pool = pool_store.get_pool(session, name)
    return pool_store.queue_out(pool, pool_store.get_queue(session, pool, queue))


@router.patch(
    "/work_pools/{name}/queues/{queue}", response_model=WorkQueueOut, tags=["work queues"]
)
def update_work_queue(
    name: str, queue: str, body: WorkQueueUpdate, session: SessionDep, notifier: NotifierDep
) -> WorkQueueOut:
    pool = pool_store.get_pool(session, name)
    row = pool_store.update_queue(session, pool, queue, body)
    out = pool_store.queue_out(pool, row)
    session.commit()
    notifier.notify(pool.id)
    return out


@router.delete("/work_pools/{name}/queues/{queue}", status_code=204, tags=["work queues"])
def delete_work_queue(name: str, queue: str, session: SessionDep) -> None:
    pool = pool_store.get_pool(session, name)
    pool_store.delete_queue(session, pool, queue)


def _claim_for_pool(
    store: Store, pool_name: str, body: PollRequest
) -> tuple[PollResponse, float | None]:
    with store.session() as session:
        pool = pool_store.get_pool(session, pool_name)
        if pool_types.get(pool.type).is_push:
            raise InvalidInput(
                f"work pool '{pool.name}' is a {pool.type} pool: the server submits its runs, "
                "workers cannot poll it"
            )
        run_store.touch_pool(session, pool, body.queues, body.worker_name)
        for name in body.queues:
            pool_store.get_queue(session, pool, name)  # unknown queue names are an error
        result = run_store.claim_runs(
            session,
            pool,
            claimer=body.worker_name,
            limit=body.limit,
            queue_names=body.queues or None,
            prefetch=timedelta(seconds=body.prefetch_seconds),
        )
        claimed = []
        for run, out in zip(result.runs, run_store.runs_out(session, result.runs), strict=True):
            values = run_store.job_values(session, pool, run)
            # Block references stay names here: secrets never travel to workers in clear.
            config = templates.render_job_configuration(pool.base_job_template, values)
            claimed.append(
                ClaimedRun(
                    flow_run=out,
                    job_configuration=config,
                    token=run_tokens.issue(session, run.id),
                )
            )
        cancel = run_store.cancelling_among(session, body.running)
        wait_until = None
        if result.next_due is not None:
            wait_until = (result.next_due - utcnow()).total_seconds() - body.prefetch_seconds
        return PollResponse(runs=claimed, cancel=cancel), wait_until


async def long_poll(
    notifier: WorkNotifier,
    key: str,
    claim: Callable[[], tuple[PollResponse, float | None]],
    wait_seconds: float,
) -> PollResponse:
    """Claim now; if nothing came, wait for a wake-up (or the next due run) and claim again."""
    deadline = time.monotonic() + wait_seconds
    # Listen before the first claim, so a wake-up sent in between is not lost.
    event = notifier.subscribe([key])
    try:
        while True:
            response, due_in = await run_in_threadpool(claim)
            remaining = deadline - time.monotonic()
            if response.runs or response.cancel or remaining <= 0:
                return response
            timeout = remaining if due_in is None else max(0.0, min(remaining, due_in))
            try:
                await asyncio.wait_for(event.wait(), timeout=timeout)
            except TimeoutError:
                pass
            event.clear()
    finally:
        notifier.unsubscribe([key], event)


def _pool_id(store: Store, name: str) -> str:
    with store.session() as session:
        return pool_store.get_pool(session, name).id


@router.post("/work_pools/{name}/poll", response_model=PollResponse, tags=["workers"])
async def poll_work_pool(
    name: str, body: PollRequest, store: StoreDep, notifier: NotifierDep
) -> PollResponse:
    """A worker's heartbeat and claim: runs due now (or within prefetch), and cancel requests.

    With `wait_seconds`, the request is held open until work arrives, so a worker starts a run
    within milliseconds of its creation instead of on its next poll.
    """
    pool_id = await run_in_threadpool(_pool_id, store, name)
    return await long_poll(
        notifier, pool_id, lambda: _claim_for_pool(store, name, body), body.wait_seconds
    )
