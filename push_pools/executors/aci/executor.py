"""Runs each flow run of an `azure-container-instance:push` pool as an ACI container group. See
base.Executor for the verbs.

Infrastructure id: `aci:<subscription>:<resource group>:<group name>`; the group's name derives
from the run's infrastructure name (`pp-<run id>-<attempt>`), so a retried submit finds the
group an earlier attempt created (and the SDK's own retry of the PUT sends the same group
again, which ACI takes as the same group). The id also reaches the container as
PUSH_POOLS_INFRASTRUCTURE_ID, which the engine reports back.

Azure clients need the run's credentials, which only submit() receives; what it learns is kept
per infrastructure id. Ids it never saw use the server's own identity (azure-identity's chain)
unless the dispatcher first hands their Submission to remember().
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from push_pools.errors import InvalidInput
from push_pools.executors.aci import status as group_state
from push_pools.executors.aci.azure import (
    NAMESPACE,
    REGISTRATION_POLL_SECONDS,
    REGISTRATION_WAIT_SECONDS,
    AzureAccessDenied,
    AzureError,
    AzureNotFound,
    AzureUnavailable,
    Connection,
    Connections,
    azure_errors,
    require_sdk,
)
from push_pools.executors.aci.job import (
    CONTAINER_NAME,
    AciJob,
    GroupRef,
    parse_infrastructure_id,
)
from push_pools.executors.base import (
    BaseExecutor,
    InfrastructureState,
    InfrastructureStatus,
    Submission,
)
from push_pools.executors.lookups import ParallelLookups

__all__ = ["AciExecutor"]

TAIL_LINES = 20
# ACI has no batch read of instance views (lists leave them out): status() reads this many
# groups at a time.
STATUS_THREADS = 8
# Bounds what this object remembers when runs are never cleaned up (keep_container_group).
MAX_REMEMBERED = 100_000
_GROUP_GONE = ("ResourceNotFound", "ContainerGroupNotFound", "NotFound")


@dataclass(frozen=True)
class _Known:
    """What we know about one infrastructure id."""

    connection: Connection
    ref: GroupRef
    # time.monotonic() of the create, when this object made it: the start deadline counts
    # from there.
    created_at: float | None = None
    start_timeout: float | None = None


class AciExecutor(BaseExecutor):
    """Container groups created with begin_create_or_update; one instance per dispatcher,
    thread-safe."""

    needs_remember = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections = Connections()
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._locations: dict[tuple[int, str, str], str] = {}
        self._registered: set[tuple[int, str]] = set()
        self._lookups = ParallelLookups("aci-status", STATUS_THREADS)
        self._setup_lock = threading.Lock()

    # ------------------------------------------------------------------ submit

    def submit(self, submission: Submission) -> str:
        require_sdk()
        job = AciJob.from_configuration(submission.job_configuration)
        connection = self._connections.get(job.credentials)
        subscription = job.subscription_id or connection.default_subscription()
        if not subscription:
            raise InvalidInput(
                "no Azure subscription for the container group: set the job variable "
                "'subscription_id' (or subscription_id in the azure-credentials block)"
            )
        if not job.resource_group:
            raise InvalidInput(
                "no resource group for the container group: set the job variable "
                "'resource_group_name'"
            )
        name = job.group_name(submission.infrastructure_name or f"pp-{submission.flow_run_id}")
        ref = GroupRef(subscription, job.resource_group, name)
        infrastructure_id = ref.infrastructure_id
        with self._lock:
            known = self._known.get(infrastructure_id)
        if known is not None and known.created_at is not None:
            return infrastructure_id  # created by an earlier attempt in this process
        self._ensure_provider(connection, subscription)
        # Adopt what an earlier attempt under this name created (a retried submit, another
        # server): a second PUT of a finished group would run it again.
        if self._get(connection, ref) is None:
            location = job.location or self._location(connection, ref)
            body = job.group_body(
                location=location,
                engine_env=submission.engine_env,
                infrastructure_id=infrastructure_id,
                pool_name=submission.pool_name,
                deployment_id=submission.deployment_id,
                flow_run_id=submission.flow_run_id,
            )
            with azure_errors(f"create the container group {name} in {ref.resource_group}"):
                # polling=False: the operation lasts until the image is pulled; status() watches.
                connection.aci(subscription).container_groups.begin_create_or_update(
                    ref.resource_group, name, body, polling=False
                )
        self._remember(
            infrastructure_id,
            _Known(connection, ref, created_at=time.monotonic(), start_timeout=job.start_timeout),
        )
        return infrastructure_id

    def remember(self, infrastructure_id: str, submission: Submission) -> None:
        """Learn the credentials of a run this object did not submit (after a restart). No calls."""
        ref = parse_infrastructure_id(infrastructure_id)
        with self._lock:
            if ref is None or infrastructure_id in self._known:
                return
        job = AciJob.from_configuration(submission.job_configuration)
        known = _Known(self._connections.get(job.credentials), ref, start_timeout=job.start_timeout)
        self._remember(infrastructure_id, known)

    def _ensure_provider(self, connection: Connection, subscription: str) -> None:
        """Register Microsoft.ContainerInstance in the subscription if it is not, waiting a
        bounded time: azure-mgmt-core would otherwise do it on the first 409, sleeping 10 s per
        poll for as long as it takes."""
        key = (id(connection), subscription.lower())
        if key in self._registered:
            return
        # One thread looks; the dispatcher's others wait for its answer instead of asking too.
        with self._setup_lock:
            if key not in self._registered:
                self._register(connection, subscription)
                with self._lock:
                    self._registered.add(key)

    def _register(self, connection: Connection, subscription: str) -> None:
        providers = connection.resources(subscription).providers
        try:
            with azure_errors(f"read the {NAMESPACE} provider of subscription {subscription}"):
                state = providers.get(NAMESPACE).registration_state
        except AzureAccessDenied:
            return  # may not even look: the create says what is missing, if anything
        if state != "Registered":
            try:
                with azure_errors(f"register {NAMESPACE} in subscription {subscription}"):
                    providers.register(NAMESPACE)
            except AzureAccessDenied as exc:
                raise AzureAccessDenied(
                    f"subscription {subscription} has not registered {NAMESPACE}, and the "
                    "Azure credentials may not register it; run once: az provider register "
                    f"--namespace {NAMESPACE} --subscription {subscription}",
                    code=exc.code,
                ) from None
            deadline = time.monotonic() + REGISTRATION_WAIT_SECONDS
            while state != "Registered":
                if time.monotonic() > deadline:
                    raise AzureUnavailable(
                        f"{NAMESPACE} is still registering in subscription {subscription}; "
                        "retrying later"
                    )
                time.sleep(REGISTRATION_POLL_SECONDS)
                with azure_errors(f"read the {NAMESPACE} provider of subscription {subscription}"):
                    state = providers.get(NAMESPACE).registration_state

    def _location(self, connection: Connection, ref: GroupRef) -> str:
        """The resource group's location, the default of the job variable 'location'."""
        key = (id(connection), ref.subscription_id.lower(), ref.resource_group.lower())
        with self._lock:
            found = self._locations.get(key)
        if found is None:
            with azure_errors(f"read the resource group {ref.resource_group}"):
                found = str(
                    connection.resources(ref.subscription_id)
                    .resource_groups.get(ref.resource_group)
                    .location
                )
            with self._lock:
                self._locations[key] = found
        return found

    # ------------------------------------------------------------------ status

    def status(self, infrastructure_ids: list[str]) -> dict[str, InfrastructureStatus]:
        return self._lookups.map(self._status_of_id, infrastructure_ids)

    def close(self) -> None:
        self._lookups.close()
        self._connections.close()

    def _status_of_id(self, infrastructure_id: str) -> InfrastructureStatus:
        known = self._resolve(infrastructure_id)
        if known is None:
            return InfrastructureStatus(InfrastructureState.MISSING)
        group = self._get(known.connection, known.ref)
        if group is None:
            return InfrastructureStatus(InfrastructureState.MISSING)
        pending_for = None if known.created_at is None else time.monotonic() - known.created_at
        result = group_state.group_status(
            group, start_timeout=known.start_timeout, pending_for=pending_for
        )
        if result.reason == "start_timeout":
            # Never let it start after its run was crashed; cleanup (or cancel) deletes it.
            # Best effort: the outcome is reported even if the stop fails.
            try:
                self._stop(known)
            except AzureError:
                pass
        if result.state != InfrastructureState.EXITED or result.exit_code == 0:
            return result
        # The outcome matters more than its details: report it without them if they fail.
        try:
            lines = self._tail(known, TAIL_LINES)
        except AzureError:
            lines = []
        return replace(result, last_lines=lines)

    # ------------------------------------------------------------------ logs

    def logs(self, infrastructure_id: str, limit: int = 50) -> list[str]:
        """The container's last output lines ([] when the group is gone)."""
        known = self._resolve(infrastructure_id)
        if known is None:
            return []
        return self._tail(known, limit)

    def _tail(self, known: _Known, limit: int) -> list[str]:
        ref = known.ref
        try:
            with azure_errors(f"read the output of the container group {ref.name}"):
                logs = known.connection.aci(ref.subscription_id).containers.list_logs(
                    ref.resource_group, ref.name, CONTAINER_NAME, tail=max(1, min(limit, 1000))
                )
        except AzureNotFound:
            return []
        return str(logs.content or "").splitlines()

    # ------------------------------------------------------------------ cancel and cleanup

    def cancel(self, infrastructure_id: str, grace_seconds: float = 10.0) -> None:
        """Stop the group and delete it, without waiting for either. ACI stops a container
        with SIGTERM and kills it after its own grace period; `grace_seconds` cannot change it."""
        known = self._resolve(infrastructure_id)
        if known is None:
            return
        self._stop(known)
        self._delete(known)

    def cleanup(self, infrastructure_id: str) -> None:
        """Delete the finished group. The dispatcher calls this only without
        keep_container_group."""
        known = self._resolve(infrastructure_id)
        if known is None:
            return
        self._delete(known)
        with self._lock:
            self._known.pop(infrastructure_id, None)

    def _stop(self, known: _Known) -> None:
        ref = known.ref
        try:
            with azure_errors(f"stop the container group {ref.name}"):
                known.connection.aci(ref.subscription_id).container_groups.stop(
                    ref.resource_group, ref.name
                )
        except AzureNotFound:
            pass  # gone already

    def _delete(self, known: _Known) -> None:
        ref = known.ref
        try:
            with azure_errors(f"delete the container group {ref.name}"):
                known.connection.aci(ref.subscription_id).container_groups.begin_delete(
                    ref.resource_group, ref.name, polling=False
                )
        except AzureNotFound:
            pass  # another server (or an earlier call) deleted it

    # ------------------------------------------------------------------ helpers

    def _get(self, connection: Connection, ref: GroupRef) -> Any | None:
        """The container group; None when it does not exist (its resource group must)."""
        try:
            with azure_errors(f"read the container group {ref.name} in {ref.resource_group}"):
                return connection.aci(ref.subscription_id).container_groups.get(
                    ref.resource_group, ref.name
                )
        except AzureNotFound as exc:
            if exc.code in _GROUP_GONE:
                return None
            raise

    def _resolve(self, infrastructure_id: str) -> _Known | None:
        ref = parse_infrastructure_id(infrastructure_id)
        if ref is None:
            return None
        with self._lock:
            known = self._known.get(infrastructure_id)
        # Never submitted or remembered here: the server's own identity.
        return known or _Known(self._connections.get(None), ref)

    def _remember(self, infrastructure_id: str, known: _Known) -> None:
        with self._lock:
            self._known[infrastructure_id] = known
            self._known.move_to_end(infrastructure_id)
            while len(self._known) > MAX_REMEMBERED:
                self._known.popitem(last=False)
