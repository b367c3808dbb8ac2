"""Runs each flow run of a `managed` pool on the server's own host, in a sandbox. See base.Executor.

Each run gets a directory `<root>/runs/<infrastructure id>` and a detached sandbox process
(push_pools.managed.sandbox) that prepares its Python environment, runs the engine with the
run's limits and records the outcome in files. All state lives in those files, not in this
object, so a restarted server (a new ManagedExecutor) sees, cancels and cleans up the runs an
earlier one started, and the infrastructure id is simply the directory name.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from push_pools import settings
from push_pools.errors import InvalidInput, PushPoolsError
from push_pools.executors.base import (
    BaseExecutor,
    InfrastructureState,
    InfrastructureStatus,
    Submission,
)
from push_pools.managed import (
    CANCEL,
    OUTPUT,
    PID,
    REQUEST,
    RESULT,
    SANDBOX_PID,
    SUBMITTED,
    ProcessRef,
    is_alive,
    read_json,
    read_pid_file,
    signal_group,
    tail,
    write_atomic,
    write_pid_file,
)
from push_pools.managed.isolation import Isolation, detect

__all__ = ["ManagedExecutor"]

TAIL_LINES = 20
# A run directory with the submit marker but no sandbox pid yet is a submit in progress (in
# another thread or server); after this long without a submit that restarts it, it is a submit
# that died before starting anything.
SUBMIT_GRACE_SECONDS = 60.0
# How long cancel(wait=True) gives the sandbox, beyond the grace, to record the outcome.
STOP_MARGIN_SECONDS = 15.0
# How long a cancel waits for a SIGKILLed engine to be gone.
KILL_WAIT_SECONDS = 10.0
INFRASTRUCTURE_ID_ENV = "PUSH_POOLS_INFRASTRUCTURE_ID"
# Infrastructure ids name a directory; anything else (slashes, "..") must never reach a path.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
# What the sandbox process inherits from the server. Not the rest: the server's environment
# holds its database URL and encryption key, which a run must never see.
_SANDBOX_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
)
_SANDBOX_ENV_PREFIXES = ("PIP_", "UV_")


class ManagedExecutor(BaseExecutor):
    """Sandboxed processes on the server's host, detached so they survive a server restart.

    `isolation` is what the server detected at start (push_pools.managed.isolation); without
    it, the executor detects it itself, once.
    """

    # Its sandboxes live on this host's disk: the dispatcher records the host on each run and
    # leaves runs of other hosts to their own servers (push_pools/hosts.py).
    runs_on_host = True

    def __init__(self, root: Path | None = None, isolation: Isolation | None = None) -> None:
        base = Path(root) if root is not None else settings.home_dir() / "managed"
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root = base.resolve()
        self.runs_dir = self.root / "runs"
        self.envs_dir = self.root / "envs"
        self.isolation = isolation if isolation is not None else detect()
        confinement = self.isolation.confinement
        # Every sandbox lives here: no run may see another's (or its own request.json).
        self._confinement = confinement.hiding(self.root) if confinement is not None else None
        # Sandboxes this object started, kept only to reap them: a sandbox that exits while
        # the server lives would otherwise stay a zombie.
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ submit

    def submit(self, submission: Submission) -> str:
        if self.isolation.mode == "unavailable":
            # Before anything is created: nothing starts, and the run is Crashed with this.
            raise PushPoolsError(self.isolation.refusal())
        name = submission.infrastructure_name or f"pp-{submission.flow_run_id}"
        run_dir = self._run_dir(name)
        if run_dir is None:
            raise InvalidInput(
                f"infrastructure name {name!r} cannot name a sandbox directory; use letters, "
                "digits, '.', '_' and '-' only (e.g. pp-<run id>-<attempt>)"
            )
        self.runs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        run_dir.mkdir(exist_ok=True, mode=0o700)
        # The submit marker's lock says whether anyone is starting this run: the submitter
        # holds it until the sandbox is started, and the sandbox inherits it for its whole life.
        # A submit that finds it free and nothing started was cut short (a server killed
        # between the marker and the sandbox, say) and starts the sandbox itself; one that
        # finds it held, or the sandbox already started, adopts, so a run never gets two copies.
        fd = os.open(run_dir / SUBMITTED, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return name
            if (run_dir / SANDBOX_PID).exists() or (run_dir / RESULT).exists():
                return name
            os.ftruncate(fd, 0)
            record = {"flow_run_id": submission.flow_run_id, "submitted_at": time.time()}
            os.write(fd, json.dumps(record).encode())
            try:
                self._start(run_dir, name, submission, fd)
            except Exception as exc:
                # Recorded, so an adopting retry and status() report it instead of "lost".
                message = exc.message if isinstance(exc, PushPoolsError) else str(exc)
                _write_result_if_absent(run_dir, 1, "start_failed", message)
                if isinstance(exc, PushPoolsError):
                    raise
                raise PushPoolsError(f"cannot start the sandbox for {name}: {exc}") from exc
        finally:
            os.close(fd)
        return name

    def _start(self, run_dir: Path, name: str, submission: Submission, marker_fd: int) -> None:
        config = dict(submission.job_configuration)
        job_env = config.pop("env", None) or {}
        if not isinstance(job_env, dict):
            raise InvalidInput(
                f"job variable 'env' must be an object of NAME: value strings, got {job_env!r}"
            )
        env = {str(k): str(v) for k, v in job_env.items() if v is not None}
        env.update(submission.engine_env)
        env.setdefault(INFRASTRUCTURE_ID_ENV, name)
        request = {
            "flow_run_id": submission.flow_run_id,
            "flow_run_name": submission.flow_run_name,
            "infrastructure_name": name,
            "pool_name": submission.pool_name,
            "deployment_id": submission.deployment_id,
            "envs_dir": str(self.envs_dir),
            "config": config,
            "env": env,
            "isolation": self._confinement.to_json() if self._confinement is not None else None,
        }
        # 0600: env holds the API key and the resolved credentials.
        write_atomic(run_dir / REQUEST, json.dumps(request, default=str), 0o600)
        with (run_dir / OUTPUT).open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "push_pools.managed.sandbox", str(run_dir)],
                cwd=run_dir,
                env=_sandbox_env(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C or SIGTERM to the server's group leaves it running.
                start_new_session=True,
                pass_fds=(marker_fd,),  # the submit marker's lock, held while it lives
            )
        with self._lock:
            self._children[name] = process
        write_pid_file(run_dir / SANDBOX_PID, process.pid)

    # ------------------------------------------------------------------ status

    def status(self, infrastructure_ids: list[str]) -> dict[str, InfrastructureStatus]:
        self._reap()
        return {i: self._status(i) for i in infrastructure_ids}

    def _status(self, infrastructure_id: str) -> InfrastructureStatus:
        run_dir = self._run_dir(infrastructure_id)
        if run_dir is None or not run_dir.is_dir():
            return InfrastructureStatus(InfrastructureState.MISSING)
        exited = self._exited(run_dir)
        if exited is not None:
            return exited
        engine = read_pid_file(run_dir / PID)
        sandbox = read_pid_file(run_dir / SANDBOX_PID)
        sandbox_alive = is_alive(sandbox)
        if engine is not None and (sandbox_alive or is_alive(engine)):
            return InfrastructureStatus(InfrastructureState.RUNNING)
        if sandbox_alive or (sandbox is None and self._submit_in_progress(run_dir)):
            return InfrastructureStatus(InfrastructureState.STARTING)
        # The sandbox may have written its result and exited since we first looked.
        exited = self._exited(run_dir)
        if exited is not None:
            return exited
        return InfrastructureStatus(
            InfrastructureState.EXITED,
            exit_code=None,
            reason="lost",
            message=(
                "its sandbox process is gone without recording an outcome (the host may have "
                "restarted, or the process was killed)"
            ),
            last_lines=tail(run_dir / OUTPUT, TAIL_LINES),
        )

    def _exited(self, run_dir: Path) -> InfrastructureStatus | None:
        result = read_json(run_dir / RESULT)
        if result is None:
            return None
        exit_code = result.get("exit_code")
        return InfrastructureStatus(
            InfrastructureState.EXITED,
            exit_code=exit_code if isinstance(exit_code, int) else None,
            reason=str(result.get("reason") or "exited"),
            message=str(result["message"]) if result.get("message") else None,
            last_lines=tail(run_dir / OUTPUT, TAIL_LINES),
        )

    def _submit_in_progress(self, run_dir: Path) -> bool:
        try:
            age = time.time() - (run_dir / SUBMITTED).stat().st_mtime
        except FileNotFoundError:
            return False
        return age < SUBMIT_GRACE_SECONDS

    def result(self, infrastructure_id: str) -> dict[str, Any] | None:
        """The recorded outcome {"exit_code", "reason", "message"}, None while there is none."""
        run_dir = self._run_dir(infrastructure_id)
        return read_json(run_dir / RESULT) if run_dir is not None else None

    def logs(self, infrastructure_id: str, limit: int = 50) -> list[str]:
        run_dir = self._run_dir(infrastructure_id)
        return tail(run_dir / OUTPUT, limit) if run_dir is not None else []

    # ------------------------------------------------------------------ cancel and cleanup

    def cancel(
        self, infrastructure_id: str, grace_seconds: float = 10.0, *, wait: bool = False
    ) -> None:
        """SIGTERM the engine's process group and the sandbox; SIGKILL after `grace_seconds`.

        The sandbox enforces the grace period and records reason "cancelled", so this returns
        at once and the dispatcher's loop is not held up; `wait=True` blocks until the
        outcome is recorded. Only when the sandbox is gone does this enforce the grace itself.
        """
        run_dir = self._run_dir(infrastructure_id)
        if run_dir is None or not run_dir.is_dir() or (run_dir / RESULT).exists():
            return
        # Written before any signal, so the sandbox knows the SIGTERM is a cancel (not some
        # other stop) and a sandbox that is only starting will not start the engine at all.
        write_atomic(
            run_dir / CANCEL,
            json.dumps({"grace_seconds": grace_seconds, "requested_at": time.time()}),
            0o644,
        )
        engine = read_pid_file(run_dir / PID)
        sandbox = read_pid_file(run_dir / SANDBOX_PID)
        if is_alive(sandbox):
            if is_alive(engine):
                signal_group(engine[0], signal.SIGTERM)
            _kill(sandbox[0], signal.SIGTERM)
            if not wait:
                return
            deadline = time.monotonic() + grace_seconds + STOP_MARGIN_SECONDS
            while time.monotonic() < deadline and is_alive(sandbox):
                if (run_dir / RESULT).exists():
                    return
                self._reap()
                time.sleep(0.05)
            if (run_dir / RESULT).exists():
                return
        elif sandbox is None and self._submit_in_progress(run_dir):
            # The submitter is about to start the sandbox, which will find cancel.json.
            return
        self._stop_without_sandbox(run_dir, engine, sandbox, grace_seconds)

    def _stop_without_sandbox(
        self,
        run_dir: Path,
        engine: ProcessRef | None,
        sandbox: ProcessRef | None,
        grace_seconds: float,
    ) -> None:
        """Cancel a run whose sandbox died (or hangs): stop the engine and record the outcome."""
        if is_alive(engine):
            signal_group(engine[0], signal.SIGTERM)
            deadline = time.monotonic() + grace_seconds
            while time.monotonic() < deadline and is_alive(engine):
                time.sleep(0.05)
            signal_group(engine[0], signal.SIGKILL)
            # Delivered asynchronously: the run is recorded cancelled only once it is gone.
            deadline = time.monotonic() + KILL_WAIT_SECONDS
            while time.monotonic() < deadline and is_alive(engine):
                time.sleep(0.02)
        if is_alive(sandbox):
            _kill(sandbox[0], signal.SIGKILL)
        self._reap()
        _write_result_if_absent(run_dir, None, "cancelled", "was cancelled")

    def cleanup(self, infrastructure_id: str) -> None:
        """Remove the run's directory (the env cache stays), stopping anything still alive."""
        run_dir = self._run_dir(infrastructure_id)
        if run_dir is None or not run_dir.is_dir():
            return
        engine = read_pid_file(run_dir / PID)
        sandbox = read_pid_file(run_dir / SANDBOX_PID)
        if is_alive(engine):
            signal_group(engine[0], signal.SIGKILL)
        if is_alive(sandbox):
            _kill(sandbox[0], signal.SIGKILL)
        self._reap(wait_for=infrastructure_id)
        # Renamed first so that a half-finished removal never looks like a live run directory.
        trash = run_dir.with_name(f".removing-{run_dir.name}-{secrets.token_hex(4)}")
        try:
            os.replace(run_dir, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def close(self) -> None:
        """Nothing to stop: sandboxes are meant to outlive this object (and the server)."""
        self._reap()

    # ------------------------------------------------------------------ helpers

    def _run_dir(self, infrastructure_id: str) -> Path | None:
        if not isinstance(infrastructure_id, str) or not _ID.match(infrastructure_id):
            return None
        return self.runs_dir / infrastructure_id

    def _reap(self, wait_for: str | None = None) -> None:
        with self._lock:
            children = list(self._children.items())
        for name, process in children:
            if name == wait_for:
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            if process.poll() is not None:
                with self._lock:
                    self._children.pop(name, None)


def _sandbox_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k in _SANDBOX_ENV or k.startswith(_SANDBOX_ENV_PREFIXES)
    }
    env.setdefault("PATH", os.defpath)
    # The sandbox runs `-m push_pools.managed.sandbox` from the run directory; make sure it
    # finds the same push_pools as the server even when that is not installed.
    package_parent = str(Path(__file__).resolve().parent.parent.parent)
    existing = os.environ.get("PYTHONPATH")
    env["PYTHONPATH"] = package_parent + (os.pathsep + existing if existing else "")
    return env


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _write_result_if_absent(
    run_dir: Path, exit_code: int | None, reason: str, message: str
) -> None:
    """Record an outcome unless the sandbox already did (a hard link never overwrites)."""
    tmp = run_dir / f".{RESULT}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    tmp.write_text(json.dumps({"exit_code": exit_code, "reason": reason, "message": message}))
    try:
        os.link(tmp, run_dir / RESULT)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
