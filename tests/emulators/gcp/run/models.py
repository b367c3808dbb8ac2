"""Cloud Run jobs and executions: state and the rules the API enforces on them.

A job keeps the caller's spec (a run_v2.Job holding only user-settable fields) plus what the
server owns (uid, generation, times, etag, execution count). An execution copies the job's task
template with the run's overrides applied, and holds one `TaskRun` per task; the runner
(run/runner.py) moves those through PENDING -> RUNNING -> SUCCEEDED / FAILED / CANCELLED.
"""

from __future__ import annotations

import re
import secrets
import string
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from google.cloud import run_v2

from tests.emulators.gcp.errors import ApiError

__all__ = ["REGIONS", "RESERVED_ENV", "Execution", "Job", "RunBackend", "TaskRun"]

# Where Cloud Run runs (a fixed list, as of 2025); anything else is not a location.
REGIONS = frozenset(
    {
        "africa-south1",
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast2",
        "asia-northeast3",
        "asia-south1",
        "asia-south2",
        "asia-southeast1",
        "asia-southeast2",
        "australia-southeast1",
        "australia-southeast2",
        "europe-central2",
        "europe-north1",
        "europe-north2",
        "europe-southwest1",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-west10",
        "europe-west12",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "northamerica-northeast2",
        "northamerica-south1",
        "southamerica-east1",
        "southamerica-west1",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west2",
        "us-west3",
        "us-west4",
    }
)
# Set by Cloud Run in every task; a job may not set them itself.
RESERVED_ENV = frozenset(
    {
        "CLOUD_RUN_JOB",
        "CLOUD_RUN_EXECUTION",
        "CLOUD_RUN_TASK_INDEX",
        "CLOUD_RUN_TASK_ATTEMPT",
        "CLOUD_RUN_TASK_COUNT",
    }
)
DEFAULT_TIMEOUT = timedelta(minutes=10)
DEFAULT_MAX_RETRIES = 3
_JOB_ID = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^[\w-]{1,63}$")
_LABEL_VALUE = re.compile(r"^[\w-]{0,63}$")
_SYSTEM_PREFIXES = ("run.googleapis.com", "cloud.googleapis.com", "serving.knative.dev")
_SUFFIX_CHARS = string.ascii_lowercase + string.digits
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclass
class Job:
    project_id: str
    location: str
    job_id: str
    spec: run_v2.Job
    creator: str
    create_time: float
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    generation: int = 1
    update_time: float = 0.0
    last_modifier: str = ""
    etag: str = field(default_factory=lambda: secrets.token_hex(8))
    execution_count: int = 0
    latest_execution: str = ""

    @property
    def name(self) -> str:
        return f"projects/{self.project_id}/locations/{self.location}/jobs/{self.job_id}"


@dataclass
class TaskRun:
    """One task of an execution: its current attempt and what that attempt ran."""

    index: int
    state: str = "PENDING"  # PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED
    retried: int = 0
    exit_code: int | None = None
    message: str = ""
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)
    start_time: float | None = None
    completion_time: float | None = None
    timed_out: bool = False


@dataclass
class Execution:
    project_id: str
    location: str
    job_id: str
    execution_id: str
    template: run_v2.TaskTemplate
    task_count: int
    parallelism: int
    labels: dict[str, str]
    creator: str
    create_time: float
    job_generation: int
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    tasks: list[TaskRun] = field(default_factory=list)
    start_time: float | None = None
    completion_time: float | None = None
    cancel_requested: bool = False
    deleted: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    etag: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def name(self) -> str:
        return (
            f"projects/{self.project_id}/locations/{self.location}/jobs/{self.job_id}"
            f"/executions/{self.execution_id}"
        )

    @property
    def job_name(self) -> str:
        return f"projects/{self.project_id}/locations/{self.location}/jobs/{self.job_id}"

    def task_id(self, index: int) -> str:
        return f"{self.execution_id}-task{index}"

    def count(self, state: str) -> int:
        return sum(1 for t in self.tasks if t.state == state)

    @property
    def state(self) -> str:
        """PENDING, RUNNING, CANCELLING, or a terminal SUCCEEDED / FAILED / CANCELLED."""
        if not self.finished.is_set():
            if self.cancel_requested:
                return "CANCELLING"
            return "RUNNING" if self.start_time is not None else "PENDING"
        if self.cancel_requested or self.count("CANCELLED"):
            return "CANCELLED"
        return "FAILED" if self.count("FAILED") else "SUCCEEDED"

    def failed_task(self) -> TaskRun | None:
        return next((t for t in self.tasks if t.state == "FAILED"), None)

    # What a test asserts on most: the first task's latest attempt.
    @property
    def argv(self) -> list[str]:
        return self.tasks[0].argv

    @property
    def env(self) -> dict[str, str]:
        return self.tasks[0].env

    @property
    def exit_code(self) -> int | None:
        return self.tasks[0].exit_code

    @property
    def output(self) -> list[str]:
        return self.tasks[0].output


class RunBackend:
    def __init__(
        self,
        clock: Callable[[], float],
        launch: Callable[[Execution], None],
        stop: Callable[[Execution], None],
    ) -> None:
        self.clock = clock
        self.launch = launch
        self.stop = stop
        self.jobs: dict[str, Job] = {}
        self.executions: dict[str, Execution] = {}

    # ------------------------------------------------------------------ jobs

    def create_job(
        self,
        project_id: str,
        location: str,
        job_id: str,
        spec: run_v2.Job,
        principal: str,
        *,
        validate_only: bool = False,
    ) -> Job:
        check_location(location)
        if not _JOB_ID.match(job_id or ""):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Invalid job id '{job_id}': it must be at most 63 lowercase letters, digits or "
                "hyphens, begin with a letter and not end with a hyphen.",
            )
        validate_spec(spec)
        job = Job(project_id, location, job_id, _user_fields(spec), principal, self.clock())
        if job.name in self.jobs:
            raise ApiError("ALREADY_EXISTS", f"Resource '{job_id}' already exists.")
        job.update_time = job.create_time
        job.last_modifier = principal
        if not validate_only:
            self.jobs[job.name] = job
        return job

    def get_job(self, name: str) -> Job:
        job = self.jobs.get(name)
        if job is None:
            raise ApiError("NOT_FOUND", f"Resource '{name.rsplit('/', 1)[-1]}' does not exist.")
        return job

    def list_jobs(self, project_id: str, location: str) -> list[Job]:
        everywhere = location == "-"
        if not everywhere:
            check_location(location)
        return [
            j
            for j in sorted(self.jobs.values(), key=lambda j: j.create_time)
            if j.project_id == project_id and (everywhere or j.location == location)
        ]

    def update_job(self, job: Job, spec: run_v2.Job, principal: str) -> Job:
        validate_spec(spec)
        if spec.etag and spec.etag != job.etag:
            raise ApiError("ABORTED", "The etag does not match the current job's etag.")
        job.spec = _user_fields(spec)
        job.generation += 1
        job.update_time = self.clock()
        job.last_modifier = principal
        job.etag = secrets.token_hex(8)
        return job

    def delete_job(self, job: Job) -> Job:
        for execution in self.executions_of(job):
            self.delete_execution(execution)
        del self.jobs[job.name]
        return job

    # ------------------------------------------------------------------ executions

    def run_job(
        self, job: Job, overrides: run_v2.RunJobRequest.Overrides | None, principal: str
    ) -> Execution:
        execution_template = job.spec.template
        template = run_v2.TaskTemplate.deserialize(
            run_v2.TaskTemplate.serialize(execution_template.template)
        )
        task_count = execution_template.task_count or 1
        if overrides is not None:
            apply_overrides(template, overrides)
            if overrides.task_count:
                task_count = overrides.task_count
        suffix = "".join(secrets.choice(_SUFFIX_CHARS) for _ in range(5))
        execution = Execution(
            job.project_id,
            job.location,
            job.job_id,
            f"{job.job_id}-{suffix}",
            template,
            task_count,
            execution_template.parallelism,
            dict(execution_template.labels),
            principal,
            self.clock(),
            job.generation,
        )
        execution.tasks = [TaskRun(i) for i in range(task_count)]
        self.executions[execution.name] = execution
        job.execution_count += 1
        job.latest_execution = execution.name
        self.launch(execution)
        return execution

    def get_execution(self, name: str) -> Execution:
        execution = self.executions.get(name)
        if execution is None:
            raise ApiError("NOT_FOUND", f"Resource '{name.rsplit('/', 1)[-1]}' does not exist.")
        return execution

    def executions_of(self, job: Job) -> list[Execution]:
        prefix = job.name + "/executions/"
        found = [e for e in self.executions.values() if e.name.startswith(prefix)]
        return sorted(found, key=lambda e: e.create_time, reverse=True)

    def cancel_execution(self, execution: Execution) -> Execution:
        if execution.finished.is_set():
            raise ApiError(
                "FAILED_PRECONDITION",
                f"Execution {execution.execution_id} has already completed and cannot be "
                "cancelled.",
            )
        execution.cancel_requested = True
        execution.cancelled.set()
        return execution

    def delete_execution(self, execution: Execution) -> Execution:
        if not execution.finished.is_set():
            execution.cancel_requested = True
            execution.cancelled.set()
        execution.deleted = True
        del self.executions[execution.name]
        return execution

    def stop_all(self) -> None:
        for execution in list(self.executions.values()):
            execution.cancelled.set()
            self.stop(execution)


def check_location(location: str) -> None:
    if location not in REGIONS:
        raise ApiError(
            "INVALID_ARGUMENT",
            f"Location '{location}' is not a valid location for Cloud Run. "
            "Use ListLocations to list valid locations.",
        )


def validate_spec(spec: run_v2.Job) -> None:
    """The checks Cloud Run makes on a job before accepting it."""
    for key, value in spec.labels.items():
        if not (_LABEL_KEY.match(key) and _LABEL_VALUE.match(value)) or (key + value).lower() != (
            key + value
        ):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Invalid label '{key}': '{value}'. Label keys and values can contain only "
                "lowercase letters, numeric characters, underscores and dashes; keys must be "
                "1-63 characters, values at most 63.",
            )
    for mapping, kind in ((spec.labels, "labels"), (spec.annotations, "annotations")):
        for key in mapping:
            if key.split("/")[0].endswith(_SYSTEM_PREFIXES):
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"Unsupported {kind} key '{key}': system {kind} are not supported in v2.",
                )
    containers = spec.template.template.containers
    if not containers:
        raise ApiError(
            "INVALID_ARGUMENT", "template.template.containers: at least one container is required"
        )
    for index, container in enumerate(containers):
        if not container.image:
            raise ApiError(
                "INVALID_ARGUMENT", f"template.template.containers[{index}].image: Required"
            )
        reserved = sorted({e.name for e in container.env} & RESERVED_ENV)
        if reserved:
            raise ApiError(
                "INVALID_ARGUMENT",
                "The following reserved env names were provided: "
                f"{', '.join(reserved)}. These values are automatically set by the system.",
            )
        names = [e.name for e in container.env]
        if len(names) != len(set(names)):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"template.template.containers[{index}].env: duplicate environment variable names",
            )
    vpc_access = spec.template.template.vpc_access
    if vpc_access.connector and vpc_access.network_interfaces:
        raise ApiError(
            "INVALID_ARGUMENT",
            "template.template.vpc_access: connector and network_interfaces cannot both be set.",
        )
    for interface in vpc_access.network_interfaces:
        if not (interface.network or interface.subnetwork):
            raise ApiError(
                "INVALID_ARGUMENT",
                "template.template.vpc_access.network_interfaces: network or subnetwork is "
                "required.",
            )
    if spec.template.task_count < 0 or spec.template.parallelism < 0:
        raise ApiError("INVALID_ARGUMENT", "taskCount and parallelism must not be negative.")


def apply_overrides(
    template: run_v2.TaskTemplate, overrides: run_v2.RunJobRequest.Overrides
) -> None:
    """A run's overrides: args replaced (or cleared), env merged by name, timeout replaced."""
    containers = list(template.containers)
    for override in overrides.container_overrides:
        if override.name:
            target = next((c for c in containers if c.name == override.name), None)
            if target is None:
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"Container override names a container that does not exist: {override.name}",
                )
        elif len(containers) == 1:
            target = containers[0]
        else:
            raise ApiError(
                "INVALID_ARGUMENT",
                "A container override must name its container when the job has more than one.",
            )
        if override.clear_args:
            target.args = []
        elif override.args:
            target.args = list(override.args)
        if override.env:
            reserved = sorted({e.name for e in override.env} & RESERVED_ENV)
            if reserved:
                raise ApiError(
                    "INVALID_ARGUMENT",
                    "The following reserved env names were provided: "
                    f"{', '.join(reserved)}. These values are automatically set by the system.",
                )
            merged = {e.name: e for e in target.env}
            for variable in override.env:
                merged[variable.name] = variable
            target.env = list(merged.values())
    template.containers = containers
    if "timeout" in overrides:
        template.timeout = overrides.timeout


def _user_fields(spec: run_v2.Job) -> run_v2.Job:
    """The spec without output-only fields (which a client may echo back on update)."""
    return run_v2.Job(
        labels=dict(spec.labels),
        annotations=dict(spec.annotations),
        client=spec.client,
        client_version=spec.client_version,
        launch_stage=spec.launch_stage,
        binary_authorization=spec.binary_authorization,
        template=spec.template,
    )
