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
from push_pools.executors.base import InfrastructureState, InfrastructureStatus, Submission

TAIL_LINES = 50


@dataclass
class _Process:
    popen: subprocess.Popen[str]
    run_name: str
    temp_dir: str | None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    reader: threading.Thread | None = None


class ProcessExecutor:
    """Subprocesses of the worker, each in its own process group so a cancel stops its children."""

    def __init__(self, output: TextIO | None = None) -> None:
        self._processes: dict[str, _Process] = {}
        self._lock = threading.Lock()
        self._output = output or sys.stdout

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

    def _read_output(self, process: _Process, stream: bool) -> None:
        assert process.popen.stdout is not None  # invariant: started with stdout=PIPE
        for line in process.popen.stdout:
            line = line.rstrip("\n")
            process.tail.append(line)
            if stream:
                print(f"{process.run_name} | {line}", file=self._output, flush=True)

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
