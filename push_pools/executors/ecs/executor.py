"""Runs each flow run of an `ecs:push` pool as an ECS task. See base.Executor for the verbs.

Infrastructure id: `ecs:<region>:<cluster name>:<infrastructure name>`, e.g.
`ecs:eu-west-1:flows:pp-0b1c...-1`. Not the task ARN: the engine reports its infrastructure id
from PUSH_POOLS_INFRASTRUCTURE_ID when the flow starts (and the server stores what it reports),
so the id must be known before run_task, which is when ECS makes up the ARN. The task is found
again through its startedBy (derived from the name, see job.started_by_for); ARNs learned are
remembered per id so a status check costs one describe_tasks per 100 runs.

AWS clients need the run's credentials, which only submit() receives. What submit learns is
remembered per infrastructure id in this object; ids it never saw (after a server restart, or
runs another server submitted) use the AWS default credential chain and the region in the id,
unless the dispatcher first hands their Submission to remember().
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from push_pools.errors import InvalidInput
from push_pools.executors.base import (
    BaseExecutor,
    InfrastructureState,
    InfrastructureStatus,
    Submission,
)
from push_pools.executors.ecs import status as task_status
from push_pools.executors.ecs.aws import (
    AwsError,
    AwsInvalidRequest,
    AwsNotFound,
    AwsUnavailable,
    Connection,
    Sessions,
    Target,
    aws_errors,
)
from push_pools.executors.ecs.job import (
    AUTO_DEREGISTER_TAG,
    INFRASTRUCTURE_ID_ENV,
    MANAGED_BY_TAG,
    OVERRIDES_LIMIT,
    TAG_PREFIX,
    EcsJob,
    LogSettings,
    TaskRef,
    client_token_for,
    parse_infrastructure_id,
)

__all__ = ["EcsExecutor"]

DESCRIBE_BATCH = 100  # describe_tasks takes at most 100 tasks per call
TAIL_LINES = 20
RUN_TASK_ATTEMPTS = 3
RUN_TASK_BACKOFF_SECONDS = 1.0
STOP_REASON = "Cancelled by push-pools"
# Bounds what this object remembers when runs are never cleaned up (keep_infrastructure).
MAX_REMEMBERED = 100_000
_FAMILY_LOCKS = 64


@dataclass(frozen=True)
class _Known:
    """What we know about one infrastructure id; anything None is looked up when needed."""

    connection: Connection
    cluster: str  # name or ARN, as API calls take it
    task_arn: str | None = None
    # None: not known (not submitted here). Set, with logs None: the task has no awslogs.
    container_name: str | None = None
    logs: LogSettings | None = None
    task_definition_arn: str | None = None
    # Only task definitions push-pools registered may be deregistered, and only if asked to.
    deregister: bool | None = None


@dataclass(frozen=True)
class _LogLocation:
    group: str
    stream: str


class EcsExecutor(BaseExecutor):
    """ECS tasks started with run_task; one instance per dispatcher, shared by its threads."""

    needs_remember = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions = Sessions()
        self._connections: dict[tuple[str, str | None, str], Connection] = {}
        self._default_regions: dict[str, str | None] = {}
        self._known: OrderedDict[str, _Known] = OrderedDict()
        # Concurrent submits of one deployment must register its task definition once: a
        # fixed set of locks picked by family hash (a dict of locks would grow without end).
        self._family_locks = [threading.Lock() for _ in range(_FAMILY_LOCKS)]

    # ------------------------------------------------------------------ submit

    def submit(self, submission: Submission) -> str:
        job = EcsJob.from_configuration(submission.job_configuration)
        connection = self._connection(job)
        name = submission.infrastructure_name or f"pp-{submission.flow_run_id}"
        ref = TaskRef(region=connection.target.region, cluster=job.cluster_name, name=name)
        ecs = connection.client("ecs")
        # Adopt what an earlier attempt with this name started (a retried submit, another
        # dispatcher), never start a second copy.
        try:
            existing = self._find_task(ecs, job.cluster, ref)
        except AwsNotFound as exc:
            raise AwsNotFound(
                f"the ECS cluster '{job.cluster}' does not exist in region {ref.region} "
                f"({exc.code}); create it, or set the job variable 'cluster'",
                code=exc.code,
            ) from exc
        if existing is not None:
            self._remember(ref.infrastructure_id, _Known(connection, job.cluster, existing))
            return ref.infrastructure_id
        # Refuse what ECS would refuse before registering anything.
        environment = self._environment(job, submission, ref)
        if job.task_definition_arn is None:
            job.network_configuration()
        definition = self._task_definition(connection, job, submission)
        request = self._run_task_request(job, submission, ref, definition, environment)
        task_arn = self._run_task(connection, job, submission, ref, request, definition)
        known = _Known(
            connection,
            job.cluster,
            task_arn=task_arn,
            container_name=definition.container_name,
            logs=definition.logs,
            task_definition_arn=definition.arn,
            deregister=definition.registered and job.auto_deregister,
        )
        self._remember(ref.infrastructure_id, known)
        return ref.infrastructure_id

    def remember(self, infrastructure_id: str, submission: Submission) -> None:
        """Learn the connection of a run this object did not submit (after a restart).

        For the dispatcher: with the run's rendered Submission, status(), logs(), cancel() and
        cleanup() use the run's own credentials instead of the default chain. No AWS calls.
        """
        ref = parse_infrastructure_id(infrastructure_id)
        if ref is None or infrastructure_id in self._known:
            return
        job = EcsJob.from_configuration(submission.job_configuration)
        connection = self._connection(job, region=ref.region)
        self._remember(infrastructure_id, _Known(connection, job.cluster))

    def client(
        self, job_configuration: dict[str, Any], service: str = "ecs", *, retry: bool = True
    ) -> Any:
        """The boto3 client this executor uses for runs with this job configuration.

        For instrumentation (botocore event hooks, metrics); the executor shares it. run_task
        goes through the `retry=False` one (see aws.client_config), every other call through
        the default one.
        """
        job = EcsJob.from_configuration(job_configuration)
        return self._connection(job).client(service, retry=retry)

    @staticmethod
    def _environment(job: EcsJob, submission: Submission, ref: TaskRef) -> list[dict[str, str]]:
        """The container's per-run environment, passed as a task override.

        Per run, so the API key and run id never enter the task definition (shared by a
        deployment's runs and readable by anyone allowed ecs:DescribeTaskDefinition).
        """
        env = dict(job.env)
        env.update(submission.engine_env)  # the engine's own variables win over the job's
        env[INFRASTRUCTURE_ID_ENV] = ref.infrastructure_id
        environment = [{"name": k, "value": v} for k, v in sorted(env.items())]
        size = len(json.dumps(environment)) + len(json.dumps(job.command))
        if size > OVERRIDES_LIMIT:
            raise InvalidInput(
                f"the run's environment is {size} bytes, over ECS's limit of {OVERRIDES_LIMIT} "
                "for task overrides; move large values into the image or into `secrets`"
            )
        return environment

    def _run_task_request(
        self,
        job: EcsJob,
        submission: Submission,
        ref: TaskRef,
        definition: _Definition,
        environment: list[dict[str, str]],
    ) -> dict[str, Any]:
        container: dict[str, Any] = {"name": definition.container_name, "environment": environment}
        if not definition.registered:
            container["command"] = job.command  # someone else's definition: override its CMD
        overrides = {"containerOverrides": [container]}
        tags = [{"key": k, "value": v} for k, v in sorted(job.labels.items())]
        tags += [
            {"key": MANAGED_BY_TAG, "value": "push-pools"},
            {"key": TAG_PREFIX + "flow-run-id", "value": submission.flow_run_id},
            {"key": TAG_PREFIX + "infrastructure-name", "value": ref.name},
        ]
        if submission.pool_name:
            tags.append({"key": TAG_PREFIX + "pool", "value": submission.pool_name})
        request: dict[str, Any] = {
            "cluster": job.cluster,
            "taskDefinition": definition.arn,
            "count": 1,
            "startedBy": ref.started_by,
            "clientToken": client_token_for(ref.name),
            "overrides": overrides,
            "tags": tags,
            **job.placement(),
        }
        if definition.network_mode == "awsvpc":
            network = job.network_configuration()
            if network is None:
                raise InvalidInput(
                    "the task definition uses awsvpc networking: set the job variable "
                    "'subnets' (or 'network_configuration')"
                )
            request["networkConfiguration"] = network
        return request

    def _run_task(
        self,
        connection: Connection,
        job: EcsJob,
        submission: Submission,
        ref: TaskRef,
        request: dict[str, Any],
        definition: _Definition,
    ) -> str:
        """run_task without blind retries: after a failure, see whether the task started."""
        once = connection.client("ecs", retry=False)
        ecs = connection.client("ecs")
        for attempt in range(1, RUN_TASK_ATTEMPTS + 1):
            try:
                with aws_errors(f"start the ECS task in cluster '{job.cluster}'"):
                    response = once.run_task(**request)
            except AwsUnavailable:
                found = self._find_task(ecs, job.cluster, ref)
                if found is not None:
                    return found
                if attempt == RUN_TASK_ATTEMPTS:
                    raise
                time.sleep(RUN_TASK_BACKOFF_SECONDS * attempt)
                continue
            except AwsInvalidRequest:
                # The revision may have been deregistered since we looked it up (another
                # run's cleanup with auto_deregister_task_definition): look again, once.
                if attempt > 1 or not definition.registered:
                    raise
                fresh = self._task_definition(connection, job, submission)
                if fresh.arn == definition.arn:
                    raise
                request = {**request, "taskDefinition": fresh.arn}
                continue
            tasks = response.get("tasks") or []
            if tasks:
                return str(tasks[0]["taskArn"])
            failures = response.get("failures") or []
            reasons = "; ".join(
                f"{f.get('reason', 'unknown')}" + (f" ({f['detail']})" if f.get("detail") else "")
                for f in failures
            )
            if attempt == RUN_TASK_ATTEMPTS:
                raise AwsError(
                    f"ECS could not place the task in cluster '{job.cluster}': "
                    f"{reasons or 'no task and no reason returned'}; check the cluster's "
                    "capacity (Fargate capacity or container instances) and try again"
                )
            time.sleep(RUN_TASK_BACKOFF_SECONDS * attempt)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    # ------------------------------------------------------------------ task definitions

    def _task_definition(
        self, connection: Connection, job: EcsJob, submission: Submission
    ) -> _Definition:
        """The task definition to run: the user's, or ours, registered only when missing."""
        ecs = connection.client("ecs")
        region = connection.target.region
        if job.task_definition_arn:
            with aws_errors(f"read the task definition {job.task_definition_arn}"):
                described = ecs.describe_task_definition(taskDefinition=job.task_definition_arn)
            definition = described["taskDefinition"]
            containers = definition.get("containerDefinitions") or []
            names = [str(c.get("name")) for c in containers]
            if job.container_name not in names:
                # Never another container instead: a sidecar would run the flow's command, with
                # the flow's environment (its API key included).
                raise InvalidInput(
                    f"job variable 'container_name' is '{job.container_name}', but the task "
                    f"definition {definition['taskDefinitionArn']} has no container of that "
                    f"name; its containers are {', '.join(repr(n) for n in names) or 'none'}. "
                    "Set container_name to the one that should run the flow"
                )
            return _Definition(
                arn=str(definition["taskDefinitionArn"]),
                container_name=job.container_name,
                network_mode=str(definition.get("networkMode") or "bridge"),
                registered=False,
                logs=_log_settings(containers[names.index(job.container_name)]),
            )
        request = job.task_definition(
            region=region, pool_name=submission.pool_name, deployment_id=submission.deployment_id
        )
        family = request["family"]
        definition_of = _Definition(
            arn="",
            container_name=job.container_name,
            network_mode=request["networkMode"],
            registered=True,
            logs=job.logs,
        )
        with self._family_locks[zlib.crc32(family.encode()) % _FAMILY_LOCKS]:
            arn = self._active_revision(ecs, family)
            if arn is None:
                with aws_errors(f"register the ECS task definition {family}"):
                    registered = ecs.register_task_definition(**request)
                arn = str(registered["taskDefinition"]["taskDefinitionArn"])
        return replace(definition_of, arn=arn)

    def _active_revision(self, ecs: Any, family: str) -> str | None:
        # list_task_definitions rather than describe_task_definition(family): it answers "none"
        # with an empty list instead of a generic ClientException, and never returns an
        # INACTIVE revision (moto's describe does).
        with aws_errors(f"look up the ECS task definition family {family}"):
            found = ecs.list_task_definitions(
                familyPrefix=family, status="ACTIVE", sort="DESC", maxResults=1
            )
        arns = found.get("taskDefinitionArns") or []
        return str(arns[0]) if arns else None

    # ------------------------------------------------------------------ status

    def status(self, infrastructure_ids: list[str]) -> dict[str, InfrastructureStatus]:
        results: dict[str, InfrastructureStatus] = {}
        groups: dict[tuple[int, str], list[tuple[str, _Known, str]]] = {}
        for infrastructure_id in infrastructure_ids:
            known = self._resolve(infrastructure_id)
            if known is None or known.task_arn is None:
                results[infrastructure_id] = InfrastructureStatus(InfrastructureState.MISSING)
                continue
            key = (id(known.connection), known.cluster)
            groups.setdefault(key, []).append((infrastructure_id, known, known.task_arn))
        definitions: dict[str, dict[str, Any]] = {}  # per call only: never a cache
        for items in groups.values():
            connection, cluster = items[0][1].connection, items[0][1].cluster
            ecs = connection.client("ecs")
            for start in range(0, len(items), DESCRIBE_BATCH):
                batch = items[start : start + DESCRIBE_BATCH]
                try:
                    with aws_errors(f"check ECS tasks in cluster '{cluster}'"):
                        described = ecs.describe_tasks(
                            cluster=cluster, tasks=[arn for _, _, arn in batch]
                        )
                except AwsNotFound:
                    described = {}  # the cluster is gone, and its tasks with it
                tasks = {t.get("taskArn"): t for t in described.get("tasks") or []}
                for infrastructure_id, known, arn in batch:
                    task = tasks.get(arn)
                    if task is None:  # ECS forgets stopped tasks after about an hour
                        results[infrastructure_id] = InfrastructureStatus(
                            InfrastructureState.MISSING
                        )
                        continue
                    results[infrastructure_id] = self._task_status(known, task, definitions)
        return results

    def _task_status(
        self, known: _Known, task: dict[str, Any], definitions: dict[str, dict[str, Any]]
    ) -> InfrastructureStatus:
        result = task_status.task_status(task, known.container_name)
        if result.state != InfrastructureState.EXITED:
            return result
        try:
            location = self._log_location(known, task, definitions)
            lines = self._tail(known.connection, location, TAIL_LINES) if location else []
        except AwsError:
            lines = []  # the outcome matters more than its output: report it without
        return replace(result, last_lines=lines)

    # ------------------------------------------------------------------ logs

    def logs(self, infrastructure_id: str, limit: int = 50) -> list[str]:
        """The task's last output lines from CloudWatch Logs ([] without awslogs)."""
        known = self._resolve(infrastructure_id)
        if known is None or known.task_arn is None:
            return []
        task: dict[str, Any] = {"taskArn": known.task_arn}
        if known.container_name is None:  # not submitted here: the task says more
            with aws_errors("find the ECS task's log stream"):
                described = known.connection.client("ecs").describe_tasks(
                    cluster=known.cluster, tasks=[known.task_arn]
                )
            if not described.get("tasks"):
                return []
            task = described["tasks"][0]
        location = self._log_location(known, task, {})
        return self._tail(known.connection, location, limit) if location else []

    def _log_location(
        self, known: _Known, task: dict[str, Any], definitions: dict[str, dict[str, Any]]
    ) -> _LogLocation | None:
        task_id = str(task["taskArn"]).rsplit("/", 1)[-1]
        logs, container_name = known.logs, known.container_name
        if container_name is None:
            # Not submitted here (or forgotten): the task definition says where logs go.
            arn = task.get("taskDefinitionArn")
            if not arn:
                return None
            if arn not in definitions:
                with aws_errors(f"read the task definition {arn}"):
                    definitions[arn] = known.connection.client("ecs").describe_task_definition(
                        taskDefinition=arn
                    )["taskDefinition"]
            containers = definitions[arn].get("containerDefinitions") or []
            chosen = task_status.flow_container(
                {"containers": containers, "overrides": task.get("overrides")}, container_name
            )
            if chosen is None:
                return None
            container_name, logs = str(chosen.get("name")), _log_settings(chosen)
        if logs is None:
            return None
        return _LogLocation(logs.group, f"{logs.stream_prefix}/{container_name}/{task_id}")

    def _tail(self, connection: Connection, location: _LogLocation, limit: int) -> list[str]:
        try:
            with aws_errors(f"read the log stream {location.stream}"):
                events = connection.client("logs").get_log_events(
                    logGroupName=location.group,
                    logStreamName=location.stream,
                    limit=max(1, min(limit, 10_000)),
                    startFromHead=False,
                )
        except AwsNotFound:
            return []  # the task never started, or wrote nothing
        return [str(e.get("message", "")).rstrip("\n") for e in events.get("events") or []]

    # ------------------------------------------------------------------ cancel and cleanup

    def cancel(self, infrastructure_id: str, grace_seconds: float = 10.0) -> None:
        """stop_task. ECS sends SIGTERM and, after the container's stopTimeout (30 s unless
        the task definition says otherwise), SIGKILL; `grace_seconds` cannot change that."""
        known = self._resolve(infrastructure_id)
        if known is None or known.task_arn is None:
            return
        with aws_errors(f"stop the ECS task {known.task_arn}"):
            known.connection.client("ecs").stop_task(
                cluster=known.cluster, task=known.task_arn, reason=STOP_REASON
            )

    def cleanup(self, infrastructure_id: str) -> None:
        """Forget the run; deregister its task definition if auto_deregister_task_definition."""
        known = self._resolve(infrastructure_id)
        with self._lock:
            self._known.pop(infrastructure_id, None)
        if known is None:
            return
        definition_arn, deregister = known.task_definition_arn, known.deregister
        ecs = known.connection.client("ecs")
        if deregister is None and known.task_arn is not None:
            # Submitted before a restart: the task definition's tags carry the policy.
            with aws_errors("find the ECS task's task definition"):
                described = ecs.describe_tasks(cluster=known.cluster, tasks=[known.task_arn])
            tasks = described.get("tasks") or []
            definition_arn = tasks[0].get("taskDefinitionArn") if tasks else None
            if definition_arn:
                with aws_errors(f"read the task definition {definition_arn}"):
                    tags = (
                        ecs.describe_task_definition(
                            taskDefinition=definition_arn, include=["TAGS"]
                        ).get("tags")
                        or []
                    )
                values = {t.get("key"): t.get("value") for t in tags}
                deregister = (
                    values.get(MANAGED_BY_TAG) == "push-pools"
                    and values.get(AUTO_DEREGISTER_TAG) == "true"
                )
        if deregister and definition_arn:
            try:
                with aws_errors(f"deregister the task definition {definition_arn}"):
                    ecs.deregister_task_definition(taskDefinition=definition_arn)
            except AwsInvalidRequest:
                pass  # already deregistered by another run's cleanup

    # ------------------------------------------------------------------ helpers

    def _connection(self, job: EcsJob, region: str | None = None) -> Connection:
        credentials = job.credentials
        region = region or job.region or (credentials.region if credentials else None)
        if region is None:
            fingerprint = credentials.fingerprint() if credentials else "-"
            if fingerprint not in self._default_regions:
                self._default_regions[fingerprint] = self._sessions.default_region(credentials)
            region = self._default_regions[fingerprint]
        if not region:
            raise InvalidInput(
                "no AWS region for the ECS task: set the job variable 'region' or region_name "
                "in the aws-credentials block"
            )
        return self._connection_to(
            Target(region=region, endpoint_url=job.endpoint_url, credentials=credentials)
        )

    def _connection_to(self, target: Target) -> Connection:
        with self._lock:
            connection = self._connections.get(target.key)
            if connection is None:
                connection = self._connections[target.key] = Connection(target, self._sessions)
        return connection

    def _remember(self, infrastructure_id: str, known: _Known) -> None:
        with self._lock:
            self._known[infrastructure_id] = known
            self._known.move_to_end(infrastructure_id)
            while len(self._known) > MAX_REMEMBERED:
                self._known.popitem(last=False)

    def _resolve(self, infrastructure_id: str) -> _Known | None:
        """What we know about the id, with its task ARN looked up if it is not known yet."""
        ref = parse_infrastructure_id(infrastructure_id)
        if ref is None:
            return None
        with self._lock:
            known = self._known.get(infrastructure_id)
        if known is None:
            # Never submitted or remembered here: the AWS default chain, in the id's region.
            target = Target(region=ref.region, endpoint_url=None, credentials=None)
            known = _Known(self._connection_to(target), ref.cluster)
        if known.task_arn is None:
            try:
                arn = self._find_task(known.connection.client("ecs"), known.cluster, ref)
            except AwsNotFound:
                return known  # the cluster is gone, and its tasks with it
            if arn is None:
                return known
            known = replace(known, task_arn=arn)
            self._remember(infrastructure_id, known)
        return known

    def _find_task(self, ecs: Any, cluster: str, ref: TaskRef) -> str | None:
        """The task started under this name, running or stopped; None if there is none."""
        # Two calls: ECS lists only desiredStatus RUNNING unless asked for STOPPED.
        for desired in ("RUNNING", "STOPPED"):
            with aws_errors(f"look for the ECS task {ref.name} in cluster '{cluster}'"):
                listed = ecs.list_tasks(
                    cluster=cluster, startedBy=ref.started_by, desiredStatus=desired
                )
            arns = sorted(listed.get("taskArns") or [])
            if arns:
                return str(arns[0])
        return None


@dataclass(frozen=True)
class _Definition:
    arn: str
    container_name: str
    network_mode: str
    registered: bool  # by push-pools (else the user's task_definition_arn)
    logs: LogSettings | None


def _log_settings(container: dict[str, Any]) -> LogSettings | None:
    config = container.get("logConfiguration") or {}
    options = config.get("options") or {}
    # Without a stream prefix ECS names the stream after the container id: nothing to find.
    if (
        config.get("logDriver") != "awslogs"
        or not options.get("awslogs-group")
        or not options.get("awslogs-stream-prefix")
    ):
        return None
    return LogSettings(
        group=str(options["awslogs-group"]),
        stream_prefix=str(options.get("awslogs-stream-prefix") or ""),
        create_group=options.get("awslogs-create-group") == "true",
    )
