"""Runs each flow run as a local subprocess (`python -m push_pools.engine`). See base.Executor."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TextIO

from push_pools.errors import InvalidInput
from push_pools.executors.base import (
    BaseExecutor,
    InfrastructureState,
    InfrastructureStatus,
    Submission,
)
from push_pools.executors.forkserver import ForkServerClient

TAIL_LINES = 50


class _Forked:
    """A child of the fork server, with the part of Popen's interface the executor uses."""

    def __init__(self, server: ForkServerClient, pid: int, stdout: TextIO) -> None:
        self._server = server
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.poll(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            code = self._server.wait(self.pid, timeout)
            if code is None:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            self.returncode = code
            self._server.forget(self.pid)
        return self.returncode


@dataclass
class _Process:
    popen: subprocess.Popen[str] | _Forked
    run_name: str
    temp_dir: str | None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    reader: threading.Thread | None = None


class ProcessExecutor(BaseExecutor):
    """Subprocesses of the worker, each in its own process group so a cancel stops its children."""

    def __init__(self, output: TextIO | None = None, *, use_fork_server: bool = True) -> None:
        self._processes: dict[str, _Process] = {}
        self._lock = threading.Lock()
        # None: whatever sys.stdout is when a line arrives (it may be swapped after we start).
        self._output = output
        self._use_fork_server = use_fork_server and hasattr(os, "fork")
        self._fork_server: ForkServerClient | None = None

    def prepare(self) -> None:
        """Start the fork server now, so the first run does not wait for its imports."""
        if self._use_fork_server and self._fork_server is None:
            self._fork_server = ForkServerClient()

    def close(self) -> None:
        if self._fork_server is not None:
            self._fork_server.close()
            self._fork_server = None

    def _can_fork(self, config: dict[str, Any]) -> bool:
        # A custom command, or PYTHON* variables that only a new interpreter would honour,
        # need a real exec.
        env = config.get("env") or {}
        return (
            self._use_fork_server
            and not config.get("command")
            and not any(str(k).startswith("PYTHON") for k in env)
        )

    def command_for(self, config: dict[str, Any]) -> list[str]:
        command = config.get("command")
        if not command:
            return [sys.executable, "-m", "push_pools.engine"]
        try:
            return shlex.split(command)
        except ValueError as exc:
            raise InvalidInput(f"job variable 'command' cannot be parsed: {exc}") from exc

    def submit(self, submission: Submission) -> str:
        config = submission.job_configuration
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (config.get("env") or {}).items() if v is not None})
        env.update(submission.engine_env)
        temp_dir = None
        working_dir = config.get("working_dir")
        if not working_dir:
            prefix = f"push-pools-{submission.flow_run_id[:8]}-"
            working_dir = temp_dir = tempfile.mkdtemp(prefix=prefix)
        popen: subprocess.Popen[str] | _Forked
        if self._can_fork(config):
            popen = self._fork(env, working_dir)
        else:
            popen = subprocess.Popen(
                self.command_for(config),
                cwd=working_dir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
        infrastructure_id = f"pid:{popen.pid}"
        process = _Process(popen=popen, run_name=submission.flow_run_name, temp_dir=temp_dir)
        stream = config.get("stream_output", True) is not False
        process.reader = threading.Thread(
            target=self._read_output, args=(process, stream), daemon=True
        )
        process.reader.start()
        with self._lock:
            self._processes[infrastructure_id] = process
        return infrastructure_id

    def _fork(self, env: dict[str, str], working_dir: str) -> _Forked:
        self.prepare()
        server = self._fork_server
        if server is None:  # close() ran meanwhile, from another thread
            raise RuntimeError("the process executor is closed; it starts no more runs")
        read_fd, write_fd = os.pipe()
        try:
            pid = server.spawn(env, working_dir, write_fd)
        finally:
            os.close(write_fd)
        return _Forked(server, pid, os.fdopen(read_fd, "r", errors="replace"))

    def _read_output(self, process: _Process, stream: bool) -> None:
        output = process.popen.stdout
        if output is None:
            raise RuntimeError("the run's process was started without stdout=PIPE")
        for line in output:
            line = line.rstrip("\n")
            process.tail.append(line)
            if stream:
                try:
                    print(
                        f"{process.run_name} | {line}", file=self._output or sys.stdout, flush=True
                    )
                except (ValueError, OSError):
                    stream = False  # our stdout went away; the tail above still has the lines

    def wait(self, infrastructure_id: str, timeout: float | None = None) -> int | None:
        process = self._processes.get(infrastructure_id)
        if process is None:
            return None
        try:
            code = process.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if process.reader is not None:
            process.reader.join(5)
        if process.popen.stdout is not None:
            process.popen.stdout.close()
        return code

    def status(self, infrastructure_ids: list[str]) -> dict[str, InfrastructureStatus]:
        result = {}
        for infrastructure_id in infrastructure_ids:
            process = self._processes.get(infrastructure_id)
            if process is None:
                result[infrastructure_id] = InfrastructureStatus(InfrastructureState.MISSING)
                continue
            code = process.popen.poll()
            if code is None:
                result[infrastructure_id] = InfrastructureStatus(InfrastructureState.RUNNING)
            else:
                result[infrastructure_id] = InfrastructureStatus(
                    InfrastructureState.EXITED, exit_code=code, last_lines=list(process.tail)
                )
        return result

    def logs(self, infrastructure_id: str, limit: int = TAIL_LINES) -> list[str]:
        process = self._processes.get(infrastructure_id)
        return list(process.tail)[-limit:] if process else []

    def cancel(self, infrastructure_id: str, grace_seconds: float = 10.0) -> None:
        process = self._processes.get(infrastructure_id)
        if process is None or process.popen.poll() is not None:
            return
        _signal_group(process.popen.pid, signal.SIGTERM)
        try:
            process.popen.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            _signal_group(process.popen.pid, signal.SIGKILL)
            process.popen.wait(5)

    def cleanup(self, infrastructure_id: str) -> None:
        with self._lock:
            process = self._processes.pop(infrastructure_id, None)
        if process is not None and process.temp_dir:
            shutil.rmtree(process.temp_dir, ignore_errors=True)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
