"""Turns deployment schedules into Scheduled runs ahead of time, and marks overdue runs Late."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from push_pools import schedules as schedule_rules
from push_pools.store import deployments as deployment_store
from push_pools.store import runs as run_store
from push_pools.store.db import Store
from push_pools.store.tables import Deployment, DeploymentSchedule, FlowRun, utcnow

# Runs are created this far ahead, at most MAX_RUNS_PER_SCHEDULE per schedule, so workers can
# prefetch them.
HORIZON = timedelta(hours=1)
MAX_RUNS_PER_SCHEDULE = 100
# Schedules handled per write transaction: after a restart or an upgrade every schedule is due
# at once, and on SQLite one long transaction would hold every API write up behind it.
BATCH = 200
# How far past the horizon to look for a schedule's next fire time (a February 29th cron may
# wait eight years); a schedule with none is looked at again after this long.
LOOKAHEAD = timedelta(days=366 * 9)
_ONE_US = timedelta(microseconds=1)


def run_key(deployment_id: str, when: datetime) -> str:
    return f"scheduled:{deployment_id}:{when.isoformat()}"


def schedule_due_runs(store: Store, now: datetime | None = None) -> set[str]:
    """One scheduler tick. Returns the notifier keys (pool ids) that got new or late runs.

    Only schedules whose next fire time without a run has entered the horizon are read (their
    `scheduled_until`), so a steady tick costs what the new runs cost, not the number of
    deployments."""
    now = now or utcnow()
    end = now + HORIZON
    touched: set[str] = set()
    after = ""
    while True:
        with store.session() as session:
            rows = _due_schedules(session, end, after)
            for schedule, deployment in rows:
                if _schedule_runs(session, schedule, deployment, now, end):
                    touched.add(deployment.work_pool_id or f"deployment:{deployment.id}")
        if len(rows) < BATCH:
            break
        after = rows[-1][0].id
    with store.session() as session:
        touched.update(run_store.mark_late_runs(session, now))
    return {t for t in touched if t}


def _due_schedules(
    session: Session, end: datetime, after: str
) -> list[tuple[DeploymentSchedule, Deployment]]:
    query = (
        select(DeploymentSchedule, Deployment)
        .join(Deployment, Deployment.id == DeploymentSchedule.deployment_id)
        .where(
            DeploymentSchedule.active.is_(True),
            Deployment.paused.is_(False),
            or_(
                DeploymentSchedule.scheduled_until.is_(None),
                DeploymentSchedule.scheduled_until < end,
            ),
            DeploymentSchedule.id > after,
        )
        .order_by(DeploymentSchedule.id)
        .limit(BATCH)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Waits for a concurrent pause or schedule change to commit, then sees the new rows
        # (a deleted schedule drops out instead of making runs for the old times), and a
        # schedule another server's tick has just handled drops out as no longer due.
        query = query.with_for_update(of=[Deployment, DeploymentSchedule])
    return [(schedule, deployment) for schedule, deployment in session.execute(query).tuples()]


def _schedule_runs(
    session: Session,
    schedule: DeploymentSchedule,
    deployment: Deployment,
    now: datetime,
    end: datetime,
) -> bool:
    """Make the schedule's missing runs in [now, end) and move its cursor; True if any."""
    spec = schedule_rules.schedule_from_dict(schedule.spec)
    times = schedule_rules.next_fire_times(spec, now, end, limit=MAX_RUNS_PER_SCHEDULE)
    # Times before the cursor have their runs already (or they were deleted on purpose).
    since = schedule.scheduled_until
    if len(times) == MAX_RUNS_PER_SCHEDULE:
        # The window is full: the next tick looks again, as the window slides.
        schedule.scheduled_until = times[-1] + _ONE_US
    else:
        following = schedule_rules.next_fire_times(spec, end, end + LOOKAHEAD, limit=1)
        schedule.scheduled_until = following[0] if following else end + LOOKAHEAD
    if since is not None:
        times = [t for t in times if t >= since]
    if not times:
        return False
    # Keyed by deployment and time, not by schedule row: re-deploying the same schedule (new
    # rows) must not make a slot that was already claimed run a second time.
    keys = {run_key(deployment.id, t): t for t in times}
    existing = set(
        session.scalars(
            select(FlowRun.idempotency_key).where(
                FlowRun.deployment_id == deployment.id,
                FlowRun.idempotency_key.in_(list(keys)),
            )
        )
    )
    made = False
    for key, when in keys.items():
        if key in existing:
            continue
        try:
            # A savepoint per run: another server's tick may have inserted this slot a moment
            # ago; that one insert is skipped, not the whole tick.
            with session.begin_nested():
                deployment_store.insert_run(
                    session,
                    deployment,
                    parameters=dict(deployment.parameters),
                    job_variables={},
                    scheduled_time=when,
                    tags=list(deployment.tags),
                    idempotency_key=key,
                    auto_scheduled=True,
                )
        except IntegrityError:
            continue
        made = True
    return made
