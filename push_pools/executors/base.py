"""The Executor interface: what every infrastructure (process, managed, ECS, Cloud Run, ACI) does.

Each verb is documented once here; implementations point back to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from push_pools.errors import PushPoolsError


class InfrastructureUnavailable(PushPoolsError):
    """The infrastructure itself cannot be reached (a Docker engine that does not answer): no
    fault of the run, so a worker gives it back to the pool and waits instead of crashing it."""


class InfrastructureState(StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    EXITED = "EXITED"
    MISSING = "MISSING"


@dataclass(frozen=True)
class Submission:
    """What an executor needs to start one flow run."""

    flow_run_id: str
    flow_run_name: str
    # The pool's base job template rendered with the run's job variables (and, for push pools,
    # with credentials blocks resolved).
    job_configuration: dict[str, Any]
    # Variables the engine needs (run id, API url, API key); merged over the job's own env.
    engine_env: dict[str, str]
    # Deterministic name for the infrastructure: `pp-<run id>-<attempt>`. A retried submit with
    # the same name must adopt what an earlier attempt started, never start a second copy.
    infrastructure_name: str = ""
    pool_name: str = ""
    deployment_id: str | None = None


@dataclass(frozen=True)
class Retirement:
    """A deployment that will not run on its pool again (deleted, or its pool deleted)."""

    deployment_id: str
    # The pool's name when the deployment's runs were submitted (Submission.pool_name), which
    # is how executors labelled what they made for it.
    pool_name: str
    # The pool's base job template rendered with the deployment's job variables (no run's),
    # credentials blocks resolved: where its infrastructure lives and how to reach it.
    job_configuration: dict[str, Any]


@dataclass(frozen=True)
class InfrastructureStatus:
    state: InfrastructureState
    exit_code: int | None = None
    # A short machine word ("exited", "timeout", "memory", "cancelled", ...) and a sentence.
    reason: str | None = None
    message: str | None = None
    last_lines: list[str] = field(default_factory=list)


class Executor(Protocol):
    """Every call the dispatcher (push pools) and the worker (polled pools) make."""

    def prepare(self) -> None:
        """Get ready before the first submit (the worker calls it once at start)."""

    def submit(self, submission: Submission) -> str:
        """Start the run's infrastructure and return its id (pid, task ARN, ...).

        The infrastructure name derives from the run id, so a retried submit adopts what an
        earlier attempt started instead of starting a second copy.
        """

    def remember(self, infrastructure_id: str, submission: Submission) -> None:
        """Learn a run this executor did not submit (after a restart, or another server's), so
        status/cancel/cleanup reach it with the run's own configuration and credentials."""

    def status(self, infrastructure_ids: list[str]) -> dict[str, InfrastructureStatus]:
        """The state of each infrastructure id; batched, as clouds describe many at once."""

    def wait(self, infrastructure_id: str, timeout: float | None = None) -> int | None:
        """Block until the infrastructure exits; its exit code (None on timeout). Workers only."""

    def logs(self, infrastructure_id: str, limit: int = 50) -> list[str]:
        """The last output lines of the infrastructure, for crash messages."""

    def cancel(self, infrastructure_id: str, grace_seconds: float = 10.0) -> None:
        """Stop the infrastructure: politely first, forcibly after `grace_seconds`."""

    def cleanup(self, infrastructure_id: str) -> None:
        """Release what the finished infrastructure left behind (temp dirs, task definitions)."""

    def forget_deployment(self, retirement: Retirement) -> None:
        """Delete what the executor keeps per deployment rather than per run (Cloud Run jobs).

        The dispatcher calls it once no run of the deployment is in flight and each has been
        cleaned up, outside any transaction; raising makes it call again later, so it must be
        idempotent. Infrastructure still in use is not deleted: raise to be asked again.
        """

    def close(self) -> None:
        """Release the executor's own resources (clients, helper processes) at shutdown."""


class BaseExecutor:
    """Defaults for the calls not every infrastructure needs; executors subclass it and
    implement submit, status, logs, cancel and cleanup."""

    # True when status/cancel/cleanup need the run's rendered configuration (cloud credentials,
    # region): the dispatcher then renders it and calls remember() for runs it did not submit.
    needs_remember: bool = False
    # True when the infrastructure lives on the server's own machine (managed sandboxes): only
    # the host that started a run watches it, and other servers never take it over.
    runs_on_host: bool = False

    def prepare(self) -> None:
        return None

    def remember(self, infrastructure_id: str, submission: Submission) -> None:
        return None

    def wait(self, infrastructure_id: str, timeout: float | None = None) -> int | None:
        raise NotImplementedError(
            f"{type(self).__name__} runs push pools: the dispatcher watches its runs with "
            "status(); no worker waits on them"
        )

    def forget_deployment(self, retirement: Retirement) -> None:
        return None  # nothing kept per deployment

    def close(self) -> None:
        return None
