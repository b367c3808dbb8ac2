"""Deployments, their schedules, and creating runs of them."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from push_pools import pool_types, templates
from push_pools import schedules as schedule_rules
from push_pools.errors import Conflict, InvalidInput, NotFound
from push_pools.models import (
    DeploymentCreate,
    DeploymentOut,
    DeploymentUpdate,
    RunCreate,
    ScheduleIn,
    ScheduleOut,
)
from push_pools.states import DISPLAY_NAMES, StateType
from push_pools.store import pools as pool_store
from push_pools.store.tables import (
    Deployment,
    DeploymentSchedule,
    FlowRun,
    FlowRunState,
    WorkPool,
    WorkQueue,
    utcnow,
)


def full_name(deployment: Deployment) -> str:
    return f"{deployment.flow_name}/{deployment.name}"


def schedule_out(row: DeploymentSchedule) -> ScheduleOut:
    spec = schedule_rules.schedule_from_dict(row.spec)
    return ScheduleOut(
        id=row.id,
        cron=spec.cron,
        interval_seconds=spec.interval_seconds,
        timezone=spec.timezone,
        anchor_date=spec.anchor_date,
        active=row.active,
        description=schedule_rules.describe(spec),
    )


# How many upcoming fire times a deployment shows, and how far ahead they are looked for:
# a short window first (most schedules fire daily or more often; the cost grows with the
# window), then a long one for monthly or yearly schedules.
NEXT_RUNS_SHOWN = 3
NEXT_RUNS_HORIZONS = (timedelta(days=8), timedelta(days=400))


def next_runs(rows: list[DeploymentSchedule], now: datetime | None = None) -> list[datetime]:
    """The next fire times of the active schedules, soonest first: what a user deploying wants
    to see ("when will this run?")."""
    start = now or datetime.now(UTC)
    specs = [schedule_rules.schedule_from_dict(row.spec) for row in rows if row.active]
    upcoming: set[datetime] = set()
    for horizon in NEXT_RUNS_HORIZONS:
        for spec in specs:
            upcoming.update(
                schedule_rules.next_fire_times(spec, start, start + horizon, limit=NEXT_RUNS_SHOWN)
            )
        if len(upcoming) >= NEXT_RUNS_SHOWN:
            break
    return sorted(upcoming)[:NEXT_RUNS_SHOWN]


def deployment_out(session: Session, deployment: Deployment) -> DeploymentOut:
    pool = session.get(WorkPool, deployment.work_pool_id) if deployment.work_pool_id else None
    queue = session.get(WorkQueue, deployment.work_queue_id) if deployment.work_queue_id else None
    rows = list(
        session.scalars(
            select(DeploymentSchedule)
            .where(DeploymentSchedule.deployment_id == deployment.id)
            .order_by(DeploymentSchedule.created, DeploymentSchedule.id)
        )
    )
    reason = (
        pool_store.not_ready_reason(pool, deployment.job_variables)
        if pool is not None and not pool.deleted
        else None
    )
    return DeploymentOut(
        id=deployment.id,
        name=deployment.name,
        flow_name=deployment.flow_name,
        full_name=full_name(deployment),
        description=deployment.description,
        work_pool_name=pool_store.original_name(pool) if pool else None,
        work_pool_deleted=bool(pool and pool.deleted),
        work_queue_name=queue.name if queue else None,
        entrypoint=deployment.entrypoint,
        path=deployment.path,
        pull_steps=deployment.pull_steps,
        parameters=deployment.parameters,
        parameter_schema=deployment.parameter_schema,
        job_variables=deployment.job_variables,
        schedules=[schedule_out(r) for r in rows],
        next_runs=[] if deployment.paused else next_runs(rows),
        tags=deployment.tags,
        paused=deployment.paused,
        concurrency_limit=deployment.concurrency_limit,
        status="PAUSED" if deployment.paused else ("NOT_READY" if reason else "READY"),
        status_reason=reason,
        created=deployment.created,
        updated=deployment.updated,
    )


def _parse_schedules(items: list[ScheduleIn]) -> list[tuple[dict[str, Any], bool]]:
    parsed = []
    for item in items:
        spec = schedule_rules.parse_schedule(
            cron=item.cron,
            interval=item.interval,
            timezone=item.timezone,
            anchor_date=item.anchor_date,
        )
        parsed.append((schedule_rules.schedule_to_dict(spec), item.active))
    return parsed


def validate_parameters(schema: dict[str, Any], parameters: dict[str, Any]) -> None:
    """Check flow parameters against the schema the flow's type hints produced."""
    if not schema or not schema.get("properties"):
        if parameters and schema.get("properties") == {}:
            raise InvalidInput(
                f"the flow takes no parameters, but got: {', '.join(sorted(parameters))}"
            )
        return
    import jsonschema

    properties = schema.get("properties", {})
    unknown = sorted(set(parameters) - set(properties))
    if unknown:
        raise InvalidInput(
            f"unknown flow parameter(s) {', '.join(repr(u) for u in unknown)}; "
            f"the flow accepts: {', '.join(sorted(properties)) or 'none'}"
        )
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(parameters), key=lambda e: list(e.path))
    if errors:
        messages = []
        for error in errors:
            path = ".".join(str(p) for p in error.path)
            if error.validator == "required":
                messages.append(f"missing flow parameter: {error.message}")
            else:
                messages.append(f"parameter '{path}': {error.message}")
        raise InvalidInput("; ".join(messages))


def _resolve_pool_and_queue(
    session: Session, pool_name: str | None, queue_name: str | None
) -> tuple[WorkPool | None, WorkQueue | None]:
    if pool_name is None:
        if queue_name:
            raise InvalidInput("a work queue was given without a work pool")
        return None, None
    pool = pool_store.get_pool(session, pool_name)
    queue = pool_store.get_queue(session, pool, queue_name or pool_store.DEFAULT_QUEUE)
    return pool, queue


def check_job_variables(pool: WorkPool | None, job_variables: dict[str, Any]) -> None:
    """Refuse job variables the pool's template (or its type's own rules) would not accept."""
    if not job_variables:
        return
    if pool is None:
        raise InvalidInput("job variables need a work pool: the deployment has none")
    templates.validate_job_variables(pool.base_job_template, job_variables)
    defaults = templates.default_values(pool.base_job_template)
    merged = templates.merge_job_variables(defaults, job_variables)
    try:
        pool_types.check_job_variables(pool.type, merged)
    except InvalidInput as exc:
        # The very same problem in the pool's own defaults is the pool's (it is NOT_READY and
        # says why; `deploy` warns), not something this deployment's variables brought, e.g.
        # the stock image a bundle deploy records on a pool that has no execution role yet.
        try:
            pool_types.check_job_variables(pool.type, defaults)
        except InvalidInput as pool_exc:
            if pool_exc.message == exc.message:
                return
        raise


def upsert_deployment(session: Session, body: DeploymentCreate) -> tuple[Deployment, bool]:
    """Create the deployment, or update the one with the same flow and name.

    Returns (row, created).
    """
    pool, queue = _resolve_pool_and_queue(session, body.work_pool_name, body.work_queue_name)
    check_job_variables(pool, body.job_variables)
    validate_parameters(body.parameter_schema, body.parameters)
    parsed = _parse_schedules(body.schedules)
    deployment = session.scalar(
        select(Deployment).where(
            Deployment.flow_name == body.flow_name, Deployment.name == body.name
        )
    )
    created = deployment is None
    if deployment is None:
        deployment = Deployment(flow_name=body.flow_name, name=body.name)
        session.add(deployment)
    deployment.description = body.description
    deployment.work_pool_id = pool.id if pool else None
    deployment.work_queue_id = queue.id if queue else None
    deployment.entrypoint = body.entrypoint
    deployment.path = body.path
    deployment.pull_steps = body.pull_steps
    deployment.parameters = body.parameters
    deployment.parameter_schema = body.parameter_schema
    deployment.job_variables = body.job_variables
    deployment.tags = body.tags
    deployment.paused = body.paused
    deployment.concurrency_limit = body.concurrency_limit
    deployment.updated = utcnow()
    session.flush()
    _replace_schedules(session, deployment, parsed)
    return deployment, created


def _replace_schedules(
    session: Session, deployment: Deployment, parsed: list[tuple[dict[str, Any], bool]]
) -> None:
    current = [
        (row.spec, row.active)
        for row in session.scalars(
            select(DeploymentSchedule)
            .where(DeploymentSchedule.deployment_id == deployment.id)
            .order_by(DeploymentSchedule.created, DeploymentSchedule.id)
        )
    ]
    if current == parsed:
        return  # re-deploying the same schedules keeps the runs already made for them
    session.execute(
        delete(DeploymentSchedule).where(DeploymentSchedule.deployment_id == deployment.id)
    )
    for spec, active in parsed:
        session.add(DeploymentSchedule(deployment_id=deployment.id, spec=spec, active=active))
    delete_future_scheduled_runs(session, deployment)
    session.flush()


def delete_future_scheduled_runs(session: Session, deployment: Deployment) -> int:
    """Drop runs the scheduler made ahead of time, so a new schedule or a pause takes effect;
    how many."""
    forget_scheduled_until(session, deployment)
    result = session.execute(
        delete(FlowRun).where(
            FlowRun.deployment_id == deployment.id,
            FlowRun.auto_scheduled.is_(True),
            FlowRun.state_type == StateType.SCHEDULED.value,
            FlowRun.scheduled_time > utcnow(),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)  # a DELETE's result is a cursor result


def forget_scheduled_until(session: Session, deployment: Deployment) -> None:
    """Make the scheduler look at the deployment's schedules again on its next tick (it skips
    schedules whose runs it has made up to their `scheduled_until`)."""
    session.execute(
        update(DeploymentSchedule)
        .where(DeploymentSchedule.deployment_id == deployment.id)
        .values(scheduled_until=None)
    )


def get_deployment(session: Session, deployment_id: str) -> Deployment:
    deployment = session.get(Deployment, deployment_id)
    if deployment is None:
        raise NotFound(
            f"deployment '{deployment_id}' not found; `push-pools deployment ls` lists them"
        )
    return deployment


def get_deployment_by_name(session: Session, flow_name: str, name: str) -> Deployment:
    deployment = session.scalar(
        select(Deployment).where(Deployment.flow_name == flow_name, Deployment.name == name)
    )
    if deployment is None:
        raise NotFound(
            f"deployment '{flow_name}/{name}' not found; `push-pools deployment ls` lists them"
        )
    return deployment


def list_deployments(session: Session) -> list[Deployment]:
    return list(session.scalars(select(Deployment).order_by(Deployment.flow_name, Deployment.name)))


def update_deployment(session: Session, deployment_id: str, body: DeploymentUpdate) -> Deployment:
    deployment = get_deployment(session, deployment_id)
    if body.job_variables is not None:
        pool = session.get(WorkPool, deployment.work_pool_id) if deployment.work_pool_id else None
        check_job_variables(pool, body.job_variables)
        deployment.job_variables = body.job_variables
    if body.parameters is not None:
        validate_parameters(deployment.parameter_schema, body.parameters)
        deployment.parameters = body.parameters
    if body.description is not None:
        deployment.description = body.description
    if body.tags is not None:
        deployment.tags = body.tags
    if body.clear_concurrency_limit:
        deployment.concurrency_limit = None
    elif body.concurrency_limit is not None:
        deployment.concurrency_limit = body.concurrency_limit
    if body.schedules is not None:
        _replace_schedules(session, deployment, _parse_schedules(body.schedules))
    if body.paused is not None and body.paused != deployment.paused:
        if not body.paused:
            refuse_if_pool_deleted(session, deployment, "resumed")
        deployment.paused = body.paused
        if body.paused:
            delete_future_scheduled_runs(session, deployment)
        else:
            forget_scheduled_until(session, deployment)
    deployment.updated = utcnow()
    session.flush()
    return deployment


def refuse_if_pool_deleted(session: Session, deployment: Deployment, verb: str) -> None:
    """A deployment of a deleted pool could only make runs nothing would ever start."""
    pool = session.get(WorkPool, deployment.work_pool_id) if deployment.work_pool_id else None
    if pool is not None and pool.deleted:
        raise Conflict(
            f"deployment '{full_name(deployment)}' cannot be {verb}: its work pool "
            f"'{pool_store.original_name(pool)}' was deleted; deploy it again to a pool "
            "(`push-pools deploy ... -p POOL`)"
        )


def delete_deployment(session: Session, deployment_id: str) -> int:
    """Delete the deployment and its runs that have not started (how many). Its runs in flight
    are the caller's to settle first (store/deletes.py)."""
    deployment = get_deployment(session, deployment_id)
    result = session.execute(
        delete(FlowRun).where(
            FlowRun.deployment_id == deployment.id,
            FlowRun.state_type.in_([StateType.SCHEDULED.value, StateType.LATE.value]),
        )
    )
    session.delete(deployment)
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)  # a DELETE's result is a cursor result


def new_run_name(flow_name: str) -> str:
    return f"{flow_name}-{secrets.token_hex(3)}"


def create_run(
    session: Session,
    deployment: Deployment,
    body: RunCreate,
    *,
    idempotency_key: str | None = None,
    auto_scheduled: bool = False,
) -> FlowRun:
    refuse_if_pool_deleted(session, deployment, "run")
    parameters = {**deployment.parameters, **body.parameters}
    validate_parameters(deployment.parameter_schema, parameters)
    pool = session.get(WorkPool, deployment.work_pool_id) if deployment.work_pool_id else None
    if body.job_variables:
        check_job_variables(pool, body.job_variables)
    if pool is not None:
        merged = templates.merge_job_variables(
            templates.default_values(pool.base_job_template),
            deployment.job_variables,
            body.job_variables,
        )
        templates.validate_job_variables(pool.base_job_template, merged)
        pool_types.check_job_variables(pool.type, merged)
    return insert_run(
        session,
        deployment,
        parameters=parameters,
        job_variables=body.job_variables,
        scheduled_time=body.scheduled_time or utcnow(),
        tags=[*deployment.tags, *body.tags],
        name=body.name,
        idempotency_key=idempotency_key,
        auto_scheduled=auto_scheduled,
    )


def insert_run(
    session: Session,
    deployment: Deployment,
    *,
    parameters: dict[str, Any],
    job_variables: dict[str, Any],
    scheduled_time: datetime,
    tags: list[str],
    name: str | None = None,
    idempotency_key: str | None = None,
    auto_scheduled: bool = False,
) -> FlowRun:
    now = utcnow()
    run = FlowRun(
        name=name or new_run_name(deployment.flow_name),
        deployment_id=deployment.id,
        flow_name=deployment.flow_name,
        work_pool_id=deployment.work_pool_id,
        work_queue_id=deployment.work_queue_id,
        idempotency_key=idempotency_key,
        auto_scheduled=auto_scheduled,
        state_type=StateType.SCHEDULED.value,
        state_name=DISPLAY_NAMES[StateType.SCHEDULED],
        state_timestamp=now,
        scheduled_time=scheduled_time,
        parameters=parameters,
        job_variables=job_variables,
        tags=tags,
    )
    session.add(run)
    session.flush()
    session.add(
        FlowRunState(
            flow_run_id=run.id,
            type=StateType.SCHEDULED.value,
            name=DISPLAY_NAMES[StateType.SCHEDULED],
            message="scheduled by the deployment's schedule" if auto_scheduled else None,
            timestamp=now,
            details={"scheduled_time": scheduled_time.isoformat()},
        )
    )
    return run
