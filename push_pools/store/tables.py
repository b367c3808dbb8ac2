"""The store's tables. Alembic migrations in `migrations/` create exactly these."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        # SQLite compares datetimes as text: store one canonical naive-UTC form so ordering holds.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UtcDateTime}


class WorkPool(Base):
    __tablename__ = "work_pools"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    base_job_template: Mapped[dict[str, Any]] = mapped_column(JSON)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_polled: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    # A deleted pool stays as a tombstone (renamed, paused, hidden) while its runs' infrastructure
    # may still need stopping and cleaning up: the dispatcher finds the executor, template and
    # credentials through it, and deployments keep saying which pool they were deployed to.
    # Once nothing needs it, store/pruning.py deletes it.
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class WorkQueue(Base):
    __tablename__ = "work_queues"
    __table_args__ = (UniqueConstraint("work_pool_id", "name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    work_pool_id: Mapped[str] = mapped_column(ForeignKey("work_pools.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=1)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    last_polled: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Worker(Base):
    __tablename__ = "workers"
    __table_args__ = (UniqueConstraint("work_pool_id", "name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    work_pool_id: Mapped[str] = mapped_column(ForeignKey("work_pools.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    last_heartbeat: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("flow_name", "name"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    flow_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    work_pool_id: Mapped[str | None] = mapped_column(
        ForeignKey("work_pools.id", ondelete="SET NULL"), nullable=True
    )
    work_queue_id: Mapped[str | None] = mapped_column(
        ForeignKey("work_queues.id", ondelete="SET NULL"), nullable=True
    )
    entrypoint: Mapped[str] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    pull_steps: Mapped[list[Any]] = mapped_column(JSON, default=list)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    parameter_schema: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    job_variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class DeploymentSchedule(Base):
    __tablename__ = "deployment_schedules"
    __table_args__ = (
        Index("ix_deployment_schedules_deployment", "deployment_id"),
        Index("ix_deployment_schedules_until", "scheduled_until"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    # The normalised schedule (cron or interval, timezone, anchor), as push_pools.schedules
    # stores it.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The scheduler made runs for every fire time before this, so a tick reads only the
    # schedules whose horizon has moved past it. NULL: not yet, or their future runs were
    # deleted (a pause, a new schedule) and must be made again.
    scheduled_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class FlowRun(Base):
    __tablename__ = "flow_runs"
    __table_args__ = (
        # The scheduler keys each run it creates, so running it twice never duplicates a run.
        UniqueConstraint("deployment_id", "idempotency_key"),
        Index("ix_flow_runs_claim", "work_pool_id", "state_type", "scheduled_time"),
        Index("ix_flow_runs_deployment", "deployment_id", "state_type"),
        Index("ix_flow_runs_push_watch", "work_pool_id", "infrastructure_released"),
        Index("ix_flow_runs_host", "host_id", "state_type"),
        # Run lists, newest first, with or without a filter (store/runs.py list_runs), and
        # the Late sweep (state and time).
        Index("ix_flow_runs_scheduled", "scheduled_time"),
        Index("ix_flow_runs_state_scheduled", "state_type", "scheduled_time"),
        Index("ix_flow_runs_pool_scheduled", "work_pool_id", "scheduled_time"),
        Index("ix_flow_runs_deployment_scheduled", "deployment_id", "scheduled_time"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    deployment_id: Mapped[str | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="SET NULL"), nullable=True
    )
    flow_name: Mapped[str] = mapped_column(String(200))
    work_pool_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    work_queue_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    auto_scheduled: Mapped[bool] = mapped_column(Boolean, default=False)
    state_type: Mapped[str] = mapped_column(String(20))
    state_name: Mapped[str] = mapped_column(String(50))
    state_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    state_timestamp: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    scheduled_time: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    start_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    job_variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    worker_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    infrastructure_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set once a push executor's cleanup ran for the finished run's infrastructure.
    infrastructure_released: Mapped[bool] = mapped_column(Boolean, default=False)
    # The host (settings.host_id) whose disk holds a managed run's sandbox: only that host's
    # server watches, resubmits and cleans it up. None for runs on other infrastructure.
    host_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Host(Base):
    """A server's host and its heartbeat (store/hosts.py): how other servers on the store tell
    that the host of a managed run is gone."""

    __tablename__ = "hosts"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Bumped by every heartbeat. Other servers watch it change on their own monotonic clock,
    # so a host whose wall clock is off is not taken for dead.
    beats: Mapped[int] = mapped_column(Integer, default=0)
    # For people ("last heartbeat at ..."); no decision reads it.
    last_heartbeat: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class RetiredDeployment(Base):
    """A deployment deleted (or whose pool was deleted) whose per-deployment infrastructure
    (Cloud Run jobs, ...) its pool's executor has yet to forget; see store/retirements.py.

    The row outlives the deployment and keeps what forgetting needs: the pool (a tombstone,
    maybe), the pool's name when the runs were submitted (infrastructure is labelled with it)
    and the deployment's job variables (region, project). Kept once finished, so a deployment
    is forgotten at most once.
    """

    __tablename__ = "retired_deployments"
    __table_args__ = (
        UniqueConstraint("deployment_id", "work_pool_id"),
        Index("ix_retired_deployments_due", "finished", "next_attempt"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    deployment_id: Mapped[str] = mapped_column(String(36))
    # No foreign key: a pool is never removed (it becomes a tombstone), and this row must
    # not go with it if one day it is.
    work_pool_id: Mapped[str] = mapped_column(String(36))
    pool_name: Mapped[str] = mapped_column(String(200))
    job_variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Its runs that were in flight: forgotten only once each has ended and been cleaned up.
    run_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Not before this: a retry's backoff, or the lease of the dispatcher working on it.
    next_attempt: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class RunToken(Base):
    """A flow run's own API token, stored as its SHA-256 only (see store/run_tokens.py)."""

    __tablename__ = "run_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow_run_id: Mapped[str] = mapped_column(
        ForeignKey("flow_runs.id", ondelete="CASCADE"), index=True
    )
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class FlowRunState(Base):
    __tablename__ = "flow_run_states"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flow_run_id: Mapped[str] = mapped_column(
        ForeignKey("flow_runs.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(50))
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Log(Base):
    __tablename__ = "logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flow_run_id: Mapped[str] = mapped_column(
        ForeignKey("flow_runs.id", ondelete="CASCADE"), index=True
    )
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(10), default="INFO")
    message: Mapped[str] = mapped_column(Text)


class Block(Base):
    __tablename__ = "blocks"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    block_type: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    encrypted_secrets: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class InfrastructureRecord(Base):
    """A cloud resource a provisioner created or adopted for a work pool (provisioners/plan.py).

    Keyed by pool NAME, not id: provisioning runs before the pool exists, and teardown may run
    after it is gone. Never holds a secret: those live encrypted in blocks.
    """

    __tablename__ = "infrastructure_records"
    __table_args__ = (UniqueConstraint("pool_name", "step"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    pool_name: Mapped[str] = mapped_column(String(200))
    step: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(200))
    identifier: Mapped[str] = mapped_column(Text)
    # True: the provisioner made it and teardown deletes it; False: adopted, only forgotten.
    created: Mapped[bool] = mapped_column(Boolean)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Save order of the first save (an upsert keeps it): teardown of records whose step left
    # the provisioner goes by it.
    position: Mapped[int] = mapped_column(Integer)
    # `created` is taken by the flag above, so the timestamps are `recorded` and `updated`.
    recorded: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class WriteReceipt(Base):
    """A write to a run (a log batch, a state) by the id its client made for it: a retried
    request carrying the same id is answered from here instead of being applied twice."""

    __tablename__ = "write_receipts"
    __table_args__ = (UniqueConstraint("flow_run_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flow_run_id: Mapped[str] = mapped_column(ForeignKey("flow_runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    # What the first request was answered, so that the retry gets the same answer.
    answer: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LogUsage(Base):
    """How much of its log quota a run has used (push_pools/log_limits.py)."""

    __tablename__ = "log_usage"
    flow_run_id: Mapped[str] = mapped_column(
        ForeignKey("flow_runs.id", ondelete="CASCADE"), primary_key=True
    )
    lines: Mapped[int] = mapped_column(Integer, default=0)
    chars: Mapped[int] = mapped_column(Integer, default=0)
    dropped: Mapped[int] = mapped_column(Integer, default=0)
    # The log line that says how many lines were dropped; the lines after it are the newest
    # ones, which make room for newer ones still.
    marker_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class CodeBundle(Base):
    """A project's code as `deploy` packed it (push_pools/deploy/bundle.py), named by the
    sha256 of its bytes; kept in the store so every server on one database can serve it, or in
    the bucket its pool names (push_pools/bundle_storage.py): then `location` is the object's
    URL and `data` is empty."""

    __tablename__ = "code_bundles"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    location: Mapped[str | None] = mapped_column(String(1024), nullable=True, default=None)
    created: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
