"""The API's request and response bodies. Field names here are the stable `--json` fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from push_pools.states import StateType

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
FLOW_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,199}$"
# What each pattern allows, in words, for error messages (a raw regex helps nobody).
PATTERN_WORDS = {
    NAME_PATTERN: "1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit "
    "(no spaces)",
    FLOW_NAME_PATTERN: "1 to 200 letters, digits, spaces, '_', '.' or '-', starting with a "
    "letter or digit",
}


def _in_utc_range(value: datetime) -> datetime:
    """A naive time is UTC; an aware one must still be a valid datetime once moved to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range once converted to UTC") from None


# Every time a client sends: stored and compared in UTC.
UtcTime = Annotated[datetime, AfterValidator(_in_utc_range)]

# Text that is stored or compared in a query: PostgreSQL refuses NUL in text, so it is a 422
# here rather than a 500 from the database.
NoNulText = Annotated[str, Field(pattern=r"^[^\x00]*$")]


class ErrorOut(BaseModel):
    """Every error the API answers: a sentence for people and a code for programs."""

    detail: str
    code: str


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- work pools and queues ---------------------------------------------------------------------


class WorkPoolCreate(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Unique pool name.")
    type: str = Field(min_length=1, max_length=100)
    base_job_template: dict[str, Any] | None = None
    description: str | None = Field(default=None, max_length=5000)
    paused: bool = False
    concurrency_limit: int | None = Field(default=None, ge=0, le=1_000_000)


class WorkPoolUpdate(Strict):
    base_job_template: dict[str, Any] | None = None
    description: str | None = Field(default=None, max_length=5000)
    paused: bool | None = None
    concurrency_limit: int | None = Field(default=None, ge=0, le=1_000_000)
    clear_concurrency_limit: bool = False


class WorkQueueOut(BaseModel):
    id: str
    name: str
    work_pool_name: str
    description: str | None
    priority: int
    concurrency_limit: int | None
    paused: bool
    status: str
    last_polled: datetime | None


class WorkPoolOut(BaseModel):
    id: str
    name: str
    type: str
    status: str
    status_reason: str | None = Field(
        default=None,
        description="Why a push pool is NOT_READY: what its job template lacks to make a job.",
    )
    description: str | None
    paused: bool
    concurrency_limit: int | None
    base_job_template: dict[str, Any]
    last_polled: datetime | None
    created: datetime
    updated: datetime
    queues: list[WorkQueueOut]
    isolation: str | None = Field(
        default=None,
        description="Managed pools: how the server answering confines their runs: `bwrap`, "
        "`none` (PUSH_POOLS_MANAGED_ISOLATION=none) or `unavailable: <why>` (runs are refused). "
        "Null for other pool types and on a server that dispatches no runs.",
    )


class WorkQueueCreate(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=5000)
    priority: int = Field(default=1, ge=1, le=1_000_000)
    concurrency_limit: int | None = Field(default=None, ge=0, le=1_000_000)
    paused: bool = False


class WorkQueueUpdate(Strict):
    description: str | None = Field(default=None, max_length=5000)
    priority: int | None = Field(default=None, ge=1, le=1_000_000)
    concurrency_limit: int | None = Field(default=None, ge=0, le=1_000_000)
    clear_concurrency_limit: bool = False
    paused: bool | None = None


class PoolTypeOut(BaseModel):
    name: str
    description: str
    is_push: bool


# --- deployments -------------------------------------------------------------------------------


class ScheduleIn(Strict):
    cron: str | None = Field(default=None, max_length=200)
    interval: float | str | None = None
    timezone: str | None = Field(default=None, max_length=100)
    anchor_date: UtcTime | None = None
    active: bool = True


class ScheduleOut(BaseModel):
    id: str
    cron: str | None
    interval_seconds: float | None
    timezone: str
    anchor_date: datetime | None
    active: bool
    description: str


class DeploymentCreate(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    flow_name: str = Field(pattern=FLOW_NAME_PATTERN)
    entrypoint: str = Field(min_length=3, max_length=1000)
    description: str | None = Field(default=None, max_length=5000)
    work_pool_name: str | None = Field(default=None, max_length=200)
    work_queue_name: str | None = Field(default=None, max_length=200)
    path: str | None = Field(default=None, max_length=4000)
    pull_steps: list[dict[str, Any]] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    parameter_schema: dict[str, Any] = Field(default_factory=dict)
    job_variables: dict[str, Any] = Field(default_factory=dict)
    schedules: list[ScheduleIn] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    paused: bool = False
    concurrency_limit: int | None = Field(default=None, ge=0, le=1_000_000)


class DeploymentUpdate(Strict):
    description: str | None = Field(default=None, max_length=5000)
    paused: bool | None = None
    parameters: dict[str, Any] | None = None
    job_variables: dict[str, Any] | None = None
    schedules: list[ScheduleIn] | None = None
    tags: list[str] | None = None
    concurrency_limit: int | None = Field(default=None, ge=0, le=1_000_000)
    clear_concurrency_limit: bool = False


class DeploymentOut(BaseModel):
    id: str
    name: str
    flow_name: str
    full_name: str
    description: str | None
    work_pool_name: str | None
    # The pool was deleted (the deployment was paused then); it cannot run until redeployed.
    work_pool_deleted: bool = False
    work_queue_name: str | None
    entrypoint: str
    path: str | None
    pull_steps: list[dict[str, Any]]
    parameters: dict[str, Any]
    parameter_schema: dict[str, Any]
    job_variables: dict[str, Any]
    schedules: list[ScheduleOut]
    # The next fire times of its active schedules (none while paused), soonest first.
    next_runs: list[datetime] = Field(default_factory=list)
    tags: list[str]
    paused: bool
    concurrency_limit: int | None
    status: str
    # Why its runs could not start (NOT_READY): what its pool's job variables, with its own on
    # top, lack.
    status_reason: str | None = None
    created: datetime
    updated: datetime


class DeleteOutcome(BaseModel):
    """What deleting a pool or deployment did (or, with dry_run, would do)."""

    name: str
    deleted: bool
    paused_deployments: list[str] = Field(
        default_factory=list, description="Full names of the deployments paused."
    )
    cancelled_runs: list[str] = Field(
        default_factory=list,
        description="Ids of the runs cancelled; those in flight end once their infrastructure "
        "is stopped.",
    )
    deleted_runs: int = Field(0, description="Runs that had not started, deleted.")


class RunCreate(Strict):
    parameters: dict[str, Any] = Field(default_factory=dict)
    job_variables: dict[str, Any] = Field(default_factory=dict)
    scheduled_time: UtcTime | None = None
    tags: list[str] = Field(default_factory=list)
    name: str | None = Field(default=None, max_length=200)


# --- flow runs ---------------------------------------------------------------------------------


class StateOut(BaseModel):
    type: StateType
    name: str
    message: str | None
    timestamp: datetime
    details: dict[str, Any] = Field(default_factory=dict)


class FlowRunOut(BaseModel):
    id: str
    name: str
    flow_name: str
    deployment_id: str | None
    deployment_name: str | None
    work_pool_name: str | None
    work_queue_name: str | None
    state: StateType
    state_name: str
    state_message: str | None
    state_timestamp: datetime
    scheduled_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    parameters: dict[str, Any]
    job_variables: dict[str, Any]
    tags: list[str]
    worker_name: str | None
    infrastructure_id: str | None
    run_count: int
    result: Any = None
    created: datetime


class StateProposal(Strict):
    type: StateType
    message: str | None = Field(default=None, max_length=20000)
    result: Any = None
    details: dict[str, Any] = Field(default_factory=dict)
    # The worker or engine proposing the move, shown in the state history.
    worker_name: str | None = Field(default=None, max_length=200)
    infrastructure_id: str | None = Field(default=None, max_length=2000)


class StateDecision(BaseModel):
    accepted: bool
    reason: str | None
    flow_run: FlowRunOut


class LogIn(Strict):
    level: str = Field(default="INFO", max_length=10)
    # No length limit here: a longer line is kept, truncated (push_pools/log_limits.py), and
    # the request's size is bounded by the server's body limit.
    message: str
    timestamp: UtcTime | None = None


class LogOut(BaseModel):
    id: int
    flow_run_id: str
    level: str
    message: str
    timestamp: datetime


class ExecutionContext(BaseModel):
    """What the engine needs to run a flow run: the run and its deployment's code location."""

    flow_run: FlowRunOut
    entrypoint: str | None
    path: str | None
    pull_steps: list[dict[str, Any]]


# --- workers -----------------------------------------------------------------------------------


class PollRequest(Strict):
    worker_name: NoNulText = Field(min_length=1, max_length=200)
    queues: list[NoNulText] = Field(default_factory=list)
    limit: int = Field(default=1, ge=0, le=1000)
    # Hold the request open up to this long when nothing is due, answering as soon as work comes.
    wait_seconds: float = Field(default=0.0, ge=0, le=60)
    # Claim runs scheduled up to this far in the future, so their process can be started early.
    prefetch_seconds: float = Field(default=0.0, ge=0, le=600)
    running: list[NoNulText] = Field(default_factory=list, max_length=10_000)


class ClaimedRun(BaseModel):
    flow_run: FlowRunOut
    job_configuration: dict[str, Any]
    token: str | None = Field(
        default=None,
        description="The run's own API token, for its engine (PUSH_POOLS_API_KEY): it may read "
        "this run and its deployment, report its state and send its logs, until shortly after "
        "the run ends. Never the server's API key.",
    )


class PollResponse(BaseModel):
    runs: list[ClaimedRun]
    cancel: list[str]


# --- blocks ------------------------------------------------------------------------------------


class BlockCreate(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    block_type: str = Field(min_length=1, max_length=100)
    data: dict[str, Any] = Field(default_factory=dict)
    overwrite: bool = False


class BlockOut(BaseModel):
    id: str
    name: str
    block_type: str
    data: dict[str, Any]
    created: datetime
    updated: datetime


class BlockTypeField(BaseModel):
    name: str
    description: str
    secret: bool
    required: bool
    kind: str


class BlockTypeOut(BaseModel):
    slug: str
    description: str
    fields: list[BlockTypeField]
