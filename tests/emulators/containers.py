"""A container of an emulated cloud, run as a local subprocess: what every emulator shares.

No image is pulled: the container's argv runs on this machine with exactly the environment the
cloud would assemble (plus PATH, HOME and LANG, as an image has them), in a fresh working
directory, in its own process group, so a stop reaches everything it started. A leading
`python`/`python3` becomes the interpreter `Container.python` names (this one by default), as
an image's python would be on its PATH. The exit code is Docker's: 128+N after signal N.
stderr joins stdout (`output`) unless `on_stderr_line` is given: then it is read apart (`errors`).

    container = Container(argv, env, on_line=lines.append)
    container.start()            # OSError (with .strerror) when argv[0] cannot be executed
    code = container.wait(stop_requested=event, grace_seconds=2.0)
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
from pathlib import Path
from typing import IO

__all__ = ["Container", "docker_exit_code", "signal_group"]

# What a container has before its own environment: the image's usual defaults.
BASE_ENV = {"LANG": "C.UTF-8"}


class Container:
    """One container's process: start it, read its output line by line, stop it, wait."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        *,
        on_line: Callable[[str], None] | None = None,
        on_stderr_line: Callable[[str], None] | None = None,
        python: str | None = None,
        workdir_parent: str | None = None,
    ) -> None:
        self.python = python or sys.executable
        self.argv = [self.python, *argv[1:]] if argv and argv[0] in ("python", "python3") else argv
        self.env = env
        self.on_line = on_line
        # Docker keeps a container's stderr apart (its log frames say which stream); the clouds'
        # log streams interleave both, which is what a single pipe gives.
        self.on_stderr_line = on_stderr_line
        self.output: list[str] = []
        self.errors: list[str] = []
        self.workdir = tempfile.mkdtemp(prefix="container-", dir=workdir_parent)
        self.popen: subprocess.Popen[bytes] | None = None
        self._readers: list[threading.Thread] = []

    def start(self) -> None:
        process_env = {
            **BASE_ENV,
            # The interpreter's directory first, as an image's PATH would have its python.
            "PATH": os.pathsep.join([str(Path(self.python).parent), os.defpath]),
            "HOME": self.workdir,
            **self.env,
        }
        self.popen = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            env=process_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if self.on_stderr_line is None else subprocess.PIPE,
            start_new_session=True,  # its own group, so a stop reaches its children
        )
        assert self.popen.stdout is not None
        pipes = [(self.popen.stdout, self.output, self.on_line)]
        if self.popen.stderr is not None:
            pipes.append((self.popen.stderr, self.errors, self.on_stderr_line))
        for pipe, lines, callback in pipes:
            reader = threading.Thread(
                target=_pump, args=(pipe, lines, callback), name="container-output", daemon=True
            )
            reader.start()
            self._readers.append(reader)

    def wait(
        self,
        stop_requested: threading.Event | None = None,
        grace_seconds: float = 2.0,
        deadline_seconds: float | None = None,
    ) -> int:
        """Wait for the process; on `stop_requested` (or after `deadline_seconds`) SIGTERM its
        group, SIGKILL after `grace_seconds`. Returns Docker's exit code; output is complete."""
        if self.popen is None:
            raise RuntimeError("the container was never started")
        stop = stop_requested or threading.Event()
        timer_hit = False
        if deadline_seconds is not None:
            timer_hit = not self._wait_or_stop(stop, deadline_seconds)
        else:
            self._wait_or_stop(stop, None)
        if self.popen.poll() is None and (stop.is_set() or timer_hit):
            signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                signal_group(self.popen.pid, signal.SIGKILL)
        code = self.popen.wait()
        # Whatever it left running in its group goes with it.
        signal_group(self.popen.pid, signal.SIGKILL)
        for reader in self._readers:
            reader.join(10)
        return docker_exit_code(code)

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            signal_group(self.popen.pid, signal.SIGKILL)

    def _wait_or_stop(self, stop: threading.Event, seconds: float | None) -> bool:
        """True when the process ended or a stop was asked before `seconds` passed."""
        assert self.popen is not None
        end = None if seconds is None else time.monotonic() + seconds
        while end is None or time.monotonic() < end:
            try:
                self.popen.wait(0.05)
                return True
            except subprocess.TimeoutExpired:
                pass
            if stop.is_set():
                return True
        return False


def _pump(pipe: IO[bytes], lines: list[str], on_line: Callable[[str], None] | None) -> None:
    for raw in pipe:
        line = raw.decode(errors="replace").rstrip("\n")
        lines.append(line)
        if on_line is not None:
            on_line(line)
    pipe.close()


def docker_exit_code(returncode: int) -> int:
    """subprocess's -N for signal N becomes 128+N, as Docker and the clouds report it."""
    return 128 - returncode if returncode < 0 else returncode


def signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
