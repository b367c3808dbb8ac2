"""Cloud Run v2 on the wire: requests parsed into run_v2 messages, answers as Google's JSON."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from google.api import launch_stage_pb2  # type: ignore[import-untyped]
from google.cloud import run_v2

from tests.emulators.gcp.errors import ApiError
from tests.emulators.gcp.operations import Operation, OperationState
from tests.emulators.gcp.resourcemanager.models import Project
from tests.emulators.gcp.rest import Request
from tests.emulators.gcp.run.models import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    Execution,
    Job,
    TaskRun,
)
from tests.emulators.gcp.state import GcpState
from tests.emulators.gcp.wire import message_json, packed, page, parse_message, to_datetime

__all__ = ["RunResponses"]

SERVICE = "run.googleapis.com"
_JOB_TYPE = "google.cloud.run.v2.Job"
_EXECUTION_TYPE = "google.cloud.run.v2.Execution"


class RunResponses:
    def __init__(self, state: GcpState) -> None:
        self.state = state
        self.backend = state.run

    # ------------------------------------------------------------------ jobs

    def create_job(self, request: Request) -> dict[str, Any]:
        params = request.params
        job_id = request.arg("jobId")
        name = f"projects/{params['project']}/locations/{params['location']}/jobs/{job_id}"
        project = self._project(request, "run.jobs.create", name)
        spec = parse_message(run_v2.Job, request.body)
        self._check_act_as(request.principal, project, spec)
        job = self.backend.create_job(
            project.project_id,
            params["location"],
            job_id,
            spec,
            request.principal,
            validate_only=request.arg("validateOnly") == "true",
        )
        return self._job_operation(job)

    def get_job(self, request: Request) -> dict[str, Any]:
        job = self._job(request, "run.jobs.get")
        return self.job_json(job)

    def list_jobs(self, request: Request) -> dict[str, Any]:
        params = request.params
        parent = f"projects/{params['project']}/locations/{params['location']}"
        project = self._project(request, "run.jobs.list", parent)
        jobs = self.backend.list_jobs(project.project_id, params["location"])
        chunk, token = page(jobs, request.arg("pageSize"), request.arg("pageToken"))
        body: dict[str, Any] = {"jobs": [self.job_json(j) for j in chunk]}
        if token:
            body["nextPageToken"] = token
        return body

    def update_job(self, request: Request) -> dict[str, Any]:
        params = request.params
        name = f"projects/{params['project']}/locations/{params['location']}/jobs/{params['job']}"
        spec = parse_message(run_v2.Job, request.body)
        existing = self.backend.jobs.get(self._canonical(name))
        if existing is None and request.arg("allowMissing") == "true":
            project = self._project(request, "run.jobs.create", name)
            self._check_act_as(request.principal, project, spec)
            job = self.backend.create_job(
                project.project_id, params["location"], params["job"], spec, request.principal
            )
            return self._job_operation(job)
        project = self._project(request, "run.jobs.update", name)
        job = self.backend.get_job(self._canonical(name))
        self._check_act_as(request.principal, project, spec)
        if request.arg("validateOnly") != "true":
            self.backend.update_job(job, spec, request.principal)
        return self._job_operation(job)

    def delete_job(self, request: Request) -> dict[str, Any]:
        job = self._job(request, "run.jobs.delete")
        body = self.job_json(job)
        self.backend.delete_job(job)
        self.state.operations.notify()
        operation = self.state.operations.finished(
            _prefix(job.project_id, job.location),
            job.project_id,
            metadata=packed(_JOB_TYPE, body),
            response=packed(_JOB_TYPE, body),
        )
        return self.state.operations.read(operation)

    def run_job(self, request: Request) -> dict[str, Any]:
        body = request.json()
        run_request = parse_message(run_v2.RunJobRequest, body)
        overrides = run_request.overrides if "overrides" in body else None
        job = self._job(request, "run.jobs.run")
        if overrides is not None and run_v2.RunJobRequest.Overrides.serialize(overrides):
            self._project(request, "run.jobs.runWithOverrides", job.name)
        if run_request.etag and run_request.etag != job.etag:
            raise ApiError("ABORTED", "The etag does not match the current job's etag.")
        if run_request.validate_only:
            raise ApiError("UNIMPLEMENTED", "validateOnly runs are not emulated.")
        execution = self.backend.run_job(job, overrides, request.principal)
        operation = self.state.operations.start(
            _prefix(job.project_id, job.location),
            job.project_id,
            lambda: self._execution_outcome(execution),
        )
        return self.state.operations.read(operation)

    # ------------------------------------------------------------------ executions

    def get_execution(self, request: Request) -> dict[str, Any]:
        return self.execution_json(self._execution(request, "run.executions.get"))

    def list_executions(self, request: Request) -> dict[str, Any]:
        job = self._job(request, "run.executions.list")
        executions = self.backend.executions_of(job)
        chunk, token = page(executions, request.arg("pageSize"), request.arg("pageToken"))
        body: dict[str, Any] = {"executions": [self.execution_json(e) for e in chunk]}
        if token:
            body["nextPageToken"] = token
        return body

    def cancel_execution(self, request: Request) -> dict[str, Any]:
        execution = self._execution(request, "run.executions.cancel")
        self.backend.cancel_execution(execution)
        operation = self.state.operations.start(
            _prefix(execution.project_id, execution.location),
            execution.project_id,
            lambda: self._cancel_outcome(execution),
        )
        return self.state.operations.read(operation)

    def delete_execution(self, request: Request) -> dict[str, Any]:
        execution = self._execution(request, "run.executions.delete")
        self.backend.delete_execution(execution)
        body = packed(_EXECUTION_TYPE, self.execution_json(execution))
        operation = self.state.operations.finished(
            _prefix(execution.project_id, execution.location),
            execution.project_id,
            metadata=body,
            response=body,
        )
        return self.state.operations.read(operation)

    # ------------------------------------------------------------------ tasks

    def get_task(self, request: Request) -> dict[str, Any]:
        execution = self._execution(request, "run.tasks.get")
        task_id = request.params["task"]
        for task in execution.tasks:
            if execution.task_id(task.index) == task_id:
                return message_json(self.task_message(execution, task))
        raise ApiError("NOT_FOUND", f"Resource '{task_id}' does not exist.")

    def list_tasks(self, request: Request) -> dict[str, Any]:
        execution = self._execution(request, "run.tasks.list")
        chunk, token = page(execution.tasks, request.arg("pageSize"), request.arg("pageToken"))
        body: dict[str, Any] = {
            "tasks": [message_json(self.task_message(execution, t)) for t in chunk]
        }
        if token:
            body["nextPageToken"] = token
        return body

    # ------------------------------------------------------------------ operations

    def get_operation(self, request: Request) -> dict[str, Any]:
        operation = self._operation(request)
        return self.state.operations.read(operation)

    def wait_operation(self, request: Request) -> dict[str, Any]:
        """Not under the emulator's lock: it blocks until the operation is done or timed out."""
        with self.state.lock:
            operation = self._operation(request)
        timeout = _seconds(request.json().get("timeout", "")) or 60.0
        deadline = time.monotonic() + timeout
        operations = self.state.operations
        while True:
            with self.state.lock:
                if operation.is_done(operations.pending_reads) or time.monotonic() >= deadline:
                    return operations.read(operation)
            with operations.changed:
                operations.changed.wait(min(0.5, max(0.0, deadline - time.monotonic())))

    # ------------------------------------------------------------------ rendering

    def job_json(self, job: Job) -> dict[str, Any]:
        message = run_v2.Job.deserialize(run_v2.Job.serialize(job.spec))
        # The API answers with its defaults filled in, so a spec read back is not the one sent.
        if not message.launch_stage:
            message.launch_stage = launch_stage_pb2.GA
        if not message.template.task_count:
            message.template.task_count = 1
        _fill_defaults(message.template.template)
        message.name = job.name
        message.uid = job.uid
        message.generation = job.generation
        message.create_time = to_datetime(job.create_time)
        message.update_time = to_datetime(job.update_time)
        message.creator = job.creator
        message.last_modifier = job.last_modifier
        message.observed_generation = job.generation
        message.execution_count = job.execution_count
        message.etag = job.etag
        message.terminal_condition = _condition("Ready", "CONDITION_SUCCEEDED", message.update_time)
        latest = self.backend.executions.get(job.latest_execution)
        if latest is not None:
            reference = run_v2.ExecutionReference(
                name=latest.name,
                create_time=to_datetime(latest.create_time),
                completion_status=_completion_status(latest),
            )
            if latest.completion_time is not None:
                reference.completion_time = to_datetime(latest.completion_time)
            message.latest_created_execution = reference
        return message_json(message)

    def execution_json(self, execution: Execution) -> dict[str, Any]:
        return message_json(self.execution_message(execution))

    def execution_message(self, execution: Execution) -> run_v2.Execution:
        message = run_v2.Execution(
            name=execution.name,
            uid=execution.uid,
            creator=execution.creator,
            generation=1,
            labels=execution.labels,
            create_time=to_datetime(execution.create_time),
            update_time=to_datetime(
                execution.completion_time or execution.start_time or execution.create_time
            ),
            job=execution.job_id,
            parallelism=execution.parallelism,
            task_count=execution.task_count,
            template=_fill_defaults(
                run_v2.TaskTemplate.deserialize(run_v2.TaskTemplate.serialize(execution.template))
            ),
            reconciling=not execution.finished.is_set(),
            observed_generation=1,
            running_count=execution.count("RUNNING"),
            succeeded_count=execution.count("SUCCEEDED"),
            failed_count=execution.count("FAILED"),
            cancelled_count=execution.count("CANCELLED"),
            retried_count=sum(t.retried for t in execution.tasks),
            log_uri=_log_uri(execution),
            etag=execution.etag,
            conditions=self._execution_conditions(execution),
        )
        if execution.start_time is not None:
            message.start_time = to_datetime(execution.start_time)
        if execution.completion_time is not None and execution.finished.is_set():
            message.completion_time = to_datetime(execution.completion_time)
        return message

    def task_message(self, execution: Execution, task: TaskRun) -> run_v2.Task:
        template = execution.template
        message = run_v2.Task(
            name=f"{execution.name}/tasks/{execution.task_id(task.index)}",
            uid=f"{execution.uid[:-4]}{task.index:04d}",
            generation=1,
            create_time=to_datetime(execution.create_time),
            job=execution.job_id,
            execution=execution.execution_id,
            containers=list(template.containers),
            max_retries=template.max_retries,
            timeout=template.timeout,
            service_account=template.service_account,
            reconciling=task.state in ("PENDING", "RUNNING"),
            index=task.index,
            retried=task.retried,
            log_uri=_log_uri(execution),
            etag=execution.etag,
            conditions=[_task_condition(execution, task)],
        )
        if task.start_time is not None:
            message.start_time = to_datetime(task.start_time)
        if task.completion_time is not None:
            message.completion_time = to_datetime(task.completion_time)
        if task.state in ("SUCCEEDED", "FAILED", "CANCELLED"):
            result = run_v2.TaskAttemptResult(exit_code=task.exit_code or 0)
            if task.state != "SUCCEEDED":
                code = 1 if task.state == "CANCELLED" else 2
                result.status = {"code": code, "message": task.message}
            message.last_attempt_result = result
        return message

    def _execution_conditions(self, execution: Execution) -> list[run_v2.Condition]:
        started = execution.start_time is not None
        begun = to_datetime(execution.start_time or execution.create_time)
        state = execution.state
        ended = to_datetime(execution.completion_time or execution.start_time or 0)
        if state in ("PENDING", "RUNNING"):
            completed = _condition("Completed", "CONDITION_PENDING", begun)
        elif state == "CANCELLING":
            completed = _condition(
                "Completed",
                "CONDITION_PENDING",
                begun,
                reason="CANCELLING",
                message="The execution is being cancelled.",
            )
        elif state == "CANCELLED":
            completed = _condition(
                "Completed",
                "CONDITION_FAILED",
                ended,
                reason="CANCELLED",
                message="The execution was cancelled.",
            )
        elif state == "FAILED":
            failed = execution.failed_task()
            completed = _condition(
                "Completed",
                "CONDITION_FAILED",
                ended,
                reason="NON_ZERO_EXIT_CODE" if failed is not None and failed.exit_code else None,
                message=failure_message(execution),
            )
        else:
            seconds = (execution.completion_time or 0) - (execution.start_time or 0)
            completed = _condition(
                "Completed",
                "CONDITION_SUCCEEDED",
                ended,
                message=f"Execution completed successfully in {seconds:.2f}s.",
            )
        progress = "CONDITION_SUCCEEDED" if started else "CONDITION_PENDING"
        return [
            _condition("ResourcesAvailable", progress, begun),
            _condition("Started", progress, begun),
            completed,
        ]

    def _execution_outcome(self, execution: Execution) -> OperationState:
        with self.state.lock:
            body = packed(_EXECUTION_TYPE, self.execution_json(execution))
            if not execution.finished.is_set():
                return OperationState(False, metadata=body)
            if execution.state == "FAILED":
                error = ApiError("UNKNOWN", failure_message(execution))
                return OperationState(True, metadata=body, error=error)
            return OperationState(True, metadata=body, response=body)

    def _cancel_outcome(self, execution: Execution) -> OperationState:
        with self.state.lock:
            body = packed(_EXECUTION_TYPE, self.execution_json(execution))
            return OperationState(execution.finished.is_set(), metadata=body, response=body)

    # ------------------------------------------------------------------ checks

    def _project(self, request: Request, permission: str, resource: str) -> Project:
        return self.state.project_for(
            request.principal, request.params["project"], permission, resource, service=SERVICE
        )

    def _canonical(self, name: str) -> str:
        """A name whose project is given by number, with the project id instead."""
        parts = name.split("/")
        project = self.state.projects.find(parts[1])
        if project is not None:
            parts[1] = project.project_id
        return "/".join(parts)

    def _job(self, request: Request, permission: str) -> Job:
        params = request.params
        name = f"projects/{params['project']}/locations/{params['location']}/jobs/{params['job']}"
        self._project(request, permission, name)
        return self.backend.get_job(self._canonical(name))

    def _execution(self, request: Request, permission: str) -> Execution:
        params = request.params
        name = (
            f"projects/{params['project']}/locations/{params['location']}/jobs/{params['job']}"
            f"/executions/{params['execution']}"
        )
        self._project(request, permission, name)
        return self.backend.get_execution(self._canonical(name))

    def _operation(self, request: Request) -> Operation:
        params = request.params
        name = (
            f"projects/{params['project']}/locations/{params['location']}"
            f"/operations/{params['operation']}"
        )
        self._project(request, "run.operations.get", name)
        return self.state.operations.get(self._canonical(name))

    def _check_act_as(self, principal: str, project: Project, spec: run_v2.Job) -> None:
        """Deploying as a service account needs iam.serviceAccounts.actAs on it."""
        email = spec.template.template.service_account
        if not email:
            return
        account = self.state.iam.accounts.get(email)
        extra = (account.policy,) if account is not None else ()
        allowed = account is not None and self.state.access.allowed(
            principal, "iam.serviceAccounts.actAs", account.project_id, *extra
        )
        if not allowed:
            raise ApiError(
                "PERMISSION_DENIED",
                f"Permission 'iam.serviceaccounts.actAs' denied on service account {email} "
                "(or it may not exist).",
            )

    def _job_operation(self, job: Job) -> dict[str, Any]:
        body = packed(_JOB_TYPE, self.job_json(job))
        operation = self.state.operations.finished(
            _prefix(job.project_id, job.location), job.project_id, metadata=body, response=body
        )
        return self.state.operations.read(operation)


def failure_message(execution: Execution) -> str:
    task = execution.failed_task()
    if task is None:
        return "The execution failed."
    task_id = execution.task_id(task.index)
    if task.exit_code is not None:
        return f"Task {task_id} failed with exit code {task.exit_code}: {task.message}"
    return f"Task {task_id} failed with message: {task.message}"


def _task_condition(execution: Execution, task: TaskRun) -> run_v2.Condition:
    at = to_datetime(task.completion_time or task.start_time or execution.create_time)
    if task.state == "SUCCEEDED":
        return _condition("Completed", "CONDITION_SUCCEEDED", at)
    if task.state in ("FAILED", "CANCELLED"):
        return _condition("Completed", "CONDITION_FAILED", at, message=task.message)
    return _condition("Completed", "CONDITION_PENDING", at)


def _fill_defaults(template: run_v2.TaskTemplate) -> run_v2.TaskTemplate:
    """What Cloud Run reports for fields a spec left out (the runner uses the same values)."""
    if "max_retries" not in template:
        template.max_retries = DEFAULT_MAX_RETRIES
    if "timeout" not in template:
        template.timeout = DEFAULT_TIMEOUT
    for container in template.containers:
        limits = container.resources.limits
        if "cpu" not in limits:
            limits["cpu"] = "1000m"
        if "memory" not in limits:
            limits["memory"] = "512Mi"
    return template


def _condition(
    kind: str, state: str, at: Any, *, reason: str | None = None, message: str = ""
) -> run_v2.Condition:
    """A Condition by enum names (proto-plus enums read by name keep type checkers calm)."""
    fields: dict[str, Any] = {
        "type_": kind,
        "state": getattr(run_v2.Condition.State, state),
        "last_transition_time": at,
    }
    if reason:
        fields["execution_reason"] = getattr(run_v2.Condition.ExecutionReason, reason)
    if message:
        fields["message"] = message
    return run_v2.Condition(**fields)


def _completion_status(execution: Execution) -> Any:
    name = {"PENDING": "PENDING", "CANCELLING": "RUNNING"}.get(execution.state, execution.state)
    return getattr(run_v2.ExecutionReference.CompletionStatus, f"EXECUTION_{name}")


def _log_uri(execution: Execution) -> str:
    query = (
        'resource.type="cloud_run_job"\n'
        f'resource.labels.job_name="{execution.job_id}"\n'
        f'labels."run.googleapis.com/execution_name"="{execution.execution_id}"'
    )
    return (
        "https://console.cloud.google.com/logs/viewer?project="
        f"{execution.project_id}&advancedFilter={urllib.parse.quote(query)}"
    )


def _prefix(project_id: str, location: str) -> str:
    return f"projects/{project_id}/locations/{location}"


def _seconds(duration: str) -> float:
    try:
        return float(duration.removesuffix("s")) if duration else 0.0
    except ValueError as exc:
        raise ApiError("INVALID_ARGUMENT", f"Invalid duration: {duration}") from exc
