"""Runs each flow run of a `cloud-run:push` pool as a Cloud Run job execution. See base.Executor
for the verbs.

Infrastructure id: `cloud-run:<project>:<region>:<job id>:<infrastructure name>`, e.g.
`cloud-run:my-proj:europe-west1:pp-etl-0b1c2d3e-4f5a6b7c8d9e:pp-0b1c...-1`. Not the execution's
name: Cloud Run makes that up in run_job, and the engine must report the same id (from
PUSH_POOLS_INFRASTRUCTURE_ID) from inside the execution. The id goes into the execution as an
env override, which is how the execution is found again by a retried submit or after a restart;
names learned are remembered per id, so checking a run costs one get_execution.

Google clients need the run's credentials, which only submit() receives. What submit learns is
remembered per infrastructure id in this object; ids it never saw (after a server restart, or
runs another server submitted) use application-default credentials, unless the dispatcher first
hands their Submission to remember().
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from push_pools.errors import InvalidInput
from push_pools.executors.base import (
    BaseExecutor,
    InfrastructureState,
    InfrastructureStatus,
    Retirement,
    Submission,
)
from push_pools.executors.cloud_run import status as execution_state
from push_pools.executors.cloud_run.gcp import (
    CALL_TIMEOUT,
    Connection,
    Connections,
    GcpAccessDenied,
    GcpAlreadyExists,
    GcpError,
    GcpFailedPrecondition,
    GcpNotFound,
    GcpUnavailable,
    gcp_errors,
    read_retry,
    require_sdk,
)
from push_pools.executors.cloud_run.index import ExecutionIndex
from push_pools.executors.cloud_run.job import (
    CONTAINER_NAME,
    DEPLOYMENT_LABEL,
    INFRASTRUCTURE_ID_ENV,
    KEEP_LABEL,
    MANAGED_BY_LABEL,
    POOL_LABEL,
    CloudRunJob,
    ExecutionRef,
    family_labels,
    parse_infrastructure_id,
)
from push_pools.executors.lookups import ParallelLookups

__all__ = ["CloudRunExecutor"]

TAIL_LINES = 20
RUN_JOB_ATTEMPTS = 3
RUN_JOB_BACKOFF_SECONDS = 1.0
# Cloud Run creates a job in seconds; a create still pending after this is reported.
CREATE_JOB_SECONDS = 120.0
LIST_PAGE_SIZE = 100
# A job's executions listed again: only those started since the last listing are new.
INCREMENTAL_PAGE_SIZE = 25
# Cloud Run has no batch read of executions: status() reads them this many at a time.
STATUS_THREADS = 8
# Bounds what this object remembers when runs are never cleaned up (keep_job).
MAX_REMEMBERED = 100_000
_JOB_LOCKS = 64


@dataclass(frozen=True)
class _Known:
    """What we know about one infrastructure id; execution None: not found (yet)."""

    connection: Connection
    ref: ExecutionRef
    execution: str | None = None


class CloudRunExecutor(BaseExecutor):
    """Cloud Run executions started with run_job; one instance per dispatcher, thread-safe."""

    needs_remember = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections = Connections()
        self._known: OrderedDict[str, _Known] = OrderedDict()
        # Jobs this object has seen exist, so a deployment's later runs skip the lookup.
        self._jobs: OrderedDict[str, None] = OrderedDict()
        # Concurrent submits of one deployment must create its job once: a fixed set of locks
        # picked by job name (a dict of locks would grow without end).
        self._job_locks = [threading.Lock() for _ in range(_JOB_LOCKS)]
        self._index = ExecutionIndex(_tag)
        self._lookups = ParallelLookups("cloud-run-status", STATUS_THREADS)

    # ------------------------------------------------------------------ submit

    def submit(self, submission: Submission) -> str:
        require_sdk()
        job = CloudRunJob.from_configuration(submission.job_configuration)
        connection = self._connections.get(job.credentials)
        project = job.project or connection.default_project()
        if not project:
            raise InvalidInput(
                "no Google Cloud project for the Cloud Run job: set the job variable 'project' "
                "or project in the gcp-credentials block"
            )
        spec = job.job_spec(pool_name=submission.pool_name, deployment_id=submission.deployment_id)
        job_id = job.job_id(
            spec, pool_name=submission.pool_name, deployment_id=submission.deployment_id
        )
        name = submission.infrastructure_name or f"pp-{submission.flow_run_id}"
        ref = ExecutionRef(project=project, region=job.region, job_id=job_id, name=name)
        infrastructure_id = ref.infrastructure_id
        with self._lock:
            known = self._known.get(infrastructure_id)
        if known is not None and known.execution is not None:
            return infrastructure_id  # started by an earlier attempt in this process
        created = self._ensure_job(connection, ref, spec)
        # Adopt what an earlier attempt under this name started (a retried submit, another
        # server), never start a second one. A job made just now has no executions.
        execution = None if created else self._find_execution(connection, ref)
        if execution is None:
            execution = self._run_job(connection, job, submission, ref, spec)
        self._remember(infrastructure_id, _Known(connection, ref, execution))
        return infrastructure_id

    def remember(self, infrastructure_id: str, submission: Submission) -> None:
        """Learn the credentials of a run this object did not submit (after a restart).

        For the dispatcher: with the run's rendered Submission, status(), logs(), cancel() and
        cleanup() use the run's own credentials instead of application-default ones. No calls.
        """
        ref = parse_infrastructure_id(infrastructure_id)
        with self._lock:
            if ref is None or infrastructure_id in self._known:
                return
        job = CloudRunJob.from_configuration(submission.job_configuration)
        self._remember(infrastructure_id, _Known(self._connections.get(job.credentials), ref))

    def _ensure_job(self, connection: Connection, ref: ExecutionRef, spec: dict[str, Any]) -> bool:
        """Make sure the job exists; True when this call created it."""
        with self._lock:
            if ref.job_name in self._jobs:
                return False
        with self._job_locks[zlib.crc32(ref.job_name.encode()) % _JOB_LOCKS]:
            with self._lock:
                if ref.job_name in self._jobs:
                    return False
            jobs = connection.run("jobs")
            try:
                with gcp_errors(f"look up the Cloud Run job {ref.job_id} in {ref.location}"):
                    jobs.get_job(name=ref.job_name, retry=read_retry(), timeout=CALL_TIMEOUT)
                created = False
            except GcpNotFound:
                created = self._create_job(connection, ref, spec)
            self._note_job(ref.job_name)
        return created

    def _create_job(self, connection: Connection, ref: ExecutionRef, spec: dict[str, Any]) -> bool:
        from google.cloud import run_v2

        try:
            with gcp_errors(f"create the Cloud Run job {ref.job_id} in {ref.location}"):
                operation = connection.run("jobs").create_job(
                    parent=ref.location,
                    job=run_v2.Job(spec),
                    job_id=ref.job_id,
                    retry=read_retry(),
                    timeout=CALL_TIMEOUT,
                )
                operation.result(timeout=CREATE_JOB_SECONDS)
        except GcpAlreadyExists:
            return False  # another server (or a retried call of ours) was first
        return True

    def _run_job(
        self,
        connection: Connection,
        job: CloudRunJob,
        submission: Submission,
        ref: ExecutionRef,
        spec: dict[str, Any],
    ) -> str:
        """run_job without blind retries: after a failure, see whether the execution started."""
        from google.cloud import run_v2

        overrides = run_v2.RunJobRequest.Overrides(
            container_overrides=[
                run_v2.RunJobRequest.Overrides.ContainerOverride(
                    name=CONTAINER_NAME,
                    env=[
                        run_v2.EnvVar(name=key, value=value)
                        for key, value in job.run_env(
                            submission.engine_env, ref.infrastructure_id
                        ).items()
                    ],
                    args=job.args,
                )
            ],
            task_count=1,
            timeout=timedelta(seconds=job.timeout),
        )
        request = run_v2.RunJobRequest(name=ref.job_name, overrides=overrides)
        jobs = connection.run("jobs")
        recreated = False
        attempt = 0
        while True:
            attempt += 1
            try:
                with gcp_errors(f"start an execution of the Cloud Run job {ref.job_id}"):
                    # No retry: run_job is not idempotent; a failed call may have started one.
                    operation = jobs.run_job(request=request, retry=None, timeout=CALL_TIMEOUT)
            except GcpUnavailable:
                found = self._find_execution(connection, ref)
                if found is not None:
                    return found
                if attempt >= RUN_JOB_ATTEMPTS:
                    raise
                time.sleep(RUN_JOB_BACKOFF_SECONDS * attempt)
                continue
            except GcpNotFound:
                # Deleted since we looked (a changed deployment's cleanup, maybe by another
                # server, while this run still had the old settings): make it again, once.
                if recreated:
                    raise
                recreated = True
                self._forget_job(ref.job_name)
                self._ensure_job(connection, ref, spec)
                continue
            # The operation is done only when the execution ends; its metadata names it now.
            name = _execution_name(operation)
            if name:
                self._index.add(ref.job_name, ref.infrastructure_id, name)
                return name
            found = self._find_execution(connection, ref)
            if found is not None:
                return found
            raise GcpError(
                f"Cloud Run accepted the run of job {ref.job_id} but named no execution; "
                "the run is crashed so that it is not started twice"
            )

    def _find_execution(self, connection: Connection, ref: ExecutionRef) -> str | None:
        """The execution started under this run's infrastructure id; None if there is none."""
        action = f"look for the execution of {ref.name} in job {ref.job_id}"

        def pages(again: bool) -> Iterator[Any]:
            with gcp_errors(action):
                yield from (
                    connection.run("executions")
                    .list_executions(
                        request=_list_executions(
                            ref.job_name, INCREMENTAL_PAGE_SIZE if again else LIST_PAGE_SIZE
                        ),
                        retry=read_retry(),
                        timeout=CALL_TIMEOUT,
                    )
                    .pages
                )

        try:
            return self._index.find(ref.job_name, ref.infrastructure_id, pages)
        except GcpNotFound:
            self._index.drop(ref.job_name)
            return None  # the job is gone, and its executions with it

    # ------------------------------------------------------------------ status

    def status(self, infrastructure_ids: list[str]) -> dict[str, InfrastructureStatus]:
        return self._lookups.map(self._status_of_id, infrastructure_ids)

    def close(self) -> None:
        self._lookups.close()

    def _status_of_id(self, infrastructure_id: str) -> InfrastructureStatus:
        known = self._resolve(infrastructure_id)
        if known is None or known.execution is None:
            return InfrastructureStatus(InfrastructureState.MISSING)
        return self._status_of(known)

    def _status_of(self, known: _Known) -> InfrastructureStatus:
        if known.execution is None:  # not started yet (callers check; this keeps it true)
            return InfrastructureStatus(InfrastructureState.MISSING)
        try:
            with gcp_errors(f"check the Cloud Run execution {known.execution}"):
                execution = known.connection.run("executions").get_execution(
                    name=known.execution, retry=read_retry(), timeout=CALL_TIMEOUT
                )
        except GcpNotFound:
            return InfrastructureStatus(InfrastructureState.MISSING)
        result = execution_state.execution_status(execution)
        if result.state != InfrastructureState.EXITED or not execution_state.is_failed(execution):
            return result
        # The outcome matters more than its details: report it without them if they fail.
        try:
            exit_code = self._task_exit_code(known)
        except GcpError:
            exit_code = None
        if exit_code is not None:
            result = execution_state.execution_status(execution, exit_code)
        try:
            lines = self._tail(known, TAIL_LINES)
        except GcpError:
            lines = []
        return replace(result, last_lines=lines)

    def _task_exit_code(self, known: _Known) -> int | None:
        """The failed task's last exit code; None when no task says (the image never ran)."""
        with gcp_errors(f"read the tasks of {known.execution}"):
            tasks = known.connection.run("tasks").list_tasks(
                parent=known.execution, retry=read_retry(), timeout=CALL_TIMEOUT
            )
            for task in tasks:
                if "last_attempt_result" not in task:
                    continue
                result = task.last_attempt_result
                # A failed attempt reporting 0 never ran its container (e.g. no image).
                if result.exit_code:
                    return int(result.exit_code)
        return None

    # ------------------------------------------------------------------ logs

    def logs(self, infrastructure_id: str, limit: int = 50) -> list[str]:
        """The execution's last output lines from Cloud Logging ([] when not allowed)."""
        known = self._resolve(infrastructure_id)
        if known is None or known.execution is None:
            return []
        return self._tail(known, limit)

    def _tail(self, known: _Known, limit: int) -> list[str]:
        from google.cloud import logging as cloud_logging

        if known.execution is None:
            return []
        ref = known.ref
        execution_id = known.execution.rsplit("/", 1)[-1]
        query = (
            'resource.type="cloud_run_job"'
            f' AND resource.labels.job_name="{ref.job_id}"'
            f' AND resource.labels.location="{ref.region}"'
            f' AND labels."run.googleapis.com/execution_name"="{execution_id}"'
        )
        limit = max(1, min(limit, 1000))
        try:
            with gcp_errors(f"read the output of {execution_id} from Cloud Logging"):
                entries = list(
                    known.connection.logging(ref.project).list_entries(
                        resource_names=[f"projects/{ref.project}"],
                        filter_=query,
                        order_by=cloud_logging.DESCENDING,
                        page_size=limit,
                        max_results=limit,
                    )
                )
        except GcpAccessDenied:
            return []  # no roles/logging.viewer: the run's outcome is reported without them
        return [_line(entry.payload) for entry in reversed(entries)]

    # ------------------------------------------------------------------ cancel and cleanup

    def cancel(self, infrastructure_id: str, grace_seconds: float = 10.0) -> None:
        """cancel_execution, without waiting for it. Cloud Run sends SIGTERM and, 10 s later,
        SIGKILL; `grace_seconds` cannot change that."""
        known = self._resolve(infrastructure_id)
        if known is None or known.execution is None:
            return
        try:
            with gcp_errors(f"cancel the Cloud Run execution {known.execution}"):
                known.connection.run("executions").cancel_execution(
                    name=known.execution, retry=read_retry(), timeout=CALL_TIMEOUT
                )
        except (GcpFailedPrecondition, GcpNotFound):
            pass  # already finished, or gone

    def cleanup(self, infrastructure_id: str) -> None:
        """Forget the run; delete its deployment's jobs that no run uses any more.

        A deployment's current job (the one its latest execution ran on) stays, so its next
        run starts at once; jobs of settings it no longer has are deleted once idle, unless
        made with keep_job. The dispatcher calls this only for runs without keep_job.
        """
        ref = parse_infrastructure_id(infrastructure_id)
        if ref is None:
            return
        with self._lock:
            known = self._known.pop(infrastructure_id, None)
        connection = known.connection if known is not None else self._connections.get(None)
        self._retire_stale_jobs(connection, ref)

    def forget_deployment(self, retirement: Retirement) -> None:
        """Delete the deployment's jobs in its region (all of its settings, old and current),
        except those made with keep_job. A job with an execution still running stays, and the
        call fails so that the dispatcher asks again later."""
        require_sdk()
        job = CloudRunJob.from_configuration(retirement.job_configuration)
        connection = self._connections.get(job.credentials)
        project = job.project or connection.default_project()
        if not project:
            raise InvalidInput(
                "no Google Cloud project to delete the deployment's Cloud Run jobs in: set the "
                "job variable 'project' or project in the gcp-credentials block"
            )
        location = f"projects/{project}/locations/{job.region}"
        family = family_labels(retirement.pool_name, retirement.deployment_id)
        busy = []
        for found in self._family(connection, location, family):
            if found.labels.get(KEEP_LABEL) == "true":
                continue
            if self._busy(connection, found):
                busy.append(_job_id(found))
                continue
            self._delete_job(connection, location, found)
        if busy:
            raise GcpError(
                f"the Cloud Run job {', '.join(busy)} of deleted deployment "
                f"{retirement.deployment_id} still runs an execution; it is deleted once that ends"
            )

    def _retire_stale_jobs(self, connection: Connection, ref: ExecutionRef) -> None:
        listed = self._our_jobs(connection, ref.location)
        this = next((j for j in listed if _job_id(j) == ref.job_id), None)
        if this is None:
            return  # gone already, or not ours to judge
        family = {key: this.labels.get(key) for key in (POOL_LABEL, DEPLOYMENT_LABEL)}
        siblings = [j for j in listed if _in_family(j, family)]
        current = max(siblings, key=_last_used)
        for job in siblings:
            if job is current or job.labels.get(KEEP_LABEL) == "true":
                continue
            if self._busy(connection, job):
                continue  # a run still uses it; that run's cleanup looks again
            self._delete_job(connection, ref.location, job)

    def _our_jobs(self, connection: Connection, location: str) -> list[Any]:
        """The jobs push-pools made in the location (Cloud Run lists by location only)."""
        with gcp_errors(f"list the Cloud Run jobs in {location}"):
            listed = connection.run("jobs").list_jobs(
                request=_list_jobs(location), retry=read_retry(), timeout=CALL_TIMEOUT
            )
            return [j for j in listed if j.labels.get(MANAGED_BY_LABEL) == "push-pools"]

    def _family(self, connection: Connection, location: str, family: dict[str, str]) -> list[Any]:
        return [j for j in self._our_jobs(connection, location) if _in_family(j, family)]

    def _delete_job(self, connection: Connection, location: str, job: Any) -> None:
        try:
            with gcp_errors(f"delete the Cloud Run job {_job_id(job)}"):
                connection.run("jobs").delete_job(
                    name=job.name, retry=read_retry(), timeout=CALL_TIMEOUT
                )
        except GcpNotFound:
            pass  # another server deleted it first
        self._forget_job(job.name)
        self._index.drop(f"{location}/jobs/{_job_id(job)}")

    def _busy(self, connection: Connection, job: Any) -> bool:
        """Whether any execution of the job has not finished."""
        try:
            with gcp_errors(f"list the executions of the Cloud Run job {_job_id(job)}"):
                pages = connection.run("executions").list_executions(
                    request=_list_executions(job.name),
                    retry=read_retry(),
                    timeout=CALL_TIMEOUT,
                )
                return any(not execution_state.is_finished(e) for e in pages)
        except GcpNotFound:
            return False

    # ------------------------------------------------------------------ helpers

    def _resolve(self, infrastructure_id: str) -> _Known | None:
        """What we know about the id, with its execution looked up if it is not known yet."""
        ref = parse_infrastructure_id(infrastructure_id)
        if ref is None:
            return None
        with self._lock:
            known = self._known.get(infrastructure_id)
        if known is None:
            # Never submitted or remembered here: application-default credentials.
            known = _Known(self._connections.get(None), ref)
        if known.execution is None:
            found = self._find_execution(known.connection, ref)
            if found is None:
                return known
            known = replace(known, execution=found)
            self._remember(infrastructure_id, known)
        return known

    def _remember(self, infrastructure_id: str, known: _Known) -> None:
        with self._lock:
            self._known[infrastructure_id] = known
            self._known.move_to_end(infrastructure_id)
            while len(self._known) > MAX_REMEMBERED:
                self._known.popitem(last=False)

    def _note_job(self, job_name: str) -> None:
        with self._lock:
            self._jobs[job_name] = None
            self._jobs.move_to_end(job_name)
            while len(self._jobs) > MAX_REMEMBERED:
                self._jobs.popitem(last=False)

    def _forget_job(self, job_name: str) -> None:
        job_id = job_name.rsplit("/", 1)[-1]
        with self._lock:
            # By id: Google may spell the project of a name as its number.
            for name in [n for n in self._jobs if n.rsplit("/", 1)[-1] == job_id]:
                del self._jobs[name]


def _list_executions(job_name: str, page_size: int = LIST_PAGE_SIZE) -> Any:
    from google.cloud import run_v2

    return run_v2.ListExecutionsRequest(parent=job_name, page_size=page_size)


def _list_jobs(location: str) -> Any:
    from google.cloud import run_v2

    return run_v2.ListJobsRequest(parent=location, page_size=LIST_PAGE_SIZE)


def _execution_name(operation: Any) -> str:
    try:
        metadata = operation.metadata
    except Exception:  # a metadata type the library cannot unpack: look it up instead
        return ""
    return str(getattr(metadata, "name", "") or "")


def _tag(execution: Any) -> str | None:
    """The infrastructure id the execution was started for (its env override), if any."""
    for container in execution.template.containers:
        for variable in container.env:
            if variable.name == INFRASTRUCTURE_ID_ENV:
                return str(variable.value)
    return None


def _job_id(job: Any) -> str:
    return str(job.name).rsplit("/", 1)[-1]


def _in_family(job: Any, family: dict[str, Any]) -> bool:
    return all(job.labels.get(key) == value for key, value in family.items())


def _last_used(job: Any) -> float:
    """When the job last started an execution (or was made): the newest is current."""
    latest = job.latest_created_execution if "latest_created_execution" in job else None
    if latest is not None and "create_time" in latest:
        return float(latest.create_time.timestamp())
    return float(job.create_time.timestamp()) if "create_time" in job else 0.0


def _line(payload: Any) -> str:
    if isinstance(payload, dict):
        import json

        message = payload.get("message")
        return str(message) if message is not None else json.dumps(payload, sort_keys=True)
    return str(payload if payload is not None else "").rstrip("\n")
