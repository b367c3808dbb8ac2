"""Runs a container group's containers as local processes and keeps its state as ACI reports it.

One thread per deployment (create, start, restart, or a PUT that changes the containers):

    Pending (held while an image is in `pending_images`, or for `pending_seconds`)
      -> pull: an image in `unpullable_images`, or an ACR image without working credentials,
         never starts: the container waits in ErrImagePull / ImagePullBackOff with ACI's
         events, and after `pull_give_up_seconds` the group's provisioning fails
         (InaccessibleImage); None keeps it pending for ever
      -> Running: every container's command runs with its environmentVariables (value and
         secureValue) via tests.emulators.containers; provisioningState Succeeded
      -> each container Terminated with its real exit code; the group Succeeded (all 0) or
         Failed. restartPolicy Always / OnFailure restarts a container (restartCount + 1).
    stop: SIGTERM, SIGKILL after `stop_grace_seconds`; the group is Stopped.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tests.emulators.azure.aci.models import ContainerGroup, ContainerInstance, ContainerRun
from tests.emulators.azure.aci.models import ContainerState as State
from tests.emulators.containers import Container

__all__ = ["AciControls", "GroupRunner"]

_TICK = 0.02
# A container without a command runs its image's entrypoint, which the emulator cannot know:
# it stands for a server that runs until stopped.
_ENTRYPOINT = [sys.executable, "-c", "import time\nwhile True:\n    time.sleep(3600)"]


@dataclass
class AciControls:
    """Knobs a test turns on `emulator.aci` (also reachable as emulator attributes)."""

    pending_images: set[str] = field(default_factory=set)
    unpullable_images: set[str] = field(default_factory=set)
    pending_seconds: float = 0.0
    pull_give_up_seconds: float | None = 2.0
    stop_grace_seconds: float = 2.0
    # cpu, memoryInGB a container group may request, per location (ACI's standard limits).
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    default_limits: tuple[float, float] = (4.0, 16.0)
    python: str = sys.executable

    def limits_for(self, location: str) -> tuple[float, float]:
        return self.limits.get(location.lower(), self.default_limits)


# Why an image cannot be pulled for this group, or None.
PullCheck = Callable[[ContainerGroup, str], str | None]


class GroupRunner:
    def __init__(
        self,
        lock: threading.RLock,
        controls: AciControls,
        pull_check: PullCheck,
        workdir: str,
        errors: list[str],
    ) -> None:
        self._lock = lock
        self._controls = controls
        self._pull_check = pull_check
        self._workdir = workdir
        self._errors = errors

    def deploy(self, group: ContainerGroup) -> int:
        """Start a new deployment of `group` (call with the lock held); its generation."""
        group.generation += 1
        group.stop_requested = threading.Event()
        group.provisioning_state = "Pending"
        group.state = "Pending"
        group.failure = None
        for container in group.containers:
            if container.current_state.state != "Waiting":
                container.previous_state = container.current_state
            container.current_state = State("Waiting", "ContainerCreating")
        group.runner = threading.Thread(
            target=self._guarded,
            args=(group, group.generation, group.stop_requested),
            name=f"aci-{group.name}",
            daemon=True,
        )
        group.runner.start()
        return group.generation

    # ------------------------------------------------------------------ the thread

    def _guarded(self, group: ContainerGroup, generation: int, stop: threading.Event) -> None:
        try:
            self._run(group, generation, stop)
        except Exception as exc:  # a bug in the emulator must show, not hang a test
            self._errors.append(f"container group {group.name}: {exc!r}")
            with self._lock:
                if group.generation == generation:
                    group.provisioning_state = group.state = "Failed"
                    group.failure = {"code": "InternalServerError", "message": repr(exc)}

    def _run(self, group: ContainerGroup, generation: int, stop: threading.Event) -> None:
        if not self._wait_pending(group, stop):
            return
        if not self._pull(group, generation, stop):
            return
        with self._lock:
            if stop.is_set() or group.generation != generation:
                return
            group.provisioning_state = "Creating"
        waiters = [
            threading.Thread(
                target=self._run_container, args=(group, c, generation, stop), daemon=True
            )
            for c in group.containers
        ]
        for waiter in waiters:
            waiter.start()
        with self._lock:
            if group.generation == generation and not stop.is_set():
                group.state = "Running"
                group.provisioning_state = "Succeeded"
        for waiter in waiters:
            waiter.join()
        with self._lock:
            if group.generation != generation:
                return
            if stop.is_set():
                group.state = "Stopped"
                return
            codes = [c.current_state.exit_code for c in group.containers]
            group.state = "Succeeded" if all(code == 0 for code in codes) else "Failed"

    def _wait_pending(self, group: ContainerGroup, stop: threading.Event) -> bool:
        started = time.monotonic()
        while not stop.is_set():
            held = any(c.image in self._controls.pending_images for c in group.containers)
            if not held and time.monotonic() - started >= self._controls.pending_seconds:
                return True
            stop.wait(_TICK)
        return False

    def _pull(self, group: ContainerGroup, generation: int, stop: threading.Event) -> bool:
        failures: dict[str, str] = {}
        with self._lock:
            for container in group.containers:
                container.add_event("Pulling", f'pulling image "{container.image}"')
                reason = self._pull_check(group, container.image)
                if reason is not None:
                    failures[container.name] = reason
                    continue
                container.add_event("Pulled", f'Successfully pulled image "{container.image}"')
            for container in group.containers:
                reason = failures.get(container.name)
                if reason is None:
                    continue
                container.add_event(
                    "Failed",
                    f'Failed to pull image "{container.image}": rpc error: code = Unknown '
                    f"desc = {reason}",
                    "Warning",
                )
                container.add_event("Failed", "Error: ErrImagePull", "Warning")
                container.add_event("BackOff", f'Back-off pulling image "{container.image}"')
                container.current_state = State("Waiting", "ImagePullBackOff")
        if not failures:
            return True
        give_up = self._controls.pull_give_up_seconds
        deadline = None if give_up is None else time.monotonic() + give_up
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            stop.wait(_TICK)
        with self._lock:
            if stop.is_set() or group.generation != generation:
                return False
            image = next(c.image for c in group.containers if c.name in failures)
            group.provisioning_state = group.state = "Failed"
            group.failure = {
                "code": "InaccessibleImage",
                "message": f"The image '{image}' in container group '{group.name}' is not "
                "accessible. Please check the image and registry credential.",
            }
        return False

    def _run_container(
        self,
        group: ContainerGroup,
        container: ContainerInstance,
        generation: int,
        stop: threading.Event,
    ) -> None:
        while True:
            code = self._run_once(group, container, generation, stop)
            policy = group.restart_policy
            again = policy == "Always" or (policy == "OnFailure" and code != 0)
            if stop.is_set() or not again:
                return
            with self._lock:
                if group.generation != generation:
                    return
                container.previous_state = container.current_state
                container.restart_count += 1
            stop.wait(0.05)  # ACI backs off between restarts

    def _run_once(
        self,
        group: ContainerGroup,
        container: ContainerInstance,
        generation: int,
        stop: threading.Event,
    ) -> int:
        argv = container.command or list(_ENTRYPOINT)
        env = container.environment
        run = ContainerRun(argv, env)
        process = Container(
            argv,
            env,
            on_line=run.output.append,
            python=self._controls.python,
            workdir_parent=self._workdir,
        )
        run.argv = list(process.argv)
        with self._lock:
            if stop.is_set() or group.generation != generation:
                return 0
            container.runs.append(run)
            try:
                process.start()
            except OSError as exc:
                message = (
                    f"failed to create containerd task: exec: {argv[0]!r}: {exc.strerror or exc}"
                )
                now = datetime.now(UTC)
                run.exit_code, run.finished_at = 127, now
                run.output.append(message)
                container.add_event("Failed", f"Error: {message}", "Warning")
                container.current_state = State("Terminated", "Error", now, now, 127)
                return 127
            run.pid = process.popen.pid if process.popen is not None else None
            container.add_event("Started", "Started container")
            container.current_state = State("Running", "", run.started_at)
        code = process.wait(stop, grace_seconds=self._controls.stop_grace_seconds)
        with self._lock:
            run.exit_code, run.finished_at = code, datetime.now(UTC)
            if stop.is_set():
                container.add_event("Killing", f"Killing container with id {run.pid}.")
            detail = "Completed" if code == 0 else ("Killed" if stop.is_set() else "Error")
            container.current_state = State(
                "Terminated", detail, run.started_at, run.finished_at, code
            )
        return code
