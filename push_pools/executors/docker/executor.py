"""Runs each flow run in a container of a Docker engine, through the docker SDK. See base.Executor.

The engine inside the container ships the run's logs to the server itself (as with process
pools); the executor follows the container's output to keep the last lines for crash messages
and, with `stream_output`, to echo them on the worker's console. The SDK is imported when the
worker prepares, so loading the pool type costs nothing.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from push_pools.errors import InvalidInput, PushPoolsError
from push_pools.executors import job_values
from push_pools.executors.base import (
    BaseExecutor,
    InfrastructureState,
    InfrastructureStatus,
    InfrastructureUnavailable,
    Submission,
)
from push_pools.executors.docker.template import DEFAULT_COMMAND, DEFAULT_IMAGE, PULL_POLICIES

if TYPE_CHECKING:
    from docker import DockerClient

TAIL_LINES = 50
LABEL_RUN_ID = "io.push-pools.flow-run-id"
LABEL_RUN_NAME = "io.push-pools.flow-run-name"
LABEL_POOL = "io.push-pools.pool"
INFRASTRUCTURE_ID_ENV = "PUSH_POOLS_INFRASTRUCTURE_ID"
# Infrastructure ids are `docker:<container name>`: the engine API takes a name wherever it
# takes an id.
PREFIX = "docker:"
_UNSAFE_NAME = re.compile(r"[^a-zA-Z0-9_.-]+")


class EngineUnreachable(InfrastructureUnavailable):
    """No Docker engine answers where DOCKER_HOST (or the default socket) points."""


@dataclass
class _Container:
    name: str
    run_name: str
    auto_remove: bool
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    reader: threading.Thread | None = None


def docker_host() -> str:
    """Where the SDK looks for the engine, in the words a user would set it."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock (DOCKER_HOST is unset)"


class DockerExecutor(BaseExecutor):
    """Containers on the engine DOCKER_HOST names, one per flow run."""

    infrastructure_kind = "container"

    def __init__(self, output: TextIO | None = None) -> None:
        # None: whatever sys.stdout is when a line arrives (it may be swapped after we start).
        self._output = output
        self._client: DockerClient | None = None
        # Log follows and waits hold a request open as long as the container runs, so they get
        # a client without the SDK's 60 s read timeout (and a pool sized for many runs).
        self._watcher: DockerClient | None = None
        self._containers: dict[str, _Container] = {}
        self._lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Connect to the engine once, so a worker with no engine stops at start, saying where
        it looked, instead of crashing every run it claims."""
        if self._client is not None:
            return
        try:
            import docker
            from docker.errors import DockerException
        except ImportError:
            raise PushPoolsError(
                "docker pools need the docker SDK on the worker's machine; install it with: "
                "pip install 'push-pools[docker]'"
            ) from None

        try:
            client = docker.from_env()
            client.ping()
            watcher = docker.from_env(timeout=None, max_pool_size=64)
        except DockerException as exc:
            raise EngineUnreachable(
                f"no Docker engine is reachable at {docker_host()}: {_reason(exc)}; start one, "
                "or point DOCKER_HOST at it"
            ) from None
        self._client, self._watcher = client, watcher

    def close(self) -> None:
        for client in (self._client, self._watcher):
            if client is not None:
                client.close()
        self._client = self._watcher = None

    def _docker(self) -> DockerClient:
        return self._connected()[0]

    def _connected(self) -> tuple[DockerClient, DockerClient]:
        """(client, watcher), connecting first if needed."""
        self.prepare()
        if self._client is None or self._watcher is None:  # closed by another thread
            raise EngineUnreachable(
                f"the connection to the Docker engine at {docker_host()} is closed"
            )
        return self._client, self._watcher

    # --- submit ---------------------------------------------------------------------------------

    def submit(self, submission: Submission) -> str:
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        try:
            return self._submit(submission)
        except RequestException as exc:
            raise _unreachable(exc) from None
        except DockerException as exc:
            # The worker reports PushPoolsError on the run; anything else would end its loop.
            raise PushPoolsError(
                f"the Docker engine at {docker_host()} failed: {_why(exc)}"
            ) from None

    def _submit(self, submission: Submission) -> str:
        from docker.errors import APIError, ImageNotFound, NotFound

        # An unset variable renders as None; templates brought from Prefect leave several
        # without a default (image_pull_policy, mem_limit), which means "the default" here.
        config = {k: v for k, v in submission.job_configuration.items() if v is not None}
        client = self._docker()
        image = job_values.text(config, "image", DEFAULT_IMAGE)
        self._ensure_image(image, job_values.text(config, "image_pull_policy", "IfNotPresent"))
        env = job_values.string_map(config, "env")
        env.update(submission.engine_env)
        labels = job_values.string_map(config, "labels")
        labels.update(
            {
                LABEL_RUN_ID: submission.flow_run_id,
                LABEL_RUN_NAME: submission.flow_run_name,
                LABEL_POOL: submission.pool_name,
            }
        )
        networks = [str(n) for n in config.get("networks") or []]
        options: dict[str, Any] = {
            "command": job_values.command(config.get("command"), DEFAULT_COMMAND),
            "labels": labels,
            "detach": True,
            "privileged": job_values.flag(config, "privileged", False),
            "volumes": [str(v) for v in config.get("volumes") or []] or None,
            "mem_limit": str(config.get("mem_limit") or "").strip() or None,
        }
        if networks:
            options["network"] = networks[0]
        else:
            options["network_mode"] = self._network_mode(config, env)
        name = self._name(config, submission)
        try:
            try:
                container = self._create(image, name, env, options)
            except APIError as exc:
                if exc.status_code != 409 or not config.get("name"):
                    raise
                # The pool's or deployment's fixed name is taken by an earlier run's container.
                name = f"{name}-{submission.flow_run_id[:8]}"
                container = self._create(image, name, env, options)
            try:
                for network in networks[1:]:
                    client.networks.get(network).connect(container)
                container.start()
            except APIError:
                # Nothing runs in it: leave no created container behind for a run that crashed.
                container.remove(force=True)
                raise
        except ImageNotFound as exc:
            raise InvalidInput(
                f"image '{image}' is not on the Docker engine: {_why(exc)}"
            ) from None
        except NotFound as exc:
            raise InvalidInput(f"the container could not be created: {_why(exc)}") from None
        except APIError as exc:
            raise PushPoolsError(f"the Docker engine refused the container: {_why(exc)}") from None
        infrastructure_id = PREFIX + name
        record = _Container(
            name, submission.flow_run_name, job_values.flag(config, "auto_remove", False)
        )
        stream = job_values.flag(config, "stream_output", True)
        record.reader = threading.Thread(
            target=self._follow, args=(record, stream), daemon=True, name="docker-logs"
        )
        record.reader.start()
        with self._lock:
            self._containers[infrastructure_id] = record
        return infrastructure_id

    def _create(self, image: str, name: str, env: dict[str, str], options: dict[str, Any]) -> Any:
        # The engine reports this id when the flow starts, so the run shows what the worker
        # tracks (the name is known before the container exists; its id is not).
        environment = {**env, INFRASTRUCTURE_ID_ENV: PREFIX + name}
        containers = self._docker().containers
        return containers.create(image, name=name, environment=environment, **options)

    def _ensure_image(self, image: str, policy: str) -> None:
        from docker.errors import APIError, ImageNotFound

        if policy not in PULL_POLICIES:
            raise InvalidInput(
                f"job variable 'image_pull_policy' must be one of {', '.join(PULL_POLICIES)}, "
                f"got {policy!r}"
            )
        client = self._docker()
        if policy != "Always":
            try:
                client.images.get(image)
                return
            except ImageNotFound:
                if policy == "Never":
                    raise InvalidInput(
                        f"image '{image}' is not on the Docker engine at {docker_host()} and "
                        "image_pull_policy is Never: build or pull it there first, or allow a "
                        "pull with IfNotPresent"
                    ) from None
        from docker.utils import parse_repository_tag

        # `repo@sha256:...` comes back as (repo, digest): the engine takes a digest as the tag.
        repository, tag = parse_repository_tag(image)
        try:
            # The SDK's images.pull ignores errors the engine streams after the pull started.
            for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    raise InvalidInput(f"image '{image}' could not be pulled: {event['error']}")
        except APIError as exc:
            raise InvalidInput(f"image '{image}' could not be pulled: {_why(exc)}") from None

    def _network_mode(self, config: dict[str, Any], env: dict[str, str]) -> str | None:
        mode = str(config.get("network_mode") or "").strip()
        if mode:
            return mode
        # A bridged container's 127.0.0.1 is its own: only the host's network reaches a server
        # that listens on the worker machine's loopback.
        host = urlsplit(env.get("PUSH_POOLS_API_URL", "")).hostname or ""
        if host == "localhost" or _is_loopback(host):
            return "host"
        return None

    def _name(self, config: dict[str, Any], submission: Submission) -> str:
        wanted = str(config.get("name") or "").strip()
        if not wanted:
            wanted = submission.infrastructure_name or (
                f"{submission.flow_run_name}-{submission.flow_run_id[:8]}"
            )
        # Docker names are [a-zA-Z0-9][a-zA-Z0-9_.-]+; run names may hold anything.
        name = _UNSAFE_NAME.sub("-", wanted).strip("-_.")
        return name or f"flow-run-{submission.flow_run_id[:8]}"

    # --- output ---------------------------------------------------------------------------------

    def _follow(self, record: _Container, stream: bool) -> None:
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        client = self._watcher
        if client is None:
            return
        pending = b""
        try:
            for chunk in client.api.logs(record.name, stream=True, follow=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    stream = self._emit(record, line.decode(errors="replace"), stream)
        except (DockerException, RequestException):
            pass  # the engine went away or the container was removed: the tail stays as it is
        if pending:
            self._emit(record, pending.decode(errors="replace"), stream)

    def _emit(self, record: _Container, line: str, stream: bool) -> bool:
        line = line.rstrip("\r")
        record.tail.append(line)
        if stream:
            try:
                print(f"{record.run_name} | {line}", file=self._output or sys.stdout, flush=True)
            except (ValueError, OSError):
                return False  # our stdout went away; the tail above still has the lines
        return stream

    # --- watching -------------------------------------------------------------------------------

    def wait(self, infrastructure_id: str, timeout: float | None = None) -> int | None:
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        record = self._containers.get(infrastructure_id)
        if record is None:
            return None
        try:
            answer = self._connected()[1].api.wait(record.name, timeout=timeout)
        except (DockerException, RequestException):
            return None
        if record.reader is not None:
            record.reader.join(5)  # the last lines arrive after the exit
        code = answer.get("StatusCode")
        return int(code) if code is not None else None

    def status(self, infrastructure_ids: list[str]) -> dict[str, InfrastructureStatus]:
        from requests.exceptions import RequestException

        try:
            return self._status(infrastructure_ids)
        except RequestException as exc:
            raise _unreachable(exc) from None

    def _status(self, infrastructure_ids: list[str]) -> dict[str, InfrastructureStatus]:
        from docker.errors import NotFound

        result = {}
        for infrastructure_id in infrastructure_ids:
            record = self._containers.get(infrastructure_id)
            try:
                state = self._docker().api.inspect_container(_name_of(infrastructure_id))["State"]
            except NotFound:
                result[infrastructure_id] = InfrastructureStatus(InfrastructureState.MISSING)
                continue
            status = state.get("Status")
            if status in ("created", "restarting"):
                result[infrastructure_id] = InfrastructureStatus(InfrastructureState.STARTING)
            elif status in ("running", "paused"):
                result[infrastructure_id] = InfrastructureStatus(InfrastructureState.RUNNING)
            else:
                code = state.get("ExitCode")
                result[infrastructure_id] = InfrastructureStatus(
                    InfrastructureState.EXITED,
                    exit_code=code,
                    reason="exited",
                    message=f"exited with code {code}",
                    last_lines=list(record.tail) if record else [],
                )
        return result

    def logs(self, infrastructure_id: str, limit: int = TAIL_LINES) -> list[str]:
        record = self._containers.get(infrastructure_id)
        return list(record.tail)[-limit:] if record else []

    def cancel(self, infrastructure_id: str, grace_seconds: float = 10.0) -> None:
        from docker.errors import APIError
        from requests.exceptions import RequestException

        try:
            # The engine sends SIGTERM, then SIGKILL after the grace period.
            grace = max(0, round(grace_seconds))
            self._docker().api.stop(_name_of(infrastructure_id), timeout=grace)
        except RequestException as exc:
            raise _unreachable(exc) from None
        except APIError as exc:
            if exc.status_code not in (304, 404):  # already stopped, or gone
                raise PushPoolsError(f"the container could not be stopped: {_why(exc)}") from None

    def cleanup(self, infrastructure_id: str) -> None:
        from docker.errors import APIError
        from requests.exceptions import RequestException

        with self._lock:
            record = self._containers.pop(infrastructure_id, None)
        # Removed here rather than by the engine's AutoRemove, which can delete the container
        # before the worker has asked for its exit code.
        if record is not None and record.auto_remove:
            try:
                self._docker().api.remove_container(record.name, force=True)
            except APIError:
                pass  # already gone
            except RequestException as exc:
                raise _unreachable(exc) from None


def _unreachable(exc: Exception) -> EngineUnreachable:
    return EngineUnreachable(
        f"the Docker engine at {docker_host()} does not answer ({_reason(exc)})"
    )


def _reason(exc: Exception) -> str:
    # requests nests urllib3's errors several deep; the OS's words are what a user can act on.
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text) or re.search(
        r"Error\(-?\d+, '([^']+)'\)", text
    )
    return found.group(1).strip() if found else _first_line(exc)


def _name_of(infrastructure_id: str) -> str:
    return infrastructure_id.removeprefix(PREFIX)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _why(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return _first_line(explanation or exc)


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__
