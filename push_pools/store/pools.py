"""Work pools and their queues: create, read, update, delete, status."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from push_pools import bundle_storage, pool_types, templates
from push_pools.errors import AlreadyExists, InvalidInput, NotFound
from push_pools.models import (
    WorkPoolCreate,
    WorkPoolOut,
    WorkPoolUpdate,
    WorkQueueCreate,
    WorkQueueOut,
    WorkQueueUpdate,
)
from push_pools.store.tables import WorkPool, WorkQueue, utcnow

DEFAULT_QUEUE = "default"
# A worker that has not polled for this long no longer makes its pool READY.
WORKER_STALE_AFTER = timedelta(seconds=60)


def pool_status(pool: WorkPool, now: datetime | None = None) -> str:
    if pool.paused:
        return "PAUSED"
    if _is_push(pool):
        # The server itself submits runs of push pools: ready when a job can be made.
        return "NOT_READY" if not_ready_reason(pool) else "READY"
    now = now or utcnow()
    if pool.last_polled and now - pool.last_polled < WORKER_STALE_AFTER:
        return "READY"
    return "NOT_READY"


def not_ready_reason(pool: WorkPool, job_variables: dict[str, Any] | None = None) -> str | None:
    """Why no job can be made for a run of this push pool from its defaults (and a
    deployment's `job_variables` on top); None for pools that can, and for worker pools."""
    if not _is_push(pool):
        return None
    values = templates.merge_job_variables(
        templates.default_values(pool.base_job_template), job_variables
    )
    return pool_types.not_ready_reason(pool.type, values)


def _is_push(pool: WorkPool) -> bool:
    try:
        return pool_types.get(pool.type).is_push
    except InvalidInput:
        return False


def queue_status(pool: WorkPool, queue: WorkQueue, now: datetime | None = None) -> str:
    if queue.paused or pool.paused:
        return "PAUSED"
    now = now or utcnow()
    if _is_push(pool) or (queue.last_polled and now - queue.last_polled < WORKER_STALE_AFTER):
        return "READY"
    return "NOT_READY"


def queue_out(pool: WorkPool, queue: WorkQueue) -> WorkQueueOut:
    return WorkQueueOut(
        id=queue.id,
        name=queue.name,
        work_pool_name=pool.name,
        description=queue.description,
        priority=queue.priority,
        concurrency_limit=queue.concurrency_limit,
        paused=queue.paused,
        status=queue_status(pool, queue),
        last_polled=queue.last_polled,
    )


def pool_out(session: Session, pool: WorkPool, isolation: str | None = None) -> WorkPoolOut:
    """The API's view of a pool; `isolation` is the server's managed-run isolation, shown on
    managed pools only."""
    return _pool_out(pool, list_queues(session, pool), isolation)


def pools_out(
    session: Session, pools: list[WorkPool], isolation: str | None = None
) -> list[WorkPoolOut]:
    """As pool_out for each pool, with the queues of all of them read in one query (a pool
    list is the API's most frequent read: one query per pool cost half its time)."""
    queues: dict[str, list[WorkQueue]] = {pool.id: [] for pool in pools}
    rows = session.scalars(
        select(WorkQueue)
        .where(WorkQueue.work_pool_id.in_(list(queues)))
        .order_by(WorkQueue.priority, WorkQueue.name)
    )
    for queue in rows:
        queues[queue.work_pool_id].append(queue)
    return [_pool_out(pool, queues[pool.id], isolation) for pool in pools]


def _pool_out(pool: WorkPool, queues: list[WorkQueue], isolation: str | None) -> WorkPoolOut:
    return WorkPoolOut(
        id=pool.id,
        name=pool.name,
        type=pool.type,
        status=pool_status(pool),
        status_reason=None if pool.paused else not_ready_reason(pool),
        description=pool.description,
        paused=pool.paused,
        concurrency_limit=pool.concurrency_limit,
        base_job_template=pool.base_job_template,
        last_polled=pool.last_polled,
        created=pool.created,
        updated=pool.updated,
        queues=[queue_out(pool, q) for q in queues],
        isolation=isolation if pool.type == "managed" else None,
    )


def create_pool(session: Session, body: WorkPoolCreate) -> WorkPool:
    pool_type = pool_types.get(body.type)
    if body.base_job_template is None:
        template: dict[str, Any] = pool_type.default_template()
    else:
        template = templates.validate_base_job_template(body.base_job_template)
        templates.check_credential_slots(template, pool_type.credential_slots, pool_type.name)
        # A URL no bucket could have, or another cloud's bucket: refused now.
        bundle_storage.check_pool_bucket(template, pool_type.name)
    if session.scalar(
        select(WorkPool.id).where(WorkPool.name == body.name, WorkPool.deleted.is_(False))
    ):
        raise AlreadyExists(f"work pool '{body.name}' already exists")
    pool = WorkPool(
        name=body.name,
        type=pool_type.name,
        description=body.description,
        base_job_template=template,
        paused=body.paused,
        concurrency_limit=body.concurrency_limit,
    )
    session.add(pool)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name won
        raise AlreadyExists(f"work pool '{body.name}' already exists") from exc
    session.add(WorkQueue(work_pool_id=pool.id, name=DEFAULT_QUEUE, priority=1))
    session.flush()
    return pool


def get_pool(session: Session, name: str, *, lock: bool = False) -> WorkPool:
    """The live pool called `name` (`lock`: locked until the transaction ends)."""
    query = select(WorkPool).where(WorkPool.name == name, WorkPool.deleted.is_(False))
    if lock:
        query = query.with_for_update()
    pool = session.scalar(query)
    if pool is None:
        tombstone = select(WorkPool.id).where(
            WorkPool.deleted.is_(True),
            WorkPool.name.startswith(f"{name} (deleted ", autoescape=True),
        )
        if session.scalar(tombstone.limit(1)) is not None:
            # Said plainly, so that a worker of the pool knows to stop rather than retry.
            raise NotFound(
                f"work pool '{name}' was deleted; `push-pools work-pool ls` lists the pools"
            )
        raise NotFound(f"work pool '{name}' not found; `push-pools work-pool ls` lists the pools")
    return pool


def original_name(pool: WorkPool) -> str:
    """The name the pool had before it was deleted (its tombstone's name says when)."""
    return pool.name.rsplit(" (deleted ", 1)[0] if pool.deleted else pool.name


def get_pool_by_id(session: Session, pool_id: str) -> WorkPool | None:
    return session.get(WorkPool, pool_id)


def list_pools(session: Session) -> list[WorkPool]:
    return list(
        session.scalars(select(WorkPool).where(WorkPool.deleted.is_(False)).order_by(WorkPool.name))
    )


def update_pool(session: Session, name: str, body: WorkPoolUpdate) -> WorkPool:
    pool = get_pool(session, name)
    if body.base_job_template is not None:
        template = templates.validate_base_job_template(body.base_job_template)
        pool_type = pool_types.get(pool.type)
        templates.check_credential_slots(template, pool_type.credential_slots, pool_type.name)
        bundle_storage.check_pool_bucket(template, pool_type.name)
        pool.base_job_template = template
    if body.description is not None:
        pool.description = body.description
    if body.paused is not None:
        pool.paused = body.paused
    if body.clear_concurrency_limit:
        pool.concurrency_limit = None
    elif body.concurrency_limit is not None:
        pool.concurrency_limit = body.concurrency_limit
    pool.updated = utcnow()
    session.flush()
    return pool


def list_queues(session: Session, pool: WorkPool) -> list[WorkQueue]:
    return list(
        session.scalars(
            select(WorkQueue)
            .where(WorkQueue.work_pool_id == pool.id)
            .order_by(WorkQueue.priority, WorkQueue.name)
        )
    )


def get_queue(session: Session, pool: WorkPool, name: str) -> WorkQueue:
    queue = session.scalar(
        select(WorkQueue).where(WorkQueue.work_pool_id == pool.id, WorkQueue.name == name)
    )
    if queue is None:
        raise NotFound(
            f"work queue '{name}' not found in pool '{pool.name}'; "
            f"`push-pools work-queue ls --pool {pool.name}` lists its queues"
        )
    return queue


def create_queue(session: Session, pool: WorkPool, body: WorkQueueCreate) -> WorkQueue:
    exists = session.scalar(
        select(WorkQueue.id).where(WorkQueue.work_pool_id == pool.id, WorkQueue.name == body.name)
    )
    if exists:
        raise AlreadyExists(f"work queue '{body.name}' already exists in pool '{pool.name}'")
    queue = WorkQueue(
        work_pool_id=pool.id,
        name=body.name,
        description=body.description,
        priority=body.priority,
        concurrency_limit=body.concurrency_limit,
        paused=body.paused,
    )
    session.add(queue)
    try:
        session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(
            f"work queue '{body.name}' already exists in pool '{pool.name}'"
        ) from exc
    return queue


def update_queue(session: Session, pool: WorkPool, name: str, body: WorkQueueUpdate) -> WorkQueue:
    queue = get_queue(session, pool, name)
    if body.description is not None:
        queue.description = body.description
    if body.priority is not None:
        queue.priority = body.priority
    if body.paused is not None:
        queue.paused = body.paused
    if body.clear_concurrency_limit:
        queue.concurrency_limit = None
    elif body.concurrency_limit is not None:
        queue.concurrency_limit = body.concurrency_limit
    queue.updated = utcnow()
    session.flush()
    return queue


def delete_queue(session: Session, pool: WorkPool, name: str) -> None:
    if name == DEFAULT_QUEUE:
        raise InvalidInput(
            f"the '{DEFAULT_QUEUE}' queue of pool '{pool.name}' cannot be deleted; pause it instead"
        )
    queue = get_queue(session, pool, name)
    default = get_queue(session, pool, DEFAULT_QUEUE)
    from sqlalchemy import update

    from push_pools.store.tables import Deployment, FlowRun

    # Deployments and waiting runs of the deleted queue move to the default queue, not to limbo.
    session.execute(
        update(Deployment)
        .where(Deployment.work_queue_id == queue.id)
        .values(work_queue_id=default.id)
    )
    session.execute(
        update(FlowRun).where(FlowRun.work_queue_id == queue.id).values(work_queue_id=default.id)
    )
    session.delete(queue)
    session.flush()
