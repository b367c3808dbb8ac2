"""Flow runs: reading, state changes, cancellation, claiming work, logs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from push_pools.errors import Conflict, InvalidInput, NotFound
from push_pools.models import FlowRunOut, LogIn, LogOut, StateOut, StateProposal
from push_pools.states import ACTIVE, ALLOWED_MOVES, DISPLAY_NAMES, FINAL, WAITING, StateType
from push_pools.store import logs as log_store
from push_pools.store import masking
from push_pools.store.tables import (
    Deployment,
    FlowRun,
    FlowRunState,
    WorkPool,
    WorkQueue,
    utcnow,
)

WAITING_VALUES = [s.value for s in WAITING]
ACTIVE_VALUES = [s.value for s in ACTIVE]
# Runs still waiting this long after their scheduled time are marked Late.
LATE_AFTER = timedelta(seconds=15)


def run_out(session: Session, run: FlowRun, names: dict[str, str] | None = None) -> FlowRunOut:
    names = names if names is not None else _names_for(session, [run])
    return FlowRunOut(
        id=run.id,
        name=run.name,
        flow_name=run.flow_name,
        deployment_id=run.deployment_id,
        deployment_name=names.get(run.deployment_id or ""),
        work_pool_name=names.get(run.work_pool_id or ""),
        work_queue_name=names.get(run.work_queue_id or ""),
        state=StateType(run.state_type),
        state_name=run.state_name,
        state_message=run.state_message,
        state_timestamp=run.state_timestamp,
        scheduled_time=run.scheduled_time,
        start_time=run.start_time,
        end_time=run.end_time,
        parameters=run.parameters,
        job_variables=run.job_variables,
        tags=run.tags,
        worker_name=run.worker_name,
        infrastructure_id=run.infrastructure_id,
        run_count=run.run_count,
        result=run.result,
        created=run.created,
    )


def runs_out(session: Session, runs: list[FlowRun]) -> list[FlowRunOut]:
    names = _names_for(session, runs)
    return [run_out(session, r, names) for r in runs]


def _names_for(session: Session, runs: list[FlowRun]) -> dict[str, str]:
    """Names of the deployments, pools and queues the runs refer to, in three queries."""
    names: dict[str, str] = {}
    dep_ids = {r.deployment_id for r in runs if r.deployment_id}
    pool_ids = {r.work_pool_id for r in runs if r.work_pool_id}
    queue_ids = {r.work_queue_id for r in runs if r.work_queue_id}
    if dep_ids:
        for id_, name in session.execute(
            select(Deployment.id, Deployment.name).where(Deployment.id.in_(dep_ids))
        ):
            names[id_] = name
    if pool_ids:
        for id_, name in session.execute(
            select(WorkPool.id, WorkPool.name).where(WorkPool.id.in_(pool_ids))
        ):
            names[id_] = name
    if queue_ids:
        for id_, name in session.execute(
            select(WorkQueue.id, WorkQueue.name).where(WorkQueue.id.in_(queue_ids))
        ):
            names[id_] = name
    return names


def job_values(
    session: Session, pool: WorkPool, run: FlowRun, deployment: Deployment | None = None
) -> dict[str, Any]:
    """The run's job variables: pool defaults <- deployment's job_variables <- the run's own.

    `deployment`: the run's, when the caller has it already (else it is read)."""
    from push_pools import templates

    if deployment is None and run.deployment_id:
        deployment = session.get(Deployment, run.deployment_id)
    return templates.merge_job_variables(
        templates.default_values(pool.base_job_template),
        deployment.job_variables if deployment else {},
        run.job_variables,
    )


def get_run(session: Session, run_id: str) -> FlowRun:
    run = session.get(FlowRun, run_id)
    if run is None:
        raise NotFound(f"flow run '{run_id}' not found; `push-pools flow-run ls` lists runs")
    return run


# Shorter prefixes of a uuid match too many runs to be worth a lookup.
MIN_ID_PREFIX = 4


def find_run(session: Session, ref: str) -> FlowRun:
    """The run whose id is `ref`, else whose name is, else whose id starts with it; a name or
    prefix that fits several runs is refused with their ids, so a user never acts on a guess."""
    run = session.get(FlowRun, ref)
    if run is not None:
        return run
    by_name = list(
        session.scalars(
            select(FlowRun).where(FlowRun.name == ref).order_by(FlowRun.scheduled_time).limit(6)
        )
    )
    if not by_name and len(ref) >= MIN_ID_PREFIX and all(c in _ID_CHARS for c in ref.lower()):
        # Only hex digits and '-' get here, so the pattern has no LIKE wildcard in it.
        by_name = list(
            session.scalars(
                select(FlowRun)
                .where(FlowRun.id.like(ref.lower() + "%"))
                .order_by(FlowRun.id)
                .limit(6)
            )
        )
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        shown = ", ".join(f"{r.id} ({r.name})" for r in by_name[:5])
        more = " and more" if len(by_name) > 5 else ""
        raise InvalidInput(f"'{ref}' fits several flow runs: {shown}{more}; give the whole id")
    raise NotFound(f"flow run '{ref}' not found; `push-pools flow-run ls` lists runs")


_ID_CHARS = frozenset("0123456789abcdef-")


def lock_run(session: Session, run_id: str) -> FlowRun:
    """The run, locked against concurrent state changes until the transaction ends."""
    run = session.scalar(select(FlowRun).where(FlowRun.id == run_id).with_for_update())
    if run is None:
        raise NotFound(f"flow run '{run_id}' not found; `push-pools flow-run ls` lists runs")
    return run


def lock_runs(session: Session, run_ids: list[str]) -> dict[str, FlowRun]:
    """The runs that exist among `run_ids`, locked as by lock_run, in one query (in id order,
    so two sessions locking overlapping sets cannot deadlock)."""
    rows = session.scalars(
        select(FlowRun).where(FlowRun.id.in_(run_ids)).order_by(FlowRun.id).with_for_update()
    )
    return {run.id: run for run in rows}


def list_runs(
    session: Session,
    *,
    states: list[StateType] | None = None,
    deployment_id: str | None = None,
    work_pool_id: str | None = None,
    limit: int = 50,
) -> list[FlowRun]:
    """The runs matching every filter given, latest scheduled time first."""
    query = select(FlowRun)
    if deployment_id:
        query = query.where(FlowRun.deployment_id == deployment_id)
    if work_pool_id:
        query = query.where(FlowRun.work_pool_id == work_pool_id)
    values = sorted({s.value for s in states or []})
    if len(values) <= 1:
        if values:
            query = query.where(FlowRun.state_type == values[0])
        return list(session.scalars(_newest_first(query, limit)))
    # One query per state: each reads its index in order and stops at `limit`, where
    # `state IN (...)` would sort every matching run of a large store first.
    runs = [
        run
        for value in values
        for run in session.scalars(_newest_first(query.where(FlowRun.state_type == value), limit))
    ]
    runs.sort(key=lambda r: r.id)
    runs.sort(key=lambda r: r.scheduled_time, reverse=True)
    return runs[:limit]


def _newest_first(query: Select[tuple[FlowRun]], limit: int) -> Select[tuple[FlowRun]]:
    return query.order_by(FlowRun.scheduled_time.desc(), FlowRun.id).limit(limit)


def states_of(session: Session, run_id: str) -> list[StateOut]:
    get_run(session, run_id)
    rows = session.scalars(
        select(FlowRunState).where(FlowRunState.flow_run_id == run_id).order_by(FlowRunState.id)
    )
    return [
        StateOut(
            type=StateType(r.type),
            name=r.name,
            message=r.message,
            timestamp=r.timestamp,
            details=r.details or {},
        )
        for r in rows
    ]


def record_state(
    session: Session,
    run: FlowRun,
    state: StateType,
    message: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
    name: str | None = None,
) -> None:
    """Move the run to `state` without checks (callers decide), and write the history.

    `name` refines the state for people ("Submitted" is a Pending run whose infrastructure
    was started).
    """
    now = now or utcnow()
    name = name or DISPLAY_NAMES[state]
    # Crash tails and engine messages may quote a flow's output.
    message = masking.mask_text(session, message)
    run.state_type = state.value
    run.state_name = name
    run.state_message = message
    run.state_timestamp = now
    run.updated = now
    if state == StateType.RUNNING:
        run.run_count += 1
        if run.start_time is None:
            run.start_time = now
    if state in FINAL:
        run.end_time = now
    session.add(
        FlowRunState(
            flow_run_id=run.id,
            type=state.value,
            name=name,
            message=message,
            timestamp=now,
            details=details or {},
        )
    )


@dataclass
class Decision:
    accepted: bool
    reason: str | None


def propose_state(
    session: Session, run_id: str, proposal: StateProposal
) -> tuple[FlowRun, Decision]:
    """Apply a state proposed by an engine or worker, if the move is allowed."""
    run = lock_run(session, run_id)
    current = StateType(run.state_type)
    target = proposal.type
    if target == StateType.RUNNING and current == StateType.CANCELLING:
        return run, Decision(False, "the run is being cancelled")
    if target not in ALLOWED_MOVES[current]:
        return run, Decision(
            False, f"a {DISPLAY_NAMES[current]} run cannot become {DISPLAY_NAMES[target]}"
        )
    details = dict(proposal.details)
    if proposal.worker_name:
        run.worker_name = proposal.worker_name
        details.setdefault("worker", proposal.worker_name)
    if proposal.infrastructure_id:
        run.infrastructure_id = proposal.infrastructure_id
        details.setdefault("infrastructure_id", proposal.infrastructure_id)
    if target == StateType.COMPLETED:
        run.result = proposal.result
    record_state(session, run, target, proposal.message, details)
    session.flush()
    return run, Decision(True, None)


def cancel_run(session: Session, run_id: str) -> FlowRun:
    run = lock_run(session, run_id)
    current = StateType(run.state_type)
    if current in FINAL:
        raise Conflict(
            f"flow run '{run_id}' already finished ({DISPLAY_NAMES[current]}); "
            "there is nothing to cancel"
        )
    if current in WAITING:
        record_state(session, run, StateType.CANCELLED, "cancelled before it started")
    elif current != StateType.CANCELLING:
        record_state(session, run, StateType.CANCELLING, "cancellation requested")
    session.flush()
    return run


def delete_run(session: Session, run_id: str) -> None:
    run = get_run(session, run_id)
    session.delete(run)
    session.flush()


def mark_late_runs(session: Session, now: datetime | None = None) -> set[str]:
    """Mark waiting runs overdue by LATE_AFTER Late (up to 1000 a call); their pools' ids."""
    now = now or utcnow()
    query = (
        select(FlowRun)
        .where(
            FlowRun.state_type == StateType.SCHEDULED.value,
            FlowRun.scheduled_time < now - LATE_AFTER,
        )
        .limit(1000)
    )
    if session.get_bind().dialect.name == "postgresql":
        # A run a worker is claiming right now is locked: skip it rather than overwrite its claim.
        query = query.with_for_update(skip_locked=True)
    late = list(session.scalars(query))
    for run in late:
        record_state(session, run, StateType.LATE, "not started at its scheduled time", now=now)
    session.flush()
    return {run.work_pool_id for run in late if run.work_pool_id}


# --- claiming ----------------------------------------------------------------------------------


@dataclass
class ClaimResult:
    runs: list[FlowRun]
    # When the earliest run that was not yet due becomes claimable; the poller can sleep until then.
    next_due: datetime | None


def count_active(session: Session, column: Any, value: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(FlowRun)
            .where(column == value, FlowRun.state_type.in_(ACTIVE_VALUES))
        )
        or 0
    )


def claim_runs(
    session: Session,
    pool: WorkPool | None,
    *,
    claimer: str,
    limit: int,
    queue_names: list[str] | None = None,
    deployment_ids: list[str] | None = None,
    prefetch: timedelta = timedelta(0),
    now: datetime | None = None,
) -> ClaimResult:
    """Move due runs to Pending for `claimer`, honouring pause flags and concurrency limits.

    Exactly one claimer gets each run: rows are locked (SKIP LOCKED on PostgreSQL; SQLite
    serialises writers with BEGIN IMMEDIATE) and only waiting runs are taken.
    """
    now = now or utcnow()
    horizon = now + prefetch
    postgres = session.get_bind().dialect.name == "postgresql"
    if pool is not None and postgres:
        # Claimers of one pool take turns: the free capacity they compute from the active runs
        # (pool, queue and deployment limits) stays true until their claims commit.
        session.execute(select(WorkPool.id).where(WorkPool.id == pool.id).with_for_update())
        session.refresh(pool)
    if pool is not None and pool.paused:
        return ClaimResult([], None)
    capacity = limit
    if pool is not None and pool.concurrency_limit is not None:
        capacity = min(
            capacity, pool.concurrency_limit - count_active(session, FlowRun.work_pool_id, pool.id)
        )
    if capacity <= 0:
        return ClaimResult([], None)

    queues: dict[str, WorkQueue] = {}
    query = select(FlowRun).where(FlowRun.state_type.in_(WAITING_VALUES))
    if pool is not None:
        queue_query = select(WorkQueue).where(
            WorkQueue.work_pool_id == pool.id, WorkQueue.paused.is_(False)
        )
        if queue_names:
            queue_query = queue_query.where(WorkQueue.name.in_(queue_names))
        queues = {q.id: q for q in session.scalars(queue_query)}
        if not queues:
            return ClaimResult([], None)
        query = query.where(
            FlowRun.work_pool_id == pool.id, FlowRun.work_queue_id.in_(list(queues))
        )
    else:
        query = query.where(FlowRun.deployment_id.in_(deployment_ids or []))

    due = query.where(FlowRun.scheduled_time <= horizon)
    if pool is not None:
        due = due.join(WorkQueue, WorkQueue.id == FlowRun.work_queue_id).order_by(
            WorkQueue.priority, FlowRun.scheduled_time, FlowRun.id
        )
    else:
        due = due.order_by(FlowRun.scheduled_time, FlowRun.id)
    due = due.limit(capacity * 4 + 10)
    if postgres:
        due = due.with_for_update(skip_locked=True, of=FlowRun)
    candidates = list(session.scalars(due))

    queue_room: dict[str, int | None] = {}
    for queue_id, queue in queues.items():
        if queue.concurrency_limit is None:
            queue_room[queue_id] = None
        else:
            queue_room[queue_id] = queue.concurrency_limit - count_active(
                session, FlowRun.work_queue_id, queue_id
            )
    deployment_room = _deployment_room(session, candidates)
    claimed: list[FlowRun] = []
    for run in candidates:
        if len(claimed) >= capacity:
            break
        room = queue_room.get(run.work_queue_id or "")
        if room is not None and room <= 0:
            continue
        dep_room = deployment_room.get(run.deployment_id or "")
        if dep_room is not None and dep_room <= 0:
            continue
        if room is not None:
            queue_room[run.work_queue_id or ""] = room - 1
        if dep_room is not None:
            deployment_room[run.deployment_id or ""] = dep_room - 1
        run.worker_name = claimer
        record_state(
            session,
            run,
            StateType.PENDING,
            f"claimed by {claimer}",
            {"claimed_by": claimer},
            now=now,
        )
        claimed.append(run)
    session.flush()

    next_due = session.scalar(
        query.with_only_columns(func.min(FlowRun.scheduled_time)).where(
            FlowRun.scheduled_time > horizon
        )
    )
    return ClaimResult(claimed, next_due)


def _deployment_room(session: Session, candidates: list[FlowRun]) -> dict[str, int | None]:
    """Free slots of each limited deployment among the candidates (None: no limit)."""
    ids = {r.deployment_id for r in candidates if r.deployment_id}
    if not ids:
        return {}
    # The `is not None` filters repeat the queries' for the type checker; they drop nothing.
    limits = {
        deployment: limit
        for deployment, limit in session.execute(
            select(Deployment.id, Deployment.concurrency_limit).where(
                Deployment.id.in_(ids), Deployment.concurrency_limit.is_not(None)
            )
        ).tuples()
        if limit is not None
    }
    if not limits:
        return {}
    active = {
        deployment: count
        for deployment, count in session.execute(
            select(FlowRun.deployment_id, func.count())
            .where(
                FlowRun.deployment_id.in_(list(limits)),
                FlowRun.state_type.in_(ACTIVE_VALUES),
            )
            .group_by(FlowRun.deployment_id)
        ).tuples()
        if deployment is not None
    }
    return {dep: limit - active.get(dep, 0) for dep, limit in limits.items()}


def cancelling_among(session: Session, run_ids: list[str]) -> list[str]:
    if not run_ids:
        return []
    return list(
        session.scalars(
            select(FlowRun.id).where(
                FlowRun.id.in_(run_ids), FlowRun.state_type == StateType.CANCELLING.value
            )
        )
    )


def touch_pool(session: Session, pool: WorkPool, queue_names: list[str], worker: str) -> None:
    from push_pools.store.tables import Worker

    now = utcnow()
    pool.last_polled = now
    queue_update = update(WorkQueue).where(WorkQueue.work_pool_id == pool.id)
    if queue_names:
        queue_update = queue_update.where(WorkQueue.name.in_(queue_names))
    session.execute(queue_update.values(last_polled=now))
    row = session.scalar(
        select(Worker).where(Worker.work_pool_id == pool.id, Worker.name == worker)
    )
    if row is None:
        session.add(Worker(work_pool_id=pool.id, name=worker, last_heartbeat=now))
    else:
        row.last_heartbeat = now


# --- logs --------------------------------------------------------------------------------------


def add_logs(session: Session, run_id: str, logs: list[LogIn]) -> int:
    """Store log lines for a run, within its quota (store/logs.py); the number received."""
    lock_run(session, run_id)
    return log_store.add_logs(session, run_id, logs).count


def get_logs(
    session: Session,
    run_id: str,
    after: int = 0,
    limit: int = 1000,
    max_bytes: int = log_store.DEFAULT_PAGE_BYTES,
) -> list[LogOut]:
    get_run(session, run_id)
    return log_store.get_logs(session, run_id, after=after, limit=limit, max_bytes=max_bytes)


def delete_waiting_runs_of(session: Session, deployment_id: str) -> None:
    session.execute(
        delete(FlowRun).where(
            FlowRun.deployment_id == deployment_id, FlowRun.state_type.in_(WAITING_VALUES)
        )
    )
