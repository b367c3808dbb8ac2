"""The sandbox process of one managed run: `python -m push_pools.managed.sandbox <run dir>`.

Started detached by ManagedExecutor.submit (own session, output to <run dir>/output.log), so it
outlives the server. It reads request.json, prepares the Python environment for `pip_packages`,
runs the engine in <run dir>/work with a minimal environment and the run's limits, enforces the
timeout, and always ends by writing result.json (unless it is SIGKILLed itself, which the
executor reports as "lost").

Limits use rlimits and CPU affinity, not cgroups, because rlimits work everywhere the server
runs, unprivileged, with nothing to set up. On the hosts we checked (containers with a
read-only cgroup v1 hierarchy, servers run as an ordinary user) the server cannot create cgroups,
so a cgroup-based limit would silently not apply. The trade-offs, also in the template docs:

* `memory` (MiB) sets RLIMIT_AS on the engine and its children. It caps virtual address space,
  which is larger than resident memory (thread stacks, malloc arenas, mapped files), so a limit
  must leave headroom; MALLOC_ARENA_MAX=2 is set to keep glibc from reserving 64 MiB per thread.
  It is per process, not a total across the run's processes. Hitting it surfaces as a
  MemoryError (or a SIGSEGV/SIGKILL in native code), which the sandbox reports as reason
  "memory".
* `cpu` (cores) is advisory: the engine is pinned to the first ceil(cpu) cores the sandbox may
  use (sched_setaffinity, where the platform has it). Nothing throttles those cores.
* RLIMIT_NPROC is deliberately not used: it counts every process of the user, server included,
  so a run near the limit would stop the server from forking. Core dumps are turned off
  (RLIMIT_CORE soft limit 0) so a crashing native extension cannot fill the disk.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from push_pools.managed import (
    CANCEL,
    OUTPUT,
    PID,
    REQUEST,
    RESULT,
    SANDBOX_PID,
    read_json,
    signal_group,
    write_atomic,
    write_pid_file,
)
from push_pools.managed.bwrap import ConfinedInstall, Confinement, exit_code, interpreter_paths
from push_pools.managed.bwrap import preexec as confined_preexec
from push_pools.managed.environments import InstallFailed, ensure_environment
from push_pools.memory_limit import MEMORY_LIMIT_ENV, over_limit_message

TIMEOUT_GRACE_SECONDS = 10.0
DEFAULT_CANCEL_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.1
# Output that means an allocation failed under RLIMIT_AS (Python, C++, C/glibc).
MEMORY_MARKERS = (b"MemoryError", b"std::bad_alloc", b"Cannot allocate memory")
# How much of the engine's output to scan for them.
MEMORY_SCAN_BYTES = 1024 * 1024
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@dataclass(frozen=True)
class Result:
    exit_code: int | None
    # "exited", "timeout", "memory", "cancelled", "terminated", "install_failed",
    # "start_failed", "invalid_configuration", "sandbox_error"
    reason: str
    message: str


class _Stopped(BaseException):
    """Raised by the signal handler while preparing, to abandon installs and lock waits.

    A BaseException so that no `except Exception` on the way swallows it.
    """


@dataclass(frozen=True)
class _Limits:
    memory_mib: int | None
    cpus: list[int] | None
    timeout_seconds: float | None


class Sandbox:
    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.output = run_dir / OUTPUT
        self.child: subprocess.Popen[bytes] | None = None
        # How the engine (and the install) run confined; None when isolation is off.
        self.confinement: Confinement | None = None
        self.stop_requested_at: float | None = None
        # "setup": a stop is noted and checked before the engine starts; "prepare" (waiting for
        # or running an install): a stop abandons it at once; "run": a stop is forwarded to the
        # engine; "finish": too late, the result is being written.
        self.phase = "setup"

    # ------------------------------------------------------------------ entry

    def run(self) -> int:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_stop)
        try:
            result = self._run()
        except _Stopped:
            result = self._stopped_before_start()
        except BaseException as exc:  # noqa: BLE001 - the run must end with a result, not "lost"
            self.phase = "finish"
            self.log("sandbox error:\n" + traceback.format_exc().rstrip())
            result = Result(1, "sandbox_error", f"the sandbox failed: {exc!r}")
        self.phase = "finish"
        self.finish(result)
        return 0

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        first = self.stop_requested_at is None
        if first:
            self.stop_requested_at = time.monotonic()
        if self.phase == "prepare" and first:
            # Only the first: a second signal must not interrupt the cleanup of the first.
            raise _Stopped()
        if self.phase == "run" and self.child is not None:
            signal_group(self.child.pid, signal.SIGTERM)

    def _cancel_requested(self) -> bool:
        return (self.dir / CANCEL).exists()

    def _cancel_grace(self) -> float:
        request = read_json(self.dir / CANCEL) or {}
        try:
            return max(0.0, float(request.get("grace_seconds", DEFAULT_CANCEL_GRACE_SECONDS)))
        except (TypeError, ValueError):
            return DEFAULT_CANCEL_GRACE_SECONDS

    def _stopped_before_start(self) -> Result:
        self.phase = "finish"
        if self._cancel_requested():
            return Result(-signal.SIGTERM, "cancelled", "was cancelled before it started")
        return Result(
            -signal.SIGTERM, "terminated", "its sandbox was stopped by a signal before it started"
        )

    # ------------------------------------------------------------------ the run

    def _run(self) -> Result:
        write_pid_file(self.dir / SANDBOX_PID, os.getpid())
        request = read_json(self.dir / REQUEST)
        if request is None:
            return Result(1, "sandbox_error", f"the sandbox found no readable {REQUEST}")
        # The values (API key, resolved credentials) are now in memory only; a sandbox kept
        # for debugging must not keep them on disk. The names stay, for that debugging.
        redacted = {**request, "env": {name: "(removed)" for name in request.get("env") or {}}}
        write_atomic(self.dir / REQUEST, json.dumps(redacted, indent=2) + "\n", 0o600)
        if self._cancel_requested():
            raise _Stopped()
        config: dict[str, Any] = request.get("config") or {}
        job_env = {str(k): str(v) for k, v in (request.get("env") or {}).items() if v is not None}
        try:
            limits = _parse_limits(config)
        except ValueError as exc:
            return Result(2, "invalid_configuration", str(exc))
        self.confinement = Confinement.from_json(request.get("isolation"))

        work = self.dir / "work"
        tmp = self.dir / "tmp"
        for directory in (work, tmp):
            directory.mkdir(mode=0o700, exist_ok=True)
            if self.confinement is not None:
                # The only places the run may write.
                self.confinement.hand_over(directory)
        # What a confined run may read under a hidden directory: never anything of the run
        # directory itself (request.json was written there).
        readable = (
            self.confinement.exposable(interpreter_paths()) if self.confinement is not None else []
        )

        if self.stop_requested_at is not None:
            raise _Stopped()
        self.phase = "prepare"
        try:
            environment = ensure_environment(
                Path(request["envs_dir"]),
                config.get("pip_packages") or [],
                log=self.log,
                installer_env=job_env,
                confinement=(
                    ConfinedInstall(self.confinement, self.dir / "install", tuple(readable))
                    if self.confinement is not None
                    else None
                ),
            )
        except InstallFailed as exc:
            self.phase = "setup"
            self.append_lines(exc.lines)
            message = exc.message
            if exc.lines:
                message += "\n" + "\n".join(exc.lines)
            return Result(exc.exit_code or 1, "install_failed", message)
        self.phase = "setup"

        command = config.get("command")
        if command:
            try:
                argv = shlex.split(str(command))
            except ValueError as exc:
                return Result(2, "invalid_configuration", f"command cannot be parsed: {exc}")
            if not argv:
                return Result(2, "invalid_configuration", "command is empty")
        else:
            argv = [str(environment.python), "-m", "push_pools.engine"]

        path = os.environ.get("PATH") or os.defpath
        base = {
            "PATH": path,
            "HOME": str(work),
            "LANG": os.environ.get("LANG") or "C.UTF-8",
            "TMPDIR": str(tmp),
        }
        if "LC_ALL" in os.environ:
            base["LC_ALL"] = os.environ["LC_ALL"]
        if environment.bin_dir is not None:
            # `python` in a custom command means the env's interpreter.
            base["PATH"] = f"{environment.bin_dir}{os.pathsep}{path}"
            base["VIRTUAL_ENV"] = str(environment.path)
        elif os.environ.get("PYTHONPATH"):
            # Set by the executor so the server's interpreter finds push_pools; an env gets
            # that from its .pth file instead, after its own packages.
            base["PYTHONPATH"] = os.environ["PYTHONPATH"]
        if limits.memory_mib is not None:
            base["MALLOC_ARENA_MAX"] = "2"
            base[MEMORY_LIMIT_ENV] = str(limits.memory_mib)
        env = {**base, **job_env}

        if limits.cpus is not None:
            self.log(f"cpu is advisory: pinned to core(s) {','.join(map(str, limits.cpus))}")
        shown = shlex.join(argv)
        if self.confinement is not None:
            if environment.path is not None:
                readable.append(environment.path)
            if os.path.isabs(argv[0]):
                readable += self.confinement.exposable([Path(os.path.realpath(argv[0])).parent])
            argv = self.confinement.command(
                argv, writable=[work, tmp], readable=readable, chdir=work
            )
            uid = self.confinement.uid if self.confinement.uid is not None else os.getuid()
            shown += f" (isolated with bubblewrap, as uid {uid})"
        return self._run_engine(argv, env, work, limits, shown)

    def _run_engine(
        self, argv: list[str], env: dict[str, str], work: Path, limits: _Limits, shown: str
    ) -> Result:
        # Block stop signals while starting, so a cancel either prevents the start or reaches
        # the engine, never falls between the fork and the recorded pid.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            if self.stop_requested_at is not None or self._cancel_requested():
                raise _Stopped()
            output_start = self.output.stat().st_size if self.output.exists() else 0
            self.log(f"starting: {shown}")
            with self.output.open("ab") as output:
                try:
                    self.child = subprocess.Popen(
                        argv,
                        cwd=work,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        # pgid == pid: cancel and timeout stop everything the engine started.
                        start_new_session=True,
                        preexec_fn=_child_setup(limits, confined=self.confinement is not None),
                    )
                except OSError as exc:
                    self.phase = "finish"
                    code = 127 if isinstance(exc, FileNotFoundError) else 126
                    return Result(code, "start_failed", f"cannot start {argv[0]}: {exc}")
            self.phase = "run"
            write_pid_file(self.dir / PID, self.child.pid)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

        child = self.child
        started = time.monotonic()
        deadline = started + limits.timeout_seconds if limits.timeout_seconds else None
        timed_out_at: float | None = None
        killed = False
        while True:
            try:
                code = child.wait(POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if (
                deadline is not None
                and now >= deadline
                and timed_out_at is None
                and self.stop_requested_at is None
            ):
                timed_out_at = now
                self.log(f"timeout of {limits.timeout_seconds:g} s reached: stopping the run")
                signal_group(child.pid, signal.SIGTERM)
            stopping_since = timed_out_at or self.stop_requested_at
            grace = TIMEOUT_GRACE_SECONDS if timed_out_at else self._cancel_grace()
            if stopping_since is not None and not killed and now - stopping_since >= grace:
                signal_group(child.pid, signal.SIGKILL)
                killed = True
        self.phase = "finish"
        # Whatever the engine left running in its group goes with it: nothing may outlive the
        # run and write into a directory that cleanup is about to remove.
        signal_group(child.pid, signal.SIGKILL)
        if self.confinement is not None:
            code = exit_code(code)
        return self._classify(code, limits, timed_out_at is not None, output_start)

    def _classify(self, code: int, limits: _Limits, timed_out: bool, output_start: int) -> Result:
        if timed_out:
            return Result(code, "timeout", f"exceeded its timeout of {limits.timeout_seconds:g} s")
        if self.stop_requested_at is not None:
            if self._cancel_requested():
                return Result(code, "cancelled", "was cancelled")
            return Result(code, "terminated", "its sandbox was stopped by a signal")
        if (
            limits.memory_mib is not None
            and code != 0
            and (
                code in (-signal.SIGKILL, -signal.SIGSEGV)
                or self._output_mentions_memory(output_start)
            )
        ):
            return Result(code, "memory", over_limit_message(limits.memory_mib))
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return Result(code, "exited", f"was killed by {name}")
        return Result(code, "exited", f"exited with code {code}")

    def _output_mentions_memory(self, start: int) -> bool:
        try:
            with self.output.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(start, size - MEMORY_SCAN_BYTES))
                data = handle.read()
        except OSError:
            return False
        return any(marker in data for marker in MEMORY_MARKERS)

    # ------------------------------------------------------------------ output

    def log(self, message: str) -> None:
        self.append_lines([f"[push-pools] {line}" for line in message.splitlines() or [""]])

    def append_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        with self.output.open("a", encoding="utf-8", errors="replace") as handle:
            handle.write("".join(f"{line}\n" for line in lines))

    def finish(self, result: Result) -> None:
        # First line only: an install failure's message repeats lines already in the log.
        summary = (result.message.splitlines() or [""])[0]
        self.log(f"run ended ({result.reason}, exit code {result.exit_code}): {summary}")
        write_atomic(self.dir / RESULT, json.dumps(asdict(result)) + "\n", 0o644)


def _parse_limits(config: dict[str, Any]) -> _Limits:
    def number(name: str) -> float | None:
        value = config.get(name)
        if value is None or value == "":
            return None
        try:
            parsed = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"job variable {name!r} must be a number, got {value!r}") from None
        if not parsed > 0:
            raise ValueError(f"job variable {name!r} must be positive, got {value!r}")
        return parsed

    memory = number("memory")
    cpu = number("cpu")
    cpus: list[int] | None = None
    if cpu is not None and hasattr(os, "sched_getaffinity"):
        available = sorted(os.sched_getaffinity(0))
        wanted = math.ceil(cpu)
        if wanted < len(available):
            cpus = available[:wanted]
    return _Limits(
        memory_mib=int(memory) if memory is not None else None,
        cpus=cpus,
        timeout_seconds=number("timeout_seconds"),
    )


def _child_setup(limits: _Limits, *, confined: bool = False) -> Callable[[], None]:
    """What runs in the engine child between fork and exec (the sandbox has one thread)."""

    def setup() -> None:
        if confined:
            # bwrap must outlive the group's SIGTERM; the command gets it back (bwrap.py).
            confined_preexec()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
        if limits.memory_mib is not None:
            wanted = limits.memory_mib * 1024 * 1024
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard != resource.RLIM_INFINITY:
                wanted = min(wanted, hard)
            # Hard limit too, so the run cannot raise it again.
            resource.setrlimit(resource.RLIMIT_AS, (wanted, wanted))
        if limits.cpus is not None:
            os.sched_setaffinity(0, limits.cpus)

    return setup


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m push_pools.managed.sandbox <run directory>", file=sys.stderr)
        return 2
    return Sandbox(Path(args[0]).resolve()).run()


if __name__ == "__main__":
    sys.exit(main())
