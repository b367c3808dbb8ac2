"""Turns deployment schedules into Scheduled runs ahead of time, and marks overdue runs Late."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from push_pools import schedules as schedule_rules
from push_pools.store import deployments as deployment_store
from push_pools.store import runs as run_store
from push_pools.store.db import Store
from push_pools.store.tables import Deployment, DeploymentSchedule, FlowRun, utcnow

# Runs are created this far ahead, at most MAX_RUNS per schedule, so workers can prefetch them.
HORIZON = timedelta(hours=1)
MAX_RUNS_PER_SCHEDULE = 100


def run_key(deployment_id: str, when: datetime) -> str:
    return f"scheduled:{deployment_id}:{when.isoformat()}"


def schedule_due_runs(store: Store, now: datetime | None = None) -> set[str]:
    """One scheduler tick. Returns the notifier keys (pool ids) that got new or late runs."""
    now = now or utcnow()
    touched: set[str] = set()
    with store.session() as session:
        query = (
            select(DeploymentSchedule, Deployment)
            .join(Deployment, Deployment.id == DeploymentSchedule.deployment_id)
            .where(DeploymentSchedule.active.is_(True), Deployment.paused.is_(False))
        )
        if session.get_bind().dialect.name == "postgresql":
            # Waits for a concurrent pause or schedule change to commit, then sees the new rows
            # (a deleted schedule drops out instead of making runs for the old times).
            query = query.with_for_update(of=[Deployment, DeploymentSchedule])
        rows = session.execute(query).all()
        for schedule, deployment in rows:
            spec = schedule_rules.schedule_from_dict(schedule.spec)
            times = schedule_rules.next_fire_times(
                spec, now, now + HORIZON, limit=MAX_RUNS_PER_SCHEDULE
            )
            if not times:
                continue
            # Keyed by deployment and time, not by schedule row: re-deploying the same schedule
            # (new rows) must not make a slot that was already claimed run a second time.
            keys = {run_key(deployment.id, t): t for t in times}
            existing = set(
                session.scalars(
                    select(FlowRun.idempotency_key).where(
                        FlowRun.deployment_id == deployment.id,
                        FlowRun.idempotency_key.in_(list(keys)),
                    )
                )
            )
            for key, when in keys.items():
                if key in existing:
                    continue
                existing.add(key)  # two schedules firing at once make one run
                try:
                    # A savepoint per run: another server's tick may have inserted this slot
                    # a moment ago; that one insert is skipped, not the whole tick.
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
                touched.add(deployment.work_pool_id or f"deployment:{deployment.id}")
        if run_store.mark_late_runs(session, now):
            touched.update(
                session.scalars(
                    select(FlowRun.work_pool_id).where(FlowRun.state_type == "LATE").distinct()
                )
            )
    return {t for t in touched if t}
