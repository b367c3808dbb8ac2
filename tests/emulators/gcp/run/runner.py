"""Runs a Cloud Run execution's tasks as local processes (tests/emulators/containers.py).

Each task's container runs its command + args (a job without a command takes the image's
entrypoint from `image_entrypoints`) with the job's env, the run's env overrides and the
CLOUD_RUN_* variables Cloud Run sets. At most `parallelism` tasks run at once; a failed attempt
is retried up to the template's maxRetries (3 when unset, as Cloud Run defaults); the task
timeout (10 minutes when unset) and a cancel both stop the process (SIGTERM, then SIGKILL after
`stop_grace_seconds`). Every output line becomes a Cloud Logging entry of the execution.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.emulators.containers import Container
from tests.emulators.gcp.cloudlogging.models import LoggingBackend
from tests.emulators.gcp.run.models import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    Execution,
    TaskRun,
)

__all__ = ["ExecutionRunner"]

_LOG_ID = "run.googleapis.com/stdout"


@dataclass
class ExecutionRunner:
    lock: threading.RLock
    logging: LoggingBackend
    clock: Callable[[], float]
    on_change: Callable[[], None]
    errors: list[str]
    python: str | None = None
    stop_grace_seconds: float = 2.0
    # Images whose pull fails ("Image '...' not found."), to test what a run shows for it.
    unpullable_images: set[str] = field(default_factory=set)
    # The ENTRYPOINT of images, for jobs whose container gives no command.
    image_entrypoints: dict[str, list[str]] = field(default_factory=dict)
    _threads: list[threading.Thread] = field(default_factory=list)
    _containers: dict[str, Container] = field(default_factory=dict)

    def launch(self, execution: Execution) -> None:
        thread = threading.Thread(
            target=self._guarded, args=(execution,), name=f"run-{execution.execution_id}"
        )
        thread.daemon = True
        self._threads.append(thread)
        thread.start()

    def stop(self, execution: Execution) -> None:
        """Kill what is left of an execution now (the emulator is stopping)."""
        execution.cancelled.set()
        for index in range(execution.task_count):
            container = self._containers.get(f"{execution.name}#{index}")
            if container is not None:
                container.kill()

    def join(self, timeout: float) -> None:
        for thread in list(self._threads):
            thread.join(timeout)

    # ------------------------------------------------------------------ one execution

    def _guarded(self, execution: Execution) -> None:
        try:
            self._run(execution)
        except Exception:  # a bug in the emulator: tell the test, end the execution
            import traceback

            self.errors.append(traceback.format_exc())
        finally:
            with self.lock:
                if execution.completion_time is None:
                    execution.completion_time = self.clock()
                for task in execution.tasks:
                    if task.state in ("PENDING", "RUNNING"):
                        task.state = "CANCELLED"
                execution.finished.set()
            self.on_change()

    def _run(self, execution: Execution) -> None:
        with self.lock:
            execution.start_time = self.clock()
        self.on_change()
        width = execution.parallelism or execution.task_count
        pending = list(range(execution.task_count))
        pending_lock = threading.Lock()

        def worker() -> None:
            while True:
                with pending_lock:
                    if not pending:
                        return
                    index = pending.pop(0)
                self._run_task(execution, execution.tasks[index])

        workers = [
            threading.Thread(target=worker, name=f"run-{execution.execution_id}-w{i}", daemon=True)
            for i in range(max(1, min(width, execution.task_count)))
        ]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()

    def _run_task(self, execution: Execution, task: TaskRun) -> None:
        template = execution.template
        max_retries = template.max_retries if "max_retries" in template else DEFAULT_MAX_RETRIES
        for attempt in range(max_retries + 1):
            if execution.cancelled.is_set():
                with self.lock:
                    task.state = "CANCELLED"
                    task.completion_time = self.clock()
                return
            with self.lock:
                task.retried = attempt
            outcome = self._attempt(execution, task, attempt)
            self.on_change()
            if outcome in ("SUCCEEDED", "CANCELLED"):
                return
        # The last attempt failed: the task stays FAILED.

    def _attempt(self, execution: Execution, task: TaskRun, attempt: int) -> str:
        container_spec = execution.template.containers[0]
        command = list(container_spec.command) or list(
            self.image_entrypoints.get(container_spec.image, [])
        )
        argv = command + list(container_spec.args)
        env = {e.name: e.value for e in container_spec.env if not e.value_source}
        env.update(
            {
                "CLOUD_RUN_JOB": execution.job_id,
                "CLOUD_RUN_EXECUTION": execution.execution_id,
                "CLOUD_RUN_TASK_INDEX": str(task.index),
                "CLOUD_RUN_TASK_ATTEMPT": str(attempt),
                "CLOUD_RUN_TASK_COUNT": str(execution.task_count),
            }
        )
        with self.lock:
            task.argv, task.env, task.output = argv, env, []
            task.exit_code, task.message, task.timed_out = None, "", False
            task.start_time, task.completion_time = self.clock(), None
            task.state = "RUNNING"
        if container_spec.image in self.unpullable_images:
            return self._finish(task, "FAILED", None, f"Image '{container_spec.image}' not found.")
        if not argv:
            return self._finish(
                task, "FAILED", None, "Application failed to start: the container has no command."
            )
        container = Container(
            argv, env, on_line=self._logger(execution, task, attempt), python=self.python
        )
        try:
            container.start()
        except OSError as exc:
            return self._finish(
                task,
                "FAILED",
                None,
                f"Application failed to start: failed to load {argv[0]}: {exc.strerror}",
            )
        key = f"{execution.name}#{task.index}"
        self._containers[key] = container
        stop = threading.Event()
        timeout = execution.template.timeout
        seconds = (
            timeout.total_seconds() if "timeout" in execution.template else 0
        ) or DEFAULT_TIMEOUT.total_seconds()

        def time_out() -> None:
            task.timed_out = True
            stop.set()

        timer = threading.Timer(seconds, time_out)
        timer.daemon = True
        timer.start()
        relay = threading.Thread(
            target=_relay_cancel, args=(execution.cancelled, stop), daemon=True
        )
        relay.start()
        try:
            code = container.wait(stop_requested=stop, grace_seconds=self.stop_grace_seconds)
        finally:
            timer.cancel()
            stop.set()
            self._containers.pop(key, None)
        if task.timed_out:
            return self._finish(task, "FAILED", code, "The configured timeout was reached.")
        if execution.cancelled.is_set() and code != 0:
            return self._finish(task, "CANCELLED", code, "The task was cancelled.")
        if code == 0:
            return self._finish(task, "SUCCEEDED", 0, "")
        return self._finish(task, "FAILED", code, "The container exited with an error.")

    def _finish(self, task: TaskRun, state: str, code: int | None, message: str) -> str:
        with self.lock:
            task.state = state
            task.exit_code = code
            task.message = message
            task.completion_time = self.clock()
        return state

    def _logger(self, execution: Execution, task: TaskRun, attempt: int) -> Callable[[str], None]:
        resource = {
            "type": "cloud_run_job",
            "labels": {
                "project_id": execution.project_id,
                "job_name": execution.job_id,
                "location": execution.location,
            },
        }
        labels = {
            "run.googleapis.com/execution_name": execution.execution_id,
            "run.googleapis.com/task_index": str(task.index),
            "run.googleapis.com/task_attempt": str(attempt),
        }

        def write(line: str) -> None:
            with self.lock:
                task.output.append(line)
                self.logging.write_line(execution.project_id, _LOG_ID, resource, labels, line)

        return write


def _relay_cancel(cancelled: threading.Event, stop: threading.Event) -> None:
    """Turn the execution's cancel into this attempt's stop (until the attempt ends)."""
    while not stop.is_set():
        if cancelled.wait(0.05):
            stop.set()
            return
