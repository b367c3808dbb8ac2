"""Retired deployments: a durable note, written in the same transaction as the delete, that a
deployment's per-deployment infrastructure is to be forgotten by its pool's executor.

The dispatcher (push_pools/retire.py) reads the notes that are due, waits until the runs that
were in flight have ended and been cleaned up, then calls the executor with no transaction open
and writes the outcome back: finished, or failed and due again after a backoff. A dispatcher
takes a note with a lease (compare-and-set on its next attempt), so several servers never work
on one note at once, and a server that dies mid-call leaves it to the next one after the lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from push_pools.states import FINAL
from push_pools.store.pools import original_name
from push_pools.store.tables import Deployment, FlowRun, RetiredDeployment, WorkPool, utcnow

FINAL_VALUES = [s.value for s in FINAL]
# Failed attempts are tried again after this, doubling, up to MAX_BACKOFF.
FIRST_BACKOFF = timedelta(seconds=2)
MAX_BACKOFF = timedelta(hours=1)


def retire(
    session: Session, deployment: Deployment, pool: WorkPool, run_ids: Sequence[str]
) -> None:
    """Note that `deployment`'s infrastructure on `pool` is to go once `run_ids` have ended.

    Infrastructure carries the pool's live name, which a tombstone keeps inside its own. A
    deployment already noted for this pool (its pool deleted first, then the deployment) keeps
    its first note, so it is forgotten once.
    """
    existing = session.scalar(
        select(RetiredDeployment.id).where(
            RetiredDeployment.deployment_id == deployment.id,
            RetiredDeployment.work_pool_id == pool.id,
        )
    )
    if existing is not None:
        return
    note = RetiredDeployment(
        deployment_id=deployment.id,
        work_pool_id=pool.id,
        pool_name=original_name(pool),
        job_variables=dict(deployment.job_variables or {}),
        run_ids=sorted(run_ids),
    )
    try:
        # A savepoint: losing a race on the unique pair keeps the delete's transaction usable.
        with session.begin_nested():
            session.add(note)
    except IntegrityError:
        return


def due(session: Session, now: datetime, limit: int) -> list[RetiredDeployment]:
    return list(
        session.scalars(
            select(RetiredDeployment)
            .where(RetiredDeployment.finished.is_(None), RetiredDeployment.next_attempt <= now)
            .order_by(RetiredDeployment.next_attempt)
            .limit(limit)
        )
    )


def runs_settled(session: Session, run_ids: Sequence[str]) -> bool:
    """Whether every run has ended and had its infrastructure cleaned up (or never had any)."""
    if not run_ids:
        return True
    unsettled = session.scalar(
        select(FlowRun.id)
        .where(
            FlowRun.id.in_(list(run_ids)),
            (FlowRun.state_type.not_in(FINAL_VALUES))
            | (FlowRun.infrastructure_id.is_not(None) & FlowRun.infrastructure_released.is_(False)),
        )
        .limit(1)
    )
    return unsettled is None


def postpone(session: Session, note: RetiredDeployment, until: datetime) -> bool:
    """Move the note's next attempt to `until` if nobody else moved it since it was read; True
    when this caller now holds it (the lease, when `until` is a lease's end)."""
    result = session.execute(
        update(RetiredDeployment)
        .where(
            RetiredDeployment.id == note.id,
            RetiredDeployment.finished.is_(None),
            RetiredDeployment.next_attempt == note.next_attempt,
        )
        .values(next_attempt=until)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def finish(session: Session, note_id: str, error: str | None = None) -> None:
    """Done: forgotten, or (`error`) given up on because there is nothing to forget it with."""
    note = session.get(RetiredDeployment, note_id)
    if note is not None:
        note.finished = utcnow()
        note.attempts += 1
        note.last_error = error


def failed(session: Session, note_id: str, error: str) -> None:
    """The attempt failed: keep why, and try again after a backoff that doubles each time."""
    note = session.get(RetiredDeployment, note_id)
    if note is None or note.finished is not None:
        return
    note.attempts += 1
    note.last_error = error
    backoff = min(FIRST_BACKOFF * 2 ** min(note.attempts - 1, 20), MAX_BACKOFF)
    note.next_attempt = utcnow() + backoff
