"""ECS whose tasks really run: moto's server, plus a thread that runs each task as a subprocess.

moto stores ECS tasks but never runs them. `EcsRunner` starts moto's server on 127.0.0.1
(emulators.moto_server) and watches moto's ECS backend (the same process) for new tasks. For
each task it takes the container's command and environment exactly as ECS would assemble them
(task definition, then the task's containerOverrides by name), runs the command as a local
subprocess (no image is pulled: a leading `python`/`python3` becomes this interpreter) with that
environment only, streams the output to the task's CloudWatch Logs stream in moto, and drives
the task through PROVISIONING -> PENDING -> RUNNING -> STOPPED with the process's real exit
code. So a wrong command or environment variable in what an executor submits fails the test.

What it emulates of ECS, and how:
- moto's own lifecycle is switched off (its state manager would advance a task one step per
  describe_tasks); this runner sets every status itself.
- stop_task keeps the task RUNNING with desiredStatus STOPPED until the process is gone
  (SIGTERM, then SIGKILL after `stop_grace_seconds`), then STOPPED with stopCode
  UserInitiated, as ECS does; moto alone would mark it STOPPED at once.
- awslogs: the stream is <prefix>/<container>/<task id>; a missing group without
  awslogs-create-group fails the start with ResourceInitializationError, as on ECS.
- secrets: resolved from moto's Secrets Manager or SSM; a missing one fails the start.
- images named in `unpullable_images` fail with CannotPullContainerError.
- an exit by signal N is exit code 128+N, as Docker reports it.
- `after_run_task` runs between creating tasks and answering RunTask (to kill a caller there).

This reaches into moto's in-memory models (moto.backends.get_backend), which moto does not
promise to keep stable; written against moto 5.2.5.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.emulators.moto_server import MotoServer

__all__ = ["DEFAULT_ACCOUNT", "EcsRunner", "TaskProcess"]

DEFAULT_ACCOUNT = "123456789012"
# What a container has before the task's own environment: the image's usual defaults.
_BASE_ENV = {"LANG": "C.UTF-8"}
_TRANSITION_MODEL = "ecs::task"


@dataclass
class TaskProcess:
    """One task the runner handles: its assembled container, process and output."""

    task_arn: str
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None
    output: list[str] = field(default_factory=list)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    workdir: str = ""


class EcsRunner:
    """`with EcsRunner() as runner:` moto on runner.endpoint, with tasks that run."""

    def __init__(
        self,
        *,
        account_id: str = DEFAULT_ACCOUNT,
        regions: tuple[str, ...] = ("us-east-1",),
        stop_grace_seconds: float = 2.0,
        poll_seconds: float = 0.02,
    ) -> None:
        self.account_id = account_id
        self.regions = regions
        self.stop_grace_seconds = stop_grace_seconds
        self.poll_seconds = poll_seconds
        self.endpoint = ""
        # Images whose pull fails, to test what a run shows for CannotPullContainerError.
        self.unpullable_images: set[str] = set()
        # Called with the new task ARNs after moto created them and before RunTask answers:
        # a test can kill the caller there, so the tasks exist but the caller never learns so.
        self.after_run_task: Callable[[list[str]], None] | None = None
        # How long a new task stays PROVISIONING before its process starts (a slow pull).
        self.provisioning_seconds = 0.0
        self.tasks: dict[str, TaskProcess] = {}
        # Exceptions inside the runner's threads: a test can assert there were none.
        self.errors: list[str] = []
        self._server: MotoServer | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._patched: list[Any] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="ecs-runner-")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EcsRunner:
        from moto.moto_api import state_manager

        # Tasks start RUNNING in moto and advance one step per describe_tasks by default;
        # this runner owns the lifecycle, so moto must never advance a task by itself.
        state_manager.set_transition(_TRANSITION_MODEL, {"progression": "manual", "times": 10**12})
        self._server = MotoServer().start()
        self.endpoint = self._server.endpoint
        for region in self.regions:
            self._intercept_stop_task(self._ecs(region))
            self._intercept_run_task(self._ecs(region))
        self._watcher = threading.Thread(target=self._watch, name="ecs-runner", daemon=True)
        self._watcher.start()
        return self

    def stop(self) -> None:
        from moto.moto_api import state_manager

        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(10)
        for handle in list(self.tasks.values()):
            if handle.popen is not None and handle.popen.poll() is None:
                _signal_group(handle.popen.pid, signal.SIGKILL)
        for thread in list(self._threads):
            thread.join(10)
        for backend in self._patched:
            backend.__dict__.pop("stop_task", None)
            backend.__dict__.pop("run_task", None)
        self._patched.clear()
        if self._server is not None:
            # moto's state is global to the process: leave nothing behind for other tests.
            self._server.reset()
            self._server.stop()
            self._server = None
        state_manager.unset_transition(_TRANSITION_MODEL)
        self._tmp.cleanup()

    def __enter__(self) -> EcsRunner:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ for tests

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            time.sleep(0.02)

    # ------------------------------------------------------------------ moto access

    def _ecs(self, region: str) -> Any:
        from moto.backends import get_backend

        return get_backend("ecs")[self.account_id][region]

    def _logs(self, region: str) -> Any:
        from moto.backends import get_backend

        return get_backend("logs")[self.account_id][region]

    def _intercept_stop_task(self, backend: Any) -> None:
        """stop_task on a task whose process runs: desiredStatus STOPPED, then stop it."""
        original = backend.stop_task

        def stop_task(cluster_str: str, task_str: str, reason: str) -> Any:
            task_id = task_str.rsplit("/", 1)[-1]
            with self._lock:
                handle = next(
                    (h for arn, h in self.tasks.items() if arn.rsplit("/", 1)[-1] == task_id),
                    None,
                )
            if handle is None:
                return original(cluster_str, task_str, reason)
            task = self._task(backend, handle.task_arn)
            if handle.done.is_set():
                return task  # ECS leaves a stopped task as it was
            task.desired_status = "STOPPED"
            task.stopped_reason = reason or "Task stopped by user"
            task.stopping_at = datetime.now(UTC)
            handle.stop_requested.set()
            return task

        backend.stop_task = stop_task  # an instance attribute: moto's class stays untouched
        self._patched.append(backend)

    def _intercept_run_task(self, backend: Any) -> None:
        """run_task as moto does it, then `after_run_task` (if set) before the answer."""
        original = backend.run_task

        def run_task(*args: Any, **kwargs: Any) -> Any:
            tasks = original(*args, **kwargs)
            hook = self.after_run_task
            if hook is not None:
                hook([task.task_arn for task in tasks])
            return tasks

        backend.run_task = run_task  # an instance attribute, as for stop_task

    @staticmethod
    def _task(backend: Any, task_arn: str) -> Any:
        for tasks in list(backend.tasks.values()):
            if task_arn in tasks:
                return tasks[task_arn]
        raise KeyError(task_arn)

    # ------------------------------------------------------------------ the watcher

    def _watch(self) -> None:
        while not self._stopping.is_set():
            for region in self.regions:
                backend = self._ecs(region)
                for tasks in list(backend.tasks.values()):
                    for task_arn, task in list(tasks.items()):
                        with self._lock:
                            if task_arn in self.tasks:
                                continue
                            handle = self.tasks[task_arn] = TaskProcess(task_arn)
                        thread = threading.Thread(
                            target=self._run_guarded,
                            args=(region, backend, task, handle),
                            name=f"ecs-task-{task.id[:8]}",
                            daemon=True,
                        )
                        self._threads.append(thread)
                        thread.start()
            self._stopping.wait(self.poll_seconds)

    def _run_guarded(self, region: str, backend: Any, task: Any, handle: TaskProcess) -> None:
        try:
            self._run(region, backend, task, handle)
        except Exception as exc:  # a runner bug must show up as a stopped task, not a hang
            self.errors.append(f"{handle.task_arn}: {type(exc).__name__}: {exc}")
            self._finish(task, handle, None, "TaskFailedToStart", f"RunnerError: {exc}")

    def _run(self, region: str, backend: Any, task: Any, handle: TaskProcess) -> None:
        if task.desired_status == "STOPPED":  # stopped (by moto itself) before we saw it
            self._finish(task, handle, None, "UserInitiated", task.stopped_reason)
            return
        task.status = "PROVISIONING"
        task.created_at = datetime.now(UTC)
        if self.provisioning_seconds:
            handle.stop_requested.wait(self.provisioning_seconds)
        definition = backend.describe_task_definition(task.task_definition_arn)
        containers = definition.container_definitions
        container_def = next((c for c in containers if c.get("essential", True)), containers[0])
        name = container_def["name"]
        override = next(
            (
                o
                for o in (task.overrides or {}).get("containerOverrides") or []
                if o.get("name") == name
            ),
            {},
        )
        model = task.containers[0]
        model.name = name
        model.image = container_def.get("image")
        model.exitCode = None  # moto starts containers at exit code 0
        task.status = "PENDING"
        if model.image in self.unpullable_images:
            reason = (
                f"CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                f"failed to resolve ref {model.image}: not found"
            )
            model.reason = reason
            self._finish(task, handle, None, "TaskFailedToStart", reason)
            return

        env = {e["name"]: e["value"] for e in container_def.get("environment") or []}
        env.update({e["name"]: e["value"] for e in override.get("environment") or []})
        try:
            env.update(self._secrets(region, container_def.get("secrets") or []))
        except LookupError as exc:
            self._finish(task, handle, None, "TaskFailedToStart", str(exc))
            return
        argv = list(container_def.get("entryPoint") or []) + list(
            override.get("command") or container_def.get("command") or []
        )
        if not argv:
            reason = "CannotStartContainerError: the runner cannot run an image's own CMD"
            self._finish(task, handle, None, "TaskFailedToStart", reason)
            return
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        try:
            stream = self._log_stream(region, container_def, name, task.id)
        except LookupError as exc:
            self._finish(task, handle, None, "TaskFailedToStart", str(exc))
            return

        handle.argv, handle.env = argv, env
        if handle.stop_requested.is_set():  # stop_task while the task was still pending
            self._finish(task, handle, None, "UserInitiated", task.stopped_reason)
            return
        handle.workdir = tempfile.mkdtemp(prefix=f"task-{task.id[:8]}-", dir=self._tmp.name)
        process_env = {
            **_BASE_ENV,
            # The interpreter's directory first, as an image's PATH would have its python.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.defpath]),
            "HOME": handle.workdir,
            **env,
        }
        try:
            handle.popen = subprocess.Popen(
                argv,
                cwd=handle.workdir,
                env=process_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group, so a stop reaches its children
            )
        except OSError as exc:
            reason = f"CannotStartContainerError: exec {argv[0]!r}: {exc.strerror}"
            model.reason = reason
            self._finish(task, handle, None, "TaskFailedToStart", reason)
            return
        task.status = "RUNNING"
        task.started_at = datetime.now(UTC)
        model.last_status = "RUNNING"
        reader = threading.Thread(
            target=self._pump, args=(region, handle, stream), name="ecs-task-output", daemon=True
        )
        reader.start()
        code = self._wait(handle)
        reader.join(10)
        if handle.stop_requested.is_set():
            self._finish(task, handle, code, "UserInitiated", task.stopped_reason)
        else:
            self._finish(
                task, handle, code, "EssentialContainerExited", "Essential container in task exited"
            )

    def _wait(self, handle: TaskProcess) -> int:
        assert handle.popen is not None
        while True:
            try:
                code = handle.popen.wait(0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            if handle.stop_requested.is_set() or self._stopping.is_set():
                _signal_group(handle.popen.pid, signal.SIGTERM)
                try:
                    code = handle.popen.wait(self.stop_grace_seconds)
                except subprocess.TimeoutExpired:
                    _signal_group(handle.popen.pid, signal.SIGKILL)
                    code = handle.popen.wait(10)
                break
        return 128 - code if code < 0 else code

    def _finish(
        self,
        task: Any,
        handle: TaskProcess,
        exit_code: int | None,
        stop_code: str,
        reason: str,
    ) -> None:
        now = datetime.now(UTC)
        model = task.containers[0]
        model.exitCode = exit_code
        model.last_status = "STOPPED"
        task.stop_code = stop_code
        task.stopped_reason = reason
        task.stopping_at = getattr(task, "stopping_at", None) or now
        task.stopped_at = now
        task.desired_status = "STOPPED"
        task.status = "STOPPED"
        handle.done.set()

    # ------------------------------------------------------------------ logs and secrets

    def _log_stream(
        self, region: str, container_def: dict[str, Any], name: str, task_id: str
    ) -> tuple[str, str] | None:
        config = container_def.get("logConfiguration") or {}
        if config.get("logDriver") != "awslogs":
            return None
        options = config.get("options") or {}
        group = options["awslogs-group"]
        stream = f"{options.get('awslogs-stream-prefix')}/{name}/{task_id}"
        logs = self._logs(options.get("awslogs-region") or region)
        if group not in logs.groups:
            if options.get("awslogs-create-group") != "true":
                raise LookupError(
                    "ResourceInitializationError: failed to validate logger args: The "
                    f"specified log group does not exist: {group}"
                )
            logs.create_log_group(group, {})
        logs.create_log_stream(group, stream)
        return group, stream

    def _pump(self, region: str, handle: TaskProcess, stream: tuple[str, str] | None) -> None:
        assert handle.popen is not None and handle.popen.stdout is not None
        logs = self._logs(region) if stream else None
        for raw in handle.popen.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            handle.output.append(line)
            if logs is not None and stream is not None:
                event = {"timestamp": int(time.time() * 1000), "message": line}
                logs.put_log_events(stream[0], stream[1], [event])
        handle.popen.stdout.close()

    def _secrets(self, region: str, secrets: list[dict[str, str]]) -> dict[str, str]:
        from moto.backends import get_backend

        values = {}
        for secret in secrets:
            source = secret["valueFrom"]
            try:
                if ":ssm:" in source or not source.startswith("arn:"):
                    parameter = get_backend("ssm")[self.account_id][region].get_parameter(source)
                    if parameter is None:
                        raise KeyError(source)
                    values[secret["name"]] = parameter.value
                else:
                    found = get_backend("secretsmanager")[self.account_id][region].get_secret_value(
                        source, None, None
                    )
                    values[secret["name"]] = found.get("SecretString") or ""
            except Exception as exc:
                raise LookupError(
                    "ResourceInitializationError: unable to pull secrets or registry auth: "
                    f"retrieving secret from {source}: {type(exc).__name__}"
                ) from None
        return values


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
