"""Deleting a work pool or a deployment without abandoning work.

Both refuse while work is unfinished unless forced; forced, they cancel that work so that
whoever runs it (a worker, or the server's dispatcher) stops its infrastructure and cleans up.
A deleted pool stays as a tombstone (see `WorkPool.deleted`) for as long as anything may still
need it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from push_pools import pool_types
from push_pools.errors import Conflict, InvalidInput
from push_pools.models import DeleteOutcome
from push_pools.states import ACTIVE, FINAL, WAITING, StateType
from push_pools.store import deployments as deployment_store
from push_pools.store import pools as pool_store
from push_pools.store import retirements
from push_pools.store import runs as run_store
from push_pools.store.tables import Deployment, FlowRun, WorkPool, utcnow

FINAL_VALUES = [s.value for s in FINAL]
ACTIVE_VALUES = [s.value for s in ACTIVE]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _is_push(pool: WorkPool) -> bool:
    try:
        return pool_types.get(pool.type).is_push
    except InvalidInput:
        return False


def _someone_will_stop(pool: WorkPool | None, run: FlowRun) -> bool:
    """Whether a run moved to Cancelling will be stopped by someone, or would stay Cancelling
    for ever."""
    if pool is None:
        return True  # a serve process polls for its deployments' cancel requests
    if _is_push(pool):
        # Without infrastructure yet, the dispatcher either never submits it (a Cancelled run is
        # not claimed again) or records what its submit started and stops it at once.
        return run.infrastructure_id is not None
    # A worker pool: only a worker that still polls collects the cancel request.
    return pool.last_polled is not None and (
        utcnow() - pool.last_polled < pool_store.WORKER_STALE_AFTER
    )


def cancel_runs(
    session: Session, pool: WorkPool | None, run_ids: Sequence[str], reason: str
) -> list[str]:
    """Cancel the unfinished runs among `run_ids` because of `reason`; their ids."""
    cancelled = []
    for run in run_store.lock_runs(session, list(run_ids)).values():
        state = StateType(run.state_type)
        if state in FINAL:
            continue
        if state in WAITING:
            run_store.record_state(
                session, run, StateType.CANCELLED, f"cancelled before it started: {reason}"
            )
        elif not _someone_will_stop(pool, run):
            run_store.record_state(session, run, StateType.CANCELLED, f"cancelled: {reason}")
        elif state != StateType.CANCELLING:
            run_store.record_state(
                session, run, StateType.CANCELLING, f"cancellation requested: {reason}"
            )
        cancelled.append(run.id)
    session.flush()
    return cancelled


def _tombstone_name(session: Session, pool: WorkPool) -> str:
    """A name no pool can be created with (names have no spaces), so the old one is free."""
    name = f"{pool.name} (deleted {pool.id[:8]})"
    if session.scalar(select(WorkPool.id).where(WorkPool.name == name)) is not None:
        name = f"{pool.name} (deleted {pool.id})"
    return name


def pool_work(session: Session, pool: WorkPool) -> tuple[list[Deployment], list[str]]:
    """What keeps a pool from being deleted unforced: its deployments and unfinished runs.
    Only reads, so a page can show it before the user confirms."""
    deployments = list(
        session.scalars(
            select(Deployment)
            .where(Deployment.work_pool_id == pool.id)
            .order_by(Deployment.flow_name, Deployment.name)
        )
    )
    return deployments, _unfinished_run_ids(session, FlowRun.work_pool_id == pool.id)


def delete_pool(session: Session, name: str, *, force: bool) -> DeleteOutcome:
    """Delete the pool; forced, pause its deployments and cancel its unfinished runs."""
    pool = pool_store.get_pool(session, name, lock=True)
    deployments, run_ids = pool_work(session, pool)
    if (deployments or run_ids) and not force:
        parts = []
        if deployments:
            parts.append(_count(len(deployments), "deployment"))
        if run_ids:
            parts.append(_count(len(run_ids), "unfinished run"))
        raise Conflict(
            f"work pool '{name}' has {' and '.join(parts)}; delete it with --force "
            "(API: force=true) to pause its deployments and cancel its runs"
        )
    deleted_runs = 0
    for deployment in deployments:
        if not deployment.paused:
            deployment.paused = True
            deployment.updated = utcnow()
            deleted_runs += deployment_store.delete_future_scheduled_runs(session, deployment)
    reason = f"its work pool '{name}' was deleted"
    cancelled = cancel_runs(
        session, pool, _unfinished_run_ids(session, FlowRun.work_pool_id == pool.id), reason
    )
    if _is_push(pool):
        # The deployments stay (paused), but never run on this pool again: what the pool's
        # executor keeps for each of them goes once their runs have ended.
        for deployment in deployments:
            retirements.retire(
                session,
                deployment,
                pool,
                _unfinished_run_ids(
                    session,
                    FlowRun.work_pool_id == pool.id,
                    FlowRun.deployment_id == deployment.id,
                ),
            )
    pool.deleted = True
    pool.paused = True  # nothing is claimed from a tombstone
    pool.name = _tombstone_name(session, pool)
    pool.updated = utcnow()
    session.flush()
    return DeleteOutcome(
        name=name,
        deleted=True,
        paused_deployments=[deployment_store.full_name(d) for d in deployments],
        cancelled_runs=cancelled,
        deleted_runs=deleted_runs,
    )


def delete_deployment(session: Session, deployment_id: str, *, force: bool) -> DeleteOutcome:
    """Delete the deployment and its runs that have not started; forced, cancel its runs in
    flight first."""
    deployment = deployment_store.get_deployment(session, deployment_id)
    full_name = deployment_store.full_name(deployment)
    in_flight = _unfinished_run_ids(
        session,
        FlowRun.deployment_id == deployment.id,
        FlowRun.state_type.in_(ACTIVE_VALUES),
    )
    if in_flight and not force:
        raise Conflict(
            f"deployment '{full_name}' has {_count(len(in_flight), 'run')} in flight; delete it "
            "with --force (API: force=true) to cancel them"
        )
    pool = session.get(WorkPool, deployment.work_pool_id) if deployment.work_pool_id else None
    cancelled = cancel_runs(session, pool, in_flight, f"its deployment '{full_name}' was deleted")
    if pool is not None and _is_push(pool):
        # In this transaction, so a deleted deployment is never without its note.
        retirements.retire(session, deployment, pool, in_flight)
    deleted_runs = deployment_store.delete_deployment(session, deployment_id)
    return DeleteOutcome(
        name=full_name, deleted=True, cancelled_runs=cancelled, deleted_runs=deleted_runs
    )


def _unfinished_run_ids(session: Session, *conditions: ColumnElement[bool]) -> list[str]:
    return list(
        session.scalars(
            select(FlowRun.id)
            .where(*conditions, FlowRun.state_type.not_in(FINAL_VALUES))
            .order_by(FlowRun.id)
        )
    )
